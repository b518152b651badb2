package Omnibus::Cluster;

# The production picture on 127.0.0.1, for t/90-cluster.t and make bench:
# one redis-server (AOF), one PostgreSQL (initdb into a temp dir), the
# mock Kafka cluster (3 brokers), a webhook receiver, omnibus pods (nginx
# with the module, each its own prefix, node name and port) sharing them,
# and a front nginx without the module whose upstream is the live pods,
# as an ingress or a Service would be. Every pod has zone "bus": a
# mode=sync store, Redis with dedup, rate limits and fan-out, and two
# routes for orders.>: a webhook and a Kafka topic.
#
#   my $c = Omnibus::Cluster->new(pods => 3);   # pod-a, pod-b, pod-c
#   $c->kill_pod('pod-a');          # kill -9, master and workers
#   $c->add_pod('pod-d');           # a replacement, then into the front
#   $c->quit_pod('pod-b');          # out of the front, then nginx -s quit
#   $c->front_pods('pod-c');        # only these in the front (bench/cluster.pl)
#
# Pods killed here are expected to be: their harness allows the signal 9
# of a worker, and nobody else kills one.

use strict;
use warnings;

use Omnibus::Test;
use Omnibus::Receiver;
use Omnibus::Pg;
use Omnibus::Redis;
use Omnibus::Kafka;
use POSIX ();
use Time::HiRes qw(sleep time);

our $TOPIC = 'cluster-orders';

# a process of its own (a producer, subscribers) that leaves without
# running anyone's destructors: they would stop the servers started here
sub child {
    my ($code) = @_;
    my $pid = fork // die "fork: $!\n";
    return $pid if $pid;
    Omnibus::Test::close_inherited_ports();
    eval { $code->(); 1 } or print STDERR "child: $@";
    POSIX::_exit(0);
}

# skips the file without PostgreSQL, redis-server or the Kafka tools
sub require_tools {
    Omnibus::Pg::require_tools();
    Omnibus::Redis::require_tools();
    Omnibus::Kafka::require_tools();
}

