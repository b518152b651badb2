# omnibus_redis fanout=on: one bus across pods. Several nginx instances
# ("pods", each its own omnibus_node) share one real redis-server; what a
# pod dispatches is relayed through the stream omnibus:bus:stream and put
# into the retain rings of every other pod that has a subscribe location,
# under its original id. Proven here, each with real SSE/long-poll clients
# and exact id sets (missing 0, duplicates 0), never with timing limits:
#
#   1. three pods, 300 messages published on two of them: every subscriber
#      of every pod gets each message of its pattern exactly once, local
#      and remote alike, in per-shard order (per "<instance>-<shard>" id
#      prefix the sequence numbers increase); the relay counters add up
#      (sent = published, received = the others' messages, nothing
#      skipped or dropped, XLEN = what was sent); a pod without a subscribe
#      location reads nothing; a pod started later begins at the stream's
#      tip (older entries are not replayed) and gets what comes after.
#   2. resuming on another pod: a client that took the first k events on
#      B reconnects to C with Last-Event-ID = the k-th (a message of A) and
#      gets exactly the rest; ?after= on long-poll answers the same, on C
#      and on B. 2b does it again where C's own messages entered C's rings
#      ahead of A's older ones (A's relays held up by a short Redis stall):
#      the ring order of a pod is not the order of the other pods.
#   3. Redis killed (kill -9, AOF on) in the middle of a steady publish on
#      two pods, then started again: every publish 202, fan-out on each pod
#      goes on locally, the relays wait in the outbox and are sent after the
#      reconnect; every subscriber on B and C ends with each message of its
#      pattern exactly once; fallbacks{feature="fanout"} counted; the stream
#      holds every accepted message and the counters explain every entry.
#  3b. Redis back but asleep (DEBUG SLEEP right after its start) when the
#      pods reconnect, while A publishes: once it answers, every worker's
#      connection is up again (backend_up, status "up", its log line) and
#      a publish is no longer counted as a fallback.
#   4. Redis stalled (DEBUG SLEEP 3) under timeout=300ms breaker=2:1s:1:
#      publishes keep 202, timeouts counted, the breaker seen open, and
#      closed again once Redis answers; nothing published in the stall is
#      missed or doubled.
#   5. the reader's worker of a subscriber pod stopped, then killed -9 (the
#      master respawns it): the new reader goes on from the last stream
#      entry kept in shared memory, not from the tip, so what A published
#      meanwhile reaches B's subscribers; those on the surviving worker
#      miss nothing, those on the killed one resume with Last-Event-ID.
#   6. the reader respawned between two copies of the same relays (A's
#      XADDs of a connection dropped for its timeout run when Redis wakes;
#      A sends them again once its breaker lets it): the new reader skips
#      the copies, subscribers get each message once.
#
# Every scenario has its own redis-server and its own pods.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);
use lib 't/lib';
use Omnibus::Test;
use Omnibus::Sse;
use Omnibus::Redis;
use JSON::PP;

Omnibus::Redis::require_tools();

my $STREAM = 'omnibus:bus:stream';
my @TOPICS = qw(fan.eu.orders fan.us.orders fan.eu.users fan.us.users
                fan.ap.audit fan.eu.audit);
my $ID = qr/^([0-9a-f]{20}-[0-9a-f]{4})-([0-9a-f]{10})$/;

sub wait_until { Omnibus::Test::wait_until(@_) }

