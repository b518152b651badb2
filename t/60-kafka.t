# kafka:// routes against librdkafka's mock cluster (3 brokers): every
# accepted id reaches Kafka (compared as sets, read back with kcat), with
# its headers, key and per-topic order; a cluster that goes away sends the
# records to the fallback file, and a replay brings them all in; a worker
# killed with produces in flight and a quit with the cluster down lose
# nothing.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time sleep);
use lib 't/lib';
use Omnibus::Test;
use Omnibus::Kafka;

Omnibus::Kafka::require_tools();

my $k = Omnibus::Kafka->new(topics => ['audit-orders.a:3',
                                       'audit-orders.b_c:3',
                                       'audit-pay.x:2']);
my $bootstrap = $k->bootstrap;

my $t = Omnibus::Test->new(ports => 1);
my $dir = $t->dir;
my $fallback = "$dir/kafka-fallback.ndjson";

sub config {
    $t->conf(<<"EOF");
    omnibus_zone zone=bus:32m shards=4 min_shards=2;

    omnibus_route bus orders.> "kafka://$bootstrap/audit-{topic}"
                  name=audit timeout=2s retries=1 backoff=100ms
                  breaker=2:1s:1 fallback=$fallback;
    omnibus_route bus pay.> "kafka://$bootstrap/audit-pay.x"
                  name=pay key=idempotency_key acks=1 compression=none
                  linger=0ms;

    server {
        listen 127.0.0.1:%%PORT0%%;
        location /publish/ { omnibus_publish bus; }
        location /omnibus/ { omnibus_admin bus; }
        location = /metrics { omnibus_metrics; }
    }
EOF
}

# a family's sample for one route (or the zone), 0 when absent
sub sample {
    my ($name, $route) = @_;
    my $body = $t->http(GET => '/metrics')->{body};
    my $sel = defined $route ? qr/zone="bus",route="\Q$route\E"/
                             : qr/zone="bus"[^}]*/;
    my $sum = 0;
    $sum += $1 while $body =~ /^\Q$name\E\{$sel\} (\S+)$/mg;
    return $sum;
}

sub publish {
    my ($topic, $body, %h) = @_;
    my $r = $t->http(POST => "/publish/$topic", body => $body,
                     headers => \%h);
    return $r->{status} == 202 ? $r->{json}{id} : undef;
}

sub ids_in_kafka {
    my %seen;
    for my $topic (@_) {
        $seen{$_->{headers}{id}}++ for $k->records($topic);
    }
    return \%seen;
}

sub fallback_ids {
    open my $fh, '<', $fallback or return ();
    return map { /"id":"([^"]+)"/ ? $1 : () } <$fh>;
}

sub missing {
    my ($ids, $seen) = @_;
    return grep { !$seen->{$_} } @$ids;
}

config();
$t->start;

# every id, with its headers, key and order

my (@ids, %n_of);
for my $i (1 .. 150) {
    my $topic = $i % 3 ? 'orders.a' : 'orders.b:c';
    my %h = $i % 10 == 0 ? ('X-Priority' => 7) : ();
    my $id = publish($topic, qq({"n":$i}), %h) or next;
    push @ids, $id;
    $n_of{$id} = $i;
}
my @pay;
for my $i (1 .. 20) {
    my $id = publish('pay.card', qq({"p":$i}), 'Idempotency-Key' => "pay-$i");
    push @pay, $id if $id;
}
is(scalar @ids + scalar @pay, 170, 'every publish accepted');

ok(Omnibus::Test::wait_until(
       sub { sample('message_bus_kafka_produced_total', 'audit') == 150
             && sample('message_bus_kafka_produced_total', 'pay') == 20 },
       timeout => 30),
   'every record acknowledged by the cluster');

my @a = $k->records('audit-orders.a');
my @bc = $k->records('audit-orders.b_c');
my @p = $k->records('audit-pay.x');
my %seen;
$seen{$_->{headers}{id}}++ for @a, @bc;
is_deeply([missing(\@ids, \%seen)], [], 'no accepted id is missing');
is(scalar(grep { $_ > 1 } values %seen), 0, 'no duplicates');
is(scalar @a, 100, '{topic} in the template: audit-orders.a');
is(scalar @bc, 50, "':' becomes '_': audit-orders.b_c");
is(scalar(grep { $_->{key} ne 'orders.a' } @a), 0, 'key=topic');
is(scalar(grep { $_->{headers}{topic} ne 'orders.b:c' } @bc), 0,
   'the bus topic in a header');
is(scalar(grep { $_->{headers}{priority}
                 != ($n_of{$_->{headers}{id}} % 10 == 0 ? 7 : 0) } @a, @bc), 0,
   'the priority in a header');

# one partition per key: the topic's normal records in publish order
my @n = map { $_->{value} =~ /"n":(\d+)/ ? $1 : 0 }
        grep { $_->{headers}{priority} == 0 }
        sort { $a->{offset} <=> $b->{offset} } @a;
is_deeply(\@n, [sort { $a <=> $b } @n], 'per-topic order kept');

is_deeply([sort map { $_->{key} } @p], [sort map { "pay-$_" } 1 .. 20],
          'key=idempotency_key');

# the cluster goes away: retries, the breaker, the fallback file

$k->all_down;

