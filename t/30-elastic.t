# Elastic shards: ring changes from the admin API move the fewest topics,
# a removed shard drains before its topics move on (order kept), the
# autoscaler adds and removes shards and moves concurrency, and status and
# metrics stay right across a reload.

use strict;
use warnings;

use Test::More;
use lib 't/lib';
use Omnibus::Test;

my $t = Omnibus::Test->new(ports => 4);

$t->conf(<<'EOF');
    omnibus_zone zone=bus:32m shards=8 min_shards=8 max_shards=9 retain=10;
    omnibus_zone zone=auto:32m shards=2 min_shards=2 max_shards=4
                 queue_size=40 backpressure=100%:99% retain=10;
    omnibus_zone zone=conc:64m shards=1 min_shards=1 max_shards=1
                 queue_size=5000 retain=10;

    omnibus_autoscale auto interval=300ms up=50% down=10%;
    omnibus_autoscale conc interval=300ms up=100% down=0%;

    omnibus_route bus ordered.> http://127.0.0.1:%%PORT1%%/hook
                  concurrency=1;

    log_format hook '$http_x_omnibus_id';

    server {
        listen 127.0.0.1:%%PORT0%%;
        location /publish/ { omnibus_publish bus; }
        location /auto/ { omnibus_publish auto; }
        location /conc/ { omnibus_publish conc; }
        location /omnibus/ { omnibus_admin bus; }
        location /omnibus-auto/ { omnibus_admin auto; }
        location /omnibus-conc/ { omnibus_admin conc; }
        location = /metrics { omnibus_metrics; }
    }

    server {
        listen 127.0.0.1:%%PORT1%%;
        access_log %%DIR%%/hook.log hook;
        location /hook { return 200; }
    }
EOF

$t->start;

