# Debug tracing: with error_log at debug (Debian's nginx is built
# --with-debug), a message is followed from publish through dispatch,
# the job and its attempt to the verdict, and to a subscriber's fan-out.

use strict;
use warnings;

use Test::More;
use lib 't/lib';
use Omnibus::Test;
use Omnibus::Receiver;
use Omnibus::Sse;

my $t = Omnibus::Test->new(ports => 2);

plan skip_all => 'nginx built without --with-debug'
    unless `$Omnibus::Test::NGINX -V 2>&1` =~ /--with-debug/;

my $rx = Omnibus::Receiver->new(t => $t, index => 1);

$t->conf(<<'EOF', main => 'error_log %%DIR%%/debug.log debug;')->start;
    omnibus_zone zone=bus:8m shards=2 min_shards=1;
    omnibus_route bus traced.> http://127.0.0.1:%%PORT1%%/hook;

    server {
        listen 127.0.0.1:%%PORT0%%;
        location /publish/ { omnibus_publish bus; }
        location /subscribe/ { omnibus_subscribe bus; }
    }
EOF

my $sse = Omnibus::Sse->new($t->port(0), '/subscribe/traced.>');
ok(Omnibus::Test::wait_until(sub { $sse->read_once; $sse->{head} }),
   'subscribed');

my $r = $t->http(POST => '/publish/traced.one', body => '{"n":1}');
is($r->{status}, 202, 'published');
my $id = $r->{json}{id};

ok(Omnibus::Test::wait_until(sub { $rx->requests_for('/hook') == 1 }),
   'delivered');

sub debug_log {
    open my $fh, '<', $t->dir . '/debug.log' or return '';
    local $/;
    return <$fh>;
}

my @trace = (
    [ qr/omnibus publish: "traced\.one" shard \d+, 7 bytes, result 0/,
      'the publish' ],
    [ qr/omnibus dispatch: zone "bus" shard \d+, 1 taken, 1 to routes/,
      'the dispatch batch' ],
    [ qr/omnibus job start: \Q$id\E to route/, 'the job' ],
    [ qr/omnibus attempt 1 of \Q$id\E to http/, 'the attempt' ],
    [ qr/omnibus attempt 1 of \Q$id\E done: 0 HTTP 200/, 'the verdict' ],
    [ qr/omnibus subscribe: "traced\.>" sse/, 'the subscription' ],
    [ qr/omnibus fan-out: 1 message\(s\) to 1 subscriber\(s\)/,
      'the fan-out' ],
);

for my $line (@trace) {
    ok(Omnibus::Test::wait_until(sub { debug_log() =~ $line->[0] }),
       "traced: $line->[1]");
}

unlike($t->error_log, qr/\[debug\]/, 'error.log itself stays at info');

$t->finish;
