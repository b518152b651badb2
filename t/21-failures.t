# When deliveries fail: retries with backoff and attempt headers, what is
# retried and what is permanent, the dead letter queue (list, bound,
# replay for the failed route only, purge), and the circuit breaker.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep);
use lib 't/lib';
use Omnibus::Test;
use Omnibus::Receiver;

my $t = Omnibus::Test->new(ports => 3);
my $rx = Omnibus::Receiver->new(t => $t, index => 1);

# port 2 is never listened on: connections are refused

$t->conf(<<'EOF')->start;
    omnibus_zone zone=bus:32m shards=4 min_shards=2 retain=100;
    omnibus_zone zone=small:8m shards=2 min_shards=2 dlq_size=3 retain=10;

    omnibus_route bus retry.> http://127.0.0.1:%%PORT1%%/retry
                  retries=3 backoff=10ms breaker=1000:1s:1 name=retry;
    omnibus_route bus also.> http://127.0.0.1:%%PORT1%%/good name=good;
    omnibus_route bus also.> http://127.0.0.1:%%PORT1%%/bad
                  retries=0 name=bad;
    omnibus_route bus slow.> http://127.0.0.1:%%PORT1%%/slow
                  timeout=1s retries=1 backoff=10ms name=slow;
    omnibus_route bus closed.> http://127.0.0.1:%%PORT2%%/x
                  retries=1 backoff=10ms breaker=1000:1s:1 name=closed;
    omnibus_route bus breaker.> http://127.0.0.1:%%PORT1%%/breaker
                  retries=0 breaker=3:5s:2 name=breaker;
    omnibus_route small perm.> http://127.0.0.1:%%PORT1%%/perm retries=3;

    server {
        listen 127.0.0.1:%%PORT0%%;
        location /publish/ { omnibus_publish bus; }
        location /small/ { omnibus_publish small; }
        location /omnibus/ { omnibus_admin bus; }
        location /omnibus-small/ { omnibus_admin small; }
        location = /metrics { omnibus_metrics; }
    }
EOF

