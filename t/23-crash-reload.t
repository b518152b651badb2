# At-least-once: deliveries in flight when a worker is killed are redone
# by its successor, the subscribers of a killed worker leave the gauge,
# nothing accepted is lost over reloads under load, and a concurrency=1
# route gets each topic in order across a reload and a kill.

use strict;
use warnings;

use Test::More;
use POSIX ();
use lib 't/lib';
use Omnibus::Test;
use Omnibus::Receiver;
use Omnibus::Sse;

# the workers this test kills with -9 are no crash
my $t = Omnibus::Test->new(ports => 2, allow => [qr/exited on signal 9/]);
my $rx = Omnibus::Receiver->new(t => $t, index => 1);

$t->conf(<<'EOF')->start;
    omnibus_zone zone=bus:64m shards=4 min_shards=2 retain=10;
    omnibus_route bus jobs.> http://127.0.0.1:%%PORT1%%/hook timeout=10s
                  concurrency=8;
    omnibus_route bus seq.> http://127.0.0.1:%%PORT1%%/seq timeout=10s
                  concurrency=1;

    server {
        listen 127.0.0.1:%%PORT0%% reuseport;
        add_header X-Worker $pid always;

        location /publish/ { omnibus_publish bus; }
        location /subscribe/ { omnibus_subscribe bus; }
        location /omnibus/ { omnibus_admin bus; }
        location = /metrics { omnibus_metrics; }
    }
EOF

sub received { map { $_->{headers}{'x-omnibus-id'} => 1 }
               grep { $_->{status} == 200 } $rx->requests }

sub settled {
    my $s = $t->http(GET => '/omnibus/')->{json} or return 0;
    my ($q, $f) = (0, 0);
    for (@{$s->{shards}}) { $q += $_->{queued}; $f += $_->{inflight} }
    return $q == 0 && $f == 0;
}

# kill -9 with deliveries in flight

$rx->set('/hook' => { delay => 1.5 });

my @ids = map {
    $t->http(POST => "/publish/jobs.k$_", body => qq({"n":$_}))->{json}{id}
} 1 .. 20;

ok(Omnibus::Test::wait_until(sub { $rx->requests >= 8 }, timeout => 20),
   'deliveries in flight');

for my $victim (0, 1) {
    my @pids = $t->worker_pids;
    kill 'KILL', $pids[$victim];
    Omnibus::Test::wait_until(sub {
        my @now = $t->worker_pids;
        @now == 2 && !grep { $_ == $pids[$victim] } @now;
    }, timeout => 20);
}

$rx->set('/hook' => { delay => 0 });

ok(Omnibus::Test::wait_until(sub {
       my %got = received();
       !grep { !$got{$_} } @ids;
   }, timeout => 60), 'every message delivered despite two kills');
ok(Omnibus::Test::wait_until(\&settled, timeout => 30),
   'nothing left queued or in flight');
like($t->error_log, qr/in flight for a worker that is gone are queued again/,
     'the successor took them over');

# kill -9 of a worker with SSE streams open

sub subscribers { $t->metric('subscribers') }

my @subs = Omnibus::Sse->spread($t->port(0), '/subscribe/jobs.>', 6);
my %on;
$on{$_->worker}++ for @subs;
is(scalar keys %on, 2, 'streams on both workers');
ok(Omnibus::Test::wait_until(sub { subscribers() == @subs }, timeout => 10),
   'the gauge counts ' . scalar(@subs) . ' streams');

my $victim = $subs[0]->worker;
kill 'KILL', $victim;
ok(Omnibus::Test::wait_until(sub {
       my @now = $t->worker_pids;
       @now == 2 && !grep { $_ == $victim } @now;
   }, timeout => 20), 'the killed worker is replaced');

my $left = @subs - $on{$victim};
ok(Omnibus::Test::wait_until(sub { subscribers() == $left }, timeout => 20),
   "the gauge drops to the $left streams of the survivor");
# the line is logged just after the gauge drops
ok(Omnibus::Test::wait_until(sub {
       $t->error_log =~
           / $on{$victim} subscriber\(s\) of a worker that is gone left/
   }, timeout => 10), 'its streams were taken off the count');

