# A stalled SSE client does not make its worker hold memory for others'
# messages. A fan-out round renders its events once, shared by the
# streams; a stream whose client stopped reading (its socket full, bytes
# left unsent) takes a copy of its few matching events, not a reference
# on the whole round: before, each round with one event for it stayed
# in memory for as long as the client did not read (here 120 rounds of
# 50 messages of 16 KiB: the workers' anonymous memory grew by 92-103 MB;
# now by 2-18 MB), though the stream's own unsent bytes were a few
# kilobytes. A stream of the same pattern that reads gets every event.

use strict;
use warnings;

use Test::More;
use IO::Socket::INET;
use Socket qw(SOL_SOCKET SO_RCVBUF);
use lib 't/lib';
use Omnibus::Test;
use Omnibus::Sse;

# ASan keeps freed memory in quarantine: the workers' RSS tells nothing
plan skip_all => 'memory measured by RSS, which the sanitizers inflate'
    if $ENV{OMNIBUS_SANITIZE};

my $t = Omnibus::Test->new(workers => 2);

$t->conf(<<'EOF')->start;
    omnibus_zone zone=bus:256m shards=2 min_shards=2 retain=10
                 queue_size=100000;

    server {
        listen 127.0.0.1:%%PORT0%%;
        keepalive_requests 100000;
        client_max_body_size 16m;
        add_header X-Worker $pid always;

        location /publish/ { omnibus_publish bus; }
        location /subscribe/ { omnibus_subscribe bus buffer=256m; }
        location /admin/ { omnibus_admin bus; }
    }
EOF

my $port = $t->port;

# anonymous memory: the zone's shared pages, touched as it fills, are not
# what is measured
sub rss_kb {
    my $n = 0;
    for my $pid ($t->worker_pids) {
        open my $fh, '<', "/proc/$pid/status" or next;
        while (<$fh>) { $n += $1 if /^RssAnon:\s+(\d+)/ }
    }
    return $n;
}

# the stalled client: reads nothing, a small receive buffer; the reader
# has the same pattern and reads everything
my $stalled = Omnibus::Sse->new($port, '/subscribe/rare.%3E', rcvbuf => 4096);
my $reader = Omnibus::Sse->new($port, '/subscribe/rare.%3E');
ok(Omnibus::Test::wait_until(sub {
    $_->pump(0) for $stalled, $reader;
    defined $stalled->{head} && defined $reader->{head};
}), 'two streams of rare.>');

my $conn = $t->conn;
sub publish {
    my ($topic, $body, %h) = @_;
    my $r = $conn->request(POST => "/publish/$topic", body => $body,
                           keepalive => 1, headers => \%h);
    return $r && $r->{status};
}

# fill the stalled stream's socket and more: its worker keeps bytes unsent
my $pad = 'x' x 16000;
my $filled = 0;
for my $i (1 .. 400) {
    $filled++ if (publish('rare.fill', qq({"i":$i,"p":"$pad"}),
                          'Content-Type' => 'application/json') // 0) == 202;
    $reader->pump(0);
}
is($filled, 400, '400 messages of 16 KiB for rare.> (6.4 MB)');
Omnibus::Test::wait_until(sub { $reader->pump(0.05); $reader->ids >= 400 },
                          timeout => 30);
my $before = rss_kb();

# rounds of 50 messages of 16 KiB for other topics (one NDJSON batch) and
# one small event for rare.>: queued while the shards are paused, then
# dispatched at once, so that each round holds all 51
sub shards {
    my ($verb) = @_;
    my $ok = 1;
    for my $s (0, 1) {
        my $r = $conn->request(POST => "/admin/shards/$s/$verb",
                               keepalive => 1);
        $ok &&= $r && $r->{status} == 200;
    }
    return $ok;
}
my $batch = join '', map { qq({"b":$_,"p":"$pad"}\n) } 1 .. 50;
my ($bulk, $rare, $paused) = (0, 0, 0);
for my $i (1 .. 120) {
    $paused += shards('pause');
    $bulk++ if (publish('bulk.x', $batch,
                        'Content-Type' => 'application/x-ndjson') // 0)
               == 200;
    $rare++ if (publish('rare.x', qq({"r":$i}),
                        'Content-Type' => 'application/json') // 0) == 202;
    $paused += shards('resume');
    $reader->pump(0.01);
}
is("$bulk $rare $paused", '120 120 240',
   '120 rounds of 50 x 16 KiB and one rare event');

ok(Omnibus::Test::wait_until(sub { $reader->pump(0.05); $reader->ids >= 520 },
                             timeout => 30),
   'the reading stream got all 520 events of rare.>')
    or diag(scalar($reader->ids) . ' events');
my $after = rss_kb();
my $grew = int(($after - $before) / 1024);
cmp_ok($grew, '<', 48, "the workers' memory grew by $grew MB, less than "
       . 'the rounds would pin (about 96 MB)');

$t->finish;
