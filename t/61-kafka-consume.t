# omnibus_kafka_consume against librdkafka's mock cluster: records
# produced with kcat reach a webhook through the bus (every one, with its
# priority and its kafka:<topic>:<partition>:<offset> key); a reload and a
# worker killed mid-stream read records again that dedup catches; a shard
# that refuses pauses the partitions and they resume with nothing dropped.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep);
use lib 't/lib';
use Omnibus::Test;
use Omnibus::Kafka;
use Omnibus::Receiver;

Omnibus::Kafka::require_tools();

my $k = Omnibus::Kafka->new(topics => ['orders:3', 'payments:2']);
my $bootstrap = $k->bootstrap;

my $t = Omnibus::Test->new(ports => 2);
my $rx = Omnibus::Receiver->new(t => $t, index => 1);

$t->conf(<<"EOF")->start;
    omnibus_zone zone=bus:32m shards=4 min_shards=2 queue_size=40
                 backpressure=80%:50%;

    omnibus_kafka_consume bus $bootstrap topics=orders,payments group=g1
                          offset_reset=earliest max_poll=50
                          session_timeout=6s;

    omnibus_route bus kafka.> http://127.0.0.1:%%PORT1%%/hook;

    server {
        listen 127.0.0.1:%%PORT0%%;
        location /omnibus/ { omnibus_admin bus; }
        location = /metrics { omnibus_metrics; }
    }
EOF

sub sample {
    my ($name) = @_;
    my $body = $t->http(GET => '/metrics')->{body};
    my $sum = 0;
    $sum += $1 while $body =~ /^\Q$name\E\{zone="bus"[^}]*\} (\S+)$/mg;
    return $sum;
}

# body => count of deliveries, and the requests themselves
sub delivered {
    my %n;
    $n{$_->{body}}++ for $rx->requests_for('/hook');
    return \%n;
}

sub all_delivered {
    my (@bodies) = @_;
    return Omnibus::Test::wait_until(sub {
        my $d = delivered();
        !grep { !$d->{$_} } @bodies;
    }, timeout => 60, interval => 0.5);
}

# every record, to the webhook, with its key and priority

my @first = map { ["k$_", qq({"order":$_})] } 1 .. 300;
$k->produce('orders', @first);
$k->produce('payments', map { ["p$_", qq({"payment":$_})] } 1 .. 50);

ok(all_delivered(map { $_->[1] } @first),
   'every record of orders reached the webhook');
ok(all_delivered(map { qq({"payment":$_}) } 1 .. 50),
   'every record of payments reached the webhook');

my @req = $rx->requests_for('/hook');
my ($one) = grep { $_->{body} eq '{"order":1}' } @req;
like($one->{headers}{'idempotency-key'} // '', qr/^kafka:orders:\d+:\d+$/,
     'idempotency key kafka:<topic>:<partition>:<offset>');
is($one->{headers}{'x-omnibus-topic'}, 'kafka.orders',
   'the topic template: kafka.{topic}');
is(scalar(grep { $_ > 1 } values %{delivered()}), 0, 'none twice');
is(sample('message_bus_kafka_consumed_total'), 350, 'consumed counted');
like($t->http(GET => '/omnibus/')->{body},
     qr/"kafka_consumers":\{"count":1,"up":true,"consumed":350\}/,
     'the consumer in admin status');
like($t->http(GET => '/metrics')->{body},
     qr/^message_bus_kafka_consumer_lag\{zone="bus",topic="orders",partition="\d"\} \d+$/m,
     'consumer lag per partition');

# the shard refuses: the partitions pause and resume, nothing dropped

$t->http(POST => "/omnibus/shards/$_/pause") for 0 .. 3;
my @bp = map { ["b$_", qq({"bp":$_})] } 1 .. 200;
$k->produce('orders', @bp);

ok(Omnibus::Test::wait_until(
       sub { $t->error_log =~ /orders:\d paused at offset \d+/ },
       timeout => 30),
   'a refusing shard pauses its partitions');
sleep 1;
$t->http(POST => "/omnibus/shards/$_/resume") for 0 .. 3;

ok(all_delivered(map { $_->[1] } @bp),
   'resumed below the low watermark: every record delivered');
like($t->error_log, qr/orders:\d resumed at offset \d+/, 'resumed');
is(scalar(grep { $_ > 1 } values %{delivered()}), 0, 'none twice');

# a reload and a worker killed mid-stream: dedup catches what is read again

my @more = map { ["m$_", qq({"more":$_})] } 1 .. 300;
$k->produce('orders', @more[0 .. 149]);
sleep 0.3;
$t->reload;
$k->produce('orders', @more[150 .. 299]);
sleep 0.3;
kill 'KILL', ($t->worker_pids)[0];

ok(all_delivered(map { $_->[1] } @more),
   'every record delivered across a reload and a killed worker');
my $twice = grep { $_ > 1 } values %{delivered()};
is($twice, 0, 'no record delivered twice');
ok(sample('message_bus_kafka_consumed_total') >= 850,
   'consumed counted once each');

my ($l, $r) = (0, -1);
Omnibus::Test::wait_until(sub { ($l, $r) = $t->invariant; $l == $r });
is($l, $r, 'published + replayed = completed + queued + inflight + unrouted');

# configuration errors name the directive

for my $bad ('', 'topics=', 'topics=a,,b', 'topics=a offset_reset=never',
             'topics=a max_poll=0', 'topics=a session_timeout=x',
             'topics=a "topic=sp{ace}"', 'topics=a colour=red',
             '"topics=a{topic}"') {
    $t->conf(<<"EOF");
    omnibus_zone zone=bus:8m;
    omnibus_kafka_consume bus $bootstrap $bad;
EOF
    my ($ok, $out) = $t->test_conf;
    ok(!$ok && $out =~ /omnibus_kafka_consume/, "refused: '$bad'")
        or diag $out;
}

$t->finish(allow => [qr/exited on signal 9/]);