$_->sock->close for @subs;
ok(Omnibus::Test::wait_until(sub { subscribers() == 0 }, timeout => 20),
   'no subscribers once the streams are closed');

# reloads under load

my $file = $t->dir . '/accepted.txt';
my $pid = fork // die;

if ($pid == 0) {
    open my $fh, '>', $file or die;
    $fh->autoflush(1);
    for my $n (1 .. 300) {
        my $r = $t->http(POST => "/publish/jobs.r" . ($n % 7),
                         body => qq({"n":$n}));
        print $fh "$r->{json}{id}\n" if $r && $r->{status} == 202;
    }
    close $fh;
    POSIX::_exit(0);
}

Omnibus::Test::wait_until(sub { -s $file }, timeout => 10);
$t->reload;
$t->reload;
waitpid $pid, 0;

open my $fh, '<', $file or die;
chomp(my @accepted = <$fh>);
close $fh;
cmp_ok(scalar @accepted, '>=', 290, scalar(@accepted) . ' accepted');

ok(Omnibus::Test::wait_until(sub {
       my %got = received();
       !grep { !$got{$_} } @accepted;
   }, timeout => 60), 'every accepted message delivered across two reloads');
ok(Omnibus::Test::wait_until(\&settled, timeout => 30), 'settled');

# per-topic order (concurrency=1) across a reload and a kill: the worker
# replaced keeps messages of the shard in flight, which it hands back
# to the queue front when it exits

sub first_receipts {
    my (%seen, @order);
    for ($rx->requests_for('/seq')) {
        my ($n) = $_->{body} =~ /"n":(\d+)/ or next;
        push @order, $n unless $seen{$n}++;
    }
    return @order;
}

sub publish_seq {
    my ($from, $to) = @_;
    my @bad = grep {
        $t->http(POST => '/publish/seq.a', body => qq({"n":$_}))->{status}
            != 202
    } $from .. $to;
    is("@bad", '', "seq $from..$to accepted");
}

# the old worker holds 1..5 (one in flight, the rest behind it) while
# 6..30 come to its successor
$rx->set('/seq' => { delay => 1 });
publish_seq(1, 5);
ok(Omnibus::Test::wait_until(sub { $rx->requests_for('/seq') >= 1 },
                             timeout => 20), 'seq 1 in flight');
my %old = map { $_ => 1 } $t->worker_pids;
kill 'HUP', $t->master_pid;
ok(Omnibus::Test::wait_until(sub {
       (grep { !$old{$_} } $t->worker_pids) == 2
   }, timeout => 20), 'new workers while the old ones finish');
publish_seq(6, 30);
$rx->set('/seq' => { delay => 0 });
ok(Omnibus::Test::wait_until(sub { first_receipts() >= 30 }, timeout => 60),
   'all 30 received across the reload');
is_deeply([first_receipts()], [1 .. 30], 'in order across the reload');
ok(Omnibus::Test::wait_until(sub {
       !grep { Omnibus::Test::alive($_) } keys %old
   }, timeout => 20), 'the old workers are gone');

$rx->set('/seq' => { delay => 1.5 });
publish_seq(31, 60);
ok(Omnibus::Test::wait_until(sub { first_receipts() >= 31 }, timeout => 20),
   'seq 31 in flight');
for my $pid ($t->worker_pids) {
    kill 'KILL', $pid;
    Omnibus::Test::wait_until(sub {
        my @now = $t->worker_pids;
        @now == 2 && !grep { $_ == $pid } @now;
    }, timeout => 20);
}
$rx->set('/seq' => { delay => 0 });
ok(Omnibus::Test::wait_until(sub { first_receipts() >= 60 }, timeout => 60),
   'all 60 received across the kill');
is_deeply([first_receipts()], [1 .. 60], 'in order across the kill');
ok(Omnibus::Test::wait_until(\&settled, timeout => 30), 'settled again');

# every accepted message is done, queued, in flight or went to nobody
my ($accepted, $accounted);
ok(Omnibus::Test::wait_until(sub {
       ($accepted, $accounted) = $t->invariant;
       defined $accepted && defined $accounted && $accepted == $accounted
   }, timeout => 30),
   'published + replayed = completed + queued + in flight + unrouted')
    or diag("accepted $accepted, accounted for $accounted");

$t->finish;
