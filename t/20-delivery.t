# Webhook delivery: fan-out to the exact set of routes, the delivery
# request, upstream round robin, priority and per-topic order, and the
# counters.

use strict;
use warnings;

use Test::More;
use lib 't/lib';
use Omnibus::Test;
use Omnibus::Receiver;

my $t = Omnibus::Test->new(ports => 4);
my $rx = Omnibus::Receiver->new(t => $t, index => 1);
my $rx2 = Omnibus::Receiver->new(t => $t, index => 2);
my $rx3 = Omnibus::Receiver->new(t => $t, index => 3);

$t->conf(<<'EOF')->start;
    omnibus_zone zone=bus:32m shards=4 min_shards=2 retain=100;

    upstream pair {
        server 127.0.0.1:%%PORT2%%;
        server 127.0.0.1:%%PORT3%%;
    }

    omnibus_route bus orders.> http://127.0.0.1:%%PORT1%%/all-orders;
    omnibus_route bus orders.created http://127.0.0.1:%%PORT1%%/created;
    omnibus_route bus *.created http://127.0.0.1:%%PORT1%%/any-created
                  name=any-created;
    omnibus_route bus raw.> http://127.0.0.1:%%PORT1%%/raw;
    omnibus_route bus rr.> http://pair/rr;
    omnibus_route bus fifo.> http://127.0.0.1:%%PORT1%%/fifo
                  concurrency=1 backoff=50ms;
    omnibus_route bus split.> http://127.0.0.1:%%PORT1%%/split
                  timeout=10s;

    server {
        listen 127.0.0.1:%%PORT0%%;
        location /publish/ { omnibus_publish bus; }
        location /raw/ { omnibus_publish bus; omnibus_json off; }
        location /omnibus/ { omnibus_admin bus; }
        location = /metrics { omnibus_metrics; }
    }
EOF

sub publish {
    my ($topic, $body, %h) = @_;
    my $r = $t->http(POST => "/publish/$topic", body => $body // '{}',
                     headers => \%h);
    is($r->{status}, 202, "published to $topic") unless $r->{status} == 202;
    return $r->{json};
}

sub ids_at {
    my ($rx, $prefix) = @_;
    return sort map { $_->{headers}{'x-omnibus-id'} }
                $rx->requests_for($prefix);
}

# fan-out

my %expect = map { $_ => [] } qw(/all-orders /created /any-created);
my @topics = qw(orders.created orders.paid users.created misc.thing);
my $total = 0;

for my $i (1 .. 30) {
    my $topic = $topics[$i % 4];
    my $id = publish($topic, qq({"i":$i}))->{id};
    push @{$expect{'/all-orders'}}, $id if $topic =~ /^orders\./;
    push @{$expect{'/created'}}, $id if $topic eq 'orders.created';
    push @{$expect{'/any-created'}}, $id if $topic =~ /^[^.]+\.created$/;
}
$total += @$_ for values %expect;

ok(Omnibus::Test::wait_until(sub { $rx->requests == $total }, timeout => 30),
   "$total deliveries");

for my $path (sort keys %expect) {
    is_deeply([ids_at($rx, $path)], [sort @{$expect{$path}}],
              "$path got exactly its messages, once each");
}

# the request

my $one = publish('orders.created', '{"hello":"world"}',
                  'Idempotency-Key' => 'producer-key', 'X-Priority' => 7);
Omnibus::Test::wait_until(sub {
    grep { $_->{headers}{'x-omnibus-id'} eq $one->{id} }
        $rx->requests_for('/created')
}, timeout => 20);

my ($req) = grep { $_->{headers}{'x-omnibus-id'} eq $one->{id} }
            $rx->requests_for('/created');
is($req->{method}, 'POST', 'POST');
is($req->{body}, '{"hello":"world"}', 'the payload');
is($req->{headers}{'x-omnibus-topic'}, 'orders.created', 'X-Omnibus-Topic');
is($req->{headers}{'x-omnibus-priority'}, '7', 'X-Omnibus-Priority');
is($req->{headers}{'x-omnibus-attempt'}, '1', 'X-Omnibus-Attempt');
is($req->{headers}{'idempotency-key'}, 'producer-key',
   "Idempotency-Key: the producer's");
is($req->{headers}{'content-type'}, 'application/json', 'Content-Type');

my ($first) = grep { $_->{headers}{'x-omnibus-id'} eq $expect{'/created'}[0] }
              $rx->requests_for('/created');
is($first->{headers}{'idempotency-key'}, $expect{'/created'}[0],
   'Idempotency-Key: else the message id');

# bodies byte for byte

my $bytes = join '', map { chr } 0 .. 255;
my $big = 'b' x (100 * 1024);

for my $body ($bytes, $big) {
    my $r = $t->http(POST => '/raw/raw.t', body => $body,
                     headers => { 'Content-Type' => 'text/plain' });
    my $id = $r->{json}{id};
    ok(Omnibus::Test::wait_until(sub {
           grep { $_->{headers}{'x-omnibus-id'} eq $id }
               $rx->requests_for('/raw')
       }, timeout => 20), 'raw body delivered');
    my ($got) = grep { $_->{headers}{'x-omnibus-id'} eq $id }
                $rx->requests_for('/raw');
    ok($got->{body} eq $body, length($body) . ' bytes intact');
    is($got->{headers}{'content-type'}, 'text/plain', 'Content-Type kept');
}

