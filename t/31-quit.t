# Graceful quit: deliveries in flight finish, nginx exits promptly, and
# what was still queued is reported with its count.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);
use lib 't/lib';
use Omnibus::Test;

# the receiver: a second nginx that answers once a second, in turn

my $rx = Omnibus::Test->new(module => 0, workers => 1, ports => 1);

$rx->conf(<<'EOF')->start;
    limit_req_zone $uri zone=slow:1m rate=60r/m;
    log_format hook '$http_x_omnibus_id';

    server {
        listen 127.0.0.1:%%PORT0%%;
        access_log %%DIR%%/hook.log hook;

        # limit_req runs before the content phase, unlike a bare return
        location /hook {
            limit_req zone=slow burst=100;
            proxy_pass http://127.0.0.1:%%PORT0%%/ok;
        }

        location /ok {
            access_log off;
            return 200;
        }
    }
EOF

my $t = Omnibus::Test->new(ports => 1);

$t->conf(<<"EOF")->start;
    omnibus_zone zone=bus:16m shards=2 min_shards=2 retain=10;
    omnibus_route bus slow.> http://127.0.0.1:@{[ $rx->port(0) ]}/hook
                  concurrency=8 timeout=10s;

    server {
        listen 127.0.0.1:%%PORT0%%;
        location /publish/ { omnibus_publish bus; }
        location /omnibus/ { omnibus_admin bus; }
    }
EOF

sub received {
    open my $fh, '<', $rx->dir . '/hook.log' or return ();
    chomp(my @ids = <$fh>);
    return @ids;
}

# three messages held in a paused shard, six going to the receiver

my $paused = $t->http(POST => '/publish/held.x', body => '{}')->{json}{shard};
$t->http(POST => "/omnibus/shards/$paused/pause");
$t->http(POST => '/publish/held.x', body => '{}') for 1 .. 2;

# on the other shard: the paused one would hold them too
my @ids;
for my $n (1 .. 100) {
    my $p = $t->http(POST => "/publish/slow.t$n", body => qq({"n":$n}));
    push @ids, $p->{json}{id} if $p->{json}{shard} != $paused;
    last if @ids == 6;
}

# those published to the paused shard stay queued with the held ones: at
# the exit only the paused shard has any left, once the other one has
# handed all of its six to deliveries (a slow machine may still be
# dispatching them here)
my ($queued, $inflight);
ok(Omnibus::Test::wait_until(sub {
       my $s = $t->http(GET => '/omnibus/')->{json};
       my $left = 0;
       $inflight = 0;
       for my $sh (@{$s->{shards}}) {
           $inflight += $sh->{inflight};
           if ($sh->{index} == $paused) {
               $queued = $sh->{queued};
           } else {
               $left += $sh->{queued};
           }
       }
       $left == 0 && $inflight >= 4;
   }, timeout => 20), 'deliveries in flight');

my $start = time;
$t->stop;
my $took = time - $start;

diag(sprintf 'quit with %d deliveries in flight took %.2f s', $inflight,
     $took);

is_deeply([sort(received())], [sort @ids],
          'the deliveries in flight were finished before the exit');

like($t->error_log,
     qr/omnibus zone "bus" ends with $queued message\(s\) queued, 0 in flight/,
     "the queued remainder ($queued) is reported with its count");

$rx->check_log;
$t->finish;
