# omnibus_store: accepted messages are kept in PostgreSQL. A sync publish
# is answered 202 only once its row is committed, so a kill -9 of the whole
# nginx loses nothing that was acknowledged; while PostgreSQL is away a
# sync store answers 503 (never 500) and an async one keeps delivering
# from memory and writes its backlog later; dead letters come back after a
# restart; nodes starting together migrate the schema once; reloads write
# no row twice; and the rotation of generations keeps the tables free of
# dead tuples.
#
# Each scenario has its own database (and node name): the rotation is
# global to a database, and a message left unfinished by one scenario
# would hold the next one's generations.

use strict;
use warnings;

use Test::More;
use POSIX ();
use Time::HiRes qw(sleep);
use lib 't/lib';
use Omnibus::Test;
use Omnibus::Receiver;
use Omnibus::Pg;
use Omnibus::Store;

my $pg = store_pg();
my $pw = $pg->password_file;

# 1. configuration errors name the directive and the problem

{
    my $c = Omnibus::Test->new(ports => 1);
    my $url = 'postgresql://omnibus@127.0.0.1:' . $pg->port . '/omnibus';
    my $conf = sub { <<"EOF" };
    omnibus_zone zone=bus:8m;
    omnibus_store bus $_[0];
    server { listen 127.0.0.1:%%PORT0%%;
             location /publish/ { omnibus_publish bus; } }
EOF
    my @bad = (
        ['mysql://omnibus@127.0.0.1:3306/omnibus',
         qr/needs a postgresql:\/\/ URL/, 'not a postgresql URL'],
        ['postgresql://omnibus:hunter2@127.0.0.1:5432/omnibus',
         qr/has a password in its URL: use password_file=/, 'password in URL'],
        ["$url colour=blue", qr/unknown parameter "colour=blue"/,
         'unknown parameter'],
        ["$url mode=bogus", qr/invalid "mode=bogus"/, 'mode=bogus'],
        ["$url pool=0", qr/invalid "pool=0"/, 'pool=0'],
        ["$url breaker=x", qr/invalid "breaker=x"/, 'breaker=x'],
    );
    for (@bad) {
        my ($args, $re, $name) = @$_;
        $c->conf($conf->($args));
        my ($ok, $out) = $c->test_conf;
        ok(!$ok, "$name: nginx -t fails");
        like($out, $re, "$name: the message says why");
        like($out, qr/\[emerg\].*(?:omnibus_store:|"omnibus_store" directive)/,
             "$name: the message names the directive");
        unlike($out, qr/hunter2/, "$name: no password in the message");
    }

    $c->conf($conf->("$url password_file=$pw mode=async pool=2 overflow=1 "
                     . 'recycle=1h batch=100 flush=5ms timeout=3s '
                     . 'retention=1d adopt_after=30s breaker=3:1s:1'));
    my ($ok, $out) = $c->test_conf;
    ok($ok, 'every parameter together passes nginx -t') or diag($out);
}

# 2. sync: every 202 survives a kill -9 of master and workers

{
    # the master is killed too: whoever logs a worker's signal 9 is fine
    my ($t, $rx) = bus(db => 's2', node => 'pod-s2', store => 'mode=sync',
                       allow => [qr/exited on signal 9/]);
    ok(ready($t), 'sync: ready');

    # deliveries fail and are retried: everything stays in the bus
    $rx->set('/hook' => { status => 503, delay => 0.5 });

    my @ids;
    for my $n (1 .. 200) {
        my $r = publish($t, 'jobs.k' . ($n % 13), qq({"n":$n}));
        push @ids, $r->{json}{id} if $r && $r->{status} == 202;
    }
    is(scalar @ids, 200, 'sync: 200 publishes accepted');
    my %rows = ids_in('s2', 'omnibus_messages', 'pod-s2');
    is_deeply([missing(\%rows, @ids)], [],
              'sync: each 202 has its row committed already');
    is(scalar(grep { $_->{status} == 200 } $rx->requests), 0,
       'sync: none delivered before the crash');

    my @pids = ($t->master_pid, $t->worker_pids);
    kill 'KILL', @pids;
    ok(wait_until(sub { !grep { Omnibus::Test::alive($_) } @pids },
                  timeout => 20), 'sync: master and workers killed');

    $rx->set('/hook' => { status => 200 });
    $t->start;        # a new zone: the shared memory went with the master
    ok(ready($t), 'sync: ready again after loading the stored rows');
    like($t->error_log, qr/"bus": \d+ stored message\(s\) loaded back/,
         'sync: the stored rows were loaded back');

    ok(wait_until(sub { !missing({ delivered($rx) }, @ids) }, timeout => 60),
       'sync: every accepted message delivered after the kill -9')
        or diag(scalar(missing({ delivered($rx) }, @ids)) . ' missing');
    ok(wait_until(sub {
           !missing({ ids_in('s2', 'omnibus_done', 'pod-s2') }, @ids)
       }, timeout => 30), 'sync: each has its done row');
    $t->check_log;
}

