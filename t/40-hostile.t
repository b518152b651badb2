# Hostile input: malformed chunked bodies on every kind of location,
# invalid UTF-8 in JSON bodies (raw bytes and escapes, in every position,
# and in NDJSON batches), bad header bytes and sizes, half bodies,
# pipelining, HTTP/1.0 and 0.9, subscribers that go away at once, an
# admin location closed by deny. No answer anywhere is a 500 (also per
# access.log), the error log stays clean, and the bus's counters add up.

use strict;
use warnings;

use IO::Select;
use Test::More;
use Time::HiRes qw(sleep time);
use lib 't/lib';
use Omnibus::Test;
use Omnibus::Receiver;

my $t = Omnibus::Test->new(ports => 2);
my $rx = Omnibus::Receiver->new(t => $t, index => 1);

$t->conf(<<'EOF')->start;
    omnibus_zone zone=bus:16m shards=4 min_shards=2 retain=100;

    omnibus_route bus hostile.> http://127.0.0.1:%%PORT1%%/hook
                  timeout=2s retries=1 backoff=10ms;

    log_format omnibus '$status $omnibus_topic $omnibus_message_id '
                       '$omnibus_shard';

    server {
        listen 127.0.0.1:%%PORT0%%;

        # the variables logged for requests refused before they are known
        location /publish/ {
            omnibus_publish bus;
            access_log %%DIR%%/access.log;
            access_log %%DIR%%/omnibus.log omnibus;
        }

        location /raw/ { omnibus_publish bus; omnibus_json off; }
        location /subscribe/ { omnibus_subscribe bus heartbeat=1s; }
        location /omnibus/ { omnibus_admin bus; }
        location /locked/ { allow 10.0.0.1; deny all; omnibus_admin bus; }
        location = /healthz { omnibus_health bus; }
        location = /readyz { omnibus_health bus ready; }
        location = /metrics { omnibus_metrics; }
    }
EOF

my @workers = $t->worker_pids;

# every answer seen, to make sure none of them is a 500
my @seen;

sub seen {
    my ($r, $name) = @_;
    push @seen, [$name, $r ? $r->{status} : 'none'];
    return $r;
}

sub http {
    my ($name, $method, $path, %o) = @_;
    return seen($t->http($method, $path, %o), $name);
}

sub published { $t->metric('published_total') }
sub subscribers { $t->metric('subscribers') }

