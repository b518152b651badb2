#!/usr/bin/perl
# Section 10 of bench/run.sh (bench/cluster.sh runs it): the cluster of
# t/90-cluster.t, built by the same harness (t/lib/Omnibus/Cluster.pm),
# under load. One redis-server (AOF, appendfsync always), one PostgreSQL
# (initdb into a temp dir), librdkafka's mock Kafka cluster (3 brokers),
# --pods omnibus pods (`omnibus_node pod-x`, zone bus: omnibus_store
# mode=sync, omnibus_redis with dedup, rate limits and fan-out, a webhook
# and a Kafka route for orders.>) and a front nginx without the module
# whose upstream is the pods. The webhook goes to the receiver nginx that
# bench/cluster.sh started on --receiver (`return 200`), not to the Perl
# Omnibus::Receiver: that one logs every request as JSON in one Perl
# process and would be the bottleneck.
#
#   a. throughput: wrk (-t1 -c --conns, --duration s, --size B JSON
#      bodies, --topics topics orders.t0.., bench/pub.lua with KEY_PREFIX:
#      an Idempotency-Key per request) through the front with 1, 2, ...
#      --pods pods in its upstream (the others keep running, out of it;
#      the front reloaded between), --rounds rounds in rotating order,
#      every pod settled (nothing queued or in flight) before each run;
#      CPU seconds of every component over each run from /proc.
#   b. latency: --lat-clients processes publish through the front to
#      orders.lat.* at --lat-rate messages/s in all, open loop, for
#      --lat-duration s, all pods in the front; publish-to-webhook latency
#      by bench/latency.pl from their send times and ids and the
#      receiver's log (--recv-log: "$msec $http_x_omnibus_id $attempt").
#
# Writes DATA/cluster-runs.tsv, cluster-latency.tsv, cluster-pod.conf,
# cluster-front.conf, cluster-errors.txt and appends to cluster-meta.tsv.
# Progress lines on stdout. Omnibus::Test's error.log checks are Test::More
# tests: their TAP goes to TMP/cluster-tap.log, the exit status is theirs.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";
use Getopt::Long;
use POSIX ();
use JSON::PP;
use Time::HiRes qw(sleep time);
use Test::More;
use Omnibus::Test;
use Omnibus::Cluster;

my %o = (pods => 3, workers => 2, rounds => 3, duration => 5, conns => 32,
         size => 1024, topics => 100, 'lat-rate' => 200,
         'lat-duration' => 10, 'lat-clients' => 8);
GetOptions(\%o, 'data=s', 'tmp=s', 'receiver=i', 'receiver-master=i',
           'recv-log=s', 'pods=i', 'workers=i', 'rounds=i', 'duration=i',
           'conns=i', 'size=i', 'topics=i', 'lat-rate=i', 'lat-duration=i',
           'lat-clients=i')
    or die "bad options\n";
die "--data, --tmp, --receiver and --recv-log are needed\n"
    unless $o{data} && $o{tmp} && $o{receiver} && $o{'recv-log'};
my ($DATA, $TMP) = @o{qw(data tmp)};
my $BENCH = $FindBin::Bin;

# the harness's tests (error.log checks, a failed reload) in a file: the
# bench's output is the progress lines
open my $tap, '>', "$TMP/cluster-tap.log" or die "$TMP/cluster-tap.log: $!\n";
$tap->autoflush(1);
my $tb = Test::More->builder;
$tb->output($tap);
$tb->failure_output($tap);
$tb->todo_output($tap);

$| = 1;
sub say { print "@_\n" }

# an interrupt ends the run through exit: the harness's END blocks then
# stop the pods, the front, redis-server, PostgreSQL and the mock
$SIG{INT} = $SIG{TERM} = sub { exit 130 };

sub meta {  # meta KEY VALUE: a line of cluster-meta.tsv
    open my $f, '>>', "$DATA/cluster-meta.tsv" or die "cluster-meta.tsv: $!\n";
    print $f "$_[0]\t$_[1]\n";
    close $f;
}

