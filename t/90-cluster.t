# The cluster as a whole (Omnibus::Cluster): three pods behind a front
# nginx, one redis-server, one PostgreSQL, three Kafka brokers, a webhook
# receiver. Producers publish through the front as real clients do (an
# Idempotency-Key per message, retried with the same key on any 5xx, 429
# or broken connection); SSE subscribers listen on every pod; and
# meanwhile, one after the other: a pod killed with kill -9 while it has a
# backlog and a replacement started under a new node name, redis-server
# killed and started again, a Kafka broker down and up, PostgreSQL
# restarted, PostgreSQL stalled (clients time out after a second and
# retry elsewhere), a pod scaled down with nginx -s quit. Then:
#
#   - every message a producer was told is accepted (202, or 200 for a
#     duplicate of its key) reached the webhook and Kafka at least once;
#   - every repeated delivery is explained: a retry of the producer, or
#     a message of a pod that died or quit (its rows adopted and sent
#     again, at least once);
#   - every subscriber got every message of its pattern accepted while
#     it was connected;
#   - the dead pod's rows were adopted and delivered, nothing is left
#     open in the store, and each live pod's counters add up.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);
use JSON::PP;
use IO::Select;
use lib 't/lib';
use Omnibus::Test;
use Omnibus::Sse;
use Omnibus::Cluster;

Omnibus::Cluster::require_tools();

my $c = Omnibus::Cluster->new(pods => 3, rate => '30r/m');
my $FRONT = $c->port;
my $run = $c->front->dir;
my $T0 = time;

sub touch { open my $fh, '>', $_[0] or die "$_[0]: $!"; close $fh }

sub note_at { note(sprintf '%6.1f s  %s', time - $T0, $_[0]) }

# ---------------------------------------------------------------- clients

# a producer: sequential publishes to orders.<name>.<n % 4>, each retried
# with its key until answered 202 or 200, one JSON line per message
sub producer {
    my ($name) = @_;
    my $file = "$run/producer-$name.log";
    my $pid = Omnibus::Cluster::child(sub { produce($name, $file) });
    return { pid => $pid, file => $file, name => $name };
}

