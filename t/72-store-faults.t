# omnibus_store after its review: each scenario is a fault the review found,
# shown fixed. An sslmode that may reconnect on another socket (prefer,
# allow) is refused by nginx -t; a duplicate of a publish whose row is not
# committed yet answers 503, not a 200 for an id that may still be lost; an
# extra connection refused by the server (too many connections) does not
# take a pool that works down; after an outage longer than adopt_after
# nobody adopts a node that is alive; and after a reload, readiness and
# backend_up follow PostgreSQL again (the old workers left no "up" behind).
#
# Each scenario has its own database (and node names), as in 70 and 71: a
# message left unfinished by one would hold the next one's rotation, and a
# silent node would be adopted. The ones that stop PostgreSQL come last.

use strict;
use warnings;

use Test::More;
use IO::Select;
use POSIX ();
use Time::HiRes qw(sleep);
use lib 't/lib';
use Omnibus::Test;
use Omnibus::Receiver;
use Omnibus::Pg;
use Omnibus::Store;

my $pg = store_pg();
my $pw = $pg->password_file;

sub in_list { return join ',', map { "'$_'" } @_ }

# a sample of the store's backend from /metrics (backend_up or
# backend_breaker_state), or -1 if none
sub backend {
    my ($t, $name) = @_;
    my $r = $t->http(GET => '/metrics') or return -1;
    my ($v) = $r->{body} =~ /^message_bus_\Q$name\E\{zone="bus",
                              backend="postgresql"\}\ (\d+)$/mx;
    return $v // -1;
}

sub store_status { return $_[0]->http(GET => '/omnibus/')->{json}{store} }

# omnibus_generation locked for $secs s by a psql session of its own in a
# child, returned once granted: every insert reads that table, so commits
# wait for it (t/71 holds an async store's rows in memory so)
sub hold_generation {
    my ($db, $secs) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        eval { sql($db, "SET application_name = 'omnibus-lock'; BEGIN; "
                        . 'LOCK TABLE omnibus_generation IN ACCESS '
                        . "EXCLUSIVE MODE; SELECT pg_sleep($secs); COMMIT") };
        POSIX::_exit(0);
    }
    my $lock = "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a "
               . "USING (pid) WHERE a.application_name = 'omnibus-lock' "
               . "AND l.granted AND l.relation = "
               . "'omnibus_generation'::regclass";
    wait_until(sub { sql($db, $lock) }, timeout => 20)
        or die "omnibus_generation not locked\n";
    return $pid;
}