# ------------------------------------------------------------ the cluster

my $c = Omnibus::Cluster->new(pods => $o{pods}, workers => $o{workers},
                              receiver => $o{receiver}, access_log => 0);
my @pods = $c->pods;
my $FRONT = $c->port;
say("cluster up: front on $FRONT, pods @pods ($o{workers} workers each),"
    . ' redis-server ' . $c->redis->port . ', postgres ' . $c->pg->port
    . ', kafka ' . $c->kafka->bootstrap);

# every pod connected to Redis and to the store before the first run
for my $n (@pods) {
    Omnibus::Test::wait_until(sub {
        my $j = $c->t($n)->http(GET => '/omnibus/')->{json};
        $j && $j->{redis}{up} && $j->{store}{up};
    }, timeout => 30) or die "$n: Redis or the store not up after 30 s\n";
}

# the configurations as run, ports and temp dirs made generic
sub generic {
    my ($file) = @_;
    open my $f, '<', $file or return '';
    local $/;
    my $s = <$f>;
    $s =~ s/127\.0\.0\.1:\d+/127.0.0.1:PORT/g;
    $s =~ s{/tmp/omnibus-[\w-]+}{DIR}g;
    $s =~ s{kafka://[^/"]+}{kafka://BROKERS}g;
    return $s;
}
for (['cluster-pod.conf', $c->t($pods[0])->dir], ['cluster-front.conf', $c->front->dir]) {
    open my $f, '>', "$DATA/$_->[0]" or die "$_->[0]: $!\n";
    print $f generic("$_->[1]/nginx.conf");
    close $f;
}
meta('redis', $c->redis->cmd('INFO', 'server') =~ /^redis_version:(\S+)/m ? $1 : '?');
meta('redis_settings', join ' ', map {
    my $v = $c->redis->cmd('CONFIG', 'GET', $_); "$v->[0] $v->[1]" }
    qw(appendonly appendfsync save));
meta('postgres', scalar $c->pg->psql('SHOW server_version'));
meta('pg_settings', join ' ', map { "$_=" . $c->pg->psql("SHOW $_") }
     qw(fsync synchronous_commit shared_buffers));

# ------------------------------------------------------------ CPU, /proc

my $CLK = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;

sub pidfile { open my $f, '<', $_[0] or return 0; (<$f> // '') =~ /^(\d+)/ ? $1 : 0 }

# the processes whose CPU is counted, by component: a list of [pid,
# with its children]
my %who = (
    front  => [[$c->front->master_pid, 1]],
    redis  => [[$c->redis->pid, 0]],
    pg     => [[pidfile($c->pg->dir . '/data/postmaster.pid'), 1, 1]],
    kafka  => [[$c->kafka->{pid}, 0]],
    recv   => [[$o{'receiver-master'} // 0, 1]],
    map { ("pod:$_" => [[$c->t($_)->master_pid, 1]]) } @pods,
);
my @COMP = (qw(wrk front), (map { "pod:$_" } @pods), qw(redis pg kafka recv));

# CPU seconds so far per component, the machine's busy and all CPU
# seconds (/proc/stat), wrk's (our reaped children's)
sub cpu_snapshot {
    my (%tick, %kids, %comm, %reaped);
    opendir my $d, '/proc' or die "/proc: $!\n";
    for my $pid (grep { /^\d+$/ } readdir $d) {
        open my $f, '<', "/proc/$pid/stat" or next;
        my $s = <$f> // next;
        $comm{$pid} = $s =~ /\((.*)\)/s ? $1 : '?';
        $s =~ s/^.*\)\s+//s;            # the name may hold spaces
        my @f = split ' ', $s;
        $tick{$pid} = $f[11] + $f[12];  # utime, stime
        $reaped{$pid} = $f[13] + $f[14]; # cutime, cstime: children waited for
        push @{$kids{$f[1]}}, $pid;
    }
    closedir $d;
    my (%s, %mine);
    for my $k (keys %who) {
        my $t = 0;
        for my $w (@{$who{$k}}) {
            my ($pid, $children, $self) = @$w;
            my @p = (!$children || $self ? $pid : (),
                     $children ? @{$kids{$pid} || []} : ());
            $t += $tick{$_} // 0 for @p;
            # a child that exited (a PostgreSQL backend, autovacuum
            # worker) leaves its time in its parent's cutime
            $t += $reaped{$pid} // 0 if $children;
            $mine{$_} = 1 for @p, $pid;
        }
        $s{$k} = $t / $CLK;
    }
    # the pods' workers' voluntary context switches: each is a wait for an
    # event (epoll_wait that blocked), so per message they tell how many
    # messages a wake-up carries
    for my $k (grep { /^pod:/ } keys %who) {
        for my $w (@{$kids{$who{$k}[0][0]} || []}) {
            open my $f, '<', "/proc/$w/status" or next;
            local $/;
            $s{wakeups} += $1 if <$f> =~ /^voluntary_ctxt_switches:\s*(\d+)/m;
        }
    }
    $s{wakeups} //= 0;
    # everything else, by pid, to name the largest "other" consumers
    $comm{$$} = 'cluster.pl';
    $s{procs} = { map { $_ => [$tick{$_}, $comm{$_}] } grep { !$mine{$_} } keys %tick };
    my (undef, undef, $cu, $cs) = times;
    $s{wrk} = $cu + $cs;
    open my $st, '<', '/proc/stat' or die "/proc/stat: $!\n";
    my @lines = <$st>;
    my @c = split ' ', $lines[0];
    # processes started since boot: short-lived ones are in the busy time
    # but in no /proc/PID of either snapshot
    $s{forks} = (map { /^processes (\d+)/ ? $1 : () } @lines)[0] // 0;
    my ($busy, $all) = (0, 0);
    for my $i (1 .. 8) {
        $all += $c[$i] // 0;
        $busy += $c[$i] // 0 unless $i == 4 || $i == 5;   # idle, iowait
    }
    # interrupts and softirqs (loopback TCP, block I/O completion): busy
    # time charged to no process
    @s{qw(busy all irq)} = ($busy / $CLK, $all / $CLK,
                            (($c[6] // 0) + ($c[7] // 0)) / $CLK);
    $s{t} = time;
    return \%s;
}

# the processes outside the cluster that used the most CPU between two
# snapshots, by name: "name seconds,..." (those that exited in between
# are not seen; /proc/stat's busy time has them)
sub other_top {
    my ($s0, $s1) = @_;
    my %by;
    while (my ($pid, $x) = each %{$s1->{procs}}) {
        my $t0 = $s0->{procs}{$pid} ? $s0->{procs}{$pid}[0] : 0;
        (my $name = $x->[1]) =~ s{[/:].*}{};    # kworker/0:1H -> kworker
        $by{$name} += ($x->[0] - $t0) / $CLK;
    }
    my @top = grep { $by{$_} >= 0.05 } sort { $by{$b} <=> $by{$a} } keys %by;
    return join ',', map { sprintf '%s %.2f', $_, $by{$_} } @top[0 .. ($#top < 4 ? $#top : 4)];
}

# ------------------------------------------------------------- metrics

# (label regex '^', not '': Cluster::metric matches its labels with
# /$labels/, and an empty pattern is Perl's last successful one)
sub pod_metrics {  # {pod => {published, duplicates, claimed, ...}}
    my %m;
    for my $n (@pods) {
        $m{$n} = {
            published => $c->metric($n, 'published_total', '^') // 0,
            claimed => $c->metric($n, 'redis_answers_total', 'result="claimed"') // 0,
            duplicate => $c->metric($n, 'redis_answers_total', 'result="duplicate"') // 0,
            fallbacks => $c->metric($n, 'redis_fallbacks_total', '^') // 0,
            redis_errors => $c->metric($n, 'redis_errors_total', '^') // 0,
            store_errors => $c->metric($n, 'store_errors_total', '^') // 0,
            completed => $c->metric($n, 'completed_total', '^') // 0,
            commits => $c->metric($n, 'store_batch_rows_count', '^') // 0,
            store_rows => $c->metric($n, 'store_rows_total', '^') // 0,
            relayed => $c->metric($n, 'redis_relay_total', 'outcome="received"') // 0,
        };
    }
    # all pods' commands to Redis (and the bench's few INFOs)
    $m{redis_cmds} = $c->redis->cmd('INFO', 'stats')
                     =~ /^total_commands_processed:(\d+)/m ? $1 : 0;
    return \%m;
}

sub wait_settled {
    my $t = time;
    Omnibus::Test::wait_until(sub { $c->settled }, timeout => 120,
                              interval => 0.2)
        or say('   the pods did not settle in 120 s');
    return time - $t;
}

# ------------------------------------------------------------ wrk

sub wrk {  # wrk OUT KEY_PREFIX DURATION: runs it, the RESULT fields
    my ($out, $prefix, $dur) = @_;
    my $pid = fork // die "fork: $!\n";
    if (!$pid) {
        Omnibus::Test::close_inherited_ports();
        @ENV{qw(BODY_SIZE PATH_PREFIX TOPICS TOPIC_PREFIX KEY_PREFIX)}
            = ($o{size}, '/publish/', $o{topics}, 'orders.t', $prefix);
        open STDOUT, '>', $out or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT;
        exec 'wrk', '-t1', "-c$o{conns}", "-d${dur}s", '-s', "$BENCH/pub.lua",
             "http://127.0.0.1:$FRONT" or POSIX::_exit(127);
    }
    waitpid $pid, 0;
    open my $f, '<', $out or return {};
    my ($line) = grep { /^RESULT / } <$f>;
    return { $line ? $line =~ /(\w+)=(\d+)/g : () };
}

# ------------------------------------------------- a. throughput, 1..N pods

say("a. throughput through the front: $o{rounds} rounds x {1.."
    . scalar(@pods) . "} pods, $o{duration}s each, $o{size} B, $o{conns}"
    . ' connections, an Idempotency-Key per request');
wrk("$TMP/cluster-wrk-warm.out", 'warm-', 2);
wait_settled();

my @cols = (qw(round pods rate requests duration_s non2xx sockerr p50_ms
               p99_ms accepted duplicates claimed fallbacks redis_errors
               store_errors commits store_rows relayed redis_cmds pod_wakeups
               forks per_pod settle_s
               busy_cpu_s all_cpu_s irq_cpu_s other_top),
            map { my $k = $_; $k =~ s/^pod:/cpu_/; $k =~ s/^(?!cpu_)/cpu_/; $k } @COMP);
open my $runs, '>', "$DATA/cluster-runs.tsv" or die "cluster-runs.tsv: $!\n";
$runs->autoflush(1);
print $runs join("\t", @cols), "\n";

my $np = @pods;
for my $r (1 .. $o{rounds}) {
    for my $k (0 .. $np - 1) {
        my $n = ($k + $r - 1) % $np + 1;
        my @in = @pods[0 .. $n - 1];
        $c->front_pods(@in);
        my $settle = wait_settled();
        sleep 0.5;
        my ($m0, $c0) = (pod_metrics(), cpu_snapshot());
        my $w = wrk("$TMP/cluster-wrk-$r-$n.out", "c$r-$n-", $o{duration});
        my $c1 = cpu_snapshot();
        my $m1 = pod_metrics();
        unless ($w->{requests}) {
            say("   round $r, $n pod(s): wrk gave no RESULT");
            next;
        }
        my $dur = $w->{duration_us} / 1e6;
        my %row = (round => $r, pods => $n, requests => $w->{requests},
                   duration_s => sprintf('%.3f', $dur),
                   non2xx => $w->{non2xx}, sockerr => $w->{sockerr},
                   rate => sprintf('%.0f', ($w->{requests} - $w->{non2xx}) / $dur),
                   p50_ms => sprintf('%.2f', $w->{p50_us} / 1000),
                   p99_ms => sprintf('%.2f', $w->{p99_us} / 1000),
                   settle_s => sprintf('%.1f', $settle));
        my %as = (published => 'accepted', duplicate => 'duplicates');
        for my $k (qw(published duplicate claimed fallbacks redis_errors
                      store_errors commits store_rows relayed)) {
            my $s = 0;
            $s += $m1->{$_}{$k} - $m0->{$_}{$k} for @pods;
            $row{$as{$k} // $k} = $s;
        }
        $row{redis_cmds} = $m1->{redis_cmds} - $m0->{redis_cmds};
        $row{pod_wakeups} = $c1->{wakeups} - $c0->{wakeups};
        # wrk itself and its thread (clone() counts, threads too)
        $row{forks} = $c1->{forks} - $c0->{forks} - 2;
        $row{per_pod} = join '/', map { $m1->{$_}{published} - $m0->{$_}{published} } @pods;
        $row{other_top} = other_top($c0, $c1);
        for my $k (@COMP, qw(busy all irq)) {
            (my $col = $k) =~ s/^pod:/cpu_/;
            $col = "cpu_$col" unless $col =~ /^cpu_/;
            $col = "${k}_cpu_s" if $k =~ /^(busy|all|irq)$/;
            $row{$col} = sprintf '%.2f', $c1->{$k} - $c0->{$k};
        }
        print $runs join("\t", map { $row{$_} // '' } @cols), "\n";
        my $wall = $c1->{t} - $c0->{t};
        say(sprintf '   round %d, %d pod(s): %s msg/s accepted (non-2xx %d,'
            . ' per pod %s; %.1f rows per commit, %.1f Redis commands per'
            . ' message), CPU %% of one core: %s; irq+softirq %.0f; machine'
            . ' busy %.0f%% of %d%% (other processes, CPU s: %s)',
            $r, $n, $row{rate}, $w->{non2xx}, $row{per_pod},
            $row{commits} ? $row{store_rows} / $row{commits} : 0,
            $row{accepted} ? $row{redis_cmds} / $row{accepted} : 0,
            join(' ', map { my $x = $_ =~ s/^pod://r;
                            sprintf '%s %.0f', $x, 100 * ($c1->{$_} - $c0->{$_}) / $wall }
                      @COMP),
            100 * ($c1->{irq} - $c0->{irq}) / $wall,
            100 * ($c1->{busy} - $c0->{busy}) / $wall,
            100 * ($c1->{all} - $c0->{all}) / $wall, $row{other_top} || '-');
    }
}
close $runs;

# ------------------------------------------------------------ b. latency

$c->front_pods(@pods);
wait_settled();
my ($rate, $k, $dur) = @o{qw(lat-rate lat-clients lat-duration)};
say("b. latency: $k clients x " . $rate / $k . " msg/s = $rate msg/s through"
    . " the front to $np pods for ${dur}s, publish -> webhook");

my $body = do {
    my ($h, $t) = ('{"seq":0,"pad":"', '"}');
    $h . 'x' x ($o{size} - length($h) - length($t)) . $t;
};
my $start = time + 0.5;
my @kids = map {
    my $i = $_;
    Omnibus::Cluster::child(sub {
        open my $out, '>', "$TMP/cluster-lat-$i.log" or die $!;
        my $conn;
        my $gap = $k / $rate;
        # open loop: the n-th message at start + (n + i / k) * gap, or at
        # once when the previous answer came later than that
        for (my $n = 0; ; $n++) {
            my $at = $start + ($n + $i / $k) * $gap;
            last if $at > $start + $dur;
            my $wait = $at - time;
            sleep $wait if $wait > 0;
            $conn ||= Omnibus::Test::Conn->new(undef, port => $FRONT,
                                                 timeout => 30);
            my $t0 = time;
            my $res = $conn && $conn->request(POST => "/publish/orders.lat.$i",
                body => $body, keepalive => 1,
                headers => { 'Idempotency-Key' => "lat-$i-$n",
                             'Content-Type' => 'application/json' });
            my $t1 = time;
            if (!$res || ($res->{headers}{connection} // '') =~ /close/i) {
                $conn->close if $conn;
                $conn = undef;
            }
            my $id = $res && $res->{json} && $res->{json}{id} // '-';
            printf $out "%.6f %s %s %.3f\n", $t0, $id,
                $res ? $res->{status} : 0, ($t1 - $t0) * 1000;
        }
        close $out;
    });
} 0 .. $k - 1;
waitpid $_, 0 for @kids;
my $lsettle = wait_settled();
sleep 2.5;      # the receiver's access log flushes every second

# latency.pl's input: "$time $id $status" per publish
my (@plat, $sent, $ok);
open my $pl, '>', "$TMP/cluster-lat-pub.log" or die $!;
for my $i (0 .. $k - 1) {
    open my $f, '<', "$TMP/cluster-lat-$i.log" or next;
    while (<$f>) {
        my ($t, $id, $st, $ms) = split;
        $sent++;
        next unless $st =~ /^2/;
        $ok++;
        push @plat, $ms;
        print $pl "$t $id $st\n";
    }
}
close $pl;
system("perl '$BENCH/latency.pl' '$TMP/cluster-lat-pub.log' '$o{'recv-log'}'"
       . " > '$DATA/cluster-latency.tsv'") == 0
    or say('   latency.pl failed');
@plat = sort { $a <=> $b } @plat;
my $pct = sub {
    my $i = int($_[0] / 100 * @plat + 0.999999) - 1;
    @plat ? sprintf('%.2f', $plat[$i < 0 ? 0 : $i]) : 'n/a';
};
open my $lt, '>>', "$DATA/cluster-latency.tsv" or die $!;
print $lt "rate\t$rate\nclients\t$k\nduration_s\t$dur\nsent\t", $sent // 0,
    "\naccepted\t", $ok // 0, "\npublish_p50_ms\t", $pct->(50),
    "\npublish_p99_ms\t", $pct->(99), "\nsettle_s\t", sprintf('%.1f', $lsettle), "\n";
close $lt;
open my $lf, '<', "$DATA/cluster-latency.tsv" or die $!;
my %lat = map { chomp; split /\t/, $_, 2 } <$lf>;
say("   sent $lat{sent}, accepted $lat{accepted}, received $lat{matched};"
    . " publish -> webhook p50 $lat{p50_ms} ms, p99 $lat{p99_ms} ms"
    . " (publish answer p50 $lat{publish_p50_ms} ms, p99 $lat{publish_p99_ms} ms)");

# ------------------------------------------------------------- the end

# the store after the runs: every row done with
Omnibus::Test::wait_until(sub { $c->open_rows == 0 }, timeout => 30);
meta('open_rows_after', scalar $c->open_rows);
meta('zone_bytes_used_after', join '/', map {
    $c->t($_)->http(GET => '/omnibus/')->{json}{bytes_used} // '?' } @pods);
meta('redis_keys_after', $c->redis->cmd('DBSIZE'));

# the pods' and the front's error logs: checked by the harness (TAP), and
# what is worth a look for the report
$c->finish;
open my $e, '>', "$DATA/cluster-errors.txt" or die $!;
for my $n (@pods, 'front') {
    my $log = $n eq 'front' ? $c->front->error_log : $c->t($n)->error_log;
    my @l = grep { /\[(alert|crit|emerg)\]|exited on signal/ } split /\n/, $log;
    my @err = grep { /\[error\]/ } split /\n/, $log;
    print $e "$n: $_\n" for @l[0 .. ($#l < 9 ? $#l : 9)];
    print $e "$n: $_\n" for @err[0 .. ($#err < 4 ? $#err : 4)];
}
close $e;
done_testing();