# an upstream block: round robin over its servers

my @rr = map { publish("rr.t$_")->{id} } 1 .. 20;
ok(Omnibus::Test::wait_until(sub { $rx2->requests + $rx3->requests == 20 },
                             timeout => 20), 'twenty through the upstream');
ok($rx2->requests > 0 && $rx3->requests > 0, 'both servers used');
is_deeply([sort(ids_at($rx2, '/rr'), ids_at($rx3, '/rr'))], [sort @rr],
          'each exactly once');

# priority first, then per-topic order through retries (concurrency=1)

my $fifo = publish('fifo.a', '{}');
Omnibus::Test::wait_until(sub { $rx->requests_for('/fifo') == 1 },
                          timeout => 20);
$t->http(POST => "/omnibus/shards/$fifo->{shard}/pause");

my @normal = map { publish('fifo.a', qq({"n":$_}))->{id} } 1 .. 10;
my @high = map { publish('fifo.a', qq({"h":$_}), 'X-Priority' => 7)->{id} }
           1 .. 10;

$rx->set('/fifo' => { fail_first => 2, status => 503 });
$t->http(POST => "/omnibus/shards/$fifo->{shard}/resume");

ok(Omnibus::Test::wait_until(sub {
       scalar(grep { $_->{status} == 200 } $rx->requests_for('/fifo')) == 21
   }, timeout => 30), 'all twenty delivered');

my (@order, %seen);
for (grep { $_->{status} == 200 } $rx->requests_for('/fifo')) {
    push @order, $_->{headers}{'x-omnibus-id'}
        unless $seen{$_->{headers}{'x-omnibus-id'}}++;
}
shift @order;
is_deeply(\@order, [@high, @normal],
          'high before normal, each in publish order, retries included');

my @attempts = map { $_->{headers}{'x-omnibus-attempt'} }
               grep { $_->{headers}{'x-omnibus-id'} eq $high[0] }
               $rx->requests_for('/fifo');
is_deeply(\@attempts, [1, 2, 3], 'the first one took three attempts');

# counters

# fan-out, the keyed orders.created (three routes), raw, rr, fifo
my $deliveries = $total + 3 + 2 + 20 + 21;

# the receiver logs a request before it answers: the last delivery may not
# be counted yet
my $s;
Omnibus::Test::wait_until(sub {
    $s = $t->http(GET => '/omnibus/')->{json};
    $s->{delivered} >= $deliveries;
}, timeout => 10);
is($s->{delivered}, $deliveries, 'delivered counts every route');
is($s->{dead_lettered}, 0, 'nothing dead-lettered');
is($s->{unrouted}, 7, 'misc.thing matched no route');
my ($any) = grep { $_->{name} eq 'any-created' } @{$s->{routes}};
is($any->{delivered}, scalar @{$expect{'/any-created'}} + 1,
   'per route');
is($any->{breaker}, 'closed', 'breaker closed');

my $m = $t->http(GET => '/metrics')->{body};
like($m, qr/^message_bus_delivered_total\{zone="bus"\} $deliveries$/m,
     'delivered_total');
my $any_label = 'zone="bus",route="any-created"';
like($m, qr/^message_bus_route_delivered_total\{\Q$any_label\E\} \d+$/m,
     'per-route label');
like($m,
     qr/^message_bus_callback_latency_seconds_count\{\Q$any_label\E\} \d+$/m,
     'latency histogram per route');
my ($retries) = $m =~ /^message_bus_publish_retries_total
                        \{zone="bus",shard="$fifo->{shard}"\}\ (\d+)$/mx;
is($retries, 2, 'two retries counted on the shard');

my $file = $t->dir . '/metrics.txt';
open my $fh, '>', $file or die;
print $fh $m;
close $fh;
my $out = `promtool check metrics < $file 2>&1`;
is($?, 0, 'promtool check metrics passes') or diag($out);

# a response that comes in pieces, cut in the status line and in the
# headers: one attempt each, delivered

for my $cut (10, 30) {
    $rx->set('/split' => { split => $cut });
    my $id = publish("split.at$cut", '{}')->{id};
    ok(Omnibus::Test::wait_until(sub {
           my $s = $t->http(GET => '/omnibus/')->{json};
           my ($r) = grep { $_->{name} =~ m{/split$} } @{$s->{routes}};
           $r && $r->{delivered} == ($cut == 10 ? 1 : 2)
       }, timeout => 5), "cut after $cut bytes: delivered");
    my @got = grep { $_->{headers}{'x-omnibus-id'} eq $id }
              $rx->requests_for('/split');
    is(scalar @got, 1, "cut after $cut bytes: one attempt");
}

# every accepted message is done, queued, in flight or went to nobody
my ($accepted, $accounted);
ok(Omnibus::Test::wait_until(sub {
       ($accepted, $accounted) = $t->invariant;
       defined $accepted && defined $accounted && $accepted == $accounted
   }, timeout => 30),
   'published + replayed = completed + queued + in flight + unrouted')
    or diag("accepted $accepted, accounted for $accounted");

$t->finish;
