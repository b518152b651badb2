# Shard ownership across workers: publishes through both workers reach
# the owners of their shards at once; a killed worker's successor takes
# its shards over; a reload keeps every queued message; the ring spreads
# topics and maps each the same in every worker.

use strict;
use warnings;

use Test::More;
use lib 't/lib';
use Omnibus::Test;

# the workers this test kills with -9 are no crash
my $t = Omnibus::Test->new(allow => [qr/exited on signal 9/]);

$t->conf(<<'EOF')->start;
    omnibus_zone zone=bus:16m shards=8 retain=10;

    server {
        listen 127.0.0.1:%%PORT0%% reuseport;
        add_header X-Worker $pid always;
        location /publish/ { omnibus_publish bus; }
        location /omnibus/ { omnibus_admin bus; }
    }
EOF

sub status { $t->http(GET => '/omnibus/')->{json} }

sub totals {
    my ($q, $p, $d) = (0, 0, 0);
    for (@{status()->{shards}}) {
        $q += $_->{queued};
        $p += $_->{published};
        $d += $_->{dispatched};
    }
    return ($q, $p, $d);
}

# 400 messages over 40 topics through both workers

my (%workers, %shards);
for my $i (1 .. 400) {
    my $r = $t->http(POST => '/publish/w' . ($i % 40) . '.t', body => '{}');
    $workers{$r->{headers}{'x-worker'}}++;
    $shards{$r->{json}{shard}}++;
}
is(scalar keys %workers, 2, 'both workers took publishes');
cmp_ok(scalar keys %shards, '>=', 6, 'into most shards');

ok(Omnibus::Test::wait_until(sub {
       my ($q, $p, $d) = totals();
       $q == 0 && $p == 400 && $d == 400;
   }, timeout => 20), 'every message dispatched by its owner');

my $s = status();
is(scalar(grep { $_->{published} != $_->{dispatched} } @{$s->{shards}}), 0,
   'per shard: dispatched = published');
is_deeply([map { $_->{owner} } @{$s->{shards}}], [map { $_ % 2 } 0 .. 7],
          'shard s belongs to worker s mod 2');
is($s->{unrouted}, 400, 'no routes: all unrouted');

# a worker killed: its successor owns its shards

my @pids = $t->worker_pids;
kill 'KILL', $pids[0];
ok(Omnibus::Test::wait_until(sub {
       my @now = $t->worker_pids;
       @now == 2 && !grep { $_ == $pids[0] } @now;
   }, timeout => 20), 'the master replaced the killed worker');

$t->http(POST => '/publish/k' . $_ . '.t', body => '{}') for 1 .. 50;
ok(Omnibus::Test::wait_until(sub {
       my ($q, $p, $d) = totals();
       $q == 0 && $d == 450;
   }, timeout => 20), 'all shards drained after the respawn');

# a reload keeps queued messages, ids go on

$t->http(POST => "/omnibus/shards/$_/pause") for 0 .. 7;

my %before;
for my $i (1 .. 100) {
    my $r = $t->http(POST => '/publish/r' . ($i % 10) . '.t', body => '{}');
    push @{$before{$r->{json}{shard}}}, $r->{json}{id};
}

my @queued = map { $_->{queued} } @{status()->{shards}};
my $sum = 0;
$sum += $_ for @queued;
is($sum, 100, '100 queued');

$t->reload;

is_deeply([map { $_->{queued} } @{status()->{shards}}], \@queued,
          'every shard keeps its queue over a reload');

my $r = $t->http(POST => '/publish/r1.t', body => '{}');
my $last = (sort @{$before{$r->{json}{shard}}})[-1];
ok($r->{json}{id} gt $last, 'new ids sort after the old ones of the shard');
is(substr($r->{json}{id}, 0, 20), substr($last, 0, 20), 'same zone instance');

$t->http(POST => "/omnibus/shards/$_/resume") for 0 .. 7;
ok(Omnibus::Test::wait_until(sub { (totals())[0] == 0 }, timeout => 20),
   'drained after resume');

# the ring spreads 300 topics and maps each the same everywhere

my %used;
$used{$t->http(POST => "/publish/spread.$_", body => '{}')->{json}{shard}}++
    for 1 .. 300;
cmp_ok(scalar keys %used, '>=', 7, '300 topics use at least 7 of 8 shards');
cmp_ok((sort { $b <=> $a } values %used)[0], '<', 3 * 300 / 8,
       'no shard gets three times its share');

my $same = 1;
my %seen_by;
for my $i (1 .. 50) {
    my %s;
    for (1 .. 4) {
        my $x = $t->http(POST => "/publish/spread.$i", body => '{}');
        $s{$x->{json}{shard}}++;
        $seen_by{$x->{headers}{'x-worker'}}++;
    }
    $same = 0 if keys %s != 1;
}
ok($same, 'a topic maps to one shard whichever worker answers');
is(scalar keys %seen_by, 2, 'both workers answered');

$t->finish;