# 3. sync: PostgreSQL stopped under load answers 503, loses no 202

{
    my ($t, $rx) = bus(db => 's3', node => 'pod-s3',
                       store => 'mode=sync breaker=3:1s:1');
    ok(ready($t), 'outage: ready');

    # a producer in a child: "status id error retry-after" per publish
    my $file = $t->dir . '/publishes.txt';
    my $stop = $t->dir . '/stop';
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open my $fh, '>', $file or POSIX::_exit(1);
        $fh->autoflush(1);
        for (my $n = 0; !-e $stop; $n++) {
            my $r = publish($t, 'jobs.o' . ($n % 7), qq({"n":$n}));
            my $j = $r && $r->{json} || {};
            printf $fh "%s %s %s %s\n", $r ? $r->{status} : 'none',
                $j->{id} // '-', $j->{error} // '-',
                $r && $r->{headers}{'retry-after'} // '-';
            sleep 0.01;
        }
        POSIX::_exit(0);
    }

    my $lines = sub {
        open my $fh, '<', $file or return ();
        return map { chomp; [split / /] } grep { /\n\z/ } <$fh>;
    };
    my $count = sub {
        my ($status) = @_;
        return scalar grep { $_->[0] eq $status } $lines->();
    };

    ok(wait_until(sub { $count->(202) >= 50 }, timeout => 30),
       'outage: publishes accepted while PostgreSQL is up');
    $pg->stop;
    ok(wait_until(sub { $count->(503) >= 20 }, timeout => 30),
       'outage: publishes refused while PostgreSQL is down');
    my $before = $count->(202);
    $pg->start;
    ok(wait_until(sub { $count->(202) >= $before + 50 }, timeout => 60),
       'outage: publishes accepted again once PostgreSQL is back');
    open my $s, '>', $stop or die;
    close $s;
    waitpid $pid, 0;

    my @all = $lines->();
    my @odd = grep { $_->[0] ne '202' && $_->[0] ne '503' } @all;
    is_deeply(\@odd, [], 'outage: every answer is 202 or 503, never 500');
    my @refused = grep { $_->[0] eq '503' } @all;
    is_deeply([grep { $_->[2] ne 'store_unavailable' || $_->[3] eq '-' }
               @refused], [], 'outage: each 503 is store_unavailable '
                              . 'with Retry-After');
    my @ids = map { $_->[1] } grep { $_->[0] eq '202' } @all;
    ok(wait_until(sub { !missing({ delivered($rx) }, @ids) }, timeout => 60),
       'outage: every accepted message (' . @ids . ') delivered')
        or diag(scalar(missing({ delivered($rx) }, @ids)) . ' missing');
    is_deeply([missing({ ids_in('s3', 'omnibus_messages', 'pod-s3') }, @ids)],
              [], 'outage: every accepted message has its row');
    $t->check_log;
}

# 4. async: delivery goes on while PostgreSQL is down, the backlog follows

