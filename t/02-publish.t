# The publish path: the 202 answer, ids, topics, priorities, every bad
# input of the README's publish table with its JSON error, sizes,
# keepalive after errors, the log variables, and the rejection counters.

use strict;
use warnings;

use Test::More;
use lib 't/lib';
use Omnibus::Test;

my $t = Omnibus::Test->new;

$t->conf(<<'EOF')->start;
    omnibus_zone zone=bus:16m shards=4 min_shards=2 retain=10;

    log_format bus '$status $omnibus_topic $omnibus_shard $omnibus_message_id';

    server {
        listen 127.0.0.1:%%PORT0%%;

        location /publish/ {
            omnibus_publish bus;
            access_log %%DIR%%/bus.log bus;
        }

        location /small/ {
            omnibus_publish bus;
            omnibus_max_message_size 1k;
        }

        location /raw/ {
            omnibus_publish bus;
            omnibus_json off;
        }

        location /by-arg/ {
            omnibus_publish bus;
            omnibus_topic $arg_t;
        }

        location /omnibus/ { omnibus_admin bus; }
        location = /metrics { omnibus_metrics; }
    }
EOF

my %rejected;

sub rejects {
    my ($res, $status, $code, $name) = @_;
    $rejected{$code}++;
    is($res->{status}, $status, "$name: $status");
    is($res->{headers}{'content-type'}, 'application/json',
       "$name: JSON body");
    is($res->{json}{error}, $code, "$name: error $code");
    like($res->{json}{message} // '', qr/\S/, "$name: with a message");
}

# 202 and its body

my $r = $t->http(POST => '/publish/orders.created', body => '{"n":1}');
is($r->{status}, 202, 'published');
is_deeply([sort keys %{$r->{json}}], [qw(id priority shard topic)],
          'exactly id, topic, shard, priority');
is($r->{json}{topic}, 'orders.created', 'topic from the URI');
is($r->{json}{priority}, 0, 'priority 0 by default');
like($r->{json}{id}, qr/^[0-9a-f]{20}-[0-9a-f]{4}-[0-9a-f]{10}$/,
     'id format');
my $shard = $r->{json}{shard};
ok($shard >= 0 && $shard < 4, 'shard within the ring');

my @ids = map {
    $t->http(POST => '/publish/orders.created', body => '{}')->{json}{id}
} 1 .. 5;
is_deeply([sort @ids], \@ids, 'ids increase within a shard');
isnt($ids[0], $ids[1], 'ids are unique');

$r = $t->http(PUT => '/publish/orders.put', body => '[1,2]');
is($r->{status}, 202, 'PUT publishes too');

$r = $t->http(POST => '/by-arg/x?t=from.arg', body => '{}');
is($r->{json}{topic}, 'from.arg', 'omnibus_topic with a variable');

# topics

for my $topic ('a..b', '.a', 'a.', 'a%20b', 'a$b', 'a/b/', 'x' x 256) {
    rejects($t->http(POST => "/publish/$topic", body => '{}'), 400,
            'invalid_topic', "topic '" . substr($topic, 0, 20) . "'");
}

$r = $t->http(POST => '/publish/' . ('y' x 255), body => '{}');
is($r->{status}, 202, 'a 255-byte topic is fine');
$r = $t->http(POST => '/publish/A-z_0:9.b', body => '{}');
is($r->{status}, 202, 'every allowed character');

# priorities

# a topic above may hash to the same shard: let it drain before the pause,
# or it stays queued and counts in the queued total below
Omnibus::Test::wait_until(sub {
    $t->http(GET => '/omnibus/')->{json}{shards}[$shard]{queued} == 0
}, timeout => 10) or diag("shard $shard did not drain before the pause");

$t->http(POST => "/omnibus/shards/$shard/pause");

for my $p (0 .. 9) {
    $r = $t->http(POST => '/publish/orders.created', body => '{}',
                  headers => { 'X-Priority' => $p });
    is($r->{json}{priority}, $p, "priority $p");
}

my $st = $t->http(GET => '/omnibus/')->{json}{shards}[$shard];
is($st->{high_queued}, 5, 'priorities 5..9 in the high queue');
is($st->{queued}, 10, 'and 0..4 in the normal one');

$t->http(POST => "/omnibus/shards/$shard/resume");

for my $p ('10', '-1', 'x', '5x', '1.0') {
    rejects($t->http(POST => '/publish/orders.created', body => '{}',
                     headers => { 'X-Priority' => $p }),
            400, 'invalid_priority', "priority '$p'");
}

# methods

for my $m (qw(GET DELETE PATCH)) {
    $r = $t->http($m => '/publish/orders.created');
    rejects($r, 405, 'method_not_allowed', $m);
    is($r->{headers}{allow}, 'POST, PUT', "$m: Allow header");
}

# bodies

rejects($t->http(POST => '/publish/orders.created', body => ''), 400,
        'empty_message', 'empty body');
rejects($t->http(POST => '/publish/orders.created', body => '{"a":'), 400,
        'invalid_json', 'truncated JSON');
rejects($t->http(POST => '/publish/orders.created', body => '{"a":1} x'),
        400, 'invalid_json', 'trailing garbage');
rejects($t->http(POST => '/publish/orders.created', body => "{\"a\":\"\xff\"}"),
        400, 'invalid_json', 'invalid UTF-8');
rejects($t->http(POST => '/publish/orders.created', body => '// c' . "\n{}"),
        400, 'invalid_json', 'comments');

# RFC 8259 to the letter: yajl let the first three through
for my $case ([ '{"a":1} "x', 'an unterminated string after the value' ],
              [ "[1,\x0b2]", 'a vertical tab between tokens' ],
              [ "{\x0c}", 'a form feed between tokens' ],
              [ '[01]', 'a leading zero' ],
              [ '[1.]', 'a fraction without digits' ],
              [ '[-]', 'a minus alone' ],
              [ "[\"a\tb\"]", 'a raw tab in a string' ],
              [ '["\x"]', 'an unknown escape' ]) {
    rejects($t->http(POST => '/publish/orders.created', body => $case->[0]),
            400, 'invalid_json', $case->[1]);
}

$r = $t->http(POST => '/publish/orders.created', body => '{"a":[1,2}');
rejects($r, 400, 'invalid_json', 'a brace closing an array');
like($r->{json}{message} // '',
     qr/^body is not valid JSON \(near byte 9\): unexpected character$/,
     'the message names the byte and the fault');
is($t->http(POST => '/publish/orders.created',
            body => qq( {"a" : [ -0.5e+3, 1E2, true, false, null ],)
                    . qq(\r\n\t"b":{}} ))->{status},
   202, 'whitespace of all four kinds, numbers, literals');

$r = $t->http(POST => '/publish/orders.created',
              body => '[' x 65 . ']' x 65);
rejects($r, 400, 'invalid_json', 'nested 65 deep');
like($r->{json}{message}, qr/deeper than 64/, 'the message names the depth');
is($t->http(POST => '/publish/orders.created',
            body => '[' x 64 . ']' x 64)->{status}, 202, '64 deep is fine');

# a key of 50,000 escapes (100 kB): the validator keeps nothing of a
# string, and the next parse starts afresh
for my $w (1 .. 2) {
    my $key = '\\n' x 50000;
    is($t->http(POST => '/publish/big.key', body => qq({"$key":1}))->{status},
       202, "a 100 kB escaped key ($w)");
    rejects($t->http(POST => '/publish/big.key', body => qq({"$key":1,})),
            400, 'invalid_json', "a 100 kB escaped key, then a bad end ($w)");
    is($t->http(POST => '/publish/big.key', body => '{"a":[1,{"b":"c"}]}')
       ->{status}, 202, "a small body after it ($w)");
}

is($t->http(POST => '/raw/raw.bytes', body => "not json \x00\xff")->{status},
   202, 'omnibus_json off takes any bytes');

# sizes

is($t->http(POST => '/small/s.t', body => '"' . 'x' x 1022 . '"')->{status},
   202, '1024 bytes under a 1k limit');
rejects($t->http(POST => '/small/s.t', body => '"' . 'x' x 1023 . '"'),
        413, 'message_too_large', '1025 bytes under a 1k limit');
rejects($t->http(POST => '/publish/s.t', body => '"' . 'x' x (2 << 20) . '"'),
        413, 'message_too_large', '2 MiB under the default 1m');

my $c = $t->conn;
$r = $c->request(POST => '/small/s.t', keepalive => 1,
                 chunked => ['"', 'x' x 800, 'x' x 800, '"']);
rejects($r, 413, 'message_too_large', 'chunked body over the limit');
$r = $c->request(POST => '/small/s.t', keepalive => 1,
                 chunked => ['{"a"', ':1}']);
is($r->{status}, 202, 'the connection still works after a 413');
rejects($c->request(POST => '/small/s.t', keepalive => 1, body => '{'),
        400, 'invalid_json', 'and after a 202');
is($c->request(GET => '/omnibus/', keepalive => 1)->{status}, 200,
   'and after a 400');
$c->close;

$r = $t->http(POST => '/publish/orders.created', body => '{}',
              headers => { 'Idempotency-Key' => 'k' x 240 });
rejects($r, 400, 'invalid_idempotency_key', 'a 240-byte key');

# log variables

$r = $t->http(POST => '/publish/logged.topic', body => '{}');
my $want = "202 logged.topic $r->{json}{shard} $r->{json}{id}\n";

# nginx writes the access log in the log phase, after the answer is sent
my @lines;
Omnibus::Test::wait_until(sub {
    open my $fh, '<', $t->dir . '/bus.log' or return 0;
    @lines = <$fh>;
    close $fh;
    return grep { $_ eq $want } @lines;
}, timeout => 10);
is($lines[-1], $want,
   '$omnibus_topic, $omnibus_shard, $omnibus_message_id logged');

# the counters add up

my $metrics = $t->http(GET => '/metrics')->{body};

for my $code (sort keys %rejected) {
    my ($n) = $metrics =~
        /^message_bus_rejected_total\{zone="bus",reason="$code"\} (\d+)$/m;
    is($n, $rejected{$code},
       "rejected_total{reason=\"$code\"} = $rejected{$code}");
}

$t->finish;
