# omnibus_store across nodes, and the store's edges: a node that dies
# (kill -9 of master and workers, a pod that never comes back) has its
# unfinished rows adopted by a live node sharing the database, by exactly
# one of them, each message delivered once; a wrong password is one clear
# line per attempt with backoff, no crash, 503s and a 503 readiness, and a
# reload with the right one recovers; a quit of an async store writes
# every row still waiting in memory; and the store's metrics and status.
#
# Each scenario has its own database: a silent node left by one would be
# adopted in the next one, and the rotation is global to a database.

use strict;
use warnings;

use Test::More;
use POSIX ();
use Time::HiRes qw(sleep time);
use lib 't/lib';
use Omnibus::Test;
use Omnibus::Receiver;
use Omnibus::Pg;
use Omnibus::Store;

my $pg = store_pg();

sub in_list { return join ',', map { "'$_'" } @_ }


# a node's messages, published with its shards paused: accepted (sync: the
# rows committed) and left unfinished, as a pod that dies holds them
sub held_messages {
    my ($t, $n, $name) = @_;
    ok(shards($t, 'pause'), "$name: the dying node's shards paused");
    my @ids;
    for my $k (1 .. $n) {
        my $r = publish($t, 'jobs.k' . ($k % 7), qq({"n":$k}));
        push @ids, $r->{json}{id} if $r && $r->{status} == 202;
    }
    is(scalar @ids, $n, "$name: $n publishes accepted");
    return @ids;
}

# the one-row state of an adoption: the ids' rows under live nodes, and
# done marks of the dead node's originals; both come in one transaction
sub adoption {
    my ($db, $dead, @ids) = @_;
    my $in = in_list(@ids);
    return @{(sql($db, "SELECT (SELECT count(*) FROM omnibus_messages "
                       . "WHERE id IN ($in) AND node <> '$dead'), "
                       . "(SELECT count(DISTINCT id) FROM omnibus_done "
                       . "WHERE id IN ($in) AND node = '$dead')"))[0]};
}

# rows of the dead node without a done mark: none once adopted, also
# after the rotation truncated the originals
sub unfinished {
    my ($db, $node) = @_;
    return sql($db, "SELECT count(*) FROM omnibus_messages m WHERE "
                    . "node = '$node' AND NOT EXISTS (SELECT 1 FROM "
                    . "omnibus_done d WHERE d.node = m.node AND d.id = m.id)");
}

