package Omnibus::Store;

# What the store tests share: one PostgreSQL per test file, a database per
# scenario (the rotation, and adoption, are global to a database), and an
# nginx whose zone "bus" is stored there, with a webhook receiver.

use strict;
use warnings;

use Exporter 'import';
use Omnibus::Test;
use Omnibus::Receiver;
use Omnibus::Pg;

our @EXPORT = qw(store_pg db_url sql ids_in missing delivered deliveries
                 bus ready settled publish shards crash wait_until);

my ($PG, $PW);

# the file's server, started once; skips the file without PostgreSQL
sub store_pg {
    Omnibus::Pg::require_tools();
    $PG = Omnibus::Pg->new;
    $PW = $PG->password_file;
    return $PG;
}

sub wait_until { Omnibus::Test::wait_until(@_) }

# created by the first harness that names it
sub db_url {
    my ($db) = @_;
    $PG->psql("CREATE DATABASE $db OWNER omnibus", db => 'postgres')
        unless $PG->psql("SELECT 1 FROM pg_database WHERE datname = '$db'",
                         db => 'postgres');
    return 'postgresql://omnibus@127.0.0.1:' . $PG->port . "/$db";
}

sub sql { my ($db, $q) = @_; return $PG->psql($q, db => $db) }

sub ids_in {
    my ($db, $table, $node) = @_;
    return map { $_->[0] => 1 } sql($db, "SELECT id FROM $table "
                                         . "WHERE node = '$node'");
}

sub missing { my ($have, @ids) = @_; return grep { !$have->{$_} } @ids }

# ids the receiver answered 200, under a path prefix
sub delivered {
    my ($rx, $prefix) = @_;
    return map { $_->{headers}{'x-omnibus-id'} => 1 }
           grep { $_->{status} == 200 } $rx->requests_for($prefix // '/');
}

# how many times each id was answered 200, over several receivers
sub deliveries {
    my (@rx) = @_;
    my %n;
    $n{$_->{headers}{'x-omnibus-id'}}++
        for grep { $_->{status} == 200 } map { $_->requests } @rx;
    return \%n;
}

# nginx on port 0, its webhook receiver on port 1; zone "bus" stored in
# database $o{db} as node $o{node} with the parameters $o{store}, the
# password file the server's unless $o{pw}->($t) names another; $o{extra}
# is more http-level configuration (e.g. omnibus_redis)
sub bus {
    my (%o) = @_;
    my $t = Omnibus::Test->new(ports => 2, allow => $o{allow} || []);
    my $rx = Omnibus::Receiver->new(t => $t, index => 1);
    my $url = db_url($o{db});
    my $file = $o{pw} ? $o{pw}->($t) : $PW;
    my $extra = $o{extra} // '';
    $t->conf(<<"EOF");
    omnibus_node $o{node};
    omnibus_zone zone=bus:32m shards=4;
    omnibus_store bus $url password_file=$file $o{store};
    $extra
    omnibus_route bus jobs.> http://127.0.0.1:%%PORT1%%/hook timeout=10s
                  retries=100 backoff=100ms max_backoff=1s breaker=1000:1s:1;
    omnibus_route bus bad.> http://127.0.0.1:%%PORT1%%/bad retries=0 name=bad;

    server {
        listen 127.0.0.1:%%PORT0%%;
        location /publish/ { omnibus_publish bus; }
        location /omnibus/ { omnibus_admin bus; }
        location = /readyz { omnibus_health bus ready; }
        location = /metrics { omnibus_metrics; }
    }
EOF
    $t->start unless $o{no_start};
    return ($t, $rx);
}

sub ready {
    my ($t) = @_;
    return wait_until(sub { $t->http(GET => '/readyz')->{status} == 200 },
                      timeout => 30);
}

sub settled {
    my ($t) = @_;
    my $s = $t->http(GET => '/omnibus/')->{json} or return 0;
    my $n = 0;
    $n += $_->{queued} + $_->{inflight} for @{$s->{shards}};
    return $n == 0;
}

sub publish {
    my ($t, $topic, $body) = @_;
    return $t->http(POST => "/publish/$topic", body => $body // '{}');
}

# every shard the zone has, paused or resumed; true if each answered so
sub shards {
    my ($t, $verb) = @_;
    my $n = scalar @{$t->http(GET => '/omnibus/')->{json}{shards}};
    my $ok = $n > 0;
    for my $i (0 .. $n - 1) {
        my $r = $t->http(POST => "/omnibus/shards/$i/$verb");
        $ok &&= $r && $r->{status} == 200
                && !!$r->{json}{paused} == ($verb eq 'pause');
    }
    return $ok;
}

# a pod that died: master and workers at once, nobody to write anything
sub crash {
    my ($t) = @_;
    my @pids = ($t->master_pid, $t->worker_pids);
    kill 'KILL', @pids;
    return wait_until(sub { !grep { Omnibus::Test::alive($_) } @pids },
                      timeout => 20);
}

1;
