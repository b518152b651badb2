# omnibus_redis and omnibus_store together: pods ("nodes") that share a
# PostgreSQL database and a redis-server. The store's singleton work, the
# adoption of a silent node's rows, runs only in the pod whose worker
# holds the Redis cluster lock: a dead pod's unfinished rows go to the
# holder, not to the other live pod; while a foreign owner has the lock's
# key nobody adopts, and the pod that takes the lock next does; a holder
# that finds the key taken stops holding. With Redis gone the lock is
# unknown everywhere and adoption goes on, PostgreSQL choosing one adopter
# per row: every message delivered once. (The rotation of generations is
# singleton work too, but nothing tells which pod ran it: not checked.)
#
# One database and one redis-server for the whole file: the scenarios
# follow each other with the pods that are left.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);
use lib 't/lib';
use Omnibus::Test;
use Omnibus::Receiver;
use Omnibus::Pg;
use Omnibus::Redis;
use Omnibus::Store;

my $pg = store_pg();
Omnibus::Redis::require_tools();

my $redis = Omnibus::Redis->new;
my $DB = 'r1';
my $KEY = 'omnibus:bus:lock';

# adopt_after=3s and a 1 s breaker, as t/71: a silent node is adopted
# within seconds (each worker 0 looks every 5 s)
my $STORE = 'mode=sync adopt_after=3s breaker=5:1s:1';
my $REDIS = 'lock=1s breaker=3:1s:1';