# true once the server closes the connection (EOF or reset) within $timeout
sub closed_by_server {
    my ($c, $timeout) = @_;
    my $sel = IO::Select->new($c->sock);
    my $deadline = time + ($timeout // 6);
    while ((my $left = $deadline - time) > 0) {
        return 0 unless $sel->can_read($left);
        my $n = sysread($c->sock, my $buf, 65536);
        return 1 unless $n;
    }
    return 0;
}

# one write, one answer; then whether the server closed the connection
sub raw {
    my ($name, $data, %o) = @_;
    my $c = $t->conn(timeout => $o{timeout} // 10);
    $c->send_raw($data);
    my $r = seen($c->read_response(head => $o{head}), $name);
    my $closed = $r ? closed_by_server($c, 6) : undef;
    $c->close;
    return ($r, $closed);
}

sub json_error {
    my ($r, $status, $code, $name) = @_;
    is($r && $r->{status}, $status, "$name: $status");
    is($r && $r->{headers}{'content-type'}, 'application/json',
       "$name: JSON body");
    is($r && $r->{json} && $r->{json}{error}, $code, "$name: error $code")
        or diag("$name: body " . ($r ? substr($r->{body}, 0, 200) : '-'));
}

sub q_bytes {
    my ($s) = @_;
    $s =~ s/([^\x20-\x7e])/sprintf('\\x%02X', ord $1)/ge;
    return $s;
}

my $BAD_CHUNKS = "zz\r\n{\"a\":1}\r\n0\r\n\r\n";

sub chunked_req {
    my ($method, $path, @h) = @_;
    return "$method $path HTTP/1.1\r\nHost: localhost\r\n"
           . join('', map { "$_\r\n" } @h)
           . "Transfer-Encoding: chunked\r\n\r\n$BAD_CHUNKS";
}

# a first message: the route works, deliveries happen

my $r = http('first', POST => '/publish/hostile.first', body => '{"n":0}');
is($r->{status}, 202, 'a first publish');
ok(Omnibus::Test::wait_until(sub { $rx->requests >= 1 }, timeout => 10),
   'and its delivery');

###########################################################################
# 1. malformed chunked bodies

my $before = published();

# refused before the body is read: the refusal stands, then close

for my $case (
    [ 'bad topic', chunked_req(POST => '/publish/a..b'),
      400, 'invalid_topic' ],
    [ 'bad priority', chunked_req(POST => '/publish/hostile.c',
                                  'X-Priority: 12'),
      400, 'invalid_priority' ],
    [ 'DELETE', chunked_req(DELETE => '/publish/hostile.c'),
      405, 'method_not_allowed' ],
) {
    my ($what, $req, $status, $code) = @$case;
    my $name = "malformed chunked body, $what";
    my ($res, $closed) = raw($name, $req);
    json_error($res, $status, $code, $name);
    is($res && lc($res->{headers}{connection} // ''), 'close',
       "$name: Connection: close");
    is($res && $res->{headers}{allow}, 'POST, PUT', "$name: Allow header")
        if $status == 405;
    ok($closed, "$name: the server closes the connection");
}

# a good topic, a bad body

{
    my $name = 'malformed chunked body on a publish';
    my ($res, $closed) = raw($name, chunked_req(POST => '/publish/hostile.c'));
    json_error($res, 400, 'invalid_body', $name);
    like($res && $res->{json} && $res->{json}{message} // '', qr/\S/,
         "$name: with a message");
    ok($closed, "$name: the server closes the connection");

    ($res, $closed) = raw("$name (omnibus_json off)",
                          chunked_req(POST => '/raw/hostile.c'));
    json_error($res, 400, 'invalid_body', "$name (omnibus_json off)");
    ok($closed, "$name (omnibus_json off): the server closes the connection");
}

is(published(), $before, 'malformed chunked bodies: nothing published');

# every other kind of location

for my $case (
    [ 'long-poll subscribe', 'GET', '/subscribe/hostile.>?timeout=1' ],
    [ 'SSE subscribe', 'GET', '/subscribe/hostile.>',
      'Accept: text/event-stream' ],
    [ 'admin status', 'GET', '/omnibus/' ],
    [ 'admin DLQ replay', 'POST', '/omnibus/dlq/replay' ],
    [ 'health', 'GET', '/healthz' ],
    [ 'readiness', 'GET', '/readyz' ],
    [ 'metrics', 'GET', '/metrics' ],
) {
    my ($what, $method, $path, @h) = @$case;
    my $name = "malformed chunked body, $what";
    # a stream that opened anyway must not hold the test for long
    my ($res, $closed) = raw($name, chunked_req($method, $path, @h),
                             timeout => 3);
    isnt($res && $res->{status}, 500, "$name: not 500");
    json_error($res, 400, 'invalid_body', $name);
    ok($closed, "$name: the server closes the connection");
}

is(published(), $before, 'still nothing published');
ok(Omnibus::Test::wait_until(sub { subscribers() == 0 }, timeout => 10),
   'no subscriber left behind by the malformed requests');

###########################################################################
# 2. invalid UTF-8 in JSON bodies

my $accepted = 0;     # publishes that should count in published_total

my %bad_bytes = (
    'overlong C0 AF'           => "\xC0\xAF",
    'surrogate ED A0 80'       => "\xED\xA0\x80",
    'above U+10FFFF F4 90 80 80' => "\xF4\x90\x80\x80",
    'truncated E2 82'          => "\xE2\x82",
    'lone continuation 80'     => "\x80",
    'FF'                       => "\xFF",
);

my %positions = (
    'string value'  => sub { qq({"a":"x$_[0]"}) },
    'object key'    => sub { qq({"k$_[0]":1}) },
    'array element' => sub { qq([1,"$_[0]",2]) },
    'nested'        => sub { qq({"a":[{"b":{"c":["$_[0]"]}}]}) },
    'whole string'  => sub { qq("$_[0]") },
);

for my $what (sort keys %bad_bytes) {
    for my $where (sort keys %positions) {
        my $body = $positions{$where}->($bad_bytes{$what});
        my $name = "$what in a $where";
        json_error(http($name, POST => '/publish/hostile.utf8', body => $body),
                   400, 'invalid_json', $name);
    }
}

# the body ends inside a sequence
for my $body (qq("ab\xE2\x82), qq({"a":"b\xE2\x82), qq({"a":1}\xE2\x82),
              qq({"a":1}\xE2), qq(["\xF0\x9F\x98)) {
    my $name = 'body ending in ' . q_bytes(substr($body, -4));
    json_error(http($name, POST => '/publish/hostile.utf8', body => $body),
               400, 'invalid_json', $name);
}

# escaped lone surrogates
for my $esc ('\ud800', '\udc00', '\ud800\u0041', '\ud800x', '\udbff',
             '\ude00\ud83d', '\ud800\ud800') {
    for my $where ('string value', 'object key', 'array element') {
        my $body = $positions{$where}->($esc);
        my $name = "escape $esc in a $where";
        json_error(http($name, POST => '/publish/hostile.esc', body => $body),
                   400, 'invalid_json', $name);
    }
}

# what is fine stays fine
for my $case (
    [ 'escaped pair \ud83d\ude00', qq({"a":"\\ud83d\\ude00"}) ],
    [ 'escaped pair as a key', qq({"\\ud83d\\ude00":1}) ],
    [ 'escaped backslash then ud800', qq({"a":"\\\\ud800"}) ],
    [ 'escaped U+FFFF', qq(["\\uffff"]) ],
    [ 'raw e-acute', qq({"a":"caf\xC3\xA9"}) ],
    [ 'raw 4-byte emoji', qq({"\xF0\x9F\x98\x80":"\xF0\x9F\x98\x80"}) ],
    [ 'raw U+10FFFF', qq(["\xF4\x8F\xBF\xBF"]) ],
    [ 'raw U+FFFD and U+0800', qq(["\xEF\xBF\xBD\xE0\xA0\x80"]) ],
) {
    my ($name, $body) = @$case;
    my $res = http($name, POST => '/publish/hostile.ok', body => $body);
    is($res->{status}, 202, "$name: 202")
        or diag("$name: " . q_bytes($res->{body}));
    $accepted++ if $res->{status} == 202;
}

# omnibus_json off: opaque bytes
for my $what (sort keys %bad_bytes) {
    my $name = "$what with omnibus_json off";
    my $res = http($name, POST => '/raw/hostile.raw',
                   body => $positions{'string value'}->($bad_bytes{$what}));
    is($res->{status}, 202, "$name: 202");
    $accepted++ if $res->{status} == 202;
}
{
    my $res = http('raw lone surrogate escape', POST => '/raw/hostile.raw',
                   body => '"\ud800"');
    is($res->{status}, 202, 'an escaped lone surrogate with omnibus_json off: 202');
    $accepted++ if $res->{status} == 202;
}

# NDJSON: per line
{
    my @lines = ('{"n":1}', "{\"n\":\"\xC0\xAF\"}", '{"n":3}',
                 "[\"\xED\xA0\x80\"]", '"\ud800"', "{\"\xFF\":4}",
                 '{"n":"\ud83d\ude00"}');
    my @want = (202, 400, 202, 400, 400, 400, 202);
    my $res = http('NDJSON with invalid UTF-8', POST => '/publish/hostile.nd',
                   headers => { 'Content-Type' => 'application/x-ndjson' },
                   body => join("\n", @lines) . "\n");
    is($res->{status}, 200, 'NDJSON batch with invalid UTF-8 lines: 200');
    my @res = @{($res->{json} && $res->{json}{results}) || []};
    is_deeply([map { $_->{line} } @res], [1 .. 7], 'NDJSON: a result per line');
    is_deeply([map { $_->{status} } @res], \@want,
              'NDJSON: 400 for the invalid lines, 202 for the others');
    is_deeply([map { $_->{error} // '' } grep { $_->{status} == 400 } @res],
              [('invalid_json') x 4], 'NDJSON: the invalid lines say invalid_json');
    $accepted += grep { $_->{status} == 202 } @res;
}

is(published(), $before + $accepted,
   "UTF-8 checks: exactly the $accepted accepted messages published");

###########################################################################
# 3. headers

$before = published();

for my $case (
    [ 'Content-Type with \x01', 'Content-Type', "application/json\x01",
      'invalid_content_type' ],
    [ 'Content-Type with \x7f', 'Content-Type', "text/pl\x7fain",
      'invalid_content_type' ],
    [ 'Idempotency-Key with \x01', 'Idempotency-Key', "key\x01one",
      'invalid_idempotency_key' ],
    [ 'Idempotency-Key with \x7f', 'Idempotency-Key', "key\x7f",
      'invalid_idempotency_key' ],
    [ 'Idempotency-Key with \x1b', 'Idempotency-Key', "\x1b[31mred",
      'invalid_idempotency_key' ],
    [ 'Idempotency-Key of 240 bytes', 'Idempotency-Key', 'k' x 240,
      'invalid_idempotency_key' ],
) {
    my ($name, $h, $v, $code) = @$case;
    json_error(http($name, POST => '/publish/hostile.h', body => '{}',
                    headers => { $h => $v }),
               400, $code, $name);
}

is(published(), $before, 'bad headers: nothing published');

$r = http('Idempotency-Key of 239', POST => '/publish/hostile.h', body => '{}',
          headers => { 'Idempotency-Key' => 'k' x 239 });
is($r->{status}, 202, 'an Idempotency-Key of 239 bytes: 202');

my $good = $r->{status} == 202 ? 1 : 0;

# HTAB is allowed in a field value (RFC 9110 5.5), also around a media
# type's parameters
$r = http('Content-Type with tab', POST => '/publish/hostile.h', body => '{}',
          headers => { 'Content-Type' => "application/json;\tcharset=utf-8" });
is($r->{status}, 202, 'a Content-Type with a tab: 202');
$good++ if $r->{status} == 202;

{
    my $name = 'a 20 KB header';
    my ($res) = raw($name, "POST /publish/hostile.h HTTP/1.1\r\nHost: x\r\n"
                    . 'X-Big: ' . ('a' x 20480) . "\r\n"
                    . "Content-Length: 2\r\n\r\n{}");
    ok($res && ($res->{status} == 400 || $res->{status} == 494),
       "$name: nginx's 400/494")
        or diag("$name: " . ($res ? $res->{status} : 'no answer'));
    isnt($res && $res->{status}, 500, "$name: not 500");
}

for my $len (1048577, 2 << 20, '99999999999') {
    my $name = "Content-Length $len over omnibus_max_message_size";
    my ($res) = raw($name, "POST /publish/hostile.big HTTP/1.1\r\n"
                    . "Host: x\r\nContent-Length: $len\r\n\r\n{\"a\":");
    json_error($res, 413, 'message_too_large', $name);
}

is(published(), $before + $good, 'header checks: only the good ones published');

###########################################################################
# 4. half a body, then gone

$before = published();
{
    my $c = $t->conn;
    $c->send_raw("POST /publish/hostile.half HTTP/1.1\r\nHost: x\r\n"
                 . "Content-Length: 1000\r\n\r\n" . ('"' . 'h' x 499));
    sleep 0.2;
    $c->close;

    # and once more, closed right after the write
    $c = $t->conn;
    $c->send_raw("POST /raw/hostile.half HTTP/1.1\r\nHost: x\r\n"
                 . "Content-Length: 1000\r\n\r\n" . ('h' x 500));
    $c->close;
}
sleep 0.5;
is(http('health after half bodies', GET => '/healthz')->{status}, 200,
   'half bodies: nginx still answers');
is(published(), $before, 'half bodies: nothing published');
is_deeply([$t->worker_pids], \@workers, 'half bodies: no worker died');

###########################################################################
# 5. pipelining

{
    my $c = $t->conn;
    my $one = sub {
        my ($n, $close) = @_;
        my $body = qq({"n":$n});
        return "POST /publish/hostile.pipe HTTP/1.1\r\nHost: x\r\n"
               . ($close ? "Connection: close\r\n" : '')
               . 'Content-Length: ' . length($body) . "\r\n\r\n$body";
    };
    $c->send_raw($one->(1) . $one->(2));
    my $r1 = seen($c->read_response, 'pipelined 1');
    my $r2 = seen($c->read_response, 'pipelined 2');
    is($r1 && $r1->{status}, 202, 'pipelined publish 1: 202');
    is($r2 && $r2->{status}, 202, 'pipelined publish 2: 202');
    ok($r1 && $r2 && $r1->{json}{id} lt $r2->{json}{id},
       'pipelined: answered in order, ids increasing');

    $c->send_raw($one->(3)
                 . "GET /metrics HTTP/1.1\r\nHost: x\r\n"
                 . "Connection: close\r\n\r\n");
    my $r3 = seen($c->read_response, 'pipelined 3');
    my $m = seen($c->read_response, 'pipelined metrics');
    is($r3 && $r3->{status}, 202, 'a publish then metrics, pipelined: 202');
    ok($r3 && $r2 && $r2->{json}{id} lt $r3->{json}{id},
       'and its id after the others');
    is($m && $m->{status}, 200, 'then the metrics: 200');
    like($m && $m->{body} // '', qr/^message_bus_published_total\{zone="bus"\} \d+$/m,
         'with the counters');
    $c->close;
}

###########################################################################
# 6. HTTP/1.0 and HTTP/0.9

{
    my $name = 'HTTP/1.0 publish';
    my ($res, $closed) = raw($name, "POST /publish/hostile.h10 HTTP/1.0\r\n"
                             . "Content-Length: 7\r\n\r\n{\"a\":1}");
    is($res && $res->{status}, 202, "$name: 202");
    ok($closed, "$name: the connection closed");

    my $c = $t->conn(timeout => 5);
    $c->send_raw("GET /healthz\r\n");
    my $all = '';
    my $sel = IO::Select->new($c->sock);
    my $deadline = time + 5;
    while ($sel->can_read($deadline - time > 0 ? $deadline - time : 0)) {
        my $n = sysread($c->sock, my $buf, 65536);
        last unless $n;
        $all .= $buf;
    }
    $c->close;
    unlike($all, qr{^HTTP/\d\.\d 5\d\d}, 'HTTP/0.9 GET /healthz: no 5xx');
    is(http('health after 0.9', GET => '/healthz')->{status}, 200,
       'HTTP/0.9: nginx still answers');
}

###########################################################################
# 7. subscribers that leave at once

ok(Omnibus::Test::wait_until(sub { subscribers() == 0 }, timeout => 10),
   'no subscribers to begin with');

{
    my $poll = $t->conn;
    $poll->send_raw("GET /subscribe/hostile.gone.>?timeout=30 HTTP/1.1\r\n"
                    . "Host: x\r\n\r\n");
    ok(Omnibus::Test::wait_until(sub { subscribers() >= 1 }, timeout => 10),
       'a long-poll registers');
    $poll->close;
    ok(Omnibus::Test::wait_until(sub { subscribers() == 0 }, timeout => 10),
       'a long-poll that disconnects: subscribers back to 0');

    # a message after the client left must not be sent to it
    my $res = http('after the long-poll left', POST => '/publish/hostile.gone.x',
                   body => '{}');
    is($res->{status}, 202, 'a publish to the departed long-poll topic: 202');

    for my $i (1 .. 5) {
        my $c = $t->conn;
        $c->send_raw("GET /subscribe/hostile.> HTTP/1.1\r\nHost: x\r\n"
                     . "Accept: text/event-stream\r\n\r\n");
        $c->close;
    }
    ok(Omnibus::Test::wait_until(sub { subscribers() == 0 }, timeout => 10),
       'SSE clients that close at once: subscribers back to 0');

    # one that waits for the head, then goes with messages on the way
    my $c = $t->conn;
    $c->send_raw("GET /subscribe/hostile.> HTTP/1.1\r\nHost: x\r\n"
                 . "Accept: text/event-stream\r\n\r\n");
    ok(Omnibus::Test::wait_until(sub { subscribers() >= 1 }, timeout => 10),
       'an SSE stream registers');
    http('during SSE', POST => '/publish/hostile.sse', body => qq({"i":$_}))
        for 1 .. 3;
    $c->close;
    http('after SSE', POST => '/publish/hostile.sse', body => '{}') for 1 .. 3;
    ok(Omnibus::Test::wait_until(sub { subscribers() == 0 }, timeout => 10),
       'an SSE client gone mid-stream: subscribers back to 0');

    # half a request line, then gone
    $c = $t->conn;
    $c->send_raw("GET /subscribe/hostile.> HTTP/1.1\r\nAccept: text/ev");
    $c->close;
}

###########################################################################
# 8. admin behind deny

for my $path ('/locked/', '/locked/dlq') {
    is(http("locked $path", GET => $path)->{status}, 403,
       "admin $path behind deny: 403");
}
is(http('locked POST', POST => '/locked/shards/0/pause')->{status}, 403,
   'a pause behind deny: 403');
is($t->http(GET => '/omnibus/')->{json}{shards}[0]{paused} ? 1 : 0, 0,
   'and the shard is not paused');

###########################################################################
# 9. no 500, the counters add up, a clean log

my @five = grep { $_->[1] eq '500' } @seen;
ok(!@five, 'no answer was a 500')
    or diag(join("\n", map { "$_->[0]: 500" } @five));

my ($left, $right);
Omnibus::Test::wait_until(sub {
    ($left, $right) = $t->invariant;
    defined $left && defined $right && $left == $right;
}, timeout => 30);
my (undef, undef, $parts) = $t->invariant;
is($right, $left,
   'published + dlq_replayed = completed + queued + inflight + unrouted')
    or diag(join(', ', map { "$_=" . ($parts->{$_} // 'missing') }
                       sort keys %$parts));

is_deeply([$t->worker_pids], \@workers,
          'the workers of the start are still the ones alive (no crash)');

# the variables of refused publishes are logged as unknown, not as
# pointers to nothing (a sanitizer build checks the latter)
{
    my $r = $t->http(DELETE => '/publish/hostile.logged');
    is($r->{status}, 405, 'a refused publish, logged');
    ok(Omnibus::Test::wait_until(sub {
           open my $fh, '<', $t->dir . '/omnibus.log' or return 0;
           grep { /^405 hostile\.logged - -$|^405 - - -$/ } <$fh>;
       }), 'its variables logged as known or "-"');
}

$t->check_log;

open my $fh, '<', $t->dir . '/access.log' or die "access.log: $!";
my @log = <$fh>;
close $fh;
ok(@log > 100, 'access.log has the requests (' . scalar(@log) . ')');
my @log500 = grep { /" 500 \d+ "/ } @log;
ok(!@log500, 'access.log has no 500') or diag(join('', @log500));

done_testing();
