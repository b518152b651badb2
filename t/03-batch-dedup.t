# NDJSON batches and idempotency: key, content and off modes, the TTL,
# and duplicates recognised whichever worker answers.

use strict;
use warnings;

use Test::More;
use lib 't/lib';
use Omnibus::Test;

my $t = Omnibus::Test->new;

$t->conf(<<'EOF')->start;
    omnibus_zone zone=bus:16m shards=4 min_shards=2 dedup_ttl=1h retain=10;
    omnibus_zone zone=ttl:256k shards=1 min_shards=1 max_shards=1
                 dedup_ttl=2s retain=10;

    server {
        listen 127.0.0.1:%%PORT0%% reuseport;
        add_header X-Worker $pid always;

        location /publish/ { omnibus_publish bus; }
        location /content/ { omnibus_publish bus; omnibus_dedup content; }
        location /nodedup/ { omnibus_publish bus; omnibus_dedup off; }
        location /ttl/ { omnibus_publish ttl; }
        location /omnibus/ { omnibus_admin bus; }
        location = /metrics { omnibus_metrics; }
    }
EOF

my $ndjson = { 'Content-Type' => 'application/x-ndjson' };

sub queued {
    my $n = 0;
    $n += $_->{queued} for @{$t->http(GET => '/omnibus/')->{json}{shards}};
    return $n;
}

sub pause_all {
    $t->http(POST => "/omnibus/shards/$_/" . $_[0]) for 0 .. 3;
}

# batches

pause_all('pause');

my $r = $t->http(POST => '/publish/batch.t', headers => $ndjson,
                 body => qq({"n":1}\n{bad\n\n[1,2]\r\n"last"));
is($r->{status}, 200, 'a batch answers 200');
my @res = @{$r->{json}{results}};
is(scalar @res, 4, 'one result per non-empty line');
is_deeply([map { $_->{line} } @res], [1, 2, 4, 5], 'line numbers');
is_deeply([map { $_->{status} } @res], [202, 400, 202, 202], 'statuses');
is($res[1]{error}, 'invalid_json', 'the bad line says why');
is($res[0]{topic}, 'batch.t', 'topic in each result');
like($res[$_]{id}, qr/^[0-9a-f]{20}-/, "line $res[$_]{line} has an id")
    for 0, 2, 3;
is(queued(), 3, 'three queued');

$r = $t->http(POST => '/publish/batch.t', headers => $ndjson,
              body => "\n\r\n\n");
is($r->{status}, 400, 'an empty batch is refused');
is($r->{json}{error}, 'empty_message', 'empty_message');

# a keyed batch: each line its own key, the whole batch idempotent

my $key = { %$ndjson, 'Idempotency-Key' => 'batch-1' };
my $first = $t->http(POST => '/publish/batch.k', headers => $key,
                     body => qq({"a":1}\n{"a":2}\n))->{json}{results};
my $again = $t->http(POST => '/publish/batch.k', headers => $key,
                     body => qq({"a":1}\n{"a":2}\n))->{json}{results};
is_deeply([map { $_->{status} } @$again], [200, 200], 'resent: duplicates');
is_deeply([map { $_->{id} } @$again], [map { $_->{id} } @$first],
          'with the first ids');
ok($again->[0]{duplicate} && $again->[1]{duplicate}, 'marked duplicate');
is(queued(), 5, 'queued once');

# key mode

my $k1 = $t->http(POST => '/publish/d.k', body => '{}',
                  headers => { 'Idempotency-Key' => 'order-42' });
is($k1->{status}, 202, 'first with a key: 202');

my %workers;
for (1 .. 30) {
    my $d = $t->http(POST => '/publish/d.k', body => '{"other":"body"}',
                     headers => { 'Idempotency-Key' => 'order-42' });
    is($d->{status}, 200, 'same key: 200') if $_ == 1;
    is($d->{json}{id}, $k1->{json}{id}, 'same key: first id') if $_ == 1;
    $workers{$d->{headers}{'x-worker'}}++
        if $d->{status} == 200 && $d->{json}{duplicate}
           && $d->{json}{id} eq $k1->{json}{id};
}
is(scalar keys %workers, 2, 'recognised by both workers');
is((sum(values %workers)), 30, 'all 30 duplicates');

is($t->http(POST => '/publish/d.k', body => '{}',
            headers => { 'Idempotency-Key' => 'order-43' })->{status},
   202, 'another key: 202');
is($t->http(POST => '/publish/d.k', body => '{}')->{status}, 202,
   'no key, no dedup');
is($t->http(POST => '/publish/d.k', body => '{}')->{status}, 202,
   'no key, no dedup again');
is(queued(), 9, 'queued: 5 + 1 + 1 + 2');

# content mode

is($t->http(POST => '/content/c.t', body => '{"x":1}')->{status}, 202,
   'content: first');
$r = $t->http(POST => '/content/c.t', body => '{"x":1}');
is($r->{status}, 200, 'content: same topic and body is a duplicate');
is($t->http(POST => '/content/c.u', body => '{"x":1}')->{status}, 202,
   'content: same body on another topic is not');
is($t->http(POST => '/content/c.t', body => '{"x":2}')->{status}, 202,
   'content: another body is not');

# off

my $o1 = $t->http(POST => '/nodedup/o.t', body => '{}',
                  headers => { 'Idempotency-Key' => 'k' });
my $o2 = $t->http(POST => '/nodedup/o.t', body => '{}',
                  headers => { 'Idempotency-Key' => 'k' });
is_deeply([$o1->{status}, $o2->{status}], [202, 202], 'off: both queued');
isnt($o1->{json}{id}, $o2->{json}{id}, 'off: two ids');

# the TTL (2 s, in a zone of its own: with whole-second expiry a key may
# live only 1 s, too short for the 30 duplicates above on a slow machine)

my $e1 = $t->http(POST => '/ttl/ttl.t', body => '{}',
                  headers => { 'Idempotency-Key' => 'short-lived' });
my $e2 = $t->http(POST => '/ttl/ttl.t', body => '{}',
                  headers => { 'Idempotency-Key' => 'short-lived' });
is($e2->{status}, 200, 'within the TTL: duplicate');

my ($e3, $polled) = (undef, 0);
ok(Omnibus::Test::wait_until(sub {
       $e3 = $t->http(POST => '/ttl/ttl.t', body => '{}',
                      headers => { 'Idempotency-Key' => 'short-lived' });
       $polled++ if $e3->{status} == 200;
       $e3->{status} == 202;
   }, timeout => 15, interval => 0.2), 'after the TTL: queued again');
isnt($e3->{json}{id}, $e1->{json}{id}, 'under a new id');

my $metrics = $t->http(GET => '/metrics')->{body};
my ($dups) =
    $metrics =~ /^message_bus_deduplicated_total\{zone="bus"\} (\d+)$/m;
is($dups, 2 + 30 + 1, "deduplicated_total counts them");
my ($ttl_dups) =
    $metrics =~ /^message_bus_deduplicated_total\{zone="ttl"\} (\d+)$/m;
is($ttl_dups, 1 + $polled, "and those of the TTL zone");

pause_all('resume');

$t->finish;

sub sum { my $s = 0; $s += $_ for @_; $s }