{
    # a short breaker: the backlog goes once a probe gets through, and the
    # default one (5:60s:3) would hold it for a minute after the outage
    my ($t, $rx) = bus(db => 's4', node => 'pod-s4',
                       store => 'mode=async breaker=3:1s:1');
    ok(ready($t), 'async: ready');
    $pg->stop;

    my @ids = map { publish($t, "jobs.a$_", qq({"n":$_}))->{json}{id} // '' }
              1 .. 50;
    is(scalar(grep { /\S/ } @ids), 50, 'async: 50 accepted, PostgreSQL down');
    ok(wait_until(sub { !missing({ delivered($rx) }, @ids) }, timeout => 30),
       'async: all 50 delivered from memory');

    $pg->start;
    ok(wait_until(sub {
           !missing({ ids_in('s4', 'omnibus_messages', 'pod-s4') }, @ids)
       }, timeout => 60), 'async: the backlog was written once it came back');
    ok(wait_until(sub {
           !missing({ ids_in('s4', 'omnibus_done', 'pod-s4') }, @ids)
       }, timeout => 30), 'async: and their done rows');
    $t->check_log;
}

# 5. dead letters survive a restart

{
    my ($t, $rx) = bus(db => 's5', node => 'pod-s5', store => 'mode=sync');
    ok(ready($t), 'dlq: ready');
    $rx->set('/bad' => { status => 400 });

    my @ids = sort map { publish($t, "bad.$_")->{json}{id} } 1 .. 3;
    my $dlq = sub {
        sort map { $_->{id} }
             @{$t->http(GET => '/omnibus/dlq?limit=100')->{json}{entries}};
    };
    ok(wait_until(sub { my @d = $dlq->(); @d == 3 }, timeout => 20),
       'dlq: three dead letters');
    ok(wait_until(sub {
           sql('s5', "SELECT count(*) FROM omnibus_dlq WHERE node = 'pod-s5'")
               == 3
       }, timeout => 20), 'dlq: three rows in omnibus_dlq');

    $t->stop;
    $t->start;
    ok(ready($t), 'dlq: ready after the restart');
    is_deeply([$dlq->()], \@ids, 'dlq: the same three ids after a restart');
    ok(wait_until(sub { settled($t) }, timeout => 20), 'dlq: settled');
    is(scalar($rx->requests_for('/bad')), 3,
       'dlq: dead letters are finished, not delivered again');
    $t->check_log;
}

# 6. two nodes starting together on a fresh database

{
    my ($t1, $rx1) = bus(db => 's6', node => 'pod-s6a', store => 'mode=sync',
                         no_start => 1);
    my ($t2, $rx2) = bus(db => 's6', node => 'pod-s6b', store => 'mode=sync',
                         no_start => 1);
    my $conf = $t2->dir . '/nginx.conf';

    # the second master is started by a child together with the first:
    # the four workers race for the schema
    $t2->release_ports;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        { exec $Omnibus::Test::NGINX, '-p', $t2->dir . '/', '-c', $conf; }
        POSIX::_exit(127);
    }
    $t1->start;
    waitpid $pid, 0;
    is($?, 0, 'nodes: the second nginx started');
    $t2->{running} = 1;        # the harness stops and checks it at the end

    ok(ready($t1), 'nodes: the first is ready');
    ok(ready($t2), 'nodes: the second is ready');
    is(sql('s6', 'SELECT count(*) FROM omnibus_schema'), 1,
       'nodes: the schema was migrated once');
    my $ra = publish($t1, 'jobs.x');
    my $rb = publish($t2, 'jobs.y');
    is("$ra->{status} $rb->{status}", '202 202', 'nodes: both accept');
    is(sql('s6', 'SELECT string_agg(node, \',\' ORDER BY node) FROM '
                 . "omnibus_messages WHERE id IN ('$ra->{json}{id}', "
                 . "'$rb->{json}{id}')"), 'pod-s6a,pod-s6b',
       'nodes: each row names its node');
    for ([$t1, 'first'], [$t2, 'second']) {
        my @err = grep { /\[(?:error|crit|alert|emerg)\]/ }
                  split /\n/, $_->[0]->error_log;
        is_deeply(\@err, [], "nodes: no error in the $_->[1]'s log");
    }
    $t1->check_log;
    $t2->check_log;
}

# 7. reloads under load write no row twice