sub status { $t->http(GET => $_[0] // '/omnibus/')->{json} }

sub mapping {
    my ($prefix, $n) = @_;
    my %m;
    for my $i (1 .. $n) {
        my $r = $t->http(POST => "/publish/$prefix$i.x", body => '{}');
        $m{"$prefix$i.x"} = $r->{json}{shard};
    }
    return \%m;
}

sub hook_ids {
    open my $fh, '<', $t->dir . '/hook.log' or return ();
    chomp(my @ids = <$fh>);
    return @ids;
}

# 8 -> 9 -> 8 shards over 1,000 topics

my $m8 = mapping('t', 1000);
my $v0 = status()->{ring_version};

my $r = $t->http(POST => '/omnibus/shards');
is($r->{status}, 200, 'add a shard');
is_deeply([@{$r->{json}}{qw(added shards ring_version)}], [8, 9, $v0 + 1],
          'shard 8 added, ring version bumped');

ok(Omnibus::Test::wait_until(sub { !defined status()->{ring_change} },
                             timeout => 20), 'the ring change completes');

$r = $t->http(POST => '/omnibus/shards');
is($r->{status}, 409, 'max_shards is a limit');
is($r->{json}{error}, 'shard_limit', 'shard_limit error');

my $m9 = mapping('t', 1000);
my @moved = grep { $m8->{$_} != $m9->{$_} } keys %$m8;
my $fraction = @moved / 1000;
diag("8 -> 9 shards moved $fraction of 1000 topics");
ok($fraction > 0.05 && $fraction < 0.18, 'about 1/9 of the topics moved');
is(scalar(grep { $m9->{$_} != 8 } @moved), 0,
   'every moved topic went to the new shard');

$r = $t->http(DELETE => '/omnibus/shards');
is($r->{status}, 200, 'remove the last shard');
is_deeply([@{$r->{json}}{qw(removing shards)}], [8, 8], 'shard 8 drains');

ok(Omnibus::Test::wait_until(sub { !defined status()->{ring_change} },
                             timeout => 20), 'the removal completes');

my $m8b = mapping('t', 1000);
is_deeply($m8b, $m8, '9 -> 8 restores the previous mapping exactly');
is(status()->{ring_version}, $v0 + 2, 'two ring changes');
is(scalar @{status()->{shards}}, 8, 'eight shards listed');

$r = $t->http(DELETE => '/omnibus/shards');
is($r->{status}, 409, 'min_shards is a limit');

# a removed shard drains before its topics move on

$t->http(POST => '/omnibus/shards');
Omnibus::Test::wait_until(sub { !defined status()->{ring_change} },
                          timeout => 20);

my ($topic) = grep {
    $t->http(POST => "/publish/$_", body => '{}')->{json}{shard} == 8
} map { "ordered.k$_" } 1 .. 200;
ok($topic, "topic $topic lives on shard 8");

# all 200 probes above are delivered: count from there
ok(Omnibus::Test::wait_until(sub { hook_ids() >= 200 }, timeout => 30),
   'the 200 probes are delivered');
my $seen = hook_ids();

$t->http(POST => '/omnibus/shards/8/pause');

my @ids;
push @ids, $t->http(POST => "/publish/$topic", body => qq({"n":$_}))
               ->{json}{id} for 1 .. 5;

$r = $t->http(DELETE => '/omnibus/shards');
is($r->{json}{removing}, 8, 'removing the paused shard');

my @after;
for my $n (6 .. 10) {
    my $p = $t->http(POST => "/publish/$topic", body => qq({"n":$n}))->{json};
    isnt($p->{shard}, 8, "message $n goes to the topic's previous shard");
    push @after, $p->{id};
}

sleep 1.5;
is(scalar(hook_ids()) - $seen, 0,
   'nothing of the moved topic is delivered while its old shard holds some');
is(status()->{ring_change}{removing}, 8, 'the removal waits for the drain');

$t->http(POST => '/omnibus/shards/8/resume');

ok(Omnibus::Test::wait_until(sub { hook_ids() >= $seen + 10 },
                             timeout => 30), 'all ten delivered');
my @got = (hook_ids())[$seen .. $seen + 9];
is_deeply(\@got, [@ids, @after], 'in publish order across the move');
ok(Omnibus::Test::wait_until(sub { !defined status()->{ring_change} },
                             timeout => 20), 'then shard 8 is gone');

# the autoscaler: up on a full bus, down once it drains

$t->http(POST => "/omnibus-auto/shards/$_/pause") for 0, 1;

my $accepted = 0;
for my $i (1 .. 200) {
    my $p = $t->http(POST => "/auto/a$i.x", body => '{}');
    $accepted++ if $p->{status} == 202;
    last if $accepted >= 60;
}
is($accepted, 60, '60 queued in paused shards');

ok(Omnibus::Test::wait_until(
       sub { scalar @{status('/omnibus-auto/')->{shards}} >= 3 },
       timeout => 30), 'the autoscaler adds a shard');

$t->http(POST => "/omnibus-auto/shards/$_/resume") for 0, 1;

ok(Omnibus::Test::wait_until(
       sub {
           my $s = status('/omnibus-auto/');
           @{$s->{shards}} == 2 && !defined $s->{ring_change};
       }, timeout => 60), 'and removes it again once drained');

my $log = $t->error_log;
like($log, qr/omnibus zone "auto": autoscale up at \d+% mean utilisation/,
     'scale up logged');
like($log, qr/omnibus zone "auto": autoscale down at \d+% mean utilisation/,
     'scale down logged');

# concurrency follows the backlog: > 1000 up to 8, < 100 down to 2

$t->http(POST => '/omnibus-conc/shards/0/pause');

# keepalive_requests is 1000 by default: two connections
my $queued = 0;
for (1 .. 2) {
    my $c = $t->conn;
    for (1 .. 550) {
        my $p = $c->request(POST => "/conc/c.x", body => '{}',
                            keepalive => 1);
        $queued++ if $p && $p->{status} == 202;
    }
    $c->close;
}
is($queued, 1100, '1100 queued in a paused shard');

ok(Omnibus::Test::wait_until(
       sub { status('/omnibus-conc/')->{shards}[0]{concurrency} == 8 },
       timeout => 30), 'concurrency climbs to 8 on a backlog');

$t->http(POST => '/omnibus-conc/shards/0/resume');

ok(Omnibus::Test::wait_until(
       sub { status('/omnibus-conc/')->{shards}[0]{concurrency} == 2 },
       timeout => 30), 'and falls to 2 once drained');

my $metrics = $t->http(GET => '/metrics')->{body};

sub metric {
    my ($re) = @_;
    return $metrics =~ /^$re (\d+)$/m ? $1 : undef;
}

sub decisions {
    my ($zone, $action) = @_;
    return metric(qr/message_bus_autoscale_decisions_total
                     \{zone="$zone",action="$action"\}/x);
}

cmp_ok(decisions('auto', 'shard_up'), '>=', 1, 'shard_up counted');
cmp_ok(decisions('auto', 'shard_down'), '>=', 1, 'shard_down counted');
cmp_ok(decisions('conc', 'concurrency_up'), '>=', 4,
       'concurrency_up counted');

# status and metrics across a reload

my $before = status();
$t->reload;
my $after = status();

is(scalar @{$after->{shards}}, scalar @{$before->{shards}},
   'the same shards after a reload');
is($after->{ring_version}, $before->{ring_version}, 'the same ring version');
is_deeply([map { $_->{index} } @{$after->{shards}}],
          [0 .. $#{$after->{shards}}], 'each shard once');

SKIP: {
    skip 'promtool missing', 1 unless Omnibus::Test::have_cmd('promtool');
    my $file = $t->dir . '/metrics.txt';
    open my $fh, '>', $file or die;
    print $fh $t->http(GET => '/metrics')->{body};
    close $fh;
    my $out = `promtool check metrics < $file 2>&1`;
    is($?, 0, 'promtool check metrics passes') or diag($out);
}

$t->finish;
