# Subscribers: SSE streams on both workers, patterns, heartbeats, long-poll,
# resuming from the retain rings, and a slow client that gets dropped.

use strict;
use warnings;

use Test::More;
use lib 't/lib';
use Omnibus::Test;
use Omnibus::Sse;

my $t = Omnibus::Test->new;

$t->conf(<<'EOF')->start;
    omnibus_zone zone=bus:64m shards=4 min_shards=2 retain=100;

    server {
        listen 127.0.0.1:%%PORT0%% reuseport;
        add_header X-Worker $pid always;

        location /publish/ { omnibus_publish bus; }
        location /raw/ { omnibus_publish bus; omnibus_json off; }
        location /subscribe/ { omnibus_subscribe bus heartbeat=1s; }
        location /wide/ { omnibus_subscribe bus buffer=64m; }
        location = /metrics { omnibus_metrics; }
    }

    server {
        # a small socket buffer: what the client does not read piles up
        listen 127.0.0.1:%%PORT1%% sndbuf=16k;
        location /tight/ { omnibus_subscribe bus buffer=64k; }
    }
EOF

my $port = $t->port(0);

sub subscribers { $t->metric('subscribers') }

# eight SSE subscribers, on both workers

my @subs = Omnibus::Sse->spread($port, '/subscribe/orders.>', 8);
my %workers = map { $_->worker => 1 } @subs;
is(scalar keys %workers, 2, 'subscribers on both workers');
like($subs[0]{head}, qr{^HTTP/1.1 200}, 'status 200');
like($subs[0]{head}, qr{Content-Type: text/event-stream}i, 'text/event-stream');

ok(Omnibus::Test::wait_until(sub { subscribers() == @subs }, timeout => 10),
   'message_bus_subscribers counts them');

my (@ids, %by_topic);
for my $i (1 .. 20) {
    my $topic = 'orders.t' . ($i % 5);
    my $r = $t->http(POST => "/publish/$topic", body => qq({"i":$i}));
    push @ids, $r->{json}{id};
    push @{$by_topic{$topic}}, $r->{json}{id};
}
$t->http(POST => "/publish/other.topic", body => '{}') for 1 .. 5;

ok(Omnibus::Test::wait_until(sub {
       $_->pump for @subs;
       !grep { $_->ids < 20 } @subs;
   }, timeout => 20), 'every subscriber got twenty');

my $all_ok = 1;
for my $s (@subs) {
    $all_ok = 0 unless join(',', sort $s->ids) eq join(',', sort @ids);
    for my $topic (keys %by_topic) {
        my @got = map { $_->{id} } grep { $_->{event} eq $topic }
                  @{$s->{events}};
        $all_ok = 0 unless "@got" eq "@{$by_topic{$topic}}";
    }
}
ok($all_ok, 'exactly the twenty, per topic in order, none of other.topic');

my ($e) = grep { $_->{id} eq $ids[0] } @{$subs[0]{events}};
is($e->{event}, 'orders.t1', 'event: is the topic');
is_deeply($e->{data}, ['{"i":1}'], 'data: is the payload');

# patterns and multi-line payloads

my $star = Omnibus::Sse->new($port, '/subscribe/*.created');
Omnibus::Test::wait_until(sub { $star->pump; defined $star->{head} });
my $c1 = $t->http(POST => '/publish/users.created', body => "{\"a\":\n1}");
$t->http(POST => '/publish/users.deleted', body => '{}');
$t->http(POST => '/publish/a.b.created', body => '{}');
ok(Omnibus::Test::wait_until(sub { $star->pump; $star->ids >= 1 },
                             timeout => 10), '*.created got one');
$star->pump(0.5);
is_deeply([$star->ids], [$c1->{json}{id}], 'only users.created');
is_deeply($star->{events}[0]{data}, ['{"a":', '1}'],
          'a payload line per data: line');

my $bad = $t->http(GET => '/subscribe/a..b');
is($bad->{status}, 400, 'bad pattern: 400');
is($bad->{json}{error}, 'invalid_topic', 'invalid_topic');

# heartbeats

ok(Omnibus::Test::wait_until(sub { $star->pump; $star->{comments} >= 2 },
                             timeout => 10), 'comment heartbeats');

# long-poll

my $r = $t->http(GET => '/subscribe/quiet.>?timeout=1');
is($r->{status}, 204, 'nothing within the timeout: 204');

is($t->http(GET => '/subscribe/x?timeout=soon')->{status}, 400,
   'a bad timeout: 400');

# publish only once the long-poll is registered: it waits for new ones
my $before = subscribers();
my $poll = Omnibus::Test::Conn->new($t);
$poll->send_raw("GET /subscribe/poll.> HTTP/1.1\r\nHost: x\r\n"
                . "Connection: close\r\n\r\n");
