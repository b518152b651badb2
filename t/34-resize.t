# A reload that changes a zone's size makes a new, empty zone.  It is
# refused while the old zone holds messages; an empty one is retired, so
# that a publish still in progress on an old worker gets 503 and is
# retried, not queued where nobody dispatches; and if the new
# configuration fails to load after all, the old zone serves on.

use strict;
use warnings;

use Test::More;
use lib 't/lib';
use Omnibus::Test;
use IO::Socket::INET;
use Time::HiRes qw(sleep);

my $t = Omnibus::Test->new(ports => 2);

sub conf {
    my ($size, $extra) = @_;
    $extra //= '';
    return <<"EOF";
    omnibus_zone zone=bus:$size shards=2 min_shards=1;

    server {
        listen 127.0.0.1:%%PORT0%%;
        location /publish/ { omnibus_publish bus; }
        location /omnibus/ { omnibus_admin bus; }
    }
$extra
EOF
}

sub status { $t->http(GET => '/omnibus/')->{json} }

sub queued {
    my $n = 0;
    $n += $_->{queued} for @{status()->{shards}};
    return $n;
}

sub hup_and_wait {
    my ($re) = @_;
    kill 'HUP', $t->master_pid;
    return Omnibus::Test::wait_until(sub { $t->error_log =~ $re },
                                     timeout => 20);
}

$t->conf(conf('16m'))->start;

# refused while the zone holds messages

$t->http(POST => "/omnibus/shards/$_/pause") for 0, 1;
is($t->http(POST => "/publish/held.t$_", body => '{}')->{status}, 202,
   "queued $_") for 1 .. 10;

my @workers = $t->worker_pids;
$t->conf(conf('32m'));

ok(hup_and_wait(qr/\[emerg\].*omnibus\ zone\ "bus"\ changes\ size\ from
                   \ 16777216\ to\ 33554432\ while\ it\ holds\ 10
                   \ message/x),
   'the resize is refused, naming the zone and what it holds');
sleep 0.5;
is_deeply([$t->worker_pids], \@workers, 'the old workers run on');
is(queued(), 10, 'with the messages queued');

$t->http(POST => "/omnibus/shards/$_/resume") for 0, 1;
ok(Omnibus::Test::wait_until(sub { queued() == 0 }), 'drained');

# empty: resized, and a publish in progress on an old worker is refused

my $body = '{"late":true}';
my $late = Omnibus::Test::Conn->new($t);
ok($late->send_raw("POST /publish/late.one HTTP/1.1\r\nHost: x\r\n"
                   . "Content-Length: " . length($body) . "\r\n\r\n"
                   . substr($body, 0, 4)), 'a publish under way');

my %old = map { $_ => 1 } $t->worker_pids;
kill 'HUP', $t->master_pid;
ok(Omnibus::Test::wait_until(sub {
       (grep { !$old{$_} } $t->worker_pids) == 2
   }, timeout => 20), 'resized: new workers');

ok($late->send_raw(substr($body, 4)), 'its body ends on the old worker');
my $r = $late->read_response;
is($r && $r->{status}, 503, 'answered 503');
is($r && $r->{json}{error}, 'zone_resizing', 'zone_resizing');
ok($r && $r->{headers}{'retry-after'}, 'with Retry-After');

ok(Omnibus::Test::wait_until(sub {
       !grep { Omnibus::Test::alive($_) } keys %old
   }, timeout => 20), 'the old workers are gone');
is($t->http(POST => '/publish/late.one', body => $body)->{status}, 202,
   'the retry is taken by the new zone');
is(status()->{size}, 32 * 1024 * 1024, 'of the new size');
is(status()->{published}, 1, 'holding only the retry');

# a configuration that fails after the zone was made: the old one serves

my $busy = IO::Socket::INET->new(LocalAddr => '127.0.0.1:' . $t->port(1),
                                 Listen => 1, ReuseAddr => 1)
    or die "cannot hold port: $!";

@workers = $t->worker_pids;
$t->conf(conf('48m', "server { listen 127.0.0.1:%%PORT1%%; }\n"));

ok(hup_and_wait(qr/still could not bind/),
   'the next reload fails after making its zone');
is_deeply([$t->worker_pids], \@workers, 'the workers run on');
is($t->http(POST => '/publish/after.fail', body => '{}')->{status}, 202,
   'and their zone still takes publishes');
close $busy;

$t->finish(allow => [qr/changes size from .* while it holds/,
                     qr/bind\(\) to .* failed|still could not bind/]);