my @out;
for my $i (1 .. 60) {
    my $id = publish('orders.a', qq({"outage":$i}));
    push @out, $id if $id;
    sleep 0.02;
}
is(scalar @out, 60, 'publishing goes on while Kafka is down');

ok(Omnibus::Test::wait_until(
       sub { sample('kafka_health_check_status') == 0 }, timeout => 20),
   'kafka_health_check_status 0 while every broker is down');

ok(Omnibus::Test::wait_until(
       sub { sample('message_bus_kafka_fallback_total', 'audit') >= 60 },
       timeout => 60),
   'records written to the fallback file');

my @kept = fallback_ids();
is_deeply([missing(\@out, { map { $_ => 1 } @kept })], [],
          'every record of the outage is in the fallback file');
ok(sample('kafka_connection_failures_total') > 0,
   'connection failures counted');
ok(sample('message_bus_backend_breaker_state') > 0,
   'the breaker is open (or half-open, probing)');

# back up: the replay sends the file, keeps nothing acknowledged

$k->all_up;

my $r;
Omnibus::Test::wait_until(sub {
    $r = $t->http(POST => '/omnibus/kafka/fallback/replay');
    $r->{status} == 200 && !fallback_ids();
}, timeout => 60, interval => 1);
is($r->{status}, 200, 'replay answered');
my @left = fallback_ids();
is(scalar @left, 0, 'the fallback file is empty once replayed')
    or diag $r->{body};

my $all = ids_in_kafka('audit-orders.a');
is_deeply([missing(\@out, $all)], [], 'every record of the outage in Kafka');
my %out = map { $_ => 1 } @out;
is(scalar(grep { $out{$_->{headers}{id}} && $_->{key} ne 'orders.a' }
          $k->records('audit-orders.a')), 0,
   'replayed with the key the route gives (key=topic)');

$r = $t->http(POST => '/omnibus/kafka/fallback/replay');
is($r->{json}{replayed}, 0, 'a second replay finds nothing');
is($t->http(GET => '/omnibus/kafka/fallback/replay')->{status}, 405,
   'replay is POST only');
ok(sample('message_bus_kafka_fallback_replayed_total', 'audit') >= 60,
   'replayed records counted');

# a worker killed with produces in flight

$k->all_down;
my @inflight = grep { defined }
               map { publish('orders.a', qq({"kill":$_})) } 1 .. 20;
sleep 0.5;
my @workers = $t->worker_pids;
kill 'KILL', @workers;
Omnibus::Test::wait_until(sub {
    my %old = map { $_ => 1 } @workers;
    my @w = $t->worker_pids;
    @w == 2 && !grep { $old{$_} } @w;
}, timeout => 20);
$k->all_up;

sub all_arrived {
    my ($ids) = @_;
    return Omnibus::Test::wait_until(sub {
        $t->http(POST => '/omnibus/kafka/fallback/replay');
        !missing($ids, ids_in_kafka('audit-orders.a'));
    }, timeout => 60, interval => 1);
}

ok(all_arrived(\@inflight),
   'a worker killed with produces in flight loses nothing');

# quit with the cluster down: bounded, and the records stay in the file

$k->all_down;
my @last = grep { defined }
           map { publish('orders.a', qq({"quit":$_})) } 1 .. 20;
sleep 0.5;

my $pid = $t->master_pid;
my $t0 = time;
kill 'QUIT', $pid;
ok(Omnibus::Test::wait_until(sub { !Omnibus::Test::alive($pid) },
                             timeout => 60),
   'quit ends with the cluster down');
diag(sprintf 'quit with the cluster down took %.1f s', time - $t0);
$t->{running} = 0;

my %file = map { $_ => 1 } fallback_ids();
is_deeply([missing(\@last, \%file)], [],
          'every record of the quit is in the fallback file');

# the next start replays them

$k->all_up;
$t->start;
ok(all_arrived(\@last), 'replayed after the restart, all in Kafka');

# configuration errors name the directive

for my $bad ('acks=2', 'compression=brotli', 'key=body', 'linger=x',
             'idempotence=maybe', "fallback=$dir/no/such/dir/f") {
    $t->conf(<<"EOF");
    omnibus_zone zone=bus:8m;
    omnibus_route bus x.> "kafka://$bootstrap/t" $bad;
EOF
    my ($ok, $out) = $t->test_conf;
    ok(!$ok && $out =~ /omnibus_route.*invalid parameter/, "refused: $bad")
        or diag $out;
}
for my $url ('kafka:///t', 'kafka://h:1/', 'kafka://h:1/a{bus}',
             'kafka://h:1/sp ace') {
    $t->conf(<<"EOF");
    omnibus_zone zone=bus:8m;
    omnibus_route bus x.> "$url";
EOF
    my ($ok, $out) = $t->test_conf;
    ok(!$ok && $out =~ /omnibus_route.*invalid route URL/, "refused: $url")
        or diag $out;
}
$t->conf(<<"EOF");
    omnibus_zone zone=bus:8m;
    omnibus_route bus x.> "kafka://$bootstrap/t" acks=1 idempotence=on;
EOF
my ($ok, $out) = $t->test_conf;
ok(!$ok && $out =~ /idempotence=on needs acks=all/,
   'idempotence needs acks=all') or diag $out;

config();
$t->finish(allow => [qr/exited on signal 9/]);
