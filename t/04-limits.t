# Refusals: backpressure (decided before the body is read, with
# hysteresis), sliding-window rate limits shared by the workers, and a
# full zone (503 zone_full, one log line, retained messages evicted first).

use strict;
use warnings;

use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(time);
use lib 't/lib';
use Omnibus::Test;

my $t = Omnibus::Test->new;

$t->conf(<<'EOF')->start;
    omnibus_zone zone=bp:4m shards=1 min_shards=1 max_shards=1
                 queue_size=10 backpressure=80%:50% retain=10;
    omnibus_zone zone=full:256k shards=1 min_shards=1 max_shards=1
                 queue_size=100000 backpressure=100%:99% retain=0;
    omnibus_zone zone=keep:256k shards=1 min_shards=1 max_shards=1
                 queue_size=100000 retain=100000;

    server {
        listen 127.0.0.1:%%PORT0%% reuseport;
        add_header X-Worker $pid always;

        location /bp/ { omnibus_publish bp; }
        location /full/ { omnibus_publish full; omnibus_json off; }
        location /keep/ { omnibus_publish keep; omnibus_json off; }

        location /limited/ {
            omnibus_publish bp;
            omnibus_rate_limit $http_x_client rate=5r/s;
        }

        location /minute/ {
            omnibus_publish bp;
            omnibus_rate_limit $http_x_client rate=3r/m;
        }

        location /omnibus-bp/ { omnibus_admin bp; }
        location /omnibus-full/ { omnibus_admin full; }
        location /omnibus-keep/ { omnibus_admin keep; }
        location = /ready { omnibus_health bp ready; }
        location = /metrics { omnibus_metrics; }
    }
EOF

sub bp { $t->http(GET => '/omnibus-bp/')->{json}{shards}[0] }

# backpressure: 80% of 10 queued refuses, until it drains to 50%

$t->http(POST => '/omnibus-bp/shards/0/pause');

my @st = map { $t->http(POST => "/bp/t$_", body => '{}')->{status} } 1 .. 9;
is_deeply(\@st, [(202) x 8, 429], 'eight accepted, the ninth refused');

my $r = $t->http(POST => '/bp/t', body => '{}');
is($r->{status}, 429, 'over the high watermark: 429');
is($r->{json}{error}, 'backpressure', 'backpressure');
is($r->{headers}{'retry-after'}, '1', 'with Retry-After');
ok(bp()->{backpressure}, 'status shows it');
is($t->http(GET => '/ready')->{status}, 503, 'not ready meanwhile');

# the answer comes before the body: send headers only

my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . $t->port(0),
                              Timeout => 10) or die;
print $s "POST /bp/t HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
       . "Connection: close\r\n\r\n";
my $head = '';
my $sel = IO::Select->new($s);
while ($head !~ /\r\n\r\n/ && $sel->can_read(10)) {
    sysread($s, $head, 4096, length $head) or last;
}
like($head, qr{^HTTP/1.1 429}, '429 without the body being sent');
close $s;

$t->http(POST => '/omnibus-bp/shards/0/resume');
ok(Omnibus::Test::wait_until(sub { bp()->{queued} == 0 }, timeout => 10),
   'drained after resume');
ok(!bp()->{backpressure}, 'below the low watermark: accepting');
is($t->http(POST => '/bp/t', body => '{}')->{status}, 202, 'accepted again');
is($t->http(GET => '/ready')->{status}, 200, 'ready again');

# hysteresis: from 8 down to 6 it still refuses, at 5 it accepts

# the message accepted above must be dispatched before the pause, or it
# stays queued under the eight below; paused, those eight stay queued
ok(Omnibus::Test::wait_until(sub { bp()->{queued} == 0 }, timeout => 10),
   'empty');
$t->http(POST => '/omnibus-bp/shards/0/pause');
$t->http(POST => "/bp/h$_", body => '{}') for 1 .. 8;
ok(bp()->{backpressure}, 'on at 8');

# resume and pause again at once: the owner drains some of them; whatever
# it drained, the flag must follow the rule
$t->http(POST => '/omnibus-bp/shards/0/resume');
$t->http(POST => '/omnibus-bp/shards/0/pause');
my $b = bp();
ok($b->{backpressure} ? $b->{queued} > 5 : $b->{queued} <= 5,
   "flag follows the watermarks at $b->{queued} queued");
