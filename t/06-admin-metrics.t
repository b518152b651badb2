# Admin status and actions, health and readiness, and the Prometheus
# exposition (checked by promtool).

use strict;
use warnings;

use Test::More;
use lib 't/lib';
use Omnibus::Test;

my $t = Omnibus::Test->new;

$t->conf(<<'EOF')->start;
    omnibus_zone zone=bus:16m shards=8 retain=10;

    server {
        listen 127.0.0.1:%%PORT0%%;
        location /publish/ { omnibus_publish bus; }
        location /omnibus/ { omnibus_admin bus; }
        location /guarded/ { omnibus_admin bus; allow 127.0.0.2; deny all; }
        location = /metrics { omnibus_metrics; }
        location = /healthz { omnibus_health bus; }
        location = /readyz { omnibus_health bus ready; }
    }
EOF

my $s = $t->http(GET => '/omnibus/')->{json};

is($s->{zone}, 'bus', 'zone');
is($s->{size}, 16 << 20, 'size');
ok($s->{bytes_used} > 0 && $s->{bytes_free} > 0, 'bytes used and free');
is($s->{workers}, 2, 'workers');
is_deeply([@$s{qw(min_shards max_shards queue_size retain)}],
          [2, 16, 10000, 10], 'limits');
is($s->{ring_version}, 1, 'ring version 1');
is(scalar @{$s->{shards}}, 8, 'eight shards');
is_deeply([sort keys %{$s->{shards}[0]}],
          [sort qw(index queued high_queued inflight retained paused
                   backpressure draining owner concurrency published
                   dispatched)], 'shard fields');
is_deeply([map { $_->{owner} } @{$s->{shards}}], [map { $_ % 2 } 0 .. 7],
          'owners');
is_deeply([map { $_->{concurrency} } @{$s->{shards}}], [(4) x 8],
          'concurrency from the zone');

# pause and resume

my $r = $t->http(POST => '/omnibus/shards/3/pause');
is_deeply($r->{json}, { shard => 3, paused => JSON::PP::true() },
          'pause answers');
ok($t->http(GET => '/omnibus/')->{json}{shards}[3]{paused}, 'paused');

$r = $t->http(GET => '/readyz');
is($r->{status}, 503, 'not ready while a shard is paused');
like($r->{json}{reason}, qr/shard 3 is paused/, 'says which');
is($t->http(GET => '/healthz')->{status}, 200, 'but alive');
is($t->http(GET => '/healthz')->{json}{status}, 'ok', 'status ok');

$r = $t->http(POST => '/omnibus/shards/3/resume');
ok(!$r->{json}{paused}, 'resume answers');
is($t->http(GET => '/readyz')->{status}, 200, 'ready again');

# errors

$r = $t->http(POST => '/omnibus/shards/99/pause');
is($r->{status}, 404, 'no shard 99');
is($r->{json}{error}, 'not_found', 'not_found');

$r = $t->http(GET => '/omnibus/shards/3/pause');
is($r->{status}, 405, 'GET on an action');
is($r->{headers}{allow}, 'POST', 'Allow: POST');

is($t->http(POST => '/omnibus/')->{status}, 405, 'POST on the status');
is($t->http(GET => '/omnibus/nothing')->{status}, 404, 'unknown resource');
is($t->http(GET => '/guarded/')->{status}, 403, 'allow/deny applies');

# metrics after some traffic

my %topics;
for my $i (1 .. 140) {
    $t->http(POST => "/publish/m$i.t", body => '{}');
    $topics{"m$i.t"}++;
}
$t->http(POST => '/publish/m1.t', body => '{}') for 1 .. 4;
$t->http(POST => '/publish/bad..t', body => '{}');

ok(Omnibus::Test::wait_until(sub {
       my $n = 0;
       $n += $_->{dispatched}
           for @{$t->http(GET => '/omnibus/')->{json}{shards}};
       $n == 144;
   }, timeout => 20), 'all dispatched');

$r = $t->http(GET => '/metrics');
is($r->{status}, 200, 'metrics');
like($r->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4},
     'exposition format 0.0.4');
my $m = $r->{body};

sub value {
    my ($re) = @_;
    return $m =~ /^$re (\S+)$/m ? $1 : undef;
}

for my $family (qw(queue_size retained_messages shard_paused
                   inflight_messages message_age_seconds
                   dispatch_duration_seconds topic_throughput_total
                   published_total rejected_total deduplicated_total
                   unrouted_total delivered_total dlq_size shards
                   ring_version zone_used_bytes zone_free_bytes
                   publish_retries_total shard_concurrency
                   autoscale_decisions_total subscribers))
{
    like($m, qr/^# TYPE message_bus_$family (gauge|counter|histogram)$/m,
         "family $family");
}

is(value(qr/message_bus_published_total\{zone="bus"\}/), 144, 'published');
is(value(qr/message_bus_unrouted_total\{zone="bus"\}/), 144, 'unrouted');
is(value(qr/message_bus_rejected_total\{zone="bus",reason="invalid_topic"\}/),
   1, 'rejected by reason');
is(value(qr/message_bus_message_age_seconds_count\{zone="bus"\}/), 144,
   'age histogram count');
is(value(qr/message_bus_message_age_seconds_bucket\{zone="bus",le="\+Inf"\}/),
   144, '+Inf bucket = count');

my @buckets = $m =~
    /^message_bus_message_age_seconds_bucket\{zone="bus",le="[^"]+"\} (\d+)$/mg;
is_deeply(\@buckets, [sort { $a <=> $b } @buckets], 'buckets cumulative');

my @labels = $m =~
    /^message_bus_topic_throughput_total\{zone="bus",topic="([^"]+)"\}/mg;
is(scalar(grep { $_ ne '_other' } @labels), 128, 'topics capped at 128');
is(value(qr/message_bus_topic_throughput_total\{zone="bus",topic="m1\.t"\}/),
   5, 'per topic counts');

sub throughput {
    my ($topic) = @_;
    return value(qr/message_bus_topic_throughput_total
                    \{zone="bus",topic="\Q$topic\E"\}/x);
}

my $named = 0;
$named += throughput($_) for grep { $_ ne '_other' } @labels;
is($named + throughput('_other'), 144, 'named topics and _other add up');

my $file = $t->dir . '/metrics.txt';
open my $fh, '>', $file or die;
print $fh $m;
close $fh;
ok(Omnibus::Test::have_cmd('promtool'), 'promtool is installed');
my $out = `promtool check metrics < $file 2>&1`;
is($?, 0, 'promtool check metrics passes') or diag($out);

$t->finish;