{
    my ($t, $rx) = bus(db => 's7', node => 'pod-s7', store => 'mode=sync');
    ok(ready($t), 'reload: ready');

    my $file = $t->dir . '/accepted.txt';
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open my $fh, '>', $file or POSIX::_exit(1);
        $fh->autoflush(1);
        for my $n (1 .. 400) {
            my $r = publish($t, 'jobs.r' . ($n % 7), qq({"n":$n}));
            print $fh "$r->{json}{id}\n" if $r && $r->{status} == 202;
        }
        POSIX::_exit(0);
    }
    ok(wait_until(sub { -s $file }, timeout => 20), 'reload: publishing');
    $t->reload;
    $t->reload;
    waitpid $pid, 0;

    open my $fh, '<', $file or die;
    chomp(my @ids = <$fh>);
    close $fh;
    cmp_ok(scalar @ids, '>=', 390,
           'reload: ' . @ids . ' of 400 accepted across the reloads');
    ok(wait_until(sub { !missing({ delivered($rx) }, @ids) }, timeout => 60),
       'reload: every accepted message delivered');
    my ($n, $distinct) = @{(sql('s7', 'SELECT count(*), count(DISTINCT id) '
                                      . 'FROM omnibus_messages'))[0]};
    cmp_ok($n, '>=', scalar @ids, "reload: $n rows for the accepted");
    is($n, $distinct, 'reload: no message has two rows');
    is_deeply([missing({ ids_in('s7', 'omnibus_messages', 'pod-s7') }, @ids)],
              [], 'reload: every accepted message has its row');
    $t->check_log;
}

# 8. rotation: truncated generations, no dead tuples

{
    my ($t, $rx) = bus(db => 's8', node => 'pod-s8', store => 'mode=sync');
    ok(ready($t), 'rotation: ready');

    my @ids;
    my $ndjson = { 'Content-Type' => 'application/x-ndjson' };
    for my $k (1 .. 30) {
        my $r = $t->http(POST => "/publish/jobs.b$k", headers => $ndjson,
                         body => join '', map { qq({"n":$_}\n) } 1 .. 100);
        push @ids, map { $_->{id} } grep { $_->{status} == 202 }
                   @{$r->{json}{results} || []};
    }
    is(scalar @ids, 3000, 'rotation: 3000 published in 30 batches');
    ok(wait_until(sub { !missing({ delivered($rx) }, @ids) }, timeout => 60),
       'rotation: all delivered');

    # a generation is truncated once its messages are done, one turn every
    # 2 s: four turns empty all four slots
    my $rows = sub {
        sql('s8', 'SELECT (SELECT count(*) FROM omnibus_messages) + '
                  . '(SELECT count(*) FROM omnibus_done)');
    };
    ok(wait_until(sub { $rows->() == 0 }, timeout => 60),
       'rotation: the finished generations were truncated')
        or diag($rows->() . ' rows left');
    cmp_ok(sql('s8', 'SELECT gen FROM omnibus_generation'), '>=', 4,
           'rotation: the generation went round');

    # rows go by TRUNCATE alone: no UPDATE or DELETE ever made a dead
    # tuple (the counters are cumulative, truncation keeps them; the
    # servers report them a moment later)
    my $stat = "FROM pg_stat_user_tables WHERE relname LIKE "
               . "'omnibus_messages%' OR relname LIKE 'omnibus_done%'";
    ok(wait_until(sub { sql('s8', "SELECT sum(n_tup_ins) $stat") >= 6000 },
                  timeout => 30), 'rotation: the inserts are counted');
    is(sql('s8', "SELECT sum(n_tup_upd + n_tup_del) $stat"), 0,
       'rotation: no row updated or deleted');

    # ANALYZE counts the dead tuples itself: no wait for lagging stats
    sql('s8', 'ANALYZE omnibus_messages, omnibus_done');
    my $dead = sql('s8', "SELECT coalesce(sum(n_dead_tup), 0) $stat");
    cmp_ok($dead, '<', 100, "rotation: $dead dead tuples");

    # a message that stays unfinished (its shard paused) does not hold
    # the rotation: it is copied forward, and nothing is lost
    $t->http(POST => "/omnibus/shards/$_/pause") for 0 .. 3;
    my $held = publish($t, 'jobs.held', '{"held":1}')->{json}{id};
    my $gen = sql('s8', 'SELECT gen FROM omnibus_generation');
    ok(wait_until(sub {
           sql('s8', 'SELECT gen FROM omnibus_generation') >= $gen + 6
       }, timeout => 60), 'rotation: goes on past an unfinished message');
    is(sql('s8', "SELECT count(*) FROM omnibus_messages WHERE id = '$held'"),
       1, 'rotation: the unfinished message kept, once');
    $t->http(POST => "/omnibus/shards/$_/resume") for 0 .. 3;
    ok(wait_until(sub { +{ delivered($rx) }->{$held} }, timeout => 30),
       'rotation: delivered once its shard resumed');
    ok(wait_until(sub { $rows->() == 0 }, timeout => 60),
       'rotation: then truncated like the rest');
    $t->check_log;
}

done_testing;