# a publish to send on a connection of its own, its answer read later
sub post_raw {
    my ($topic, $headers) = @_;
    return "POST /publish/$topic HTTP/1.1\r\nHost: localhost\r\n"
           . "Connection: close\r\n" . ($headers // '')
           . "Content-Length: 2\r\n\r\n{}";
}

# 1. sslmode: prefer and allow may reconnect on another socket, refused

{
    my $c = Omnibus::Test->new(ports => 1);
    my $url = 'postgresql://omnibus@127.0.0.1:' . $pg->port . '/omnibus';
    my $conf = sub { <<"EOF" };
    omnibus_zone zone=bus:8m;
    omnibus_store bus $url?sslmode=$_[0] password_file=$pw;
    server { listen 127.0.0.1:%%PORT0%%;
             location /publish/ { omnibus_publish bus; } }
EOF
    for my $mode (qw(prefer allow)) {
        $c->conf($conf->($mode));
        my ($ok, $out) = $c->test_conf;
        ok(!$ok, "sslmode=$mode: nginx -t fails");
        like($out, qr/\[emerg\].*(?:omnibus_store:|"omnibus_store" directive)/,
             "sslmode=$mode: the message names the directive");
        like($out, qr/\[emerg\].*sslmode/, "sslmode=$mode: and sslmode");
    }

    # nginx -t only reads the URL: no TLS server is needed for this
    $c->conf($conf->('require'));
    my ($ok, $out) = $c->test_conf;
    ok($ok, 'sslmode=require passes nginx -t') or diag($out);
}

# 2. a duplicate key while the first publish's row is not committed yet

{
    my ($t, $rx) = bus(db => 'f2', node => 'pod-f2', store => 'mode=sync');
    ok(ready($t), 'key: ready');

    # 3 s: longer than publish 2 takes, shorter than timeout=5s, so that
    # publish 1 commits once the lock goes rather than timing out
    my $locker = hold_generation('f2', 3);
    my $key = "Idempotency-Key: k1\r\n";

    my $c1 = $t->conn;
    ok($c1 && $c1->send_raw(post_raw('jobs.key', $key)),
       'key: publish 1 sent');
    # its row taken, not committed: the lock holds the commit
    ok(wait_until(sub { $t->metric('store_backlog') >= 1 }, timeout => 10),
       'key: publish 1 waits for its commit');

    my $r2 = $t->http(POST => '/publish/jobs.key', body => '{}',
                      headers => { 'Idempotency-Key' => 'k1' });
    my $pending = !IO::Select->new($c1->sock)->can_read(0);
    ok($pending, 'key: publish 1 still unanswered when publish 2 is');
    # a 200 with publish 1's id would be a lie if its commit fails: the
    # producer must retry instead
    is($r2 && $r2->{status}, 503, 'key: publish 2 answered 503')
        or diag($r2 && $r2->{body});
    is($r2 && $r2->{json} && $r2->{json}{error}, 'duplicate_pending',
       'key: publish 2 duplicate_pending');
    ok($r2 && defined $r2->{headers}{'retry-after'},
       'key: publish 2 with Retry-After');
    ok(!($r2 && $r2->{json} && $r2->{json}{duplicate}),
       'key: publish 2 not a duplicate');

    my $r1 = $c1->read_response;
    $c1->close;
    is($r1 && $r1->{status}, 202, 'key: publish 1 accepted once the lock went')
        or diag($r1 && $r1->{body});
    waitpid $locker, 0;
    my $id = $r1 && $r1->{json} && $r1->{json}{id} // '';

    my $r3 = $t->http(POST => '/publish/jobs.key', body => '{}',
                      headers => { 'Idempotency-Key' => 'k1' });
    is($r3->{status}, 200, 'key: publish 3 answered 200') or diag($r3->{body});
    ok($r3->{json} && $r3->{json}{duplicate}, 'key: publish 3 a duplicate');
    is($r3->{json} && $r3->{json}{id}, $id, "key: of publish 1's id");

    ok(wait_until(sub { +{ delivered($rx) }->{$id} }, timeout => 30),
       'key: publish 1 delivered');
    ok(wait_until(sub { settled($t) }, timeout => 20), 'key: settled');
    is_deeply(deliveries($rx), { $id => 1 }, 'key: delivered once, alone');
    $t->check_log;
}

# 3. an extra connection refused by the server leaves the pool working

{
    # one connection per worker, two extra at most; a breaker that, once
    # open, stays open for the rest of the scenario
    my ($t, $rx) = bus(db => 'f3', node => 'pod-f3',
                       store => 'mode=sync pool=1 overflow=2 '
                                . 'breaker=3:60s:1');
    ok(ready($t), 'extra: ready');

    # each worker's first connection (a worker keeps pool=1), and no
    # other of the role's, such as a backend of the last scenario still
    # going: then the role at its limit refuses any extra one with "too
    # many connections for role", and never a worker's first
    my $conns = "SELECT count(*), count(*) FILTER (WHERE datname = 'f3') "
                . "FROM pg_stat_activity WHERE usename = 'omnibus'";
    ok(wait_until(sub { "@{(sql('f3', $conns))[0]}" eq '2 2' }, timeout => 20),
       'extra: one connection per worker, none else')
        or diag("@{(sql('f3', $conns))[0]} connections (role, database)");
    is(backend($t, 'backend_breaker_state'), 0, 'extra: breaker closed');
    sql('f3', 'ALTER ROLE omnibus CONNECTION LIMIT 2');

    # commits wait for the lock, so the next batches want an extra
    # connection each
    my $locker = hold_generation('f3', 2);

    my @conns;
    for my $n (1 .. 60) {
        my $c = $t->conn;
        push @conns, $c if $c && $c->send_raw(post_raw("jobs.e$n"));
    }
    is(scalar @conns, 60, 'extra: 60 publishes sent at once');

    # the pool as seen while the lock holds the commits, and after
    my @seen;
    my $sample = sub {
        push @seen, join ' ', backend($t, 'backend_up'),
                              backend($t, 'backend_breaker_state'),
                              store_status($t)->{up} ? 'up' : 'down';
    };
    until (waitpid($locker, POSIX::WNOHANG()) == $locker) {
        $sample->();
        sleep 0.2;
    }

    my (%status, @ids);
    for my $c (@conns) {
        my $r = $c->read_response;
        $c->close;
        $status{$r ? $r->{status} : 'none'}++;
        push @ids, $r->{json}{id} if $r && $r->{status} == 202;
    }
    $sample->(), sleep 0.2 for 1 .. 5;
    is_deeply(\%status, { 202 => 60 }, 'extra: every publish accepted')
        or diag(explain \%status);
    is_deeply([grep { $_ ne '1 0 up' } @seen], [],
              'extra: backend_up 1, breaker closed, store up in '
              . @seen . ' samples');
    like($t->error_log, qr/too many connections/,
         'extra: an extra connection was refused (the case under test)');
    sql('f3', 'ALTER ROLE omnibus CONNECTION LIMIT -1');

    is_deeply([missing({ ids_in('f3', 'omnibus_messages', 'pod-f3') }, @ids)],
              [], 'extra: each 202 has its row');
    ok(wait_until(sub { !missing({ delivered($rx) }, @ids) }, timeout => 30),
       'extra: all delivered');
    $t->check_log;
}

# 4. an outage longer than adopt_after: nobody adopts a node alive

{
    # a short breaker: both come back soon after PostgreSQL does
    my $store = 'mode=sync adopt_after=3s breaker=3:1s:1';
    my ($ta, $rxa) = bus(db => 'f4', node => 'pod-a', store => $store);
    my ($tb, $rxb) = bus(db => 'f4', node => 'pod-b', store => $store);
    ok(ready($ta) && ready($tb), 'outage: both nodes ready');
    my $beat = "SELECT count(*) FROM omnibus_nodes WHERE node IN "
               . "('pod-a', 'pod-b')";
    ok(wait_until(sub { sql('f4', $beat) == 2 }, timeout => 20),
       'outage: both nodes beat');

    # paused: the messages stay unfinished, rows an adopter could take
    ok(shards($ta, 'pause') && shards($tb, 'pause'),
       'outage: both nodes\' shards paused');
    my %ids;
    for my $n (['a', $ta], ['b', $tb]) {
        my ($name, $t) = @$n;
        for my $k (1 .. 20) {
            my $r = publish($t, 'jobs.k' . ($k % 7), qq({"n":$k}));
            push @{$ids{$name}}, $r->{json}{id} if $r && $r->{status} == 202;
        }
        is(scalar @{$ids{$name} || []}, 20, "outage: 20 accepted by $name");
    }

    # each node's unfinished rows of its messages, and theirs under any
    # other name
    my $rows = sub {
        my ($name) = @_;
        my $in = in_list(@{$ids{$name}});
        return join ' ', @{(sql('f4',
            "SELECT (SELECT count(DISTINCT id) FROM omnibus_messages m "
            . "WHERE id IN ($in) AND node = 'pod-$name' AND NOT EXISTS "
            . "(SELECT 1 FROM omnibus_done d WHERE d.node = m.node AND "
            . "d.id = m.id)), (SELECT count(*) FROM omnibus_messages "
            . "WHERE id IN ($in) AND node <> 'pod-$name')"))[0]};
    };
    is($rows->($_), '20 0', "outage: pod-${_}'s rows under its name")
        for qw(a b);

    # down twice as long as adopt_after: each node's last beat looks
    # silent to the other when they come back
    $pg->stop;
    sleep 6;
    $pg->start;
    my $since = sql('f4', 'SELECT now()');
    ok(wait_until(sub {
           sql('f4', "$beat AND seen >= '$since'") == 2
       }, timeout => 30), 'outage: both nodes beat again');

    # adopt_after and two adoption passes (one each 5 s) past that
    sleep 14;
    is($rows->($_), '20 0', "outage: pod-${_}'s rows still under its name")
        for qw(a b);
    for my $n (['a', $ta], ['b', $tb]) {
        unlike($n->[1]->error_log, qr/node adopted/,
               "outage: pod-$n->[0] logged no adoption");
        is(store_status($n->[1])->{adopted}, 0,
           "outage: pod-$n->[0] adopted nothing");
    }

    ok(shards($ta, 'resume') && shards($tb, 'resume'),
       'outage: shards resumed');
    for my $n (['a', $ta, $rxa], ['b', $tb, $rxb]) {
        my ($name, $t, $rx) = @$n;
        ok(wait_until(sub { !missing({ delivered($rx) }, @{$ids{$name}}) },
                      timeout => 30), "outage: $name delivered its 20");
        ok(wait_until(sub { settled($t) }, timeout => 20),
           "outage: $name settled");
        is_deeply(deliveries($rx), { map { $_ => 1 } @{$ids{$name}} },
                  "outage: $name delivered each of its own once, "
                  . 'and nothing else');
    }
    $ta->check_log;
    $tb->check_log;
}

# 5. after a reload, readiness and backend_up follow PostgreSQL

{
    # a short breaker: ready again soon after PostgreSQL is back
    my ($t, $rx) = bus(db => 'f5', node => 'pod-f5',
                       store => 'mode=sync breaker=3:1s:1');
    ok(ready($t), 'reload: ready');

    # the old workers were connected: gone, they must count no more
    $t->reload;
    ok(ready($t), 'reload: ready after the reload');
    is(backend($t, 'backend_up'), 1, 'reload: backend_up 1');

    $pg->stop;
    my %seen;
    ok(wait_until(sub {
           %seen = (up => backend($t, 'backend_up'),
                    status => store_status($t)->{up} ? 'up' : 'down',
                    ready => $t->http(GET => '/readyz')->{status});
           "@seen{qw(up status ready)}" eq '0 down 503'
       }, timeout => 30),
       'reload: PostgreSQL down: backend_up 0, store not up, /readyz 503')
        or diag(explain \%seen);

    $pg->start;
    ok(ready($t), 'reload: ready again once PostgreSQL is back');
    is(backend($t, 'backend_up'), 1, 'reload: backend_up 1 again');
    ok(store_status($t)->{up}, 'reload: store up again');
    # the breaker's probe may still be on its way: a publish, soon
    ok(wait_until(sub { publish($t, 'jobs.back')->{status} == 202 },
                  timeout => 30, interval => 0.5),
       'reload: publishes accepted again');
    $t->check_log;
}

done_testing;
