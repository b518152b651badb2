# A burst far larger than the retain ring reaches every SSE subscriber on
# both workers: the rings hold what a worker's fan-out has not fed yet,
# so a publisher that outruns the fan-out does not make subscribers miss
# messages. Then the hold is bounded: for a worker whose fan-out cannot
# run the rings keep only so much, and what it misses is counted.

use strict;
use warnings;

use Test::More;
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time);
use lib 't/lib';
use Omnibus::Test;
use Omnibus::Sse;

my $t = Omnibus::Test->new;

$t->conf(<<'EOF')->start;
    omnibus_zone zone=bus:64m shards=2 min_shards=2 retain=10
                 queue_size=100000;

    server {
        listen 127.0.0.1:%%PORT0%% reuseport;
        keepalive_requests 100000;
        add_header X-Worker $pid always;

        location /publish/ { omnibus_publish bus; }
        location /subscribe/ { omnibus_subscribe bus buffer=64m; }
        location = /metrics { omnibus_metrics; }
        location /admin/ { omnibus_admin bus; }
    }
EOF

my $port = $t->port;
my $subs = 60;
my $burst = 600;

sub metric { $t->metric(@_) }

# subscribers; %seen counts each seq a stream got
my (@subs, %seen);
for my $i (1 .. $subs) {
    push @subs, Omnibus::Sse->new($port, '/subscribe/burst.t');
}

my $sel = IO::Select->new(map { $_->sock } @subs);
my %sub_of = map { $_->sock => $_ } @subs;

sub pump {
    my ($timeout) = @_;
    for my $fh ($sel->can_read($timeout)) {
        my $s = $sub_of{$fh};
        $sel->remove($fh) unless $s->read_once;
        while (my $e = shift @{$s->{events}}) {
            my ($seq) = "@{$e->{data}}" =~ /"seq":(\d+)/ or next;
            $seen{$s}{$seq}++;
        }
    }
}

sub workers {
    my %w = map { $_->worker => 1 } grep { defined $_->worker } @subs;
    return scalar keys %w;
}

ok(Omnibus::Test::wait_until(sub { pump(0.05); workers() == 2
                                   && metric('subscribers') == $subs },
                             timeout => 20),
   "$subs subscribers on both workers");

# the burst: every publish written at once on one connection (pipelined)
my $pub = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 10)
    or die "connect: $!";
my $reqs = '';
for my $n (1 .. $burst) {
    my $body = qq({"seq":$n,"pad":") . ('p' x 200) . '"}';
    $reqs .= "POST /publish/burst.t HTTP/1.1\r\nHost: x\r\n"
           . "Content-Type: application/json\r\n"
           . 'Content-Length: ' . length($body) . "\r\n\r\n$body";
}
my $pubsel = IO::Select->new($pub);
my ($off, $answers, $answered, %burst_status) = (0, '', 0);
my $deadline = time + 60;
$pub->blocking(0);
while ($answered < $burst && time < $deadline) {
    # writable matters only while there is something left to write
    my $wsel = $off < length $reqs ? $pubsel : undef;
    my ($rd, $wr) = IO::Select->select($pubsel, $wsel, undef, 0.05);
    if ($wr && @$wr) {
        my $w = syswrite($pub, $reqs, 65536, $off);
        $off += $w if $w;
    }
    if ($rd && @$rd) {
        # 0 is the end; undef with EAGAIN is only nothing to read yet
        my $n = sysread($pub, my $chunk, 1 << 20);
        last if defined $n && $n == 0;
        last if !defined $n && !$!{EAGAIN} && !$!{EWOULDBLOCK} && !$!{EINTR};
        if ($n) {
            $answers .= $chunk;
            %burst_status = ();
            $burst_status{$_}++ for $answers =~ /HTTP\/1\.1 (\d{3})/g;
            $answered = 0;
            $answered += $_ for values %burst_status;
        }
    }
    pump(0);
}
is($burst_status{202} // 0, $burst, "$burst publishes accepted in one burst")
    or diag(join ', ', map { "$_: $burst_status{$_}" } sort keys %burst_status);

sub complete {
    my $short = 0;
    for my $s (@subs) {
        my $got = keys %{$seen{$s}};
        $short++ if $got < $burst;
    }
    return $short == 0;
}

ok(Omnibus::Test::wait_until(sub { pump(0.05); complete() }, timeout => 30),
   "every subscriber got all $burst (retain=10)");

my ($dups, $missing) = (0, 0);
for my $s (@subs) {
    for my $n (1 .. $burst) {
        my $c = $seen{$s}{$n} // 0;
        $missing++ if $c == 0;
        $dups++ if $c > 1;
    }
}
is($missing, 0, 'nothing missing');
is($dups, 0, 'nothing twice');
is(metric('subscriber_missed_total'), 0, 'none counted as missed');

close $_->sock for @subs;
ok(Omnibus::Test::wait_until(sub { metric('subscribers') == 0 },
                             timeout => 10), 'subscribers gone');

# The hold is bounded. A worker whose fan-out cannot run (stopped with
# SIGSTOP) while it has a subscriber pins each ring it has not fed at
# retain + 4096 messages at most; what goes past that is counted.
my $stuck = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 10)
    or die "connect: $!";
print $stuck "GET /subscribe/hold.> HTTP/1.1\r\nHost: x\r\n"
             . "Accept: text/event-stream\r\n\r\n";
my $head = '';
until ($head =~ /\r\n\r\n/) {
    sysread($stuck, $head, 4096, length $head) or die "no answer";
}
my ($stopped) = $head =~ /X-Worker: (\d+)/;

# a keepalive connection to the other worker for everything that follows
my $c;
for (1 .. 50) {
    $c = $t->conn;
    my $r = $c->request(GET => '/metrics', keepalive => 1);
    last if $r->{headers}{'x-worker'} != $stopped;
    undef $c;
}
ok($c, 'a connection to the other worker');

sub metric_on {
    my ($name) = @_;
    my ($v) = $c->request(GET => '/metrics', keepalive => 1)->{body}
                 =~ /^message_bus_\Q$name\E\{zone="bus"\} (\d+)$/m;
    return $v;
}

my $missed0 = metric_on('subscriber_missed_total');
kill 'STOP', $stopped;

# publish over 100 topics until the shard of the running worker is past
# retain + 4096 and misses are counted (the other shard only queues)
my ($sent, $ok, %status) = (0, 0);
while ($sent < 40000) {
    for (1 .. 1000) {
        $sent++;
        my $r = $c->request(POST => '/publish/hold.t' . ($sent % 100),
                            keepalive => 1, body => qq({"n":$sent}));
        $status{$r ? $r->{status} : 'none'}++;
    }
    last if metric_on('subscriber_missed_total') > $missed0;
}
$ok = $status{202} // 0;
diag(join ', ', map { "$_: $status{$_}" } sort keys %status) if $ok != $sent;
is($ok, $sent, "$sent published while the subscriber's worker is stopped");

my @retained = $c->request(GET => '/admin/', keepalive => 1)->{body}
                  =~ /"retained":(\d+)/g;
my $max = (sort { $b <=> $a } @retained)[0];
ok($max > 10 && $max <= 10 + 4096,
   "the rings hold past retain=10, at most 4,106 (largest: $max)");
ok(metric_on('subscriber_missed_total') > $missed0,
   'what went past the bound is counted as missed');

kill 'CONT', $stopped;
close $stuck;
ok(Omnibus::Test::wait_until(sub { metric_on('subscribers') == 0 },
                             timeout => 20), 'the stopped worker goes on');

$t->finish;