# a worker that got the quit: nginx renames it
sub shutting_down {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/cmdline" or return 0;
    return (<$fh> // '') =~ /worker process is shutting down/;
}

sub node_row {
    my ($db, $node) = @_;
    return sql($db, "SELECT count(*) FROM omnibus_nodes WHERE node = '$node'");
}

# 1. adoption: a live node takes a dead node's rows, each delivered once

{
    # A is killed with its master: if anyone logs a worker's signal 9,
    # that is the crash this scenario makes
    my ($ta, $rxa) = bus(db => 'n1', node => 'pod-a', allow =>
                         [qr/exited on signal 9/],
                         store => 'mode=sync adopt_after=3s breaker=5:1s:1');
    my ($tb, $rxb) = bus(db => 'n1', node => 'pod-b',
                         store => 'mode=sync adopt_after=3s breaker=5:1s:1');
    ok(ready($ta) && ready($tb), 'adopt: both nodes ready');
    ok(wait_until(sub { node_row('n1', 'pod-a') && node_row('n1', 'pod-b') },
                  timeout => 20), 'adopt: both nodes beat');

    # B's shards paused too: what it adopts stays unfinished, so its rows
    # are there to be seen (a finished generation is truncated within
    # seconds); they are resumed once the rows are checked
    ok(shards($tb, 'pause'), 'adopt: the adopter\'s shards paused');

    my @ids = held_messages($ta, 50, 'adopt');
    is_deeply([missing({ ids_in('n1', 'omnibus_messages', 'pod-a') }, @ids)],
              [], 'adopt: each 202 has its row under pod-a');

    # a node that beats is not silent: B looks every 5 s for a node
    # silent for 3 s, and in 6 s it looked at least once
    sleep 6;
    is(join(' ', adoption('n1', 'pod-a', @ids)), '0 0',
       'adopt: nothing adopted from a live node');

    ok(crash($ta), 'adopt: A killed, master and workers');

    ok(wait_until(sub { join(' ', adoption('n1', 'pod-a', @ids)) eq '50 50' },
                  timeout => 30),
       'adopt: B took the 50 rows, the originals marked done')
        or diag(join ' ', adoption('n1', 'pod-a', @ids));
    is_deeply([missing({ ids_in('n1', 'omnibus_messages', 'pod-b') }, @ids)],
              [], 'adopt: each id has its row under pod-b');
    is(unfinished('n1', 'pod-a'), 0, 'adopt: nothing of pod-a left unfinished');
    like($tb->error_log, qr/"bus": 50 message\(s\) of a silent node adopted/,
         'adopt: the adoption is logged');

    ok(shards($tb, 'resume'), 'adopt: the adopter\'s shards resumed');
    ok(wait_until(sub { !missing({ delivered($rxb) }, @ids) }, timeout => 30),
       'adopt: B delivered every adopted message')
        or diag(scalar(missing({ delivered($rxb) }, @ids)) . ' missing');
    ok(wait_until(sub { node_row('n1', 'pod-a') == 0 }, timeout => 30),
       'adopt: the silent node left omnibus_nodes');
    is(node_row('n1', 'pod-b'), 1, 'adopt: the adopter is still there');

    # once A's name is gone nobody can adopt it again: what B delivered
    # by then is all it will deliver
    ok(wait_until(sub { settled($tb) }, timeout => 30), 'adopt: B settled');
    my $n = deliveries($rxb);
    is_deeply([grep { $n->{$_} != 1 } @ids], [],
              'adopt: each adopted message delivered exactly once');
    is_deeply([grep { !$n->{$_} } keys %$n], [],
              'adopt: and nothing else');
    is(scalar($rxa->requests), 0, 'adopt: the dead node delivered nothing');
    ok(wait_until(sub {
           !missing({ ids_in('n1', 'omnibus_done', 'pod-b') }, @ids)
       }, timeout => 30), 'adopt: B wrote the done marks under its name');

    $ta->check_log;
    $tb->check_log;
}

# 2. one adopter: two live nodes race for a dead node's rows

{
    my ($ta, $rxa) = bus(db => 'n2', node => 'pod-a', allow =>
                         [qr/exited on signal 9/],
                         store => 'mode=sync adopt_after=3s breaker=5:1s:1');
    my ($tb, $rxb) = bus(db => 'n2', node => 'pod-b',
                         store => 'mode=sync adopt_after=3s breaker=5:1s:1');
    my ($tc, $rxc) = bus(db => 'n2', node => 'pod-c',
                         store => 'mode=sync adopt_after=3s breaker=5:1s:1');
    ok(ready($ta) && ready($tb) && ready($tc), 'race: three nodes ready');

    # paused, as in 1.: the adopted rows stay to be counted
    ok(shards($tb, 'pause') && shards($tc, 'pause'),
       'race: the live nodes\' shards paused');

    my @ids = held_messages($ta, 60, 'race');
    ok(crash($ta), 'race: A killed, master and workers');

    ok(wait_until(sub {
           (adoption('n2', 'pod-a', @ids))[1] == 60
       }, timeout => 30), 'race: the 60 originals marked done');
    my $in = in_list(@ids);
    is(sql('n2', "SELECT count(*) FROM omnibus_messages WHERE id IN ($in) "
                 . "AND node <> 'pod-a'"), 60,
       'race: 60 rows under live nodes, one per message');
    is(sql('n2', "SELECT count(*) FROM (SELECT id FROM omnibus_messages "
                 . "WHERE id IN ($in) AND node <> 'pod-a' GROUP BY id "
                 . "HAVING count(*) > 1) twice"), 0,
       'race: no message adopted twice');
    my %by = map { $_->[0] => $_->[1] }
             sql('n2', "SELECT node, count(*) FROM omnibus_messages WHERE "
                       . "id IN ($in) AND node <> 'pod-a' GROUP BY node");
    note(join ', ', map { "$_: $by{$_}" } sort keys %by);

    ok(shards($tb, 'resume') && shards($tc, 'resume'),
       'race: the live nodes\' shards resumed');
    ok(wait_until(sub { !missing({ delivered($rxb), delivered($rxc) }, @ids) },
                  timeout => 30), 'race: all 60 delivered')
        or diag(scalar(missing({ delivered($rxb), delivered($rxc) }, @ids))
                . ' missing');
    ok(wait_until(sub { node_row('n2', 'pod-a') == 0 }, timeout => 30),
       'race: the silent node left omnibus_nodes');
    ok(wait_until(sub { settled($tb) && settled($tc) }, timeout => 30),
       'race: B and C settled');

    my $n = deliveries($rxb, $rxc);
    is_deeply([grep { ($n->{$_} // 0) != 1 } @ids], [],
              'race: each message delivered once, by B or C');
    is(scalar($rxa->requests), 0, 'race: the dead node delivered nothing');

    $ta->check_log;
    $tb->check_log;
    $tc->check_log;
}

# 3. a wrong password: clear, bounded, no crash; a reload fixes it

{
    my $wrong = 'wrong-horse-' . join('', map { int rand 10 } 1 .. 12);
    my $file;
    # the failed connects are [error] lines, which check_log takes as
    # they are: no allow needed
    my ($t, $rx) = bus(db => 'n3', node => 'pod-pw', store => 'mode=sync',
                       no_start => 1, pw => sub {
        $file = $_[0]->dir . '/password';
        open my $fh, '>', $file or die "$file: $!";
        print $fh "$wrong\n";
        close $fh;
        chmod 0600, $file;
        return $file;
    });

    # the password is read, not tried, by nginx -t
    my ($ok, $out) = $t->test_conf;
    ok($ok, 'password: nginx -t passes with a wrong password') or diag($out);
    $t->start;

    ok(wait_until(sub {
           $t->error_log =~ /cannot connect: .*password authentication failed/
       }, timeout => 20), 'password: the error log says why');
    my $log = $t->error_log;
    unlike($log, qr/\Q$wrong\E/, 'password: not the password itself');
    unlike($log, qr/\Q${\ $pg->password }\E/, 'password: nor the right one');
    like($log, qr/omnibus store omnibus\@127\.0\.0\.1:\d+\/n3: cannot connect/,
         'password: the line names the server and database');

    # ~6 s of probes and publishes: every one refused, none a 500
    my $start = time;
    my (%ready, %publish, @odd);
    while (time - $start < 6) {
        $ready{$t->http(GET => '/readyz')->{status}}++;
        my $r = publish($t, 'jobs.pw');
        my $j = $r && $r->{json} || {};
        $publish{$r ? $r->{status} : 'none'}++;
        push @odd, $r ? "$r->{status} " . ($j->{error} // '-') . ' '
                        . ($r->{headers}{'retry-after'} // '-') : 'none'
            unless $r && $r->{status} == 503
                   && ($j->{error} // '') eq 'store_unavailable'
                   && defined $r->{headers}{'retry-after'};
        sleep 0.2;
    }
    is_deeply([keys %ready], [503], 'password: /readyz answered 503 '
              . "($ready{503} times in 6 s)") or diag(explain \%ready);
    is_deeply(\@odd, [], 'password: each of ' . ($publish{503} // 0)
              . ' publishes 503 store_unavailable with Retry-After')
        or diag(explain \%publish);

    # attempts back off (and the breaker holds them): a handful per
    # worker, not a loop
    my %tries;
    $tries{$_}++ for $t->error_log
        =~ /\[error\] (\d+)#\d+: .*?omnibus store \S+: cannot connect/g;
    ok(scalar(keys %tries) >= 1, 'password: workers tried to connect');
    is_deeply([grep { $tries{$_} >= 30 } keys %tries], [],
              'password: attempts back off ('
              . join(', ', map { "$tries{$_}" } sort keys %tries)
              . ' per worker)');
    is(scalar(() = $t->error_log =~ /exited on signal/g), 0,
       'password: no worker crashed');

    my $m = $t->http(GET => '/metrics')->{body};
    like($m, qr/^message_bus_backend_up\{zone="bus",backend="postgresql"\} 0$/m,
         'password: backend_up 0');
    my ($connect) = $m =~ /^message_bus_store_errors_total\{zone="bus",
                           reason="connect"\}\ (\d+)$/mx;
    ok(defined $connect, 'password: connect errors are a metric');
    my $failed = 0;
    $failed += $_ for values %tries;
    note("store_errors_total{reason=\"connect\"} $connect after $failed "
         . 'failed connects');
    my $s = $t->http(GET => '/omnibus/')->{json}{store};
    is_deeply([@$s{qw(state up)}], ['loading', JSON::PP::false()],
              'password: status says loading and not up');

    # the password is read when the configuration is loaded: a reload
    open my $fh, '>', $file or die "$file: $!";
    print $fh $pg->password, "\n";
    close $fh;
    $t->reload;
    ok(ready($t), 'password: ready after a reload with the right password');

    # ready means publishes are taken: a load balancer sends them as soon
    # as /readyz says 200 (the breaker opened by the failed connects is in
    # the zone, which the reload keeps)
    my $since = time;
    my $r = publish($t, 'jobs.pw', '{"fixed":1}');
    is($r->{status}, 202, 'password: a publish accepted once ready')
        or diag($r->{body}, 'store: ',
                explain($t->http(GET => '/omnibus/')->{json}{store}));
    ok(wait_until(sub {
           my $p = publish($t, 'jobs.pw', '{"fixed":2}');
           $r = $p if $p->{status} == 202;
           $p->{status} == 202
       }, timeout => 90, interval => 1), 'password: publishes accepted');
    note(sprintf 'publishes accepted %.1f s after /readyz said 200',
                 time - $since);
    my $id = $r->{json}{id} // '';
    is(sql('n3', "SELECT count(*) FROM omnibus_messages WHERE id = '$id'"), 1,
       'password: its row written');
    unlike($t->error_log, qr/\Q$wrong\E|\Q${\ $pg->password }\E/,
           'password: neither password in the log after all');
    $t->check_log;
}

# 4. async: a quit writes every row still waiting to be written

{
    # flush=1s and a batch no publish fills: rows wait in memory. A free
    # connection sends them at once all the same (any statement that ends,
    # the heartbeat's too, flushes what waits), so a lock on
    # omnibus_generation, which every insert reads, holds them: the quit
    # finds rows it cannot have written yet. timeout=30s: the lock does not
    # time the inserts out meanwhile.
    my ($t, $rx) = bus(db => 'n4', node => 'pod-q',
                       store => 'mode=async flush=1s batch=100000 '
                                . 'timeout=30s');
    ok(ready($t), 'quit: ready');

    my $locker = fork // die "fork: $!";
    if ($locker == 0) {
        eval { sql('n4', "SET application_name = 'omnibus-lock'; BEGIN; "
                         . 'LOCK TABLE omnibus_generation IN ACCESS '
                         . 'EXCLUSIVE MODE; SELECT pg_sleep(120); COMMIT') };
        POSIX::_exit(0);
    }
    my $lock = "FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE "
               . "a.application_name = 'omnibus-lock' AND l.granted AND "
               . "l.relation = 'omnibus_generation'::regclass";
    ok(wait_until(sub { sql('n4', "SELECT count(*) $lock") }, timeout => 20),
       'quit: omnibus_generation locked');

    my @ids;
    for my $n (1 .. 300) {
        my $r = publish($t, 'jobs.q' . ($n % 11), qq({"n":$n}));
        push @ids, $r->{json}{id} if $r && $r->{status} == 202;
    }
    is(scalar @ids, 300, 'quit: 300 accepted');
    is($t->metric('store_backlog'), 300, 'quit: none of them written yet');

    # the quit, seen by every worker before the rows can go
    my @pids = ($t->master_pid, $t->worker_pids);
    kill 'QUIT', $pids[0];
    ok(wait_until(sub {
           !grep { Omnibus::Test::alive($_) && !shutting_down($_) }
               @pids[1 .. $#pids]
       }, timeout => 20), 'quit: the workers are shutting down');
    sql('n4', "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
              . "WHERE application_name = 'omnibus-lock'");
    waitpid $locker, 0;

    $t->check_log;                          # QUIT, and waits for the exit
    is(scalar(grep { Omnibus::Test::alive($_) } @pids), 0,
       'quit: master and workers exited');
    is_deeply([missing({ ids_in('n4', 'omnibus_messages', 'pod-q') }, @ids)],
              [], 'quit: every accepted message has its row');
    unlike($t->error_log, qr/could not be written before the worker exited/,
           'quit: no row given up');
}

# 5. metrics and status of a store

{
    my ($t, $rx) = bus(db => 'n5', node => 'pod-m', store => 'mode=sync');
    ok(ready($t), 'metrics: ready');

    my @ids = grep { defined }
              map { publish($t, "jobs.m$_", qq({"n":$_}))->{json}{id} } 1 .. 20;
    is(scalar @ids, 20, 'metrics: 20 accepted');
    ok(wait_until(sub { !missing({ delivered($rx) }, @ids) }, timeout => 30),
       'metrics: delivered');
    ok(wait_until(sub { $t->metric('store_backlog') == 0 }, timeout => 30),
       'metrics: nothing waits to be written');
    ok(wait_until(sub {
           my ($d) = $t->http(GET => '/metrics')->{body}
               =~ /^message_bus_store_rows_total\{zone="bus",op="done"\} (\d+)$/m;
           ($d // 0) >= 20
       }, timeout => 30), 'metrics: the done marks are committed');

    my $m = $t->http(GET => '/metrics')->{body};
    my $file = $t->dir . '/metrics.txt';
    open my $fh, '>', $file or die;
    print $fh $m;
    close $fh;
    ok(Omnibus::Test::have_cmd('promtool'), 'metrics: promtool is installed');
    my $out = `promtool check metrics < $file 2>&1`;
    is($?, 0, 'metrics: promtool check metrics passes') or diag($out);

    my $v = sub {
        my ($name, $labels) = @_;
        my ($x) = $m =~ /^message_bus_\Q$name\E\{zone="bus"\Q$labels\E\}
                         \ ([0-9.e+-]+)$/mx;
        return $x;
    };
    for my $f (qw(store_backlog store_rows_total store_errors_total
                  store_connections store_commit_seconds store_batch_rows
                  store_recovered_total backend_up backend_breaker_state)) {
        like($m, qr/^# TYPE message_bus_$f (?:gauge|counter|histogram)$/m,
             "metrics: $f has its TYPE");
    }
    is($v->('store_rows_total', ',op="insert"'), 20, 'metrics: 20 inserts');
    is($v->('store_backlog', ''), 0, 'metrics: backlog 0');
    is($v->('store_errors_total', ",reason=\"$_\""), 0,
       "metrics: no $_ errors") for qw(connect query timeout backlog_full);
    ok(defined $v->('store_connections', ",state=\"$_\""),
       "metrics: connections $_") for qw(idle busy connecting);
    cmp_ok($v->('store_connections', ',state="idle"'), '>=', 1,
           'metrics: an idle connection');
    is($v->('store_recovered_total', ''), 0, 'metrics: nothing recovered');
    is($v->('backend_up', ',backend="postgresql"'), 1, 'metrics: backend up');
    is($v->('backend_breaker_state', ',backend="postgresql"'), 0,
       'metrics: breaker closed');

    my $commits = $v->('store_commit_seconds_count', '');
    cmp_ok($commits, '>=', 1, "metrics: $commits commits timed");
    is($v->('store_commit_seconds_bucket', ',le="+Inf"'), $commits,
       'metrics: commit_seconds +Inf bucket = count');
    is($v->('store_batch_rows_count', ''), $commits,
       'metrics: a batch_rows sample per commit');
    my $rows = 0;
    $rows += $v->('store_rows_total', ",op=\"$_\"") // 0
        for qw(insert done dlq admin);
    is($v->('store_batch_rows_sum', ''), $rows,
       "metrics: batch_rows_sum = the $rows rows committed");

    my $s = $t->http(GET => '/omnibus/')->{json}{store};
    ok($s, 'status: has "store"');
    is_deeply([@$s{qw(backend mode state breaker)}],
              [qw(postgresql sync ready closed)],
              'status: backend, mode, state, breaker');
    ok($s->{up}, 'status: up');
    is($s->{backlog}, 0, 'status: backlog 0');
    is_deeply([sort keys %{$s->{connections}}], [qw(busy connecting idle)],
              'status: connections by state');
    ok(defined $s->{generation} && defined $s->{recovered},
       'status: generation and recovered');
    $t->check_log;
}

done_testing;