Omnibus::Test::wait_until(sub { subscribers() >= $before + 1 },
                          timeout => 10)
    or diag('the long-poll did not show in message_bus_subscribers');
my $p1 = $t->http(POST => '/publish/poll.a', body => '{"n":1}');
$r = $poll->read_response;
is($r->{status}, 200, 'a message: 200');
is_deeply($r->{json}{messages},
          [{ id => $p1->{json}{id}, topic => 'poll.a', priority => 0,
             payload => { n => 1 } }], 'the message, JSON embedded');
is($r->{json}{last_id}, $p1->{json}{id}, 'last_id');

my $raw = $t->http(POST => '/raw/poll.raw', body => 'plain text');
$r = $t->http(GET => "/subscribe/poll.>?after=$p1->{json}{id}&timeout=1");
is($r->{json}{messages}[0]{payload}, 'plain text',
   'a non-JSON payload is a string');

# resume

my @five = map {
    $t->http(POST => '/publish/resume.a', body => qq({"n":$_}))->{json}{id}
} 1 .. 5;

# ?after= reads the retain rings, which hold a message once dispatched:
# until the last is, the answer may have only some of them
Omnibus::Test::wait_until(sub {
    $r = $t->http(GET => "/subscribe/resume.a?after=$five[1]&timeout=1");
    @{$r->{json}{messages} || []} >= 3;
}, timeout => 10);
is_deeply([map { $_->{id} } @{$r->{json}{messages}}], [@five[2 .. 4]],
          '?after= returns the ones after, in order');

my $resumed = Omnibus::Sse->new($port, '/subscribe/resume.a', last => $five[2]);
ok(Omnibus::Test::wait_until(sub { $resumed->pump; $resumed->ids >= 2 },
                             timeout => 10), 'Last-Event-ID resumes');
my $live = $t->http(POST => '/publish/resume.a', body => '{}')->{json}{id};
ok(Omnibus::Test::wait_until(sub { $resumed->pump; $resumed->ids >= 3 },
                             timeout => 10), 'then goes on live');
is_deeply([$resumed->ids], [@five[3, 4], $live], 'in order, no gap');

$r = $t->http(GET => '/subscribe/resume.a?after=garbage&timeout=1');
is(scalar @{$r->{json}{messages}}, 6, 'an unknown id: everything retained');

# a client that does not read is dropped; the others go on

my $slow = Omnibus::Sse->new($t->port(1), '/tight/heavy.>', rcvbuf => 4096);
Omnibus::Test::wait_until(sub { $slow->pump; defined $slow->{head} });
# a reader that keeps up, with room enough never to be dropped on a
# busy machine: only the slow one is
my $fast = Omnibus::Sse->new($port, '/wide/heavy.>');
Omnibus::Test::wait_until(sub { $fast->pump; defined $fast->{head} });
my $with_slow;
Omnibus::Test::wait_until(sub { ($with_slow = subscribers()) > 0 });

my $big = '"' . ('z' x (16 * 1024)) . '"';
my $sent = 0;
for (1 .. 200) {
    $t->http(POST => '/publish/heavy.t', body => $big);
    $sent++;
    $fast->pump;
    last if $t->error_log =~ /omnibus subscriber dropped/;
}
ok(Omnibus::Test::wait_until(sub {
       $t->error_log =~ /\[info\].*omnibus subscriber dropped/
   }, timeout => 20), 'the slow subscriber is dropped and logged');

# it is gone at once, although it never reads again to give its
# connection an event: later messages neither feed nor drop it again
for (1 .. 3) {
    $t->http(POST => '/publish/heavy.t', body => $big);
    $sent++;
}
ok(Omnibus::Test::wait_until(sub { $fast->pump; $fast->ids == $sent },
                             timeout => 20), "the reader got all $sent");
like($t->http(GET => '/metrics')->{body},
     qr/^message_bus_slow_subscribers_dropped_total\{zone="bus"\} 1$/m,
     'and counted once');
ok(Omnibus::Test::wait_until(sub { subscribers() == $with_slow - 1 },
                             timeout => 10), 'off the gauge');
is(() = $t->error_log =~ /omnibus subscriber dropped/g, 1, 'logged once');
ok(Omnibus::Test::wait_until(sub { $slow->pump; $slow->{closed} },
                             timeout => 20), 'its connection closed');

close $_->{s} for @subs, $star, $resumed, $slow, $fast;
ok(Omnibus::Test::wait_until(sub { subscribers() == 0 }, timeout => 10),
   'no subscribers once they are gone');

$t->finish;