# pods => N (named pod-a, pod-b, ...), rate => the per-tenant limit,
# workers => per pod, store/redis => more parameters of either;
# receiver => PORT: the webhook goes to a receiver the caller runs there
# (its /hook answers 2xx) instead of an Omnibus::Receiver, which logs
# every request in Perl and cannot keep up with a benchmark (rx and hooked
# are then not available); access_log => 0: the pods and the front log no
# request (the harness logs each one, unbuffered)
sub new {
    my ($class, %o) = @_;
    my $self = bless { pods => {}, order => [], rate => $o{rate} // '30r/m',
                       workers => $o{workers} // 2,
                       store => $o{store} // '', redis => $o{redis} // '',
                       retries => $o{retries} // 100,
                       rx_port => $o{receiver},
                       access_log => $o{access_log} // 1 }, $class;

    $self->{pg} = Omnibus::Pg->new;
    $self->{pw} = $self->{pg}->password_file;
    $self->{redis_server} = Omnibus::Redis->new(aof => 1);
    $self->{kafka} = Omnibus::Kafka->new(brokers => 3,
                                         topics => ["$TOPIC:3"]);

    # the front's harness holds two ports: its own, and the receiver's
    $self->{front} = Omnibus::Test->new(module => 0, ports => 2,
                                        workers => $o{front_workers} // 2);
    $self->{rx} = Omnibus::Receiver->new(t => $self->{front}, index => 1)
        unless $self->{rx_port};

    my $n = $o{pods} // 3;
    $self->add_pod('pod-' . chr(ord('a') + $_), front => 0) for 0 .. $n - 1;
    $self->front_conf;
    $self->{front}->start;
    return $self;
}

sub pg     { $_[0]{pg} }
sub redis  { $_[0]{redis_server} }
sub kafka  { $_[0]{kafka} }
sub rx     { $_[0]{rx} }
sub front  { $_[0]{front} }
sub port   { $_[0]{front}->port(0) }
sub rx_port { $_[0]{rx_port} // $_[0]{rx}->port }

# the live pods' names in the order they came, and one by name
sub pods { my ($s) = @_; grep { $s->{pods}{$_}{live} } @{$s->{order}} }
sub all_pods { @{$_[0]{order}} }
sub pod  { $_[0]{pods}{$_[1]} }
sub t    { $_[0]{pods}{$_[1]}{t} }

# a pod's name from the address the front says answered ("127.0.0.1:N")
sub pod_at {
    my ($self, $addr) = @_;
    my ($port) = ($addr // '') =~ /:(\d+)\s*$/ or return undef;
    for my $name (@{$self->{order}}) {
        return $name if $self->{pods}{$name}{t}->port(0) == $port;
    }
    return undef;
}

sub add_pod {
    my ($self, $node, %o) = @_;
    my $t = Omnibus::Test->new(ports => 1, workers => $self->{workers},
                               allow => [qr/exited on signal 9/]);
    my $pg = $self->{pg};
    my $url = 'postgresql://omnibus@127.0.0.1:' . $pg->port . '/omnibus';
    my $redis = $self->{redis_server}->url;
    my $boot = $self->{kafka}->bootstrap;
    my $rx = $self->rx_port;
    my $r = $self->{retries};
    my $log = $self->{access_log} ? '' : "\n        access_log off;";

    # adopt_after=3s: a silent pod's rows are taken within seconds (each
    # live pod's worker 0 looks every 5 s); short breakers, as a test needs
    $t->conf(<<"EOF");
    omnibus_node $node;
    omnibus_zone zone=bus:64m shards=4;
    omnibus_store bus $url password_file=$self->{pw} mode=sync
                  adopt_after=3s breaker=5:1s:1 $self->{store};
    omnibus_redis bus $redis lock=2s breaker=3:1s:1 $self->{redis};
    omnibus_route bus orders.> http://127.0.0.1:$rx/hook name=hook
                  timeout=5s retries=$r backoff=100ms max_backoff=1s
                  breaker=1000:1s:1;
    omnibus_route bus orders.> "kafka://$boot/$TOPIC" name=kafka
                  timeout=2s retries=$r backoff=100ms max_backoff=1s
                  breaker=1000:1s:1;

    server {
        listen 127.0.0.1:%%PORT0%%;$log
        location /publish/ {
            omnibus_publish bus;
            omnibus_rate_limit \$http_x_tenant rate=$self->{rate};
        }
        location /subscribe/ {
            omnibus_subscribe bus;
            add_header X-Worker \$pid always;
        }
        location /omnibus/ { omnibus_admin bus; }
        location = /readyz { omnibus_health bus ready; }
        location = /metrics { omnibus_metrics; }
    }
EOF
    $t->start;
    Omnibus::Test::wait_until(
        sub { $t->http(GET => '/readyz')->{status} == 200 }, timeout => 30)
        or die "pod $node is not ready\n";

    $self->{pods}{$node} = { t => $t, node => $node, live => 1 };
    push @{$self->{order}}, $node;
    $self->front_conf(reload => 1) if $o{front} // 1;
    return $t;
}

# the front's upstream: the live pods, as a Service's endpoints (pods =>
# [names]: only those)
sub front_conf {
    my ($self, %o) = @_;
    my $servers = join '', map {
        "        server 127.0.0.1:" . $self->t($_)->port(0)
        . " max_fails=1 fail_timeout=1s;\n"
    } $o{pods} ? @{$o{pods}} : $self->pods;
    my $log = $self->{access_log} ? '' : "\n        access_log off;";
    $self->{front}->conf(<<"EOF");
    upstream pods {
$servers        keepalive 32;
    }

    server {
        listen 127.0.0.1:%%PORT0%%;$log
        location / {
            proxy_pass http://pods;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            # a publish whose client gave up still gets its answer from
            # the pod: its commit confirms its idempotency key at once
            proxy_ignore_client_abort on;
            proxy_read_timeout 60s;
            add_header X-Pod \$upstream_addr always;
        }
    }
EOF
    $self->{front}->reload if $o{reload};
}

# only these pods in the front's upstream (reloaded); the others keep
# running, out of it, until front_conf or the next add_pod/quit_pod
sub front_pods {
    my ($self, @names) = @_;
    $self->front_conf(pods => \@names, reload => 1);
}

# a pod that died: master and workers at once; the front keeps it in its
# upstream until told (its errors make it try the next pod)
sub kill_pod {
    my ($self, $node) = @_;
    my $t = $self->t($node);
    my @pids = ($t->master_pid, $t->worker_pids);
    kill 'KILL', @pids;
    Omnibus::Test::wait_until(
        sub { !grep { Omnibus::Test::alive($_) } @pids }, timeout => 20)
        or die "pod $node did not die\n";
    $t->{running} = 0;
    $self->{pods}{$node}{live} = 0;
    $self->{pods}{$node}{gone} = time;
}

# scaled down: out of the front first, then nginx -s quit (waits for it)
sub quit_pod {
    my ($self, $node) = @_;
    $self->{pods}{$node}{live} = 0;
    $self->front_conf(reload => 1);
    $self->t($node)->stop;
    $self->{pods}{$node}{gone} = time;
}

sub restart_pg {
    my ($self, $down) = @_;
    $self->{pg}->stop;
    sleep $down // 1;
    $self->{pg}->start;
}

# a message_bus_<family> sample of a pod, summed over the label sets
# that match $labels (a regex on the labels after zone="bus")
sub metric {
    my ($self, $node, $family, $labels) = @_;
    my $r = $self->t($node)->http(GET => '/metrics') or return undef;
    $labels //= '';
    my ($n, $found) = (0, 0);
    while ($r->{body} =~ /^message_bus_\Q$family\E\{zone="bus"([^}]*)\}
                          \ (\d+)$/mgx)
    {
        my ($l, $v) = ($1, $2);
        next if length $labels && $l !~ /$labels/;   # (// is the last one)
        $n += $v;
        $found = 1;
    }
    return $found ? $n : undef;
}

# nothing queued or in flight on any live pod
sub settled {
    my ($self) = @_;
    for my $node ($self->pods) {
        my $s = $self->t($node)->http(GET => '/omnibus/');
        my $j = $s && $s->{json} or return 0;
        for (@{$j->{shards}}) {
            return 0 if $_->{queued} + $_->{inflight} > 0;
        }
    }
    return 1;
}

# rows of the store not yet done with (any node)
sub open_rows {
    my ($self) = @_;
    return $self->{pg}->psql('SELECT count(*) FROM omnibus_messages m '
        . 'WHERE NOT EXISTS (SELECT 1 FROM omnibus_done d '
        . 'WHERE d.node = m.node AND d.id = m.id AND d.slot = m.slot)');
}

# the key ("k") of every webhook delivery answered 200: { key => [ids] }
sub hooked {
    my ($self) = @_;
    my %k;
    for my $r ($self->{rx}->requests_for('/hook')) {
        next unless $r->{status} == 200;
        my $b = eval { JSON::PP::decode_json($r->{body}) } or next;
        push @{$k{$b->{k}}}, $r->{headers}{'x-omnibus-id'};
    }
    return \%k;
}

# the same for the Kafka topic, read back with kcat
sub kafka_keys {
    my ($self) = @_;
    my %k;
    for my $r ($self->{kafka}->records($TOPIC)) {
        my $b = eval { JSON::PP::decode_json($r->{value}) } or next;
        push @{$k{$b->{k}}}, $r->{headers}{id};
    }
    return \%k;
}

# every pod's harness, the front's last: nginx stopped, error.log checked
sub finish {
    my ($self, %o) = @_;
    $self->t($_)->check_log(%o) for @{$self->{order}};
    $self->{front}->check_log;
    $self->{rx}->stop if $self->{rx};
    $self->{kafka}->stop;
}

1;