# a pod: Omnibus::Store's bus() (zone "bus" stored in $DB, a webhook
# receiver on port 1), with zone "bus" on the redis-server too. Any pod
# may be killed: a worker's signal 9, if anyone logs it, is what the test
# does.
# (%o: db, store and redis parameters other than the file's)
sub pod {
    my ($node, %o) = @_;
    my ($t, $rx) = bus(db => $o{db} // $DB, node => $node,
                       store => $o{store} // $STORE,
                       allow => [qr/exited on signal 9/],
                       extra => 'omnibus_redis bus ' . $redis->url . ' '
                                . ($o{redis} // $REDIS) . ';');
    return { t => $t, rx => $rx, node => $node };
}

sub in_list { return join ',', map { "'$_'" } @_ }

# the pod's "redis" status: lock held, elsewhere or unknown
sub lock_of {
    my ($p) = @_;
    my $r = $p->{t}->http(GET => '/omnibus/');
    return ($r && $r->{json} && $r->{json}{redis}
            && $r->{json}{redis}{lock}) // 'none';
}

sub locks { join ' ', map { "$_->{node}=" . lock_of($_) } @_ }

# a message_bus_<family>{zone="bus"[,<labels>]} sample, undef if none
sub metric {
    my ($p, $family, $labels) = @_;
    my $r = $p->{t}->http(GET => '/metrics') or return undef;
    $labels = defined $labels ? ",$labels" : '';
    my ($v) = $r->{body} =~ /^message_bus_\Q$family\E\{zone="bus"\Q$labels\E\}
                              \ (\d+)$/mx;
    return $v;
}

sub adopted { metric($_[0], 'store_adopted_total') // -1 }

sub acquired { metric($_[0], 'redis_lock_total', 'event="acquired"') // -1 }

sub lost { metric($_[0], 'redis_lock_total', 'event="lost"') // -1 }

sub node_row {
    my ($node) = @_;
    return sql($DB, "SELECT count(*) FROM omnibus_nodes WHERE node = '$node'");
}

# a node's messages, published with its shards paused: accepted (sync: the
# rows committed) and left unfinished, as a pod that dies holds them
sub held_messages {
    my ($p, $n, $name) = @_;
    ok(shards($p->{t}, 'pause'), "$name: $p->{node}'s shards paused");
    my @ids;
    for my $k (1 .. $n) {
        my $r = publish($p->{t}, 'jobs.k' . ($k % 7), qq({"n":$k}));
        push @ids, $r->{json}{id} if $r && $r->{status} == 202;
    }
    is(scalar @ids, $n, "$name: $n publishes accepted by $p->{node}");
    is_deeply([missing({ ids_in($DB, 'omnibus_messages', $p->{node}) },
                       @ids)], [], "$name: each 202 has its row under "
              . $p->{node});
    return @ids;
}

# the ids' rows under other nodes than the dead one, and done marks of
# the dead node's originals: both come in one transaction
sub adoption {
    my ($dead, @ids) = @_;
    my $in = in_list(@ids);
    return join ' ', @{(sql($DB, "SELECT (SELECT count(*) FROM "
        . "omnibus_messages WHERE id IN ($in) AND node <> '$dead'), "
        . "(SELECT count(DISTINCT id) FROM omnibus_done "
        . "WHERE id IN ($in) AND node = '$dead')"))[0]};
}

# ids with more than one row under live nodes
sub twice {
    my ($dead, @ids) = @_;
    my $in = in_list(@ids);
    return sql($DB, "SELECT count(*) FROM (SELECT id FROM omnibus_messages "
                    . "WHERE id IN ($in) AND node <> '$dead' GROUP BY id "
                    . "HAVING count(*) > 1) twice");
}

# the ids each node holds a row of
sub rows_by_node {
    my ($dead, @ids) = @_;
    my $in = in_list(@ids);
    return map { $_->[0] => $_->[1] }
           sql($DB, "SELECT node, count(*) FROM omnibus_messages WHERE "
                    . "id IN ($in) AND node <> '$dead' GROUP BY node");
}

sub adopt_lines {
    my ($p) = @_;
    return join ',', $p->{t}->error_log
        =~ /"bus": (\d+) message\(s\) of a silent node adopted/g;
}

# how many times each of the ids was answered 200, over all receivers
sub each_once {
    my ($ids, @pods) = @_;
    my $n = deliveries(map { $_->{rx} } @pods);
    return [grep { ($n->{$_} // 0) != 1 } @$ids];
}

my @all;

# 1. the holder adopts a dead pod's rows; the other live pod does not

my ($L, $D, $T);
my @ids1;
{
    my @p = map { pod("pod-$_") } qw(a b c);
    push @all, @p;
    ok(!grep({ !ready($_->{t}) } @p), 'adopt: three pods ready');
    ok(wait_until(sub { !grep { !node_row($_->{node}) } @p }, timeout => 20),
       'adopt: the three nodes beat');

    my $snap;
    ok(wait_until(sub {
           my @l = map { lock_of($_) } @p;
           $snap = \@l;
           (grep { $_ eq 'held' } @l) == 1
               && (grep { $_ eq 'elsewhere' } @l) == 2
       }, timeout => 30), 'adopt: one pod holds the lock, two know it is '
       . 'elsewhere') or diag(locks(@p));
    ($L) = map { $p[$_] } grep { $snap->[$_] eq 'held' } 0 .. 2;
    ($D, $T) = map { $p[$_] } grep { $snap->[$_] ne 'held' } 0 .. 2;
    note("holder $L->{node}, dying $D->{node}, other $T->{node}");
    is($redis->cmd('GET', $KEY), $L->{node}, 'adopt: the key names the holder');
    is(join(' ', map { metric($_, 'redis_lock_held') // '-' } $L, $D, $T),
       '1 0 0', 'adopt: redis_lock_held 1 on the holder only');

    # the live pods' shards paused: what they adopt stays unfinished, its
    # rows there to be counted; resumed once counted
    ok(shards($L->{t}, 'pause') && shards($T->{t}, 'pause'),
       'adopt: the live pods\' shards paused');

    @ids1 = held_messages($D, 40, 'adopt');
    is(adoption($D->{node}, @ids1), '0 0', 'adopt: nothing adopted yet');
    ok(crash($D->{t}), "adopt: $D->{node} killed, master and workers");

    ok(wait_until(sub { adoption($D->{node}, @ids1) eq '40 40' },
                  timeout => 60),
       'adopt: the 40 rows adopted, the originals marked done')
        or diag(adoption($D->{node}, @ids1), ' ', locks($L, $T));
    my %by = rows_by_node($D->{node}, @ids1);
    is_deeply(\%by, { $L->{node} => 40 },
              "adopt: all 40 rows under the holder $L->{node}")
        or diag(explain \%by);
    is(twice($D->{node}, @ids1), 0, 'adopt: no message adopted twice');
    is(join(' ', adopted($L), adopted($T)), '40 0',
       'adopt: store_adopted_total 40 on the holder, 0 on the other');
    is(adopt_lines($L), '40', 'adopt: the holder logs the adoption');
    is(adopt_lines($T), '', 'adopt: the other logs none');

    # the holder held the lock all along: acquired once, never lost
    is(lock_of($L), 'held', 'adopt: the holder still holds the lock');
    is(join(' ', acquired($L), lost($L), acquired($T)), '1 0 0',
       'adopt: the holder acquired it once and never lost it; the other '
       . 'never acquired it');

    ok(shards($L->{t}, 'resume') && shards($T->{t}, 'resume'),
       'adopt: the live pods\' shards resumed');
    ok(wait_until(sub { !missing({ delivered($L->{rx}) }, @ids1) },
                  timeout => 60), 'adopt: the holder delivered all 40')
        or diag(scalar(missing({ delivered($L->{rx}) }, @ids1)) . ' missing');
    ok(wait_until(sub { node_row($D->{node}) == 0 }, timeout => 30),
       'adopt: the silent node left omnibus_nodes');
    ok(wait_until(sub { settled($L->{t}) && settled($T->{t}) }, timeout => 30),
       'adopt: the live pods settled');
    is_deeply(each_once(\@ids1, $L, $D, $T), [],
              'adopt: each message delivered exactly once');
    is(scalar($T->{rx}->requests), 0, 'adopt: the other pod delivered nothing');
    is(scalar($D->{rx}->requests), 0, 'adopt: the dead pod delivered nothing');
}

# 2. someone else has the key: the holder stops holding

{
    $redis->cmd('SET', $KEY, 'intruder', 'PX', 3000);
    ok(wait_until(sub { lock_of($L) ne 'held' }, timeout => 10),
       'taken: the holder finds the key taken, and no longer holds it');
    is(lock_of($L), 'elsewhere', 'taken: its status says elsewhere');
    is(lost($L), 1, 'taken: lock_total{event="lost"} 1');
    is(metric($L, 'redis_lock_held'), 0, 'taken: redis_lock_held 0');
    like($L->{t}->error_log,
         qr/\[warn\]\ .*omnibus_redis\ "bus":\ the\ cluster\ lock\ is\ no
            \ longer\ node\ "$L->{node}"'s/x, 'taken: and logs it');

    # statuses read first, then the key: a sample counts when the
    # intruder's key was still there after it, so all along
    my ($samples, $held) = (0, '');
    ok(wait_until(sub {
           my $s = locks($L, $T);
           my $v = $redis->cmd('GET', $KEY) // '';
           if ($v eq 'intruder') {
               $samples++;
               $held .= " [$s]" if $s =~ /=held/;
           }
           $v ne 'intruder'
       }, timeout => 20, interval => 0.1), 'taken: the intruder\'s key expires');
    is($held, '', "taken: nobody held the lock meanwhile ($samples samples)");
    ok(wait_until(sub { locks($L, $T) =~ /=held.*=elsewhere|=elsewhere.*=held/ },
                  timeout => 20), 'taken: one pod holds it again')
        or diag(locks($L, $T));
}

# 3. while a foreign owner has the key, no pod adopts; the next holder does

my ($H, $O);
{
    my $F = pod('pod-f');
    push @all, $F;
    ok(ready($F->{t}), 'gate: pod-f ready');
    ok(wait_until(sub { lock_of($F) eq 'elsewhere' && node_row('pod-f') },
                  timeout => 30), 'gate: pod-f beats, the lock elsewhere')
        or diag(locks($F));

    ok(shards($L->{t}, 'pause') && shards($T->{t}, 'pause'),
       'gate: the live pods\' shards paused');
    my @ids = held_messages($F, 30, 'gate');

    # the key taken for good (until deleted below)
    $redis->cmd('SET', $KEY, 'intruder', 'PX', 600000);
    ok(wait_until(sub { locks($L, $T, $F) !~ /=(?!elsewhere)/ },
                  timeout => 20), 'gate: every pod says the lock is '
       . 'elsewhere') or diag(locks($L, $T, $F));
    my %before = map { $_->{node} => adopted($_) } $L, $T;

    ok(crash($F->{t}), 'gate: pod-f killed, master and workers');

    # silent for adopt_after (3 s) plus two looks of every worker 0 (one
    # each 5 s, on a 1 s tick): any pod free to adopt would have by then
    # (an adoption ends the wait at once: the silent node's name goes)
    my $seen;
    wait_until(sub {
        $seen = sql($DB, "SELECT count(*) FROM omnibus_nodes WHERE node = "
                         . "'pod-f' AND now() - seen >= interval '16 seconds'")
                ? 'silent for 16 s'
                : adoption('pod-f', @ids) ne '0 0' ? 'adopted' : 'waiting';
        $seen ne 'waiting'
    }, timeout => 60);
    is($seen, 'silent for 16 s', 'gate: pod-f silent for 16 s, not adopted');
    is(adoption('pod-f', @ids), '0 0', 'gate: nothing adopted meanwhile');
    is(join(' ', adopted($L), adopted($T)),
       join(' ', @before{$L->{node}, $T->{node}}),
       'gate: store_adopted_total unchanged on both pods');
    is($redis->cmd('GET', $KEY), 'intruder', 'gate: the intruder held the key '
       . 'all along');
    is(locks($L, $T), "$L->{node}=elsewhere $T->{node}=elsewhere",
       'gate: and both pods knew');

    # the key goes: one pod takes the lock, and adopts
    $redis->cmd('DEL', $KEY);
    my $snap;
    ok(wait_until(sub {
           $snap = locks($L, $T);
           $snap =~ /=held.*=elsewhere|=elsewhere.*=held/
       }, timeout => 20), 'gate: one pod takes the lock') or diag($snap);
    ($H, $O) = $snap =~ /^\Q$L->{node}\E=held/ ? ($L, $T) : ($T, $L);
    note("holder now $H->{node}");

    ok(wait_until(sub { adoption('pod-f', @ids) eq '30 30' }, timeout => 60),
       'gate: the 30 rows adopted, the originals marked done')
        or diag(adoption('pod-f', @ids), ' ', locks($L, $T));
    my %by = rows_by_node('pod-f', @ids);
    is_deeply(\%by, { $H->{node} => 30 },
              "gate: all 30 rows under the new holder $H->{node}")
        or diag(explain \%by);
    is(join(' ', adopted($H) - $before{$H->{node}},
                 adopted($O) - $before{$O->{node}}), '30 0',
       'gate: store_adopted_total +30 on the holder, +0 on the other');
    is(lock_of($H), 'held', 'gate: the holder still holds the lock');

    ok(shards($L->{t}, 'resume') && shards($T->{t}, 'resume'),
       'gate: the live pods\' shards resumed');
    ok(wait_until(sub { !missing({ delivered($H->{rx}) }, @ids) },
                  timeout => 60), 'gate: the holder delivered all 30');
    ok(wait_until(sub { node_row('pod-f') == 0 }, timeout => 30),
       'gate: the silent node left omnibus_nodes');
    ok(wait_until(sub { settled($L->{t}) && settled($T->{t}) }, timeout => 30),
       'gate: the live pods settled');
    is_deeply(each_once(\@ids, @all), [],
              'gate: each message delivered exactly once');
    is(scalar($F->{rx}->requests), 0, 'gate: the dead pod delivered nothing');
}

# 4. Redis gone: the lock unknown everywhere, adoption goes on, one
# adopter per row (PostgreSQL's row locks)

{
    my $E = pod('pod-e');
    push @all, $E;
    ok(ready($E->{t}), 'no redis: pod-e ready');
    ok(wait_until(sub { lock_of($E) eq 'elsewhere' && node_row('pod-e') },
                  timeout => 30), 'no redis: pod-e beats, the lock elsewhere')
        or diag(locks($E));

    # the holder is the one that dies; the two others race for its rows
    ok(shards($O->{t}, 'pause') && shards($E->{t}, 'pause'),
       'no redis: the live pods\' shards paused');
    my @ids = held_messages($H, 30, 'no redis');

    $redis->kill9;
    ok(wait_until(sub { locks($H, $O, $E) !~ /=(?!unknown)/ }, timeout => 30),
       'no redis: every pod says the lock is unknown')
        or diag(locks($H, $O, $E));
    my $before = adopted($O) + adopted($E);

    ok(crash($H->{t}), "no redis: $H->{node} killed, master and workers");
    ok(wait_until(sub { adoption($H->{node}, @ids) eq '30 30' },
                  timeout => 60),
       'no redis: the 30 rows adopted, the originals marked done')
        or diag(adoption($H->{node}, @ids), ' ', locks($O, $E));
    is(twice($H->{node}, @ids), 0, 'no redis: no message adopted twice');
    my %by = rows_by_node($H->{node}, @ids);
    is_deeply([grep { $_ ne $O->{node} && $_ ne $E->{node} } keys %by], [],
              'no redis: the rows under the live pods')
        or diag(explain \%by);
    note('adopted: ' . join ', ', map { "$_ $by{$_}" } sort keys %by);
    is(adopted($O) + adopted($E) - $before, 30,
       'no redis: store_adopted_total grew by 30 over the live pods');

    ok(shards($O->{t}, 'resume') && shards($E->{t}, 'resume'),
       'no redis: the live pods\' shards resumed');
    ok(wait_until(sub {
           !missing({ delivered($O->{rx}), delivered($E->{rx}) }, @ids)
       }, timeout => 60), 'no redis: all 30 delivered');
    ok(wait_until(sub { node_row($H->{node}) == 0 }, timeout => 30),
       'no redis: the silent node left omnibus_nodes');
    ok(wait_until(sub { settled($O->{t}) && settled($E->{t}) }, timeout => 30),
       'no redis: the live pods settled');
    is_deeply(each_once(\@ids, @all), [],
              'no redis: each message delivered exactly once');
    is_deeply(each_once(\@ids1, @all), [],
              'no redis: and the first 40 still once each');
}

# the earlier pods stopped (and their logs checked) before the last
# scenario, which has a database of its own
$_->{t}->check_log for @all;

# 5. regression: an async store and Redis dedup, PostgreSQL down. A
# claimed message (an idempotency key, claimed in Redis) was handed to the
# async store as if sync, held for its commit: with PostgreSQL down the
# publish got no answer and its shard stopped. Now each is answered 202
# at once, delivered from memory, and its row written behind.

{
    $redis->start unless $redis->alive;       # killed in scenario 4
    my $P = pod('pod-r5', db => 'r5',
                store => 'mode=async adopt_after=3s breaker=3:1s:1',
                redis => "$REDIS dedup=on");
    ok(ready($P->{t}), 'async dedup: pod-r5 ready');
    ok(wait_until(sub { lock_of($P) eq 'held' }, timeout => 30),
       'async dedup: Redis up, pod-r5 holds the lock') or diag(locks($P));

    $pg->stop;
    my $run = "$$-" . int(time * 1000);
    my (@ids, @bad);
    for my $k (1 .. 20) {
        my $t0 = time;
        my $r = $P->{t}->http(POST => "/publish/jobs.r$k",
                              body => qq({"n":$k}), timeout => 10,
                              headers => { 'Idempotency-Key' => "r5-$run-$k" });
        my $dt = time - $t0;
        if ($r && $r->{status} == 202 && $r->{json} && $r->{json}{id}) {
            push @ids, $r->{json}{id};
        } else {
            push @bad, "$k: " . ($r ? $r->{status} : 'no answer')
                       . sprintf(' after %.1f s', $dt);
        }
    }
    is(scalar @ids, 20, 'async dedup: 20 keyed publishes answered 202, '
       . 'PostgreSQL down') or diag(join '; ', @bad);
    my $st = $P->{t}->http(GET => '/omnibus/');
    my $rs = ($st && $st->{json} && $st->{json}{redis}) || {};
    is(join(' ', $rs->{claimed} // '-', $rs->{fallbacks}{dedup} // '-'),
       '20 0', 'async dedup: the 20 keys claimed in Redis, no fallback');

    my $d = $P->{t}->http(POST => '/publish/jobs.r7', body => '{"n":7}',
                          timeout => 10,
                          headers => { 'Idempotency-Key' => "r5-$run-7" });
    is($d && $d->{status}, 200, 'async dedup: a repeated key answered 200');
    ok($d && $d->{json} && $d->{json}{duplicate},
       'async dedup: marked duplicate');
    is($d && $d->{json} && $d->{json}{id}, $ids[6],
       'async dedup: with the first id');

    ok(wait_until(sub { !missing({ delivered($P->{rx}) }, @ids) },
                  timeout => 30), 'async dedup: all 20 delivered from memory')
        or diag(scalar(missing({ delivered($P->{rx}) }, @ids)) . ' missing');
    cmp_ok(metric($P, 'store_backlog') // -1, '>', 0,
           'async dedup: a backlog while PostgreSQL is down');

    $pg->start;
    ok(wait_until(sub { (metric($P, 'store_backlog') // -1) == 0 },
                  timeout => 60),
       'async dedup: store_backlog 0 once PostgreSQL is back')
        or diag('backlog ' . (metric($P, 'store_backlog') // 'none'));
    is_deeply([missing({ ids_in('r5', 'omnibus_messages', 'pod-r5') },
                       @ids)], [], 'async dedup: every 202 has its row');
    ok(wait_until(sub { settled($P->{t}) }, timeout => 30),
       'async dedup: pod-r5 settled');
    is_deeply(each_once(\@ids, $P), [],
              'async dedup: each message delivered exactly once');
    $P->{t}->check_log;
}

# 6. A pod that dies between its claim in Redis and its commit leaves no
# claim that answers for a message never stored. With mode=sync the claim
# is provisional ("~" and the id) until the commit: meanwhile another pod
# answers the key 503 duplicate_pending, and once the claim has lapsed
# (the store's longest wait and a second) it accepts the retry. The row
# of k2 never reaches PostgreSQL: it waits in the worker behind k1's
# transaction, which a lock held here keeps from committing. (Before,
# the other pod answered 200 duplicate with the dead pod's id, and the
# message was never delivered.)
{
    my $store = 'mode=sync pool=1 overflow=0 timeout=3s adopt_after=3s '
                . 'breaker=5:1s:1';
    my @p = map {
        my ($t, $rx) = bus(db => 'r6', node => $_, store => $store,
                           allow => [qr/exited on signal 9/],
                           extra => 'omnibus_redis bus ' . $redis->url
                                    . " $REDIS dedup=on;\n"
                                    . 'add_header X-Worker $pid always;');
        { t => $t, rx => $rx, node => $_ }
    } qw(pod-r6a pod-r6b);
    my ($A, $B) = @p;
    ok(ready($_->{t}), "claim lapses: $_->{node} ready") for @p;
    $redis->cmd('FLUSHALL');

    # two connections to the same worker of pod-r6a
    my (%on, @same);
    for (1 .. 40) {
        my $c = $A->{t}->conn;
        my $r = $c->request(GET => '/readyz', keepalive => 1);
        my $w = $r && $r->{headers}{'x-worker'} or next;
        push @{$on{$w}}, $c;
        if (@{$on{$w}} == 2) { @same = @{$on{$w}}; last }
    }
    is(scalar @same, 2, 'claim lapses: two connections to one worker');

    open my $lock, '|-', "$Omnibus::Pg::BIN/psql", '-X', '-q', '-h',
         $pg->dir, '-p', $pg->port, '-U', 'postgres', '-d', 'r6'
        or die "psql: $!";
    $lock->autoflush(1);
    print $lock "BEGIN;\nLOCK TABLE omnibus_messages IN ACCESS EXCLUSIVE "
                . "MODE;\n";
    ok(wait_until(sub { sql('r6', "SELECT count(*) FROM pg_locks WHERE "
                          . "mode = 'AccessExclusiveLock' AND relation = "
                          . "'omnibus_messages'::regclass") == 1 }),
       'claim lapses: omnibus_messages locked');

    my $run = "$$-" . int(time * 1000);
    my $claims = sub {
        my @v = map { $redis->cmd('GET', $_) // '' }
                $redis->keys('omnibus:bus:d:*');
        return (scalar(@v), scalar(grep { /^~/ } @v));
    };
    for my $k (1, 2) {
        my $body = qq({"k":$k});
        $same[$k - 1]->send_raw("POST /publish/jobs.r6 HTTP/1.1\r\n"
            . "Host: x\r\nIdempotency-Key: r6-$run-$k\r\n"
            . 'Content-Length: ' . length($body) . "\r\n\r\n$body");
        ok(wait_until(sub { ($claims->())[1] == $k }),
           "claim lapses: k$k claimed provisionally")
            or diag(join ' ', $claims->());
    }

    crash($A->{t});
    print $lock "COMMIT;\n";
    close $lock;

    my $r = $B->{t}->http(POST => '/publish/jobs.r6', body => '{"k":2}',
                          headers => { 'Idempotency-Key' => "r6-$run-2" });
    is($r && $r->{status}, 503, 'claim lapses: pod-r6b answers k2 503 '
       . 'while the claim stands');
    is($r && $r->{json} && $r->{json}{error}, 'duplicate_pending',
       'claim lapses: duplicate_pending');
    ok($r && $r->{headers}{'retry-after'}, 'claim lapses: with Retry-After');

    my $id;
    ok(wait_until(sub {
        my $r = $B->{t}->http(POST => '/publish/jobs.r6', body => '{"k":2}',
                              headers => { 'Idempotency-Key' => "r6-$run-2" });
        $id = $r->{json}{id} if $r && $r->{status} == 202;
        $id;
    }, timeout => 40, interval => 0.5),
       'claim lapses: the retry of k2 accepted by pod-r6b');
    ok(wait_until(sub { +{ delivered($B->{rx}) }->{$id // ''} },
                  timeout => 20),
       'claim lapses: and delivered');
    my %v = map { ($redis->cmd('GET', $_) // '') => 1 }
            $redis->keys('omnibus:bus:d:*');
    ok($v{$id // ''}, 'claim lapses: the key confirmed with the new id');
    my $st = $B->{t}->http(GET => '/omnibus/');
    cmp_ok($st->{json}{redis}{pending} // 0, '>=', 1,
           'claim lapses: counted as pending');
    $_->{t}->check_log for @p;
}

done_testing;