# a pod: its own nginx, node name, 2 workers, shards=4, one Redis
sub pod {
    my (%o) = @_;
    my $t = Omnibus::Test->new(ports => 1, allow => $o{allow} || []);
    my $sub = ($o{sub} // 1)
              ? 'location /sub/ { omnibus_subscribe bus buffer=64m; }' : '';
    my $conf = <<'EOF';
    omnibus_node NODE;
    omnibus_zone zone=bus:64m shards=4 min_shards=2 retain=20000
                 queue_size=100000;
    omnibus_redis bus URL dedup=off rate_limit=off fanout=on PARAMS;

    server {
        listen 127.0.0.1:%%PORT0%% reuseport;
        keepalive_requests 100000;
        add_header X-Worker $pid always;

        location /publish/ { omnibus_publish bus; }
        SUB
        location /omnibus/ { omnibus_admin bus; }
        location = /metrics { omnibus_metrics; }
    }
EOF
    my $url = $o{redis}->url;
    my $params = $o{params} // '';
    $conf =~ s/NODE/$o{name}/;
    $conf =~ s/URL/$url/;
    $conf =~ s/PARAMS/$params/;
    $conf =~ s/SUB/$sub/;
    $t->conf($conf);

    my ($ok, $out) = $t->test_conf;
    plan skip_all => 'the module is built without Redis' if !$ok
        && $out =~ /unknown directive "omnibus_redis"/;
    $t->start;
    $t->{name} = $o{name};
    $t->{reads} = $o{sub} // 1;
    return $t;
}

sub status { my $r = $_[0]->http(GET => '/omnibus/'); $r && $r->{json} }
sub js { JSON::PP->new->canonical->encode($_[0] // {}) }
sub redis_status { my $s = status($_[0]); $s && $s->{redis} }

# a sample of message_bus_FAMILY{zone="bus",LABEL}, undef if none
sub sample {
    my ($t, $family, $label) = @_;
    my $r = $t->http(GET => '/metrics') or return undef;
    my $l = defined $label ? ",$label" : '';
    my ($v) = $r->{body} =~ /^message_bus_\Q$family\E\{zone="bus"\Q$l\E\}
                             \ (\d+)$/mx;
    return $v;
}

sub relay { sample($_[0], 'redis_relay_total', qq{outcome="$_[1]"}) // -1 }
sub errors { sample($_[0], 'redis_errors_total', qq{reason="$_[1]"}) // -1 }
sub fallbacks {
    sample($_[0], 'redis_fallbacks_total', qq{feature="$_[1]"}) // -1
}
sub backend {
    sample($_[0], "backend_$_[1]", 'backend="redis"') // -1
}

# the pod is connected and, if it reads the stream, knows where from
sub ready {
    my ($t) = @_;
    return wait_until(sub {
        my $s = redis_status($t) or return 0;
        $s->{up} && (!$t->{reads} || $s->{stream_last} ne '');
    }, timeout => 30);
}

# one publish; the id is recorded with its pod and topic
my %MSG;
sub publish {
    my ($t, $topic, $n) = @_;
    my $r = $t->http(POST => "/publish/$topic",
                     body => qq({"n":$n,"pod":"$t->{name}"}));
    my $status = $r ? $r->{status} : 'none';
    my $id = $r && $r->{json} ? $r->{json}{id} : undef;
    $MSG{$id} = { pod => $t->{name}, topic => $topic, n => $n }
        if $status eq '202' && defined $id;
    return ($status, $id);
}

# a topic pattern: "*" one token, a final ">" one or more
sub matches {
    my ($pattern, $topic) = @_;
    my @re = map { $_ eq '*' ? '[^.]+' : $_ eq '>' ? '.+' : quotemeta }
             split /\./, $pattern;
    my $re = join '\.', @re;
    return $topic =~ /^$re$/;
}

sub sse {
    my ($t, $pattern, %o) = @_;
    my $s = Omnibus::Sse->new($t->port, "/sub/$pattern", %o);
    wait_until(sub { $s->pump(0); defined $s->{head} }, timeout => 10)
        or BAIL_OUT("no SSE answer from $t->{name}");
    $s->{pattern} = $pattern;
    return $s;
}

# streams on both workers of a pod
sub sse_spread {
    my ($t, $pattern, $min) = @_;
    my @s = Omnibus::Sse->spread($t->port, "/sub/$pattern", $min);
    $_->{pattern} = $pattern for @s;
    return @s;
}

sub pump { $_->pump(0) for @_ }

# missing, duplicated and unexpected ids of a stream against what it
# should have (a list of ids)
sub compare {
    my ($got, $want) = @_;
    my (%n, %w);
    $n{$_}++ for @$got;
    $w{$_} = 1 for @$want;
    return ([grep { !$n{$_} } @$want],
            [sort grep { $n{$_} > 1 } keys %n],
            [sort grep { !$w{$_} } keys %n]);
}

# ids whose sequence number does not increase within their id prefix
sub disorder {
    my (%last, @bad);
    for my $id (@_) {
        my ($p, $seq) = $id =~ $ID or do { push @bad, "malformed $id"; next };
        push @bad, "$id after $p-$last{$p}"
            if defined $last{$p} && hex $seq <= hex $last{$p};
        $last{$p} = $seq;
    }
    return @bad;
}

sub brief {
    my (@ids) = @_;
    my $n = @ids;
    return "$n: " . join(' ', map { $_ . ($MSG{$_} ? "($MSG{$_}{pod} "
                                    . "$MSG{$_}{topic})" : '') }
                                @ids[0 .. ($n > 8 ? 7 : $n - 1)])
           . ($n > 8 ? ' ...' : '');
}

# exactly $want, once each, in per-shard order
sub exactly {
    my ($got, $want, $name) = @_;
    my ($missing, $dups, $extra) = compare($got, $want);
    is(scalar @$missing, 0, "$name: none missing")
        or diag('missing ' . brief(@$missing));
    is(scalar @$dups, 0, "$name: none twice")
        or diag('twice ' . brief(@$dups));
    is(scalar @$extra, 0, "$name: nothing else")
        or diag('unexpected ' . brief(@$extra));
    my @bad = disorder(@$got);
    is(scalar @bad, 0, "$name: in per-shard order")
        or diag(join "\n", @bad[0 .. ($#bad > 9 ? 9 : $#bad)]);
}

sub wanted {
    my ($pattern, @ids) = @_;
    return grep { matches($pattern, $MSG{$_}{topic}) } @ids;
}

# until every stream has at least what it should have (then a little
# more pumping, for late duplicates)
sub collect {
    my ($want, @subs) = @_;
    my $timeout = ref $subs[-1] ? 60 : pop @subs;
    my $ok = wait_until(sub {
        pump(@subs);
        for my $s (@subs) {
            my %have = map { $_ => 1 } $s->ids;
            return 0 if grep { !$have{$_} } @{$want->{$s}};
        }
        1;
    }, timeout => $timeout, interval => 0.02);
    for (1 .. 5) { pump(@subs); sleep 0.1 }
    return $ok;
}

# the stream as Redis has it: its id (sid) and fields (n node, o sender,
# s sequence, i message id, t topic, ...) of each entry
sub stream_entries {
    my ($r) = @_;
    my @e;
    for my $x (@{ $r->cmd('XRANGE', $STREAM, '-', '+') }) {
        my %f = @{$x->[1]};
        push @e, { sid => $x->[0], %f };
    }
    return @e;
}

# the live worker (not $not) that last connected the pod's stream reader
sub worker0 {
    my ($t, $not) = @_;
    my @pids = $t->error_log =~ /\[info\]\ (\d+)\#\d+:\ omnibus_redis\ "bus":
                                 \ connected\ to\ \S+\ \(stream\)/gx;
    @pids = grep { $_ != ($not // 0) && Omnibus::Test::alive($_) } @pids;
    return $pids[-1];
}


# 1. three pods, every message to every subscriber once, in order

my ($ta, $tb, $tc);

sub fanout_and_resume {
    my $r = Omnibus::Redis->new;
    $ta = pod(name => 'pod-a', redis => $r, sub => 0);
    $tb = pod(name => 'pod-b', redis => $r);
    $tc = pod(name => 'pod-c', redis => $r);
    ok(ready($ta) && ready($tb) && ready($tc),
       'fanout: three pods connected, B and C know where to read from');

    my $s = redis_status($tb);
    is_deeply([sort keys %$s],
              [sort qw(up breaker lock claimed duplicates pending rate_limited
                       relayed relay_dropped received skipped fallbacks
                       stream_last)], 'fanout: the status fields of "redis"');
    is_deeply([sort keys %{$s->{fallbacks}}], [qw(dedup fanout rate_limit)],
              'fanout: fallbacks by feature');
    is(redis_status($ta)->{stream_last}, '',
       'fanout: A has no subscribe location and reads nothing');

    my @b = sse_spread($tb, 'fan.>', 2);
    my @c = sse_spread($tc, 'fan.eu.*', 2);
    my %w = map { $_->worker => 1 } @b;
    is(scalar keys %w, 2, 'fanout: B\'s streams on both workers');
    %w = map { $_->worker => 1 } @c;
    is(scalar keys %w, 2, 'fanout: C\'s streams on both workers');

    my (%status, @ids, %by);
    for my $i (1 .. 300) {
        my $pod = $i % 3 ? $ta : $tc;
        my ($st, $id) = publish($pod, $TOPICS[$i % @TOPICS], $i);
        $status{$st}++;
        if (defined $id) { push @ids, $id; push @{$by{$pod->{name}}}, $id }
        pump(@b, @c) unless $i % 10;
    }
    is($status{202} // 0, 300, 'fanout: 300 publishes accepted (200 on A, '
       . '100 on C)') or diag(explain \%status);

    my %want = map { $_ => [wanted($_->{pattern}, @ids)] } @b, @c;
    ok(collect(\%want, @b, @c), 'fanout: every stream got its messages');
    for my $x (@b) {
        exactly([$x->ids], $want{$x}, 'B fan.> (worker ' . $x->worker . ')');
    }
    for my $x (@c) {
        exactly([$x->ids], $want{$x}, 'C fan.eu.* (worker ' . $x->worker
                . ')');
    }
    my @local = grep { $MSG{$_}{pod} eq 'pod-c' } @{$want{$c[0]}};
    ok(@local && @local < @{$want{$c[0]}},
       'fanout: C\'s streams had local (' . @local . ') and remote ('
       . (@{$want{$c[0]}} - @local) . ') messages');

    # Invariant: what a pod dispatched is sent once (XADD confirmed); each
    # reader takes every entry of the others exactly once; nothing resent
    # here, so nothing skipped, and the stream holds what was sent.
    ok(wait_until(sub { relay($ta, 'sent') == 200 && relay($tc, 'sent') == 100
                        && relay($tb, 'received') == 300
                        && relay($tc, 'received') == 200 }, timeout => 30),
       'fanout: sent A 200, C 100; received B 300 (A + C), C 200 (A)')
        or diag(join ', ', map { my $t = $_; "$t->{name}: " . join ' ',
                                 map { "$_=" . relay($t, $_) }
                                 qw(sent received skipped dropped) }
                           $ta, $tb, $tc);
    is(relay($tb, 'sent'), 0, 'fanout: B sent nothing');
    is(relay($ta, 'received'), 0, 'fanout: A received nothing (no reader)');
    is(join(' ', map { relay($_, 'skipped'), relay($_, 'dropped') }
                 $ta, $tb, $tc), '0 0 0 0 0 0',
       'fanout: nothing skipped, nothing dropped');
    is(join(' ', map { fallbacks($_, 'fanout') } $ta, $tb, $tc), '0 0 0',
       'fanout: no fallbacks');
    is(join(' ', map { my $t = $_; map { errors($t, $_) }
                       qw(connect timeout auth reply) } $ta, $tc),
       '0 0 0 0 0 0 0 0', 'fanout: no Redis errors');
    is($r->cmd('XLEN', $STREAM), 300, 'fanout: the stream has the 300');
    is(join(' ', map { backend($_, 'up'), backend($_, 'breaker_state') }
                 $ta, $tb, $tc), '1 0 1 0 1 0',
       'fanout: backend_up 1, breaker closed, on every pod');
    my $tip = $r->cmd('XREVRANGE', $STREAM, '+', '-', 'COUNT', 1)->[0][0];
    ok(wait_until(sub { redis_status($tb)->{stream_last} eq $tip
                        && redis_status($tc)->{stream_last} eq $tip }),
       "fanout: B and C read up to the tip ($tip)");
    is(redis_status($tb)->{received}, 300, 'fanout: status received = the '
       . 'metric');

    # a pod that never read the stream starts at its tip
    my $td = pod(name => 'pod-d', redis => $r);
    ok(ready($td), 'tip: a fourth pod connected');
    is(redis_status($td)->{stream_last}, $tip,
       'tip: it starts at the stream\'s tip');
    my $d = sse($td, 'fan.>');
    my ($st, $late) = publish($ta, 'fan.us.orders', 301);
    ok(wait_until(sub { $d->pump(0); $d->ids >= 1 }, timeout => 20),
       'tip: a message published after reaches its subscriber');
    $d->pump(0.3);
    is_deeply([$d->ids], [$late], 'tip: that one only, none of the 300');
    is(relay($td, 'received'), 1, 'tip: received 1');
    close $d->sock;
    $td->check_log;

    close $_->sock for @b, @c;

    # 2. resume on another pod. Across shards a resume goes by the time a
    # message was published (ms): the publishes are 3 ms apart, so that no
    # two share a millisecond. (Ties are a matter of their own, on one pod
    # as well: ?after= then also returns the other shards' messages of
    # that millisecond, some of which the client had.)

    my $p = 'fan.eu.*';
    my $first = sse($tb, $p);
    my @batch1;
    for my $i (1 .. 60) {
        my $pod = $i % 2 ? $ta : $tc;
        my (undef, $id) = publish($pod, $TOPICS[$i % @TOPICS], 1000 + $i);
        push @batch1, $id if defined $id;
        sleep 0.003;
    }
    my @w1 = wanted($p, @batch1);
    ok(collect({ $first => \@w1 }, $first),
       'resume: B\'s client got ' . @w1 . " of $p");
    my @seen = $first->ids;
    close $first->sock;

    # the k-th: a message of A about the middle of what B's client took
    my ($k) = grep { $MSG{$seen[$_]}{pod} eq 'pod-a' }
              int(@seen / 2) .. $#seen;
    my $kth = $seen[$k];
    note("resume after the " . ($k + 1) . "-th of " . @seen . ": $kth");

    my @batch2;
    for my $i (61 .. 120) {
        my $pod = $i % 2 ? $ta : $tc;
        my (undef, $id) = publish($pod, $TOPICS[$i % @TOPICS], 1000 + $i);
        push @batch2, $id if defined $id;
        sleep 0.003;
    }
    is(scalar @batch2, 60, 'resume: 60 more accepted while disconnected');
    my @rest = (@seen[$k + 1 .. $#seen], wanted($p, @batch2));

    # retained already: what comes, comes in the first answer
    my $again = sse($tc, $p, last => $kth);
    ok(collect({ $again => \@rest }, $again, 15),
       'resume: on C with Last-Event-ID, the rest arrived');
    exactly([$again->ids], \@rest, 'resume on C (Last-Event-ID)');
    my %took = map { $_ => 1 } @seen[0 .. $k];
    is(scalar(grep { $took{$_} } $again->ids), 0,
       'resume: none of the first ' . ($k + 1));
    close $again->sock;

    for my $t ($tc, $tb) {
        my $lp = $t->http(GET => "/sub/$p?after=$kth&timeout=1");
        is($lp->{status}, 200, "resume: ?after= on $t->{name}: 200");
        exactly([map { $_->{id} } @{$lp->{json}{messages} || []}], \@rest,
                "resume: ?after= on $t->{name}");
    }

    # 2b. C's own messages entered C's rings before A's older ones: A's
    # relays (and C's) wait out a short stall of Redis (less than the 1 s
    # timeout: no reconnect), while C's went into C's rings at once. Both
    # pods publish in the same two topics (two shards), A six, then C
    # six, 3 ms apart. The client reads on B, where both come through the
    # stream, takes up to A's first and resumes on C: it must get what
    # followed on B, as on B itself.
    my $watch = sse($tb, $p);
    my @batch3;
    $r->stall(0.8);
    for my $i (1 .. 6) {
        my (undef, $id) = publish($ta, $i % 2 ? 'fan.eu.orders'
                                              : 'fan.eu.users', 2000 + $i);
        push @batch3, $id if defined $id;
        sleep 0.003;
    }
    sleep 0.01;
    for my $i (7 .. 12) {
        my (undef, $id) = publish($tc, $i % 2 ? 'fan.eu.orders'
                                              : 'fan.eu.users', 2000 + $i);
        push @batch3, $id if defined $id;
        sleep 0.003;
    }
    ok($r->wait_stall, 'resume 2b: the stall ended');
    is(scalar @batch3, 12, 'resume 2b: 12 published (A 6, then C 6)');
    ok(collect({ $watch => \@batch3 }, $watch), 'resume 2b: B got them');
    my @order = $watch->ids;
    note('resume 2b: B\'s order ' . join ' ', map {
        substr($MSG{$_}{pod}, -1) . $MSG{$_}{n} } @order);
    close $watch->sock;

    # the client took B's events up to A's first of the twelve
    my ($k3) = grep { $order[$_] eq $batch3[0] } 0 .. $#order;
    my @rest3 = @order[$k3 + 1 .. $#order];
    for my $t ($tb, $tc) {
        my $lp = $t->http(GET => "/sub/$p?after=$batch3[0]&timeout=1");
        exactly([map { $_->{id} } @{$lp->{json}{messages} || []}], \@rest3,
                "resume 2b: ?after= A's first on $t->{name}");
    }
    my $c3 = sse($tc, $p, last => $batch3[0]);
    collect({ $c3 => \@rest3 }, $c3, 15);
    exactly([$c3->ids], \@rest3, 'resume 2b: Last-Event-ID on C');
    close $c3->sock;

    $_->check_log for $ta, $tb, $tc;
}


# 3. Redis killed in the middle of a steady publish, and started again

sub redis_killed {
    my $r = Omnibus::Redis->new(aof => 1);
    %MSG = ();
    # back within seconds of Redis (the default 5:60s:3 keeps a pod away
    # for a minute once its breaker opened)
    my $params = 'breaker=3:1s:1';
    $ta = pod(name => 'pod-a', redis => $r, params => $params);
    $tb = pod(name => 'pod-b', redis => $r, params => $params);
    $tc = pod(name => 'pod-c', redis => $r, params => $params);
    ok(ready($ta) && ready($tb) && ready($tc), 'kill: three pods ready');

    my @b = sse_spread($tb, 'fan.>', 2);
    my @c = sse_spread($tc, 'fan.eu.*', 2);

    my (%status, %during, @ids, %by, $down_seen);
    for my $i (1 .. 400) {
        if ($i == 101) {
            $r->kill9;
            note('kill: redis-server killed after 100');
        }
        if ($i == 201) {
            $down_seen = backend($ta, 'up') == 0;
            $r->start;
            note('kill: redis-server started again after 200');
        }
        for my $pod ($i % 2 ? ($ta) : ($ta, $tc)) {
            my ($st, $id) = publish($pod, $TOPICS[$i % @TOPICS], $i);
            $status{$st}++;
            $during{$st}++ if $i > 100 && $i <= 200;
            if (defined $id) {
                push @ids, $id;
                push @{$by{$pod->{name}}}, $id;
            }
        }
        pump(@b, @c);
        sleep 0.005;
    }
    is($status{202} // 0, 600, 'kill: 600 publishes accepted (A 400, C 200)')
        or diag(explain \%status);
    is($during{202} // 0, 150, 'kill: the 150 while Redis was down too')
        or diag(explain \%during);
    ok($down_seen, 'kill: backend_up was 0 while Redis was down');

    my %want = map { $_ => [wanted($_->{pattern}, @ids)] } @b, @c;
    ok(collect(\%want, @b, @c), 'kill: every stream got its messages');
    for my $x (@b) {
        exactly([$x->ids], $want{$x}, 'kill: B fan.> (worker ' . $x->worker
                . ')');
    }
    for my $x (@c) {
        exactly([$x->ids], $want{$x}, 'kill: C fan.eu.* (worker '
                . $x->worker . ')');
    }

    ok(fallbacks($ta, 'fanout') > 0 && fallbacks($tc, 'fanout') > 0,
       'kill: fanout fallbacks counted on A ('
       . fallbacks($ta, 'fanout') . ') and C (' . fallbacks($tc, 'fanout')
       . ')');
    ok(errors($ta, 'connect') > 0, 'kill: connect errors counted on A ('
       . errors($ta, 'connect') . ')');
    ok(wait_until(sub { relay($ta, 'sent') == 400 && relay($tc, 'sent') == 200
                  }, timeout => 60),
       'kill: sent = published (A 400, C 200): the outboxes drained')
        or diag('sent A ' . relay($ta, 'sent') . ', C ' . relay($tc, 'sent'));
    is(relay($ta, 'dropped') + relay($tc, 'dropped'), 0, 'kill: none dropped');
    ok(wait_until(sub { !grep { backend($_, 'up') != 1 } $ta, $tb, $tc },
                  timeout => 30), 'kill: backend_up 1 again on every pod')
        or diag(join "\n", map { "$_->{name}: up " . backend($_, 'up')
                                 . ', ' . js(redis_status($_)) . "\n"
                                 . join("\n", grep { /omnibus_redis/ }
                                        split /\n/, $_->error_log) }
                           $ta, $tb, $tc);

    # Invariants. The stream holds each accepted message at least once:
    # more when an XADD was written (and fsynced) but its answer lost with
    # the connection, and so sent again under the same sender and
    # sequence. A reader takes each of the others' messages once and
    # counts every later copy as skipped:
    #   XLEN = received(B) + skipped(B)             (B published nothing)
    #   received(B) = published(A) + published(C)
    #   received(C) = published(A), skipped(C) = the copies of A's
    #   XLEN = received(C) + skipped(C) + C's own entries
    my @e = stream_entries($r);
    my (%first, %copies);
    for my $x (@e) {
        my $key = "$x->{o}/$x->{s}";
        $copies{$x->{n}}++ if $first{$key}++;
    }
    my %distinct;
    $distinct{$_->{n}}{$_->{i}} = 1 for @e;
    is_deeply([sort keys %{$distinct{'pod-a'}}], [sort @{$by{'pod-a'}}],
              'kill: the stream has each of A\'s 400 ids');
    is_deeply([sort keys %{$distinct{'pod-c'}}], [sort @{$by{'pod-c'}}],
              'kill: the stream has each of C\'s 200 ids');
    my $dup = ($copies{'pod-a'} // 0) + ($copies{'pod-c'} // 0);
    note("kill: stream entries " . @e . ", copies sent again: A "
         . ($copies{'pod-a'} // 0) . ", C " . ($copies{'pod-c'} // 0));
    ok(wait_until(sub { relay($tb, 'received') == 600
                        && relay($tc, 'received') == 400 }, timeout => 30),
       'kill: received B 600 (A + C), C 400 (A)')
        or diag('received B ' . relay($tb, 'received') . ', C '
                . relay($tc, 'received'));
    is(relay($tb, 'skipped'), $dup, "kill: skipped on B = the $dup copies");
    is(relay($tc, 'skipped'), $copies{'pod-a'} // 0,
       'kill: skipped on C = the copies of A\'s');
    is(scalar @e, relay($tb, 'received') + relay($tb, 'skipped'),
       'kill: XLEN = received + skipped on B');
    my $own_c = grep { $_->{n} eq 'pod-c' } @e;
    is(scalar @e, relay($tc, 'received') + relay($tc, 'skipped') + $own_c,
       'kill: XLEN = received + skipped + own entries on C');

    close $_->sock for @b, @c;
    $_->check_log for $ta, $tb, $tc;
}


# 3b. publishes while a connection to Redis is being set up: Redis comes
# back frozen (DEBUG SLEEP right after its start), so the pods' new
# connections are accepted but their setup (the scripts) is not answered
# for a while; A publishes all along. Once Redis answers, every
# connection must be up and nothing counted as a fallback any more.

sub publish_during_setup {
    my $r = Omnibus::Redis->new(aof => 1);
    %MSG = ();
    my $params = 'timeout=6s breaker=20:1s:1';
    $ta = pod(name => 'pod-a', redis => $r, sub => 0, params => $params);
    $tb = pod(name => 'pod-b', redis => $r, params => $params);
    ok(ready($ta) && ready($tb), 'setup: two pods ready');
    my @b = sse_spread($tb, 'fan.>', 2);

    my (@ids, %status, $n);
    my $pub = sub {
        my ($st, $id) = publish($ta, $TOPICS[++$n % @TOPICS], $n);
        $status{$st}++;
        push @ids, $id if defined $id;
    };
    $pub->() for 1 .. 10;
    ok(collect({ map { $_ => [@ids] } @b }, @b), 'setup: 10 delivered');

    # down 1.5 s: the pods' attempts back off to 0.8 to 1.6 s apart, so
    # their next one comes while Redis sleeps (3.5 s, less than timeout=)
    $r->kill9;
    my $until = time + 1.5;
    while (time < $until) { $pub->(); pump(@b); sleep 0.02 }
    $r->start->stall(3.5);
    $until = time + 4;
    while (time < $until) { $pub->(); pump(@b); sleep 0.02 }
    ok($r->wait_stall, 'setup: Redis answered after its 3.5 s sleep');
    is($status{202} // 0, $n, "setup: all $n publishes 202");

    ok(wait_until(sub { backend($ta, 'up') == 1 && backend($tb, 'up') == 1
                        && redis_status($ta)->{up} }, timeout => 20),
       'setup: backend_up 1 again on A and B')
        or diag('A: ' . js(redis_status($ta)) . "\n" . join "\n",
                grep { /omnibus_redis/ } split /\n/, $ta->error_log);
    ok(wait_until(sub { relay($ta, 'sent') == $n }, timeout => 20),
       "setup: A's $n relays confirmed") or diag('sent ' . relay($ta, 'sent'));

    # every worker's commands connection set up again, as logged
    my %last;
    for ($ta->error_log =~ /^.*omnibus_redis.*$/mg) {
        my ($pid) = /\] (\d+)#/ or next;
        $last{$pid} = /connected to \S+ \(commands\)/ ? 'connected'
                      : /cannot connect|did not answer/ ? 'failed'
                      : $last{$pid};
    }
    is(join(' ', map { $last{$_} // 'none' } $ta->worker_pids),
       'connected connected',
       'setup: each of A\'s workers logged its connection set up again');

    # Redis is fine now: a publish is no fallback
    my $f = fallbacks($ta, 'fanout');
    $pub->() for 1 .. 20;
    is(fallbacks($ta, 'fanout'), $f,
       'setup: 20 publishes once Redis is back: no fallback counted')
        or diag('A: ' . js(redis_status($ta)));

    ok(collect({ map { $_ => [@ids] } @b }, @b), 'setup: B got all');
    exactly([$_->ids], \@ids, 'setup: B fan.>') for @b;

    close $_->sock for @b;
    $_->check_log for $ta, $tb;
}


# 4. Redis stalled: timeouts, the breaker, nothing missed

sub redis_stalled {
    my $r = Omnibus::Redis->new;
    %MSG = ();
    my $params = 'timeout=300ms breaker=2:1s:1';
    $ta = pod(name => 'pod-a', redis => $r, params => $params, sub => 0);
    $tb = pod(name => 'pod-b', redis => $r, params => $params);
    ok(ready($ta) && ready($tb), 'stall: two pods ready');

    my @b = sse_spread($tb, 'fan.>', 2);
    my (%status, @ids, $open, $n);
    my $pub = sub {
        my ($st, $id) = publish($ta, $TOPICS[++$n % @TOPICS], $n);
        $status{$st}++;
        push @ids, $id if defined $id;
    };
    $pub->() for 1 .. 50;

    $r->stall(3);
    my $until = time + 3.5;
    while (time < $until) {
        $pub->();
        $open ||= backend($ta, 'breaker_state') == 1;
        pump(@b);
        sleep 0.02;
    }
    ok($r->wait_stall, 'stall: Redis slept 3 s and answered');
    $pub->() for 1 .. 50;
    my $total = $n;
    is($status{202} // 0, $total, "stall: all $total publishes 202")
        or diag(explain \%status);
    ok(errors($ta, 'timeout') > 0, 'stall: timeouts counted ('
       . errors($ta, 'timeout') . ')');
    ok($open, 'stall: the breaker was seen open');

    my %want = map { $_ => [@ids] } @b;
    ok(collect(\%want, @b), 'stall: B\'s streams got every message');
    exactly([$_->ids], \@ids, 'stall: B fan.> (worker ' . $_->worker . ')')
        for @b;
    ok(wait_until(sub { relay($ta, 'sent') == $total }, timeout => 30),
       "stall: sent = $total") or diag('sent ' . relay($ta, 'sent'));
    is(relay($ta, 'dropped'), 0, 'stall: none dropped');
    ok(wait_until(sub { relay($tb, 'received') == $total }, timeout => 30),
       "stall: received on B = $total")
        or diag('received ' . relay($tb, 'received'));

    # the XADDs of a connection dropped for its timeout are still run when
    # Redis wakes, and sent again: the stream may hold copies, which B
    # skips (B publishes nothing, A reads nothing)
    my @e = stream_entries($r);
    my %distinct = map { $_->{i} => 1 } @e;
    is_deeply([sort keys %distinct], [sort @ids],
              "stall: the stream has each of the $total ids");
    note('stall: ' . (@e - keys %distinct) . ' copies sent again');
    is(relay($tb, 'skipped'), @e - keys %distinct,
       'stall: skipped on B = the copies');
    is(scalar @e, relay($tb, 'received') + relay($tb, 'skipped'),
       'stall: XLEN = received + skipped on B');

    # Redis answers again: the breaker must not stay open for good
    ok(wait_until(sub { backend($ta, 'up') == 1 }, timeout => 30),
       'stall: backend_up 1 again');
    ok(wait_until(sub { backend($ta, 'breaker_state') == 0 }, timeout => 15),
       'stall: the breaker closed again once Redis answers')
        or diag('breaker_state ' . backend($ta, 'breaker_state')
                . ', status: ' . js(redis_status($ta)) . "\n" . join "\n",
                grep { /circuit breaker|connected to/ }
                split /\n/, $ta->error_log);

    close $_->sock for @b;
    $_->check_log for $ta, $tb;
}


# 5. the reader's worker of a subscriber pod stopped and killed

sub reader_killed {
    my $r = Omnibus::Redis->new;
    %MSG = ();
    $ta = pod(name => 'pod-a', redis => $r, sub => 0);
    $tb = pod(name => 'pod-b', redis => $r, allow => [qr/exited on signal 9/]);
    ok(ready($ta) && ready($tb), 'worker: two pods ready');

    my $w0 = worker0($tb);
    ok($w0, "worker: B's reader is worker $w0");
    my @b = sse_spread($tb, 'fan.>', 2);
    my @doomed = grep { $_->worker == $w0 } @b;
    my @kept = grep { $_->worker != $w0 } @b;
    ok(@doomed && @kept, 'worker: streams on the reader\'s worker ('
       . @doomed . ') and on the other (' . @kept . ')');

    # 3 ms apart, as in 2.: a resume from the 50th
    my @ids;
    my $pub = sub {
        for my $i (@_) {
            my ($st, $id) = publish($ta, $TOPICS[$i % @TOPICS], $i);
            push @ids, $id if $st eq '202';
            sleep 0.003;
        }
    };
    $pub->(1 .. 50);
    ok(collect({ map { $_ => [@ids] } @b }, @b), 'worker: 50 delivered');
    my $before = $ids[-1];
    my $last0 = redis_status($tb)->{stream_last};

    # stopped: nothing reads the stream for B while A publishes 50
    kill 'STOP', $w0;
    $pub->(51 .. 100);
    ok(wait_until(sub { $r->cmd('XLEN', $STREAM) == 100 }, timeout => 30),
       'worker: A relayed the 50 while B\'s reader is stopped');
    kill 'KILL', $w0;
    ok(wait_until(sub { !Omnibus::Test::alive($w0) }, timeout => 10),
       'worker: B\'s reader killed');
    my $w0b;
    ok(wait_until(sub { $w0b = worker0($tb, $w0) }, timeout => 30),
       'worker: respawned, its reader connected (' . ($w0b // '-') . ')');
    like($tb->error_log, qr/worker process $w0 exited on signal 9/,
         'worker: the master saw it die');

    $pub->(101 .. 150);
    is(scalar @ids, 150, 'worker: 150 accepted');
    my $tip = $r->cmd('XREVRANGE', $STREAM, '+', '-', 'COUNT', 1)->[0][0];
    ok(wait_until(sub { redis_status($tb)->{stream_last} eq $tip },
                  timeout => 30), 'worker: the new reader read to the tip')
        or diag("stream_last " . redis_status($tb)->{stream_last}
                . " (before the stop: $last0), tip $tip");
    ok(wait_until(sub { relay($tb, 'received') == 150 }, timeout => 30),
       'worker: received on B = 150: the 50 of the stop were not skipped')
        or diag('received ' . relay($tb, 'received'));

    ok(collect({ map { $_ => [@ids] } @kept }, @kept),
       'worker: the surviving streams got the 150');
    exactly([$_->ids], \@ids, 'worker: surviving stream') for @kept;

    ok(wait_until(sub { pump(@doomed); !grep { !$_->{closed} } @doomed },
                  timeout => 10),
       'worker: the killed worker\'s streams were closed');
    for my $x (@doomed) {
        my @had = $x->ids;
        my $again = sse($tb, 'fan.>', last => $had[-1]);
        my %had = map { $_ => 1 } @had;
        collect({ $again => [grep { !$had{$_} } @ids] }, $again, 15);
        exactly([@had, $again->ids], \@ids, 'worker: a killed stream '
                . 'resumed with Last-Event-ID (' . @had . ' before)');
        close $again->sock;
    }

    my $late = sse($tb, 'fan.>', last => $before);
    collect({ $late => [@ids[50 .. 149]] }, $late, 15);
    exactly([$late->ids], [@ids[50 .. 149]],
            'worker: a new stream from the 50th');

    close $_->sock for @b, $late;
    $_->check_log for $ta, $tb;
}


# 6. a reader respawned between two copies of the same relays

sub reader_killed_between_copies {
    my $r = Omnibus::Redis->new;
    %MSG = ();
    # A gives up on a stalled Redis after 300 ms and, its breaker open for
    # 6 s from the first failure, sends its outbox again only then; the
    # XADDs it wrote on the dropped connection are run when Redis wakes:
    # two copies of each, seconds apart
    $ta = pod(name => 'pod-a', redis => $r, sub => 0,
              params => 'timeout=300ms breaker=1:6s:1');
    $tb = pod(name => 'pod-b', redis => $r, allow => [qr/exited on signal 9/]);
    ok(ready($ta) && ready($tb), 'copies: two pods ready');

    my $w0 = worker0($tb);
    my @b = sse_spread($tb, 'fan.>', 2);
    my @kept = grep { $_->worker != $w0 } @b;

    my @ids;
    my $pub = sub {
        for my $i (@_) {
            my ($st, $id) = publish($ta, $TOPICS[$i % @TOPICS], $i);
            push @ids, $id if $st eq '202';
        }
    };
    $pub->(1 .. 10);
    ok(collect({ map { $_ => [@ids] } @b }, @b), 'copies: 10 delivered');

    $r->stall(1.5);
    $pub->(11 .. 30);
    ok($r->wait_stall, 'copies: Redis slept 1.5 s');
    ok(wait_until(sub { $r->cmd('XLEN', $STREAM) == 30 }, timeout => 20),
       'copies: the dropped connection\'s 20 XADDs ran when Redis woke')
        or diag('XLEN ' . $r->cmd('XLEN', $STREAM));
    ok(wait_until(sub { relay($tb, 'received') == 30 }, timeout => 20),
       'copies: B read them (received 30)');
    is(relay($ta, 'sent'), 10, 'copies: A has not had them confirmed');

    kill 'KILL', $w0;
    my $w0b;
    ok(wait_until(sub { $w0b = worker0($tb, $w0) }, timeout => 30),
       'copies: B\'s reader killed, respawned and connected');

    ok(wait_until(sub { relay($ta, 'sent') == 30 }, timeout => 30),
       'copies: A sent its outbox again once its breaker let it');
    is($r->cmd('XLEN', $STREAM), 50, 'copies: the stream has 20 copies');
    ok(wait_until(sub { relay($tb, 'skipped') + relay($tb, 'received') == 50 },
                  timeout => 20), 'copies: B\'s new reader took them');
    is(relay($tb, 'skipped'), 20, 'copies: and skipped the 20 copies')
        or diag('received ' . relay($tb, 'received') . ', skipped '
                . relay($tb, 'skipped'));
    collect({ map { $_ => [@ids] } @kept }, @kept);
    exactly([$_->ids], \@ids, 'copies: surviving stream') for @kept;

    close $_->sock for @b;
    $_->check_log for $ta, $tb;
}


fanout_and_resume();
redis_killed();
publish_during_setup();
redis_stalled();
reader_killed();
reader_killed_between_copies();

done_testing;
