# Workers of an older configuration keep serving while a newer one
# changes the ring: a worker draining after a reload to a lower
# max_shards must follow a ring that a later reload grew past it.

use strict;
use warnings;

use Test::More;
use lib 't/lib';
use Omnibus::Test;

my $t = Omnibus::Test->new;

sub conf {
    my ($shards) = @_;
    return <<"EOF";
    omnibus_zone zone=bus:16m $shards;

    server {
        listen 127.0.0.1:%%PORT0%%;
        client_body_timeout 60s;
        location /publish/ { omnibus_publish bus; }
        location /omnibus/ { omnibus_admin bus; }
    }
EOF
}

sub nshards { scalar @{$t->http(GET => '/omnibus/')->{json}{shards}} }

sub reload_async {
    my %old = map { $_ => 1 } $t->worker_pids;
    kill 'HUP', $t->master_pid;
    return Omnibus::Test::wait_until(sub {
        (grep { !$old{$_} } $t->worker_pids) == 2
    }, timeout => 20);
}

$t->conf(conf('shards=4 min_shards=1 max_shards=16'))->start;
is(nshards(), 4, '4 shards, room for 16');

$t->conf(conf('shards=4 min_shards=1 max_shards=4'));
$t->reload;
is(nshards(), 4, 'a reload to max_shards=4 keeps the zone');

# a publish held open in a max_shards=4 worker, past the next reload

my $body = '{"held":true}';
my $held = Omnibus::Test::Conn->new($t);
ok($held->send_raw("POST /publish/held.topic HTTP/1.1\r\nHost: x\r\n"
                   . "Connection: close\r\n"
                   . "Content-Length: " . length($body) . "\r\n\r\n"
                   . substr($body, 0, 5)), 'publish started');

$t->conf(conf('shards=8 min_shards=8 max_shards=16'));
ok(reload_async(), 'reloaded to 8 shards while it is held');
is(nshards(), 8, '8 shards now');

ok($held->send_raw(substr($body, 5)), 'the rest of the body');
my $r = $held->read_response;
is($r && $r->{status}, 202, 'the old worker accepts it');
cmp_ok($r->{json}{shard} // 99, '<', 8, 'on the ring of 8 shards');

ok(Omnibus::Test::wait_until(sub {
       my $s = $t->http(GET => '/omnibus/')->{json};
       my $q = 0;
       $q += $_->{queued} + $_->{inflight} for @{$s->{shards}};
       $q == 0 && $s->{published} >= 1;
   }, timeout => 20), 'and it is dispatched');

$t->finish;