sub produce {
    my ($name, $file) = @_;
    open my $out, '>', $file or die "$file: $!";
    $out->autoflush(1);
    my $conn;
    for (my $n = 1; !-e "$run/stop"; $n++) {
        my $key = "$name-$n";
        my $body = encode_json({ k => $key, n => $n, p => $name,
                                 pad => 'x' x 100 });
        my ($t0, @st, $res) = (time);
        while (1) {
            # a client that waits a second at most, then retries
            $conn ||= Omnibus::Test::Conn->new(undef, port => $FRONT,
                                                 timeout => 1);
            $res = $conn && $conn->request(POST =>
                "/publish/orders.$name." . ($n % 4), body => $body,
                keepalive => 1,
                headers => { 'Idempotency-Key' => $key,
                             'Content-Type' => 'application/json' });
            push @st, $res ? $res->{status} : 0;
            if (!$res || ($res->{headers}{connection} // '') =~ /close/i) {
                $conn->close if $conn;
                $conn = undef;
            }
            last if $res && $res->{status} < 300;
            last if $res && $res->{status} =~ /^(400|413)$/;
            last if time - $t0 > 120;
            sleep(@st < 5 ? 0.05 : 0.2);
        }
        my $j = $res && $res->{json} || {};
        print $out encode_json({ key => $key, status => $st[-1],
            statuses => \@st, id => $j->{id}, dup => $j->{duplicate} ? 1 : 0,
            topic => $j->{topic}, addr => $res && $res->{headers}{'x-pod'},
            sent => $t0, t => time }), "\n";
        sleep 0.02;
    }
}

sub producer_log {
    my ($p) = @_;
    open my $fh, '<', $p->{file} or return ();
    return map { decode_json($_) } grep { /\S/ } <$fh>;
}

# SSE subscribers on one pod: orders.> on both of its workers, and
# orders.p2.> (one producer's topics); in a process of their own, which
# writes what each stream got when told to stop (TERM)
sub subscribers {
    my ($node) = @_;
    my $file = "$run/subs-$node.json";
    my $port = $c->t($node)->port(0);
    my $pid = Omnibus::Cluster::child(sub { listen_sse($port, $file) });
    return { pid => $pid, file => $file, node => $node };
}

sub listen_sse {
    my ($port, $file) = @_;
    # one stream per worker, the extra ones spread() opened closed
    my (%w, @s);
    for (Omnibus::Sse->spread($port, '/subscribe/orders.%3E', 2)) {
        if ($w{$_->worker // ''}++) { close $_->sock } else { push @s, $_ }
    }
    push @s, Omnibus::Sse->new($port, '/subscribe/orders.p2.%3E');
    Omnibus::Test::wait_until(sub {
        $_->pump(0) for @s;
        !grep { !defined $_->{head} } @s;
    }, timeout => 10);
    my $from = time;
    my ($stop, %end) = (0);
    $SIG{TERM} = sub { $stop = 1 };
    touch("$file.ready");
    my $sel = IO::Select->new(map { $_->sock } @s);
    my %by = map { $_->sock => $_ } @s;
    until ($stop) {
        for my $fh ($sel->can_read(0.1)) {
            my $sse = $by{$fh};
            next if $sse->read_once;
            $sel->remove($fh);
            $end{$fh} = time;
        }
    }
    $_->pump(0) for grep { !$end{$_->sock} } @s;
    open my $out, '>', "$file.tmp" or die "$file.tmp: $!";
    print $out encode_json([ map {
        my $sse = $_;
        { pattern => ($sse == $s[-1] ? 'orders.p2.' : 'orders.'),
          worker => $sse->worker, from => $from,
          end => $end{$sse->sock},
          events => [ map {
              my $b = eval { decode_json(join "\n", @{$_->{data}}) } || {};
              [$_->{id}, $_->{event}, $b->{k}]
          } @{$sse->{events}} ] }
    } @s ]);
    close $out;
    rename "$file.tmp", $file;
}

sub subs_ready {
    my ($s) = @_;
    return Omnibus::Test::wait_until(sub { -e "$s->{file}.ready" },
                                     timeout => 20);
}

sub subs_result {
    my ($s) = @_;
    kill 'TERM', $s->{pid};
    waitpid $s->{pid}, 0;
    open my $fh, '<', $s->{file} or return [];
    local $/;
    return decode_json(<$fh>);
}

# what a pod's counters say of the faults, for the log of the run
sub evidence {
    my ($node) = @_;
    my @f = (['callback_errors_total', 'route="hook"', 'hook errors'],
             ['callback_errors_total', 'route="kafka"', 'kafka errors'],
             ['store_errors_total', '', 'store errors'],
             ['rejected_total', 'store_unavailable', '503 store'],
             ['redis_errors_total', '', 'redis errors'],
             ['redis_fallbacks_total', '', 'redis fallbacks'],
             ['redis_answers_total', 'duplicate', 'duplicates'],
             ['redis_answers_total', 'pending', 'pending'],
             ['redis_relay_total', 'sent', 'relayed'],
             ['redis_relay_total', 'received', 'received'],
             ['redis_relay_total', 'skipped', 'skipped'],
             ['store_adopted_total', '', 'adopted'],
             ['published_total', '', 'published']);
    return "$node: " . join ', ',
        map { "$_->[2] " . ($c->metric($node, $_->[0], $_->[1]) // '-') } @f;
}

# ---------------------------------------------------------------- the run

my %subs = map { $_ => subscribers($_) } $c->pods;
ok(subs_ready($subs{$_}), "subscribers on $_") for sort keys %subs;

# a greedy tenant, before any fault: 30 per minute across the three pods
my (%greedy, @greedy);
for my $i (1 .. 60) {
    my $r = Omnibus::Test::Conn->new(undef, port => $FRONT)->request(
        POST => "/publish/orders.greedy.$i", body => qq({"k":"greedy-$i"}),
        headers => { 'X-Tenant' => 'greedy', 'Idempotency-Key' => "greedy-$i",
                     'Content-Type' => 'application/json' });
    $greedy{$r ? $r->{status} : 0}++;
    push @greedy, { key => "greedy-$i", status => $r->{status},
                    id => $r->{json}{id}, topic => $r->{json}{topic},
                    t => time, statuses => [202] }
        if $r && $r->{status} == 202;
}
is($greedy{202}, 30, 'rate limit across pods: 30 of 60 accepted');
is($greedy{429}, 30, 'the other 30 answered 429');

my @prod = map { producer($_) } qw(p1 p2 p3);
note_at('producers started');
sleep 3;

# 1. pod-a has a backlog (its shards paused) and dies; a Deployment
# starts pod-d in its place, and the front learns the new endpoints
my $a = $c->t('pod-a');
my $shards = scalar @{$a->http(GET => '/omnibus/')->{json}{shards}};
$a->http(POST => "/omnibus/shards/$_/pause") for 0 .. $shards - 1;
sleep 1.5;
my $backlog = 0;
$backlog += $_->{queued} for @{$a->http(GET => '/omnibus/')->{json}{shards}};
# hung first (SIGSTOP): the front's requests to it wait, and are cut
my @a = ($a->master_pid, $a->worker_pids);
kill 'STOP', @a;
sleep 1;
$c->kill_pod('pod-a');
note_at("pod-a hung for 1 s, then killed with $backlog messages queued");
ok($backlog > 0, "pod-a had a backlog when killed ($backlog)");
$c->add_pod('pod-d');
$subs{'pod-d'} = subscribers('pod-d');
ok(subs_ready($subs{'pod-d'}), 'subscribers on pod-d');
note_at('pod-d started, in the front instead of pod-a');
sleep 3;

# 2. redis-server killed (AOF on) and started again a second later
$c->redis->kill9;
note_at('redis-server killed');
sleep 1;
$c->redis->start;
note_at('redis-server started');
sleep 4;

# 3. one Kafka broker of three down, longer than the route's timeout
# (2 s), then up
$c->kafka->broker_down(1);
note_at('kafka broker 1 down');
sleep 5;
$c->kafka->broker_up(1);
note_at('kafka broker 1 up');
sleep 3;

# 4. PostgreSQL restarted (fast shutdown, a second down)
$c->restart_pg(1);
note_at('postgresql restarted');
sleep 4;

# 5. PostgreSQL stalls for 2 s (SIGSTOP): commits wait, clients give up
# after a second and retry with their keys, which land on other pods
$c->pg->stall(2);
note_at('postgresql stalled for 2 s');
sleep 3;

# 6. pod-b scaled down: out of the front, then nginx -s quit
my $b_said = evidence('pod-b');
$c->quit_pod('pod-b');
note_at('pod-b quit');
sleep 3;

touch("$run/stop");
waitpid $_->{pid}, 0 for @prod;
note_at('producers stopped');

# ------------------------------------------------------------- the checks

my @msgs = (@greedy, map { producer_log($_) } @prod);
my @acc = grep { $_->{status} && $_->{status} < 300 } @msgs;
my (%tries, %answers);
$tries{$_->{key}} = scalar @{$_->{statuses}} for @msgs;
$answers{$_->{key}} = $_->{statuses} for @msgs;
my %sent = map { $_->{key} => $_->{sent} // $_->{t} } @msgs;
is(scalar(grep { !$_->{status} || $_->{status} >= 300 } @msgs), 0,
   'every producer got an answer for every message')
    or diag explain [grep { !$_->{status} || $_->{status} >= 300 } @msgs];
my %status;
$status{$_}++ for map { @{$_->{statuses}} } @msgs;
note_at(sprintf '%d messages accepted (%d duplicates), answers: %s',
        scalar @acc, scalar(grep { $_->{dup} } @acc),
        join ' ', map { "$_ x $status{$_}" } sort keys %status);
cmp_ok(scalar @acc, '>', 300, 'the producers got through');

my @keys = map { $_->{key} } @acc;
# each sink's keys once every accepted key is in it (or the wait ends)
my ($hook, $kafka) = map {
    my ($name, $read, $wait) = @$_;
    my $got;
    Omnibus::Test::wait_until(sub {
        $got = $read->();
        !grep { !$got->{$_} } @keys;
    }, timeout => $wait, interval => 1);
    my @lost = grep { !$got->{$_->{key}} } @acc;
    is(scalar @lost, 0, "every accepted message reached $name")
        or diag explain \@lost;
    $got
} ['the webhook', sub { $c->hooked }, 90],
  ['Kafka', sub { $c->kafka_keys }, 60];

ok(Omnibus::Test::wait_until(sub { $c->settled }, timeout => 60),
   'the live pods settled');
ok(Omnibus::Test::wait_until(sub { $c->open_rows == 0 }, timeout => 30),
   'no row of the store is left open');

# adopted by whichever pod held the Redis lock, maybe pod-b, gone now
# (the rows themselves go with the store's rotation, every 2 s)
my %adopters = map {
    my $log = $c->t($_)->error_log;
    my $n = 0;
    $n += $1
        while $log =~ /"bus": (\d+) message\(s\) of a silent node adopted/g;
    $n ? ($_ => $n) : ()
} $c->all_pods;
my $adopted = 0;
$adopted += $_ for values %adopters;
cmp_ok($adopted, '>=', $backlog, "pod-a's rows adopted ("
       . join(', ', map { "$_ $adopters{$_}" } sort keys %adopters) . ')');

# repeated deliveries: a second id for a key comes from a retry of the
# producer; the same id again from a pod that died or quit (its rows
# adopted, sent again), from an id whose answer was lost with a killed
# pod, or from an attempt that failed (the webhook tells the attempt)
my %pod_of = map { $_->{id} => $c->pod_at($_->{addr}) // '' }
             grep { $_->{id} && !$_->{dup} } @acc;
my %again;
$again{$_->{headers}{'x-omnibus-id'}} = 1
    for grep { ($_->{headers}{'x-omnibus-attempt'} // 1) > 1 }
        $c->rx->requests_for('/hook');
for my $sink ([webhook => $hook], [kafka => $kafka]) {
    my ($name, $got) = @$sink;
    my (%why, @odd, @resent);
    for my $k (@keys) {
        my @ids = @{$got->{$k}};
        next if @ids < 2;
        my %n;
        $n{$_}++ for @ids;
        if (keys %n > 1) {
            ($tries{$k} // 1) > 1 ? $why{retry}++ : push @odd, $k;
            note_at("$name: $k as " . join(' ', sort keys %n)
                    . " after answers @{$answers{$k}}, sent at "
                    . sprintf('%.1f s', $sent{$k} - $T0));
        }
        for my $id (grep { $n{$_} > 1 } keys %n) {
            my $p = $pod_of{$id};
            my $why = !defined $p ? 'answer_lost'
                    : $p =~ /^pod-[ab]$/ ? 'adopted'
                    : $again{$id} ? 'attempt' : 'resent';
            $why{$why}++;
            push @resent, $id if $why eq 'resent';
        }
    }
    note_at("$name: " . scalar(@keys) . ' keys, repeated: '
            . join(' ', map { "$_ $why{$_}" } sort keys %why));
    is(scalar @odd, 0, "$name: a second message for a key only after a "
                       . 'retry of its producer') or diag "@odd";
    is(scalar @resent, 0, "$name: the same message again only from a pod "
       . 'gone or after a failed attempt') or diag "@resent"
        if $name eq 'webhook';
}

# the subscribers: what was accepted while a stream was open (a second
# after it began, 3 s before it ended) is in it; nothing twice but ids of
# pods that died or quit (or whose answer was lost with pod-a)
my %accepted_at = map { $_->{id} => $_ } grep { !$_->{dup} } @acc;
for my $node (sort keys %subs) {
    my $streams = subs_result($subs{$node});
    cmp_ok(scalar @$streams, '>=', 3, "$node: its streams");
    for my $s (@$streams) {
        my $end = $s->{end} // time;
        my %got;
        $got{$_->[0]}++ for @{$s->{events}};
        my @want = grep {
            my $m = $accepted_at{$_};
            $m->{t} > $s->{from} + 1 && $m->{t} < $end - 3
            && index($m->{topic}, $s->{pattern}) == 0
        } keys %accepted_at;
        my @miss = grep { !$got{$_} } @want;
        my @twice = grep { $got{$_} > 1 && ($pod_of{$_} // 'pod-a')
                                             !~ /^pod-[ab]$/ } keys %got;
        my @other = grep { $_->[1] !~ /^\Q$s->{pattern}\E/ } @{$s->{events}};
        my $w = $s->{worker} // '?';
        note_at("$node $s->{pattern}> worker $w: " . @{$s->{events}}
                . ' events, ' . @want . ' expected, '
                . ($s->{end} ? sprintf('ended at %.1f s', $end - $T0)
                             : 'open'));
        is(scalar @miss, 0, "$node $s->{pattern}> (worker $w): none missed")
            or diag "@miss[0 .. ($#miss < 9 ? $#miss : 9)]";
        is(scalar @twice, 0, "$node $s->{pattern}> (worker $w): "
                             . 'none twice') or diag "@twice";
        is(scalar @other, 0, "$node $s->{pattern}> (worker $w): "
                             . 'only its pattern');
    }
}

note_at($_) for $b_said, map { evidence($_) } $c->pods;

# each live pod's counters: published + replayed = completed + queued +
# inflight + unrouted
for my $node ($c->pods) {
    my ($l, $r) = $c->t($node)->invariant;
    ok(defined $l && $l == $r, "$node: counters add up ($l = $r)");
}

$c->finish;
done_testing();