$t->http(POST => '/omnibus-bp/shards/0/resume');
Omnibus::Test::wait_until(sub { bp()->{queued} == 0 }, timeout => 10);

# rate limits: the first 5 of a burst pass, across workers and connections;
# the burst must fit in the 1 s window, else again with a fresh key

my (%status, %workers, $refused, $client);
for my $try (1 .. 5) {
    $client = "alice$try";
    %status = ();
    %workers = ();
    $refused = undef;
    my $start = time;
    for (1 .. 20) {
        my $x = $t->http(POST => '/limited/r.t', body => '{}',
                         headers => { 'X-Client' => $client });
        $status{$x->{status}}++;
        $workers{$x->{headers}{'x-worker'}}++;
        $refused //= $x if $x->{status} == 429;
    }
    my $took = time - $start;
    last if $took <= 0.8;
    diag(sprintf('burst %d took %.2f s, over 0.8 s: again', $try, $took));
}
is($refused->{json}{error}, 'rate_limited', 'rate_limited');
is($refused->{headers}{'retry-after'}, '1', 'Retry-After: 1 for r/s');
is($status{202}, 5, 'five of twenty pass');
is($status{429}, 15, 'fifteen refused');
is(scalar keys %workers, 2, 'over both workers');

is($t->http(POST => '/limited/r.t', body => '{}',
            headers => { 'X-Client' => 'bob' })->{status}, 202,
   'another key has its own window');
is(scalar(grep { $t->http(POST => '/limited/r.t', body => '{}')->{status}
                 == 202 } 1 .. 20), 20, 'an empty key is not limited');

ok(Omnibus::Test::wait_until(sub {
       $t->http(POST => '/limited/r.t', body => '{}',
                headers => { 'X-Client' => $client })->{status} == 202;
   }, timeout => 10, interval => 0.1), 'the window slides');

my @m = map {
    $t->http(POST => '/minute/m.t', body => '{}',
             headers => { 'X-Client' => 'carol' })
} 1 .. 4;
is_deeply([map { $_->{status} } @m], [202, 202, 202, 429], '3r/m');
ok($m[3]{headers}{'retry-after'} >= 1 && $m[3]{headers}{'retry-after'} <= 60,
   "Retry-After within the minute ($m[3]{headers}{'retry-after'})");

# a full zone: 503 zone_full, never 500, one log line

$t->http(POST => '/omnibus-full/shards/0/pause');

my (%full, $accepted);
my $body = 'x' x 4096;
for (1 .. 200) {
    my $x = $t->http(POST => '/full/f.t', body => $body);
    $full{$x->{status}}++;
    $accepted++ if $x->{status} == 202;
    if ($x->{status} == 503 && $full{503} == 1) {
        is($x->{json}{error}, 'zone_full', 'zone_full');
        ok($x->{headers}{'retry-after'}, 'with Retry-After');
    }
}
ok($accepted > 10, "$accepted accepted before it filled");
is($full{500}, undef, 'never a 500');
is($full{202} + $full{503}, 200, 'only 202 and 503');

my @full_lines = $t->error_log =~ /\[warn\].*omnibus zone "full" is full/g;
cmp_ok(scalar @full_lines, '>=', 1, 'the full zone is logged at warn');
cmp_ok(scalar @full_lines, '<=', 2, 'at most two lines for a burst');

$t->http(POST => '/omnibus-full/shards/0/resume');
ok(Omnibus::Test::wait_until(sub {
       $t->http(POST => '/full/f.t', body => $body)->{status} == 202;
   }, timeout => 10), 'accepting again once drained');

# retained messages make room before a publish is refused

my $keep = 0;
for (1 .. 3 * $accepted) {
    $keep++ if $t->http(POST => '/keep/k.t', body => $body)->{status} == 202;
}
is($keep, 3 * $accepted, 'three zones worth published, all accepted');
my ($evicted) = $t->http(GET => '/omnibus-keep/')->{json}{shards}[0]{retained};
cmp_ok($evicted, '<', 3 * $accepted, 'the oldest retained were evicted');

$t->finish;