sub publish {
    my ($loc, $topic, $body) = @_;
    return $t->http(POST => "/$loc/$topic", body => $body // '{}')->{json};
}

sub dlq {
    my ($admin) = @_;
    return $t->http(GET => "/$admin/dlq?limit=100")->{json};
}

sub attempts_of {
    my ($prefix, $id) = @_;
    return map { $_->{headers}{'x-omnibus-attempt'} }
           grep { $_->{headers}{'x-omnibus-id'} eq $id }
           $rx->requests_for($prefix);
}

sub route_status {
    my ($name) = @_;
    my ($r) = grep { $_->{name} eq $name }
              @{$t->http(GET => '/omnibus/')->{json}{routes}};
    return $r;
}

# retried statuses: four attempts, then the DLQ

for my $status (503, 408, 429) {
    $rx->set('/retry' => { status => $status });
    my $m = publish('publish', "retry.s$status", qq({"s":$status}));

    ok(Omnibus::Test::wait_until(sub {
           grep { $_->{id} eq $m->{id} } @{dlq('omnibus')->{entries}}
       }, timeout => 20), "$status: dead-lettered in the end");

    is_deeply([attempts_of('/retry', $m->{id})], [1, 2, 3, 4],
              "$status: attempts 1 to 4, same id");

    my ($e) = grep { $_->{id} eq $m->{id} } @{dlq('omnibus')->{entries}};
    is($e->{attempts}, 4, "$status: the entry says 4 attempts");
    is($e->{error}, "HTTP $status", "$status: and why");
    is($e->{route}, 'retry', "$status: and which route");
    is($e->{topic}, "retry.s$status", "$status: topic");
    is_deeply($e->{payload}, { s => $status }, "$status: payload as JSON");
}

# permanent statuses: one attempt, at once

for my $status (400, 404, 422) {
    $rx->set('/retry' => { status => $status });
    my $m = publish('publish', "retry.p$status");
    ok(Omnibus::Test::wait_until(sub {
           grep { $_->{id} eq $m->{id} } @{dlq('omnibus')->{entries}}
       }, timeout => 20), "$status: dead-lettered");
    is_deeply([attempts_of('/retry', $m->{id})], [1], "$status: one attempt");
}

# failing twice, then fine: delivered, not dead-lettered

$rx->set('/retry' => { fail_first => 2, status => 500 });
my $flaky = publish('publish', 'retry.flaky');
ok(Omnibus::Test::wait_until(sub {
       grep { $_->{status} == 200
              && $_->{headers}{'x-omnibus-id'} eq $flaky->{id} }
           $rx->requests_for('/retry')
   }, timeout => 20), 'delivered on the third attempt');
is_deeply([attempts_of('/retry', $flaky->{id})], [1, 2, 3], 'attempts 1..3');
ok(!grep({ $_->{id} eq $flaky->{id} } @{dlq('omnibus')->{entries}}),
   'not in the DLQ');

# timeouts and refused connections are retried (the receiver answers 3 s
# late, past the 1 s timeout; after the replay below it answers at once,
# well within it)

$rx->set('/slow' => { delay => 3 });
my $slow = publish('publish', 'slow.t');
ok(Omnibus::Test::wait_until(sub {
       grep { $_->{id} eq $slow->{id} } @{dlq('omnibus')->{entries}}
   }, timeout => 20), 'timed out twice: dead-lettered');
my ($se) = grep { $_->{id} eq $slow->{id} } @{dlq('omnibus')->{entries}};
is($se->{error}, 'timed out', 'error: timed out');
is($se->{attempts}, 2, 'after 2 attempts');

my $refused = publish('publish', 'closed.t');
ok(Omnibus::Test::wait_until(sub {
       grep { $_->{id} eq $refused->{id} } @{dlq('omnibus')->{entries}}
   }, timeout => 20), 'refused twice: dead-lettered');
my ($re) = grep { $_->{id} eq $refused->{id} } @{dlq('omnibus')->{entries}};
like($re->{error}, qr/connect/, "error: $re->{error}");

# replay: only to the route that failed, under the same id

$rx->set('/bad' => { status => 503 });
my $also = publish('publish', 'also.t', '{"x":1}');
ok(Omnibus::Test::wait_until(sub {
       grep { $_->{id} eq $also->{id} } @{dlq('omnibus')->{entries}}
   }, timeout => 20), 'one of two routes failed');
# the DLQ may see /bad's failure before /good's request is logged
Omnibus::Test::wait_until(sub { $rx->requests_for('/good') >= 1 },
                          timeout => 10);
is(scalar $rx->requests_for('/good'), 1, 'the other delivered');

$rx->set('/bad' => { status => 200 }, '/retry' => { status => 200 },
         '/slow' => { delay => 0 });
my $size = dlq('omnibus')->{size};
my $r = $t->http(POST => '/omnibus/dlq/replay?max_age=3600');
is($r->{json}{replayed}, $size, "replayed all $size");

ok(Omnibus::Test::wait_until(sub {
       grep { $_->{status} == 200
              && $_->{headers}{'x-omnibus-id'} eq $also->{id} }
           $rx->requests_for('/bad')
   }, timeout => 20), 'the failed route got it');
is(scalar(grep { $_->{headers}{'x-omnibus-id'} eq $also->{id} }
          $rx->requests_for('/good')), 1,
   'the route that had it did not get it again');

# the one to the closed port fails again: back in the DLQ
ok(Omnibus::Test::wait_until(sub {
       my $d = dlq('omnibus');
       $d->{size} == 1 && $d->{entries}[0]{id} eq $refused->{id};
   }, timeout => 20), 'only the unreachable one is left');

publish('publish', 'closed.u');
ok(Omnibus::Test::wait_until(sub { dlq('omnibus')->{size} == 2 },
                             timeout => 20), 'another unreachable one');
sleep 2;
is($t->http(POST => '/omnibus/dlq/replay?max_age=0')->{json}{replayed}, 0,
   'max_age=0 replays nothing older than a second');

$r = $t->http(DELETE => '/omnibus/dlq');
is($r->{json}{purged}, 2, 'purged') or diag explain dlq('omnibus');
is(dlq('omnibus')->{size}, 0, 'empty');

# the DLQ bound: the oldest go

$rx->set('/perm' => { status => 400 });
# one at a time, so that their order in the DLQ is known
my @perm;
for my $n (1 .. 5) {
    push @perm, publish('small', "perm.t$n")->{id};
    Omnibus::Test::wait_until(sub {
        grep { $_->{id} eq $perm[-1] } @{dlq('omnibus-small')->{entries}}
    }, timeout => 20);
}
is(scalar($rx->requests_for('/perm')), 5, 'five permanent failures');
ok(Omnibus::Test::wait_until(sub { dlq('omnibus-small')->{size} == 3 },
                             timeout => 20), 'dlq_size=3 holds three');
is_deeply([map { $_->{id} } @{dlq('omnibus-small')->{entries}}],
          [@perm[2 .. 4]], 'the three newest kept, oldest first');
like($t->error_log, qr/\[warn\].*the dead letter queue is full/,
     'the eviction is logged');
like($t->http(GET => '/metrics')->{body},
     qr/^message_bus_dlq_evicted_total\{zone="small"\} 2$/m, 'and counted');

# the breaker: open after 3 failures, messages held, half-open, closed

$rx->set('/breaker' => { status => 503 });
publish('publish', "breaker.t$_") for 1 .. 3;
ok(Omnibus::Test::wait_until(sub {
       route_status('breaker')->{breaker} eq 'open'
   }, timeout => 20), 'open after three failures');
like($t->http(GET => '/metrics')->{body},
     qr/^message_bus_breaker_state\{zone="bus",route="breaker"\} 1$/m,
     'breaker_state 1');

# it stays open 5 s: long enough for this look, even on a slow machine
my $before = $rx->requests_for('/breaker');
my @held = map { publish('publish', "breaker.h$_")->{id} } 1 .. 3;
sleep 0.5;
is(scalar $rx->requests_for('/breaker'), $before, 'nothing sent while open');
ok(!grep({ my $id = $_; grep { $_->{id} eq $id } @{dlq('omnibus')->{entries}} }
         @held), 'held, not dead-lettered');

$rx->set('/breaker' => { status => 200 });
ok(Omnibus::Test::wait_until(sub {
       my %got = map { $_->{headers}{'x-omnibus-id'} => 1 }
                 grep { $_->{status} == 200 } $rx->requests_for('/breaker');
       !grep { !$got{$_} } @held;
   }, timeout => 20), 'delivered once it half-opened');
ok(Omnibus::Test::wait_until(sub {
       route_status('breaker')->{breaker} eq 'closed'
   }, timeout => 20), 'closed again');

my $log = $t->error_log;
like($log, qr/route "breaker": circuit breaker closed -> open/, 'logged: open');
like($log, qr/route "breaker": circuit breaker open -> half-open/,
     'logged: half-open');
like($log, qr/route "breaker": circuit breaker half-open -> closed/,
     'logged: closed');

# a failure while half-open opens it again

$rx->set('/breaker' => { status => 503 });
publish('publish', "breaker.r$_") for 1 .. 3;
ok(Omnibus::Test::wait_until(sub {
       route_status('breaker')->{breaker} eq 'open'
   }, timeout => 20), 'open again');
publish('publish', 'breaker.probe');
ok(Omnibus::Test::wait_until(sub {
       $t->error_log =~ /half-open -> open/
   }, timeout => 20), 'the failed probe reopens it');

# every accepted message is done, queued, in flight or went to nobody
my ($accepted, $accounted);
ok(Omnibus::Test::wait_until(sub {
       ($accepted, $accounted) = $t->invariant;
       defined $accepted && defined $accounted && $accepted == $accounted
   }, timeout => 30),
   'published + replayed = completed + queued + in flight + unrouted')
    or diag("accepted $accepted, accounted for $accounted");

$t->finish;
