#!/usr/bin/perl
# Turn the data files of bench/run.sh into bench/RESULTS.md and the
# gnuplot data files (data/*.dat) that bench/chart.gp plots.
#
#   report.pl bench/data bench/RESULTS.md

use strict;
use warnings;

my ($data, $out) = @ARGV;
die "usage: report.pl DATA_DIR RESULTS.md\n" unless $out;

# ------------------------------------------------------------------ input

sub tsv {  # rows of a TSV with a header line, as hashes
    my ($name) = @_;
    open(my $f, '<', "$data/$name") or return ();
    my $h = <$f>;
    return () unless defined $h;
    chomp $h;
    my @k = split /\t/, $h;
    my @rows;
    while (<$f>) {
        chomp;
        next unless length;
        my @v = split /\t/;
        push @rows, { map { $k[$_] => $v[$_] } 0 .. $#k };
    }
    return @rows;
}

sub kv {  # key<TAB>value lines
    my ($name) = @_;
    my %h;
    open(my $f, '<', "$data/$name") or return %h;
    while (<$f>) {
        chomp;
        my ($k, $v) = split /\t/, $_, 2;
        $h{$k} = $v if defined $v;
    }
    return %h;
}

sub median {
    my @s = sort { $a <=> $b } grep { defined && /\d/ } @_;
    return undef unless @s;
    return @s % 2 ? $s[$#s / 2] : ($s[@s / 2 - 1] + $s[@s / 2]) / 2;
}

sub num {  # 12345 -> 12,345
    my ($v, $d) = @_;
    return 'n/a' unless defined $v && $v =~ /\d/;
    my $s = sprintf "%.*f", $d // 0, $v;
    1 while $s =~ s/^(-?\d+)(\d{3})/$1,$2/;
    return $s;
}

sub ratio {
    my ($a, $b) = @_;
    return undef unless defined $a && defined $b && $b > 0;
    return $a / $b;
}

sub r2 { defined $_[0] ? sprintf('%.2f', $_[0]) : 'n/a' }
sub yn { !defined $_[0] ? 'n/a' : $_[0] ? '**yes**' : '**no**' }

sub human {
    my ($b) = @_;
    return $b >= 1024 ? ($b % 1024 ? sprintf('%.1f KiB', $b / 1024)
                                   : ($b / 1024) . ' KiB')
                      : "$b B";
}

my %meta = kv('meta.tsv');
my %lat = kv('latency.tsv');
my %low = kv('lowlat.tsv');
my @pub = tsv('publish-runs.tsv');
# section 1's own run data (a `bench/run.sh publish` run keeps meta.tsv)
my %pmeta = kv('publish-meta.tsv');
my @orders = tsv('orders.tsv');
my ($jsonbench, $orders_sample, @puberr);
if (open(my $f, '<', "$data/jsonbench.md")) {
    local $/;
    $jsonbench = <$f>;
}
if (open(my $f, '<', "$data/orders-256.json")) {
    local $/;
    $orders_sample = <$f>;
}
if (open(my $f, '<', "$data/publish-errors.txt")) {
    chomp(@puberr = grep { /\S/ } <$f>);
}
my @mem = tsv('memory.tsv');
my @fan = tsv('fanout-runs.tsv');
# section 3's run data (a `bench/run.sh fanout` run keeps meta.tsv)
my %fmeta = kv('fanout-meta.tsv');
my @e2e = tsv('e2e-runs.tsv');
my @backlog = tsv('backlog-runs.tsv');
my @workers = tsv('workers-runs.tsv');

my (@cmds, %cmd_seen);
if (open(my $f, '<', "$data/commands.tsv")) {
    while (<$f>) {
        chomp;
        my ($label, $c) = split /\t/, $_, 2;
        push @cmds, [$label, $c];
    }
}
my @errors;
if (open(my $f, '<', "$data/errors.txt")) {
    chomp(@errors = <$f>);
}
my %soakmeta = kv('soak-meta.tsv');
my @soak = tsv('soak.tsv');
my @soakerr;
if (open(my $f, '<', "$data/soak-errors.txt")) {
    chomp(@soakerr = <$f>);
}
my %kmeta = kv('kafka-meta.tsv');
my @kdrain = tsv('kafka-drain.tsv');
my @ksteady = tsv('kafka-steady.tsv');
my @klat = tsv('kafka-latency.tsv');
my %klow = kv('kafka-lowlat.tsv');
my @kerr;
if (open(my $f, '<', "$data/kafka-errors.txt")) {
    chomp(@kerr = <$f>);
}
my %smeta = kv('store-meta.tsv');
my @sruns = tsv('store-runs.tsv');
my @ssizes = tsv('store-sizes.tsv');
my %slat = kv('store-latency.tsv');
my @serr;
if (open(my $f, '<', "$data/store-errors.txt")) {
    chomp(@serr = <$f>);
}
my %rmeta = kv('redis-meta.tsv');
my @rpub = tsv('redis-publish.tsv');
my @rfan = tsv('redis-fanout.tsv');
my @rerr;
if (open(my $f, '<', "$data/redis-errors.txt")) {
    chomp(@rerr = grep { /\S/ } <$f>);
}
my %cmeta = kv('cluster-meta.tsv');
my @cruns = tsv('cluster-runs.tsv');
my %clat = kv('cluster-latency.tsv');
my ($cerr, $cpodconf) = ([], '');
if (open(my $f, '<', "$data/cluster-errors.txt")) {
    chomp(@$cerr = grep { /\S/ } <$f>);
}
if (open(my $f, '<', "$data/cluster-pod.conf")) {
    local $/;
    $cpodconf = <$f> // '';
}

# ------------------------------------------------------------ aggregation

my @targets = qw(omnibus raw plain nchan);
my %tname = (omnibus => 'omnibus `/publish/`',
             raw => 'omnibus `/raw/` (`omnibus_json off`)',
             plain => '`return 202`', nchan => 'nchan publisher');
# body shapes of section 1: padded {"seq":0,"pad":"xxx..."} (the only one
# of runs before the shape column) and orders (bench/gen-orders.pl)
my %shname = (padded => 'padded', orders => 'orders');
# per size, shape and target: $pubmed{$s}{$sh}{$t} etc.
my (%pubmed, %pubp99, %pubrounds, %pubnon2xx, %pubcpu, @sizes, @shapes);
for my $row (@pub) {
    my ($s, $sh, $t) = ($row->{size}, $row->{shape} // 'padded', $row->{target});
    push @sizes, $s unless grep { $_ == $s } @sizes;
    push @shapes, $sh unless grep { $_ eq $sh } @shapes;
    push @{$pubrounds{$s}{$sh}{$t}}, $row->{rate};
    push @{$pubp99{$s}{$sh}{$t}}, $row->{p99_ms};
    push @{$pubcpu{$s}{$sh}{$t}}, $row->{cpu_us_per_req};
    $pubnon2xx{$s}{$sh}{$t} += $row->{non2xx} + $row->{sockerr};
}
@sizes = sort { $a <=> $b } @sizes;
@shapes = grep { my $x = $_; grep { $_ eq $x } @shapes } qw(padded orders);
for my $s (@sizes) {
    for my $sh (@shapes) {
        for my $t (@targets) {
            $pubmed{$s}{$sh}{$t} = median(@{$pubrounds{$s}{$sh}{$t} || []});
        }
    }
}

my %fanmed;
for my $t (qw(omnibus nchan)) {
    my @r = grep { $_->{target} eq $t } @fan;
    $fanmed{$t} = {
        rate => median(map { $_->{deliveries_per_s} } @r),
        cpu  => median(map { $_->{cpu_s_per_100k} } @r),
        events => join(' / ', map { "$_->{events}/$_->{expected}" } @r),
        rounds => join(' / ', map { num($_->{deliveries_per_s}) } @r),
        complete => (grep { $_->{events} < $_->{expected} } @r) ? 0 : 1,
        n => scalar @r,
    };
}

my %e2emed = (
    publish => median(map { $_->{publish_rate} } @e2e),
    delivered => median(map { $_->{delivered_rate} } @e2e),
    window => median(map { $_->{delivered_in_window_rate} } @e2e),
    drain => median(map { $_->{drain_s} } @e2e),
    buscpu => median(map { $_->{bus_cpu_us_per_msg} } @e2e),
    recvcpu => median(map { $_->{recv_cpu_us_per_msg} } @e2e),
);

my (%wmed, %wcpu);
for my $row (@workers) {
    push @{$wmed{$row->{workers}}{$row->{target}}}, $row->{rate};
    push @{$wcpu{$row->{workers}}{$row->{target}}}, $row->{cpu_us_per_req};
}
my %bmed;
for my $row (@backlog) {
    push @{$bmed{$row->{backlog}}{rate}}, $row->{rate};
    push @{$bmed{$row->{backlog}}{queued}}, $row->{queued_before};
}

# ------------------------------------------------------------------ goals

# section 2 compares with the padded 1 KiB body it publishes too
my $pub1k = $pubmed{1024}{padded}{omnibus};
my @goals;
# section 1, per shape: [ratio to, its name, {size => minimum}]; padded:
# the first goals, the same at every size; orders: the issue "Publish at
# memory speed with real JSON", lower at 16 KiB
my %pubgoals = (
    padded => [[plain => '`return 202`', {256 => '0.85', 1024 => '0.85', 16384 => '0.85'}],
               [nchan => 'nchan', {256 => '1.5', 1024 => '1.5', 16384 => '1.5'}]],
    orders => [[plain => '`return 202`', {256 => '0.85', 1024 => '0.85', 16384 => '0.6'}],
               [nchan => 'nchan', {256 => '1.5', 1024 => '1.5', 16384 => '1.0'}]],
);
for my $sh (qw(padded orders)) {
    for my $g (@{$pubgoals{$sh}}) {
        my ($to, $name, $min) = @$g;
        for my $s (sort { $a <=> $b } keys %$min) {
            my $m = $pubmed{$s}{$sh} || {};
            my $r = ratio($m->{omnibus}, $m->{$to});
            push @goals, [sprintf('publish >= %s x %s, %s, %s bodies', $min->{$s},
                                  $name, human($s), $shname{$sh}),
                          defined $r ? sprintf('%.2f x (%s vs %s req/s)', $r,
                              num($m->{omnibus}), num($m->{$to})) : 'n/a',
                          defined $r ? $r >= $min->{$s} : undef];
        }
    }
}
{
    my $r = ratio($e2emed{delivered}, $e2emed{publish});
    push @goals, ['end-to-end delivery >= 0.8 x publish rate: against the'
                  . ' publish rate of the same run (1 KiB, routes on)',
                  defined $r ? sprintf('%.2f x (%s delivered/s vs %s published/s)',
                      $r, num($e2emed{delivered}), num($e2emed{publish})) : 'n/a',
                  defined $r ? $r >= 0.8 : undef];
    $r = ratio($e2emed{delivered}, $pub1k);
    push @goals, ['end-to-end delivery >= 0.8 x publish rate: against the'
                  . ' publish-only rate of section 1 (1 KiB padded, no routes)',
                  defined $r ? sprintf('%.2f x (%s delivered/s vs %s published/s)',
                      $r, num($e2emed{delivered}), num($pub1k)) : 'n/a',
                  defined $r ? $r >= 0.8 : undef];
}
{
    my $p99 = $lat{p99_ms};
    my $ok = defined $p99 && $p99 =~ /^-?\d/ ? $p99 < 5 : undef;
    push @goals, ['p99 publish-to-webhook latency < 5 ms at 50% load',
                  defined $ok ? sprintf('%s ms (p50 %s ms) at %s msg/s',
                      $p99, $lat{p50_ms}, num($meta{lat_rate})) : 'n/a',
                  $ok];
}
{
    my ($m) = grep { $_->{payload} == 1024 } @mem;
    my $b = $m ? $m->{bytes_per_msg} : undef;
    push @goals, ['shared memory per queued 1 KiB message <= 1.3 KiB',
                  defined $b ? sprintf('%s bytes = %.2f KiB', num($b, 0), $b / 1024)
                             : 'n/a',
                  defined $b ? $b <= 1.3 * 1024 : undef];
}
{
    my $r = ratio($fanmed{omnibus}{rate}, $fanmed{nchan}{rate});
    push @goals, ["fan-out deliveries/s >= nchan's",
                  defined $r ? sprintf('%.2f x (%s vs %s deliveries/s)', $r,
                      num($fanmed{omnibus}{rate}), num($fanmed{nchan}{rate}))
                             : 'n/a',
                  defined $r ? $r >= 1 && $fanmed{omnibus}{complete} : undef];
}

# Kafka (section 7): medians of the rounds
my %kmed = (
    kcat => median(map { $_->{rate} } grep { $_->{goer} eq 'kcat' } @kdrain),
    drain => median(map { $_->{rate} } grep { $_->{goer} eq 'omnibus' } @kdrain),
    kcat_cpu => median(map { $_->{cpu_us_per_record} }
                       grep { $_->{goer} eq 'kcat' } @kdrain),
    drain_cpu => median(map { $_->{cpu_us_per_record} }
                        grep { $_->{goer} eq 'omnibus' } @kdrain),
    drain_s => median(map { $_->{seconds} } grep { $_->{goer} eq 'omnibus' } @kdrain),
    kcat_s => median(map { $_->{seconds} } grep { $_->{goer} eq 'kcat' } @kdrain),
    mock_cpu => median(map { $_->{mock_cpu_us_per_record} }
                       grep { $_->{goer} eq 'omnibus' } @kdrain),
    publish => median(map { $_->{publish_rate} } @ksteady),
    window => median(map { $_->{window_rate} } @ksteady),
    drained => median(map { $_->{drained_rate} } @ksteady),
    steady_drain_s => median(map { $_->{drain_s} } @ksteady),
    steady_cpu => median(map { $_->{cpu_us_per_record} } @ksteady),
    noroute => median(map { $_->{noroute_publish_rate} } @ksteady),
);
my %klatm = map { $_->{measure} => $_ } @klat;
my $kafka_ran = %kmeta && (@kdrain || @ksteady);

if (%kmeta) {
    my $r = ratio($kmed{drain}, $kmed{kcat});
    push @goals, ['Kafka: backlog drain >= 0.8 x `kcat -P` (same '
                  . num($kmeta{records}) . ' records of 1 KiB, cluster and settings)',
                  defined $r ? sprintf('%.2f x (%s vs %s records/s)', $r,
                      num($kmed{drain}), num($kmed{kcat})) : 'n/a',
                  defined $r ? $r >= 0.8 : undef];
    $r = ratio($kmed{drained}, $kmed{publish});
    push @goals, ['Kafka: steady publish -> Kafka >= 0.8 x the publish rate of'
                  . ' the same run (acknowledged until all in)',
                  defined $r ? sprintf('%.2f x (%s acknowledged/s vs %s published/s)',
                      $r, num($kmed{drained}), num($kmed{publish})) : 'n/a',
                  defined $r ? $r >= 0.8 : undef];
}

# the durable store (section 8): medians of the rounds, per target
my @stargets = qw(mem sync async pgbench);
my %sname = (mem => 'memory only', sync => '`mode=sync`', async => '`mode=async`',
             pgbench => 'pgbench, 1 INSERT per commit');
my %smed;
for my $t (@stargets) {
    my @r = grep { $_->{target} eq $t } @sruns;
    next unless @r;
    $smed{$t}{n} = @r;
    for my $k (qw(rate p50_ms p99_ms accepted rows_inserted rows_done
                  store_errors commits commit_mean_ms commit_p50_ms
                  commit_p99_ms rows_per_commit msgs_per_commit rows_p50
                  rows_p99 drain_s written_rate queued_after
                  nginx_cpu_us_per_req pg_cpu_us_per_row)) {
        $smed{$t}{$k} = median(map { $_->{$k} } @r);
    }
    $smed{$t}{rounds} = join(' / ', map { num($_->{rate}) } @r);
    $smed{$t}{non2xx} = 0;
    $smed{$t}{non2xx} += ($_->{non2xx} || 0) + ($_->{sockerr} || 0) for @r;
    $smed{$t}{store_errors_sum} = 0;
    $smed{$t}{store_errors_sum} += $_->{store_errors} || 0 for @r;
}
my $store_ran = %smeta && @sruns;
my $srate = sub { $smed{$_[0]} ? $smed{$_[0]}{rate} : undef };
my $sfix = sub { defined $_[0] && $_[0] =~ /^-?[\d.]+$/ ? $_[0] : undef };

if (%smeta) {
    my $r = ratio($srate->('sync'), $srate->('mem'));
    push @goals, ['store: `mode=sync` publish >= 0.4 x memory-only (1 KiB,'
                  . ' same nginx, PostgreSQL with fsync on)',
                  defined $r ? sprintf('%.2f x (%s vs %s req/s)', $r,
                      num($srate->('sync')), num($srate->('mem'))) : 'n/a',
                  defined $r ? $r >= 0.4 : undef];
    $r = ratio($srate->('sync'), $srate->('pgbench'));
    push @goals, ['store: `mode=sync` publish >= 4 x one INSERT per commit'
                  . ' (pgbench, same server, same clients)',
                  defined $r ? sprintf('%.2f x (%s req/s vs %s transactions/s)',
                      $r, num($srate->('sync')), num($srate->('pgbench'))) : 'n/a',
                  defined $r ? $r >= 4 : undef];
    my $p99 = $sfix->($slat{p99_ms});
    push @goals, ['store: `mode=sync` p99 publish latency <= 10 ms at half'
                  . ' its maximum rate',
                  defined $p99 ? sprintf('%s ms (p50 %s ms) at %s req/s',
                      $p99, $slat{p50_ms}, num($slat{rate_per_s})) : 'n/a',
                  defined $p99 ? $p99 <= 10 : undef];
}

# Redis (section 9): medians of the rounds, per target
my @rtargets = qw(local cluster nchan-memory nchan-redis);
my %rname = (local => 'zone only', cluster => 'zone + Redis dedup',
             'nchan-memory' => 'nchan publisher, memory',
             'nchan-redis' => 'nchan publisher, Redis');
my %rmed;
for my $t (@rtargets) {
    my @r = grep { $_->{target} eq $t } @rpub;
    next unless @r;
    $rmed{$t}{n} = @r;
    for my $k (qw(rate p50_ms p99_ms nginx_cpu_us_per_req redis_cpu_us_per_req
                  queued_after)) {
        $rmed{$t}{$k} = median(map { $_->{$k} } @r);
    }
    $rmed{$t}{rounds} = join(' / ', map { num($_->{rate}) } @r);
    for my $k (qw(non2xx sockerr accepted claimed duplicates fallbacks
                  redis_errors)) {
        my ($sum, $seen) = (0, 0);
        for (@r) {
            next unless defined $_->{$k} && $_->{$k} =~ /\d/;
            $sum += $_->{$k};
            $seen = 1;
        }
        $rmed{$t}{"${k}_sum"} = $seen ? $sum : undef;
    }
}
my $rrate = sub { $rmed{$_[0]} ? $rmed{$_[0]}{rate} : undef };
my %rfmed;
for my $t (qw(omnibus nchan)) {
    my @r = grep { $_->{target} eq $t } @rfan;
    next unless @r;
    my @ok = grep { ($_->{result} // '') eq 'ok' } @r;
    my $sum = sub { my $k = shift; my $s = 0; $s += $_->{$k} || 0 for @r; $s };
    $rfmed{$t} = {
        n => scalar @r,
        failed => @r - @ok,
        rate => median(map { $_->{deliveries_per_s} } @ok),
        cpu => median(map { $_->{nginx_cpu_s_per_100k} } @ok),
        rcpu => median(map { $_->{redis_cpu_s_per_100k} } @ok),
        rounds => join(' / ', map { ($_->{result} // '') eq 'ok'
                                    ? num($_->{deliveries_per_s}) : 'failed' } @r),
        events => join(' / ', map { num($_->{events}) . '/' . num($_->{expected}) } @r),
        pods => join(' / ', map { $_->{events_b_c} || 'n/a' } @r),
        missing => $sum->('missing'),
        short => $sum->('short_conns'),
        over => $sum->('over_conns'),
        complete => !(grep { $_->{events} < $_->{expected} || $_->{missing} } @r),
    };
}
my $redis_ran = %rmeta && (@rpub || @rfan);

if (%rmeta) {
    my $r = ratio($rrate->('cluster'), $rrate->('local'));
    push @goals, ['Redis: publish with `omnibus_redis` dedup >= 0.7 x the zone'
                  . ' alone (1 KiB, a distinct Idempotency-Key per request)',
                  defined $r ? sprintf('%.2f x (%s vs %s req/s)', $r,
                      num($rrate->('cluster')), num($rrate->('local'))) : 'n/a',
                  defined $r ? $r >= 0.7 : undef];
    my ($o, $n) = ($rfmed{omnibus}, $rfmed{nchan});
    $r = ratio($o && $o->{rate}, $n && $n->{rate});
    push @goals, ['Redis: fan-out across pods >= 1.5 x nchan on Redis (publish'
                  . ' on pod A, SSE subscribers on pods B and C), every'
                  . ' subscriber getting every message',
                  defined $r ? sprintf('%.2f x (%s vs %s deliveries/s); omnibus'
                                       . ' missing %s events', $r,
                      num($o->{rate}), num($n->{rate}), num($o->{missing}))
                             : 'n/a',
                  defined $r ? $r >= 1.5 && $o->{complete} : undef];
}

# the cluster (section 10): medians of the rounds per pod count; CPU in %
# of one core over each run (busy - the components = other processes)
my @ccomp = (['wrk', 'wrk'], ['front', 'front nginx'], ['pods', 'pods'],
             ['redis', 'redis-server'], ['pg', 'PostgreSQL'],
             ['kafka', 'Kafka mock'], ['recv', 'webhook receiver'],
             ['irq', 'interrupts + softirqs'], ['other', 'other processes']);
my %cmed;
for my $r (@cruns) {
    my $d = $r->{duration_s} || 0;
    next unless $d > 0;
    $r->{cpu_pods} = 0;
    $r->{cpu_pods} += $r->{$_} || 0 for grep { /^cpu_pod-/ } keys %$r;
    my $sum = 0;
    $sum += $r->{"cpu_$_->[0]"} || 0 for grep { $_->[0] !~ /^(other|irq)$/ } @ccomp;
    $r->{cpu_irq} = $r->{irq_cpu_s} || 0;
    $sum += $r->{cpu_irq};
    $r->{cpu_other} = ($r->{busy_cpu_s} || 0) - $sum;
    $r->{cpu_other} = 0 if $r->{cpu_other} < 0;
    $r->{cpu_idle} = ($r->{all_cpu_s} || 0) - ($r->{busy_cpu_s} || 0);
    # the CPU counters cover the run plus the snapshots around it: per
    # second of wall time, not of wrk's duration
    $r->{wall} = ($r->{all_cpu_s} || 0) / ($cmeta{nproc} || 1) || $d;
}
for my $n (sort { $a <=> $b } keys %{{ map { $_->{pods} => 1 } @cruns }}) {
    my @r = grep { $_->{pods} == $n } @cruns;
    my $x = $cmed{$n} = { n => scalar @r };
    for my $k (qw(rate p50_ms p99_ms)) {
        $x->{$k} = median(map { $_->{$k} } @r);
    }
    $x->{rounds} = join(' / ', map { num($_->{rate}) } @r);
    for my $k (qw(requests non2xx sockerr accepted duplicates claimed fallbacks
                  redis_errors store_errors commits store_rows redis_cmds
                  relayed pod_wakeups forks)) {
        my $s = 0;
        $s += $_->{$k} || 0 for @r;
        $x->{"${k}_sum"} = $s;
    }
    for my $k ((map { $_->[0] } @ccomp), 'idle', 'busy') {
        my $col = $k eq 'busy' ? 'busy_cpu_s' : "cpu_$k";
        $x->{"pct_$k"} = median(map { 100 * ($_->{$col} || 0) / $_->{wall} } @r);
        # CPU microseconds per accepted message
        $x->{"us_$k"} = median(map { $_->{accepted} ? 1e6 * ($_->{$col} || 0)
                                                      / $_->{accepted} : () } @r);
    }
    # how the accepted messages split over the pods, summed over the rounds
    my @per;
    for (@r) {
        my @v = split m{/}, $_->{per_pod} // '';
        $per[$_] += $v[$_] || 0 for 0 .. $#v;
    }
    $x->{per_pod} = join ' / ', map { num($_) } @per[0 .. $n - 1];
    # the largest other processes, CPU s summed over the rounds
    my %o;
    for (@r) {
        for (split /,/, $_->{other_top} // '') {
            $o{$1} += $2 if /^(.+) ([\d.]+)$/;
        }
    }
    $x->{other_top} = join ', ', map { sprintf '%s %.1f s', $_, $o{$_} }
                      grep { defined } (sort { $o{$b} <=> $o{$a} } keys %o)[0 .. 3];
}
my $crate = sub { $cmed{$_[0]} ? $cmed{$_[0]}{rate} : undef };
my $cluster_ran = %cmeta && @cruns;

# ------------------------------------------------------------- gnuplot data

open(my $d, '>', "$data/publish.dat") or die "$data/publish.dat: $!\n";
print $d "# body_size shape omnibus omnibus_json_off plain_return_202 nchan (median req/s)\n";
for my $s (@sizes) {
    for my $sh (@shapes) {
        printf $d "\"%s\" \"%s\" %s\n", human($s), $shname{$sh},
            join(' ', map { $pubmed{$s}{$sh}{$_} // 0 } @targets);
    }
}
close $d;

open($d, '>', "$data/fanout.dat") or die "$data/fanout.dat: $!\n";
print $d "# target deliveries_per_s cpu_s_per_100k (medians)\n";
printf $d "\"%s\" %s %s\n", $_, $fanmed{$_}{rate} // 0, $fanmed{$_}{cpu} // 0
    for qw(omnibus nchan);
close $d;

open($d, '>', "$data/publish-cpu.dat") or die "$data/publish-cpu.dat: $!\n";
print $d "# body_size shape omnibus omnibus_json_off plain_return_202 nchan (median worker CPU us per request)\n";
for my $s (@sizes) {
    for my $sh (@shapes) {
        printf $d "\"%s\" \"%s\" %s\n", human($s), $shname{$sh},
            join(' ', map { median(@{$pubcpu{$s}{$sh}{$_} || []}) // 0 } @targets);
    }
}
close $d;

open($d, '>', "$data/memory.dat") or die "$data/memory.dat: $!\n";
print $d "# payload payload_bytes zone_bytes_per_queued_message\n";
printf $d "\"%s\" %d %s\n", human($_->{payload}), $_->{payload}, $_->{bytes_per_msg}
    for @mem;
close $d;

open($d, '>', "$data/scaling.dat") or die "$data/scaling.dat: $!\n";
print $d "# case omnibus_req_per_s (medians; 1 KiB bodies)\n";
for my $w (sort keys %wmed) {
    printf $d "\"%d worker%s\" %s\n", $w, $w == 1 ? '' : 's',
        median(@{$wmed{$w}{omnibus} || []}) // 0;
}
for my $b (sort { $a <=> $b } keys %bmed) {
    printf $d "\"%s\" %s\n", $b ? num($b) . ' queued' : 'empty bus',
        median(@{$bmed{$b}{rate}}) // 0;
}
close $d;

open($d, '>', "$data/e2e.dat") or die "$data/e2e.dat: $!\n";
print $d "# case msgs_per_s (medians; 1 KiB bodies)\n";
printf $d "\"publish only (sect. 1)\" %s\n\"published (routes on)\" %s\n"
         . "\"delivered\" %s\n", $pub1k // 0, $e2emed{publish} // 0,
    $e2emed{delivered} // 0;
close $d;

# section 7: kafka_ok = 0 when there is nothing to plot
open($d, '>', "$data/kafka.gp") or die "$data/kafka.gp: $!\n";
printf $d "kafka_ok = %d\n", $kafka_ran ? 1 : 0;
close $d;
open($d, '>', "$data/kafka.dat") or die "$data/kafka.dat: $!\n";
print $d "# case records_per_s (medians; 1 KiB records, acks=all, idempotence, gzip)\n";
printf $d "\"kcat -P\" %s\n\"backlog drain\" %s\n\"published\" %s\n"
         . "\"acknowledged\" %s\n\"no route\" %s\n",
    map { $kmed{$_} // 0 } qw(kcat drain publish drained noroute);
close $d;
open($d, '>', "$data/kafka-lat.dat") or die "$data/kafka-lat.dat: $!\n";
print $d "# measure p50_ms p99_ms\n";
my $nz = sub { defined $_[0] && $_[0] =~ /^[\d.]+$/ ? $_[0] : 0 };
for my $m (['publish -> dispatch', $klatm{message_bus_message_age_seconds}],
           ['produce -> ack', $klatm{message_bus_kafka_delivery_seconds}],
           ['serial publish -> ack', \%klow]) {
    printf $d "\"%s\" %s %s\n", $m->[0], $nz->($m->[1]{p50_ms}), $nz->($m->[1]{p99_ms});
}
close $d;

# section 8: store_ok = 0 when there is nothing to plot
open($d, '>', "$data/store.gp") or die "$data/store.gp: $!\n";
printf $d "store_ok = %d\n", $store_ran ? 1 : 0;
close $d;
open($d, '>', "$data/store.dat") or die "$data/store.dat: $!\n";
print $d "# case req_per_s (medians; 1 KiB, pgbench: transactions/s)\n";
printf $d "\"%s\" %s\n", $_->[0], $nz->($srate->($_->[1]))
    for ['memory only', 'mem'], ['sync', 'sync'], ['async', 'async'],
        ['pgbench', 'pgbench'];
close $d;
open($d, '>', "$data/store-lat.dat") or die "$data/store-lat.dat: $!\n";
print $d "# measure p50_ms p99_ms (mode=sync)\n";
printf $d "\"%s\" %s %s\n", @$_
    for ['commit, full', $nz->($smed{sync}{commit_p50_ms}),
         $nz->($smed{sync}{commit_p99_ms})],
        ['commit, half', $nz->($slat{commit_p50_ms}), $nz->($slat{commit_p99_ms})],
        ['publish, full', $nz->($smed{sync}{p50_ms}), $nz->($smed{sync}{p99_ms})],
        ['publish, half', $nz->($slat{p50_ms}), $nz->($slat{p99_ms})];
close $d;

# section 9: redis_ok = 0 when there is nothing to plot
open($d, '>', "$data/redis.gp") or die "$data/redis.gp: $!\n";
printf $d "redis_ok = %d\n", $redis_ran ? 1 : 0;
close $d;
open($d, '>', "$data/redis.dat") or die "$data/redis.dat: $!\n";
print $d "# case req_per_s (medians; 1 KiB, a distinct Idempotency-Key per request)\n";
printf $d "\"%s\" %s\n", $_->[0], $nz->($rrate->($_->[1]))
    for ['zone only', 'local'], ['zone + Redis dedup', 'cluster'],
        ['nchan, memory', 'nchan-memory'], ['nchan, Redis', 'nchan-redis'];
close $d;
open($d, '>', "$data/redis-fanout.dat") or die "$data/redis-fanout.dat: $!\n";
print $d "# target deliveries_per_s nginx_cpu_s_per_100k redis_cpu_s_per_100k (medians)\n";
for (['omnibus, 3 pods', 'omnibus'], ['nchan, 3 on Redis', 'nchan']) {
    my $x = $rfmed{$_->[1]} || {};    # no autovivification into %rfmed
    printf $d "\"%s\" %s %s %s\n", $_->[0], $nz->($x->{rate}),
        $nz->($x->{cpu}), $nz->($x->{rcpu});
}
close $d;

# section 10: cluster_ok = 0 when there is nothing to plot; the ratios and
# the latency for the panels' titles
open($d, '>', "$data/cluster.gp") or die "$data/cluster.gp: $!\n";
printf $d "cluster_ok = %d\n", $cluster_ran ? 1 : 0;
printf $d "cluster_ratio2 = \"%s\"\ncluster_ratio3 = \"%s\"\n",
    r2(ratio($crate->(2), $crate->(1))), r2(ratio($crate->(3), $crate->(1)));
printf $d "cluster_lat = \"%s\"\n", defined $clat{p99_ms}
    ? sprintf('publish -> webhook at %s msg/s, %s pods: p50 %s ms, p99 %s ms',
              $clat{rate} // '?', $cmeta{pods} // '?', $clat{p50_ms}, $clat{p99_ms})
    : 'publish -> webhook latency: n/a';
close $d;
open($d, '>', "$data/cluster.dat") or die "$data/cluster.dat: $!\n";
print $d "# pods accepted_msgs_per_s (median) then CPU % of one core (medians): ",
    join(' ', map { $_->[0] } @ccomp), " idle\n";
for my $n (sort { $a <=> $b } keys %cmed) {
    printf $d "\"%d pod%s\" %s %s\n", $n, $n == 1 ? '' : 's', $nz->($cmed{$n}{rate}),
        join(' ', map { sprintf '%.1f', $cmed{$n}{"pct_$_"} // 0 }
                  (map { $_->[0] } @ccomp), 'idle');
}
close $d;

# ------------------------------------------------------------------- soak
#
# Its own eval: whatever is wrong with the soak's data, the rest of the
# report is still written.

my $soak_md = '';
my @soak_problems;
my $soak_ok = eval { soak_section(); 1 };
unless ($soak_ok) {
    my $e = $@ || 'unknown error';
    chomp $e;
    $soak_md = "## 6. Soak\n\nThe soak section could not be written: $e\n\n";
    push @soak_problems, "soak: report failed: $e";
}
write_soak_chart($soak_ok ? @soak : ());

sub soak_workers {  # worker numbers present in the soak's columns
    my @w = sort { $a <=> $b } map { /^rss_kb_(\d+)$/ ? $1 : () }
                                keys %{$soak[0] || {}};
    return @w;
}

sub mib { defined $_[0] && $_[0] =~ /\d/ ? sprintf('%.1f', $_[0] / 1024) : 'n/a' }
sub minute { my $v = sprintf '%.1f', $_[0]; $v =~ s/\.0$//; $v }

sub soak_section {
    my $q = sub { $soak_md .= join('', @_) . "\n" };
    my %m = %soakmeta;
    $q->('## 6. Soak');
    $q->('');
    unless (%m) {
        $q->('Not run (`SOAK_SECONDS=0`, or no data from an earlier run).');
        $q->('');
        return;
    }
    my $secs = $m{seconds} // 0;
    my $src = ($m{rate_source} // '') eq 'section 2'
        ? sprintf('half of the end-to-end maximum measured in section 2 of the'
                  . ' same run (%s/s: the lower of the median published/s and'
                  . ' delivered/s with the webhook route on)', num($m{max_rate}))
        : ($m{rate_source} // '') eq 'measured'
        ? sprintf('half of the maximum measured just before on the soak nginx'
                  . ' (wrk closed loop, %s s, 1 KiB, route on, no subscribers:'
                  . ' %s published/s, %s delivered/s; the lower: %s/s)',
                  $meta{duration} // 5, num($m{max_published}),
                  num($m{max_delivered}), num($m{max_rate}))
        : 'given by `SOAK_RATE`';
    $q->(sprintf 'A fresh nginx (%d workers) with its own zone `soak` (512 MiB,'
                 . ' 8 shards, `retain=100`) and one webhook route (`soak.>` to'
                 . ' the receiver nginx of section 2, `return 200`) takes an open'
                 . ' loop publish load for %s s: h2load, %d HTTP/1.1 connections'
                 . ' at `--rps=%s` each, %s messages/s of %s in all over %d'
                 . ' topics; that is %s. %d SSE subscribers (`bench/soak-subs.pl`,'
                 . ' one per topic, so every message also goes out once on SSE)'
                 . ' are connected from before the load until the end and read'
                 . ' their streams. At the start and every %s s'
                 . ' `bench/soak-sample.pl` records each worker\'s `VmRSS` and'
                 . ' `RssAnon` (`/proc/PID/status`), its open file descriptors and'
                 . ' sockets (`/proc/PID/fd`), `message_bus_zone_used_bytes`, the'
                 . ' active connections (`stub_status`) and the counters. After'
                 . ' the load the zone is left to drain, then the last row is'
                 . ' taken.',
         $m{workers} // 2, num($secs), $m{clients} // 8, $m{rps_per_client} // '?',
         num($m{rate}), human($m{size} // 1024), $m{topics} // 100, $src,
         $m{subs} // 100, $m{interval} // 60);
    $q->('');
    $q->("Started $m{date} (load average $m{loadavg}).") if $m{date};
    $q->('');
    if (($m{status} // '') ne 'done') {
        $q->("**The soak did not complete: $m{status}.** Rows below, if any,"
             . ' are what was sampled before it stopped; the output of'
             . ' `make bench` says why.');
        $q->('');
        push @soak_problems, "soak: $m{status}";
    }
    return unless @soak;

    my @w = soak_workers();
    my $hw = join(' / ', map { "w$_" } @w);
    $q->("| minute | phase | published | published/s | delivered | queued + in flight | SSE events | zone used MiB | RSS MiB ($hw) | RssAnon MiB ($hw) | fds ($hw) | sockets ($hw) | active connections |");
    $q->('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
    my $prev;
    for my $r (@soak) {
        my $rate = $prev && $r->{t_s} > $prev->{t_s} && $r->{phase} eq 'load'
            ? num(($r->{published} - $prev->{published})
                  / ($r->{t_s} - $prev->{t_s})) : '';
        $q->(sprintf '| %s | %s | %s | %s | %s | %s | %s | %.2f | %s | %s | %s | %s | %s |',
             $r->{minute}, $r->{phase}, num($r->{published}), $rate,
             num($r->{delivered}), num($r->{queued} + $r->{inflight}),
             num($r->{sse_events}), $r->{zone_used_bytes} / 1048576,
             join(' / ', map { mib($r->{"rss_kb_$_"}) } @w),
             join(' / ', map { mib($r->{"rss_anon_kb_$_"}) } @w),
             join(' / ', map { $r->{"fds_$_"} } @w),
             join(' / ', map { $r->{"sockets_$_"} } @w),
             $r->{active_conns});
        $prev = $r;
    }
    $q->('');
    my @ld = grep { $_->{phase} eq 'load' } @soak;
    if (@ld && $ld[-1]{t_s} > 0) {
        $q->(sprintf 'Achieved publish rate: %s messages/s over the %s s of load'
                     . ' (target %s/s); `published/s` above is per interval.',
             num($ld[-1]{published} / $ld[-1]{t_s}), num($ld[-1]{t_s}, 0),
             num($m{rate}));
        $q->('');
        push @soak_problems, sprintf('soak: the load reached %s/s of the %s/s'
                                     . ' asked (h2load short of CPU?)',
                                     num($ld[-1]{published} / $ld[-1]{t_s}),
                                     num($m{rate}))
            if $m{rate} && $ld[-1]{published} / $ld[-1]{t_s} < 0.95 * $m{rate};
    }

    # the verdict: from minute 2 (the first sample at 2 minutes or later;
    # the first after the start in a soak under 3 minutes) to the last
    # sample under load
    my @load = grep { $_->{phase} eq 'load' } @soak;
    my $from = $secs >= 180 ? 119 : 1;
    my @span = grep { $_->{t_s} >= $from } @load;
    if (@span >= 2) {
        my ($b, $e) = ($span[0], $span[-1]);
        my (@parts, $x, $grew);
        my $series = sub {
            my ($name, $key) = @_;
            my $v0 = $b->{$key};
            return unless $v0 && $v0 > 0;
            my ($lo, $hi) = (0, 0);
            for my $r (@span) {
                my $d = ($r->{$key} - $v0) / $v0 * 100;
                $lo = $d if $d < $lo;
                $hi = $d if $d > $hi;
            }
            my $end = ($e->{$key} - $v0) / $v0 * 100;
            # a problem: grew by more than 10 % (and, for the zone, whose
            # bytes follow the queue of the moment, by more than 1 MiB)
            $grew = 1 if $end > 10 && ($key =~ /^rss/
                                       || $e->{$key} - $v0 > 1048576);
            my $band = -$lo > $hi ? -$lo : $hi;
            $x = $band if !defined $x || $band > $x;
            push @parts, sprintf '%s %s -> %s (%+.1f %%, band %+.1f .. %+.1f %%)',
                $name, @_ > 2 ? ($_[2]->($v0), $_[2]->($e->{$key}))
                              : (mib($v0), mib($e->{$key})),
                $end, $lo, $hi;
        };
        $series->("worker $_ RSS MiB", "rss_kb_$_") for @w;
        $series->('zone bytes MiB', 'zone_used_bytes',
                  sub { sprintf '%.2f', $_[0] / 1048576 });
        my $anon = join(', ', map {
            my $v0 = $b->{"rss_anon_kb_$_"};
            $v0 ? sprintf('worker %d %s -> %s MiB (%+.1f %%)', $_, mib($v0),
                          mib($e->{"rss_anon_kb_$_"}),
                          ($e->{"rss_anon_kb_$_"} - $v0) / $v0 * 100) : ()
        } @w);
        $q->(sprintf '**RSS and zone bytes within %.1f %% from minute %s to'
                     . ' minute %s.** %s.', $x // 0, minute($b->{minute}),
             minute($e->{minute}), join('; ', @parts));
        $q->('');
        $q->("Private memory (RssAnon, heap): $anon. VmRSS also counts the"
             . ' pages of the shared zone a worker has touched (RssShmem), so'
             . ' it follows the zone\'s high-water mark, not a leak.') if $anon;
        $q->('');
        push @soak_problems, sprintf('soak: RSS or zone bytes grew by more'
                                     . ' than 10 %% between minute %s and'
                                     . ' minute %s', minute($b->{minute}),
                                     minute($e->{minute}))
            if $grew;
    } else {
        $q->('Too few samples under load for the verdict (it needs the one at'
             . ' minute 2 and a later one).');
        $q->('');
    }

    my ($last) = grep { $_->{phase} eq 'drained' } @soak;
    if ($last) {
        my $all = $last->{delivered} >= $last->{published}
                  && $last->{queued} + $last->{inflight} == 0;
        my $sse = $last->{sse_events} >= $last->{published};
        $q->(sprintf 'End: %s published, %s delivered to the webhook, %s queued'
                     . ' or in flight, %s rejected (%s); %s drained %s s after'
                     . ' the load stopped. SSE: %s events read by %d of %d'
                     . ' subscribers (%d streams closed, %s dropped as slow,'
                     . ' %s missed): %s.',
             num($last->{published}), num($last->{delivered}),
             num($last->{queued} + $last->{inflight}), num($last->{rejected}),
             $all ? '**every published message was delivered**'
                  : '**not every published message was delivered**',
             ($m{drained} // 0) ? 'the queue' : 'the queue had not',
             $m{drain_s} // 'n/a', num($last->{sse_events}),
             $last->{sse_connected}, $m{subs} // 100, $last->{sse_closed},
             num($last->{slow_dropped}), num($last->{missed}),
             $sse ? 'every published message' : '**fewer than published**');
        $q->('');
        push @soak_problems, 'soak: not every published message was delivered'
            unless $all;
        push @soak_problems, 'soak: the SSE subscribers got fewer events than'
                             . ' were published' unless $sse;
    }
    $q->("h2load: $m{h2load}; $m{h2load_status}; $m{h2load_finished}")
        if $m{h2load};
    $q->('');
    if (@soakerr) {
        $q->('Error log lines of the soak nginx:');
        $q->('');
        $q->('```');
        $q->($_) for @soakerr;
        $q->('```');
        $q->('');
        push @soak_problems, 'soak: [alert]/[crit]/[emerg] lines or a worker'
                             . ' exiting on a signal in its error log';
    }
}

# data/soak.dat and data/soak.gp for chart.gp (soak_ok = 0: no panel data)
sub write_soak_chart {
    my @rows = grep { $_->{phase} ne 'drained' } @_;
    my @w = soak_workers();
    open(my $g, '>', "$data/soak.gp") or die "$data/soak.gp: $!\n";
    printf $g "soak_ok = %d\nsoak_workers = %d\n", @rows >= 2 ? 1 : 0,
        scalar @w;
    close $g;
    open(my $d, '>', "$data/soak.dat") or die "$data/soak.dat: $!\n";
    print $d "# minute zone_used_mib queued_inflight active_conns published_per_s,"
           . " then per worker: rss_mib rss_anon_mib fds sockets\n";
    my $prev;
    for my $r (@rows) {
        my $rate = $prev && $r->{t_s} > $prev->{t_s}
            ? ($r->{published} - $prev->{published}) / ($r->{t_s} - $prev->{t_s})
            : 0;
        printf $d "%s %.3f %d %d %.0f", $r->{minute},
            $r->{zone_used_bytes} / 1048576, $r->{queued} + $r->{inflight},
            $r->{active_conns}, $rate;
        printf $d " %.2f %.2f %d %d", $r->{"rss_kb_$_"} / 1024,
            $r->{"rss_anon_kb_$_"} / 1024, $r->{"fds_$_"}, $r->{"sockets_$_"}
            for @w;
        print $d "\n";
        $prev = $r;
    }
    close $d;
}

# ------------------------------------------------------------------ report

my $dur = $meta{duration};
my $rounds = $meta{rounds};
my $md = '';
my $p = sub { $md .= join('', @_) . "\n" };

$p->('# Benchmark results');
$p->('');
$p->('Written by `make bench` (`bench/run.sh`); do not edit by hand, run it',
     ' again. The chart is `bench/results.png` (from `bench/chart.gp` over',
     ' `bench/data/*.dat`); every run\'s raw numbers are in `bench/data/*.tsv`.');
$p->('');
$p->('![results](results.png)');
$p->('');
$p->('## Machine and run');
$p->('');
$p->('| | |');
$p->('|---|---|');
$p->("| date | $meta{date} |");
$p->("| machine | `$meta{uname}` |");
$p->("| CPUs | $meta{nproc} x $meta{cpu} |");
$p->("| memory | $meta{memory} |");
$p->("| load average at start | $meta{loadavg} |");
$p->("| nginx | $meta{nginx} (`/usr/sbin/nginx`, Debian) |");
$p->("| nchan | libnginx-mod-nchan $meta{nchan} |");
$p->("| load generators | $meta{wrk}; $meta{h2load}; bench/fanout.pl (perl) |");
$p->("| module commit | `$meta{commit}` |");
$p->("| total run time | $meta{elapsed} s |");
$p->('');
$p->('Everything runs on 127.0.0.1 on the same machine: the load generators',
     ' (wrk uses one thread, one core) compete with the nginx workers for the',
     " $meta{nproc} CPUs, and the machine is shared with other work, so",
     ' absolute numbers are noisy and low; the ratios between targets measured',
     ' in alternating rounds are the useful part. Each wrk run lasts',
     " ${dur} s; every figure is the median of $rounds rounds unless said otherwise.");
$p->('');
$p->('## Goals');
$p->('');
$p->('| goal | measured | met |');
$p->('|---|---|---|');
$p->("| $_->[0] | $_->[1] | " . yn($_->[2]) . ' |') for @goals;
$p->('');

# 1
$p->('## 1. Publish throughput');
$p->('');
my $pdur = $pmeta{duration} // $dur;
my $prounds = $pmeta{rounds} // $rounds;
if ($pmeta{only}) {
    $p->(sprintf '**Section 1 (and 1b) come from a separate run, `bench/run.sh'
                 . ' publish`**, of %s (module commit `%s`, load average at'
                 . ' start %s, %s s per run, %s round%s; the section took %s s);'
                 . ' the other sections from the run above.',
         $pmeta{date} // '?', $pmeta{commit} // '?', $pmeta{loadavg} // '?',
         $pdur, $prounds, $prounds == 1 ? '' : 's', $pmeta{elapsed_s} // '?');
    $p->('');
}
$p->("wrk, one thread, ", $pmeta{conns} // $meta{conns}, " keepalive connections,",
     " ${pdur} s per run, POST of a JSON body of the given size to 100 topics",
     ' in turn (`bench/pub.lua`); the four targets are locations of the same nginx',
     (($pmeta{nchan_separate} // $meta{nchan_separate})
         ? ' (**except nchan**: it would not load next to'
           . ' omnibus, so it ran in a second nginx with the'
           . ' same settings)' : ''),
     " (2 workers), measured in $prounds round", ($prounds == 1 ? '' : 's'),
     " in rotating order, the two",
     ' body shapes one after the other in alternating order. `omnibus` is',
     ' `omnibus_publish` into an 8-shard zone without routes (messages are',
     ' validated as JSON, queued, dispatched to the retain ring; `retain=100`,',
     ' queue large enough never to push back); `json off` is the same with',
     ' `omnibus_json off`, which shows what the JSON validation costs (see',
     ' [PROFILE.md](PROFILE.md) and 1b below); `return 202` is the ceiling of',
     ' an HTTP endpoint that reads and drops the body; nchan is',
     ' `nchan_publisher` with one channel per topic (default buffer: 10',
     ' messages per channel). Rates count 2xx answers only. The shapes:');
$p->('');
$p->('- **padded**: `{"seq":0,"pad":"xxx...xxx"}`, the same body every request:',
     ' one long ASCII string, the cheapest JSON there is to validate.');
$p->('- **orders**: realistic documents, ', ($pmeta{orders_docs} // 'several'),
     ' different ones per size sent in turn, each of exactly the size',
     ' (`bench/gen-orders.pl`, deterministic, the shape of `bench/jsonbench.c`\'s):',
     ' an order with a customer object and an array of order lines, each an',
     ' object of short strings (product names and tags, some non-ASCII UTF-8,',
     ' an emoji, escaped quotes, `\u` escapes), integers, decimals and',
     ' exponents, a nested array of tags and one of dimensions, booleans,',
     ' `null`; the bytes the last whole line leaves over are a delivery note',
     ' of short words (`"note"`, the last member).',
     join('', map { ' At ' . human($_->{size}) . ' no order line fits: the'
                    . ' order, its customer, totals and the note.' }
              grep { !$_->{lines_max} } @orders))
    if grep { $_ eq 'orders' } @shapes;
$p->('');
if (@orders) {
    $p->('| body | documents | order lines | non-ASCII bytes | note bytes |');
    $p->('|---|---|---|---|---|');
    $p->(sprintf '| %s | %d | %s | %s %% | %s %% |', human($_->{size}), $_->{docs},
                 $_->{lines_min} == $_->{lines_max} ? $_->{lines_min}
                     : "$_->{lines_min} - $_->{lines_max}",
                 $_->{non_ascii_pct}, $_->{note_pct})
        for sort { $a->{size} <=> $b->{size} } @orders;
    $p->('');
}
if (defined $orders_sample) {
    $p->('The first 256 B document:');
    $p->('');
    $p->('```json');
    $p->($orders_sample);
    $p->('```');
    $p->('');
}
$p->('| body | shape | omnibus req/s | json off req/s | `return 202` req/s | nchan req/s | omnibus / `return 202` | omnibus / nchan | json off / `return 202` | json off / nchan | p99 ms (omnibus / json off / 202 / nchan) | worker CPU us per request (omnibus / json off / 202 / nchan) |');
$p->('|---|---|---|---|---|---|---|---|---|---|---|---|');
for my $s (@sizes) {
    for my $sh (@shapes) {
        my $m = $pubmed{$s}{$sh};
        $p->(sprintf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |',
             human($s), $shname{$sh}, (map { num($m->{$_}) } @targets),
             r2(ratio($m->{omnibus}, $m->{plain})),
             r2(ratio($m->{omnibus}, $m->{nchan})),
             r2(ratio($m->{raw}, $m->{plain})),
             r2(ratio($m->{raw}, $m->{nchan})),
             join(' / ', map { sprintf '%.1f', median(@{$pubp99{$s}{$sh}{$_} || []}) // 0 } @targets),
             join(' / ', map { sprintf '%.1f', median(@{$pubcpu{$s}{$sh}{$_} || []}) // 0 } @targets));
    }
}
$p->('');
$p->('The p99 column is wrk\'s latency percentile (closed loop). CPU per',
     ' request is the utime + stime of all nginx workers over the run',
     ' (`/proc/PID/stat`) divided by the requests answered: it shows what each',
     ' target costs the server whatever the client\'s share of the two cores.');
$p->('');
if (@shapes == 2) {
    $p->('Orders / padded, per target: what the realistic body costs each,',
         ' the padded one taken as 1 (req/s: below 1 is slower; CPU per',
         ' request: above 1 is dearer).');
    $p->('');
    $p->('| body | omnibus req/s; CPU | json off req/s; CPU | `return 202` req/s; CPU | nchan req/s; CPU |');
    $p->('|---|---|---|---|---|');
    for my $s (@sizes) {
        $p->(sprintf '| %s | %s |', human($s), join(' | ', map {
            my $t = $_;
            my $c = sub { median(@{$pubcpu{$s}{$_[0]}{$t} || []}) };
            sprintf '%s; %s', r2(ratio($pubmed{$s}{orders}{$t}, $pubmed{$s}{padded}{$t})),
                    r2(ratio($c->('orders'), $c->('padded')));
        } @targets));
    }
    $p->('');
}
$p->('Per round (req/s):');
$p->('');
$p->('| body | shape | target | rounds | non-2xx + socket errors |');
$p->('|---|---|---|---|---|');
for my $s (@sizes) {
    for my $sh (@shapes) {
        for my $t (@targets) {
            $p->(sprintf '| %s | %s | %s | %s | %d |', human($s), $shname{$sh},
                 $tname{$t},
                 join(' / ', map { num($_) } @{$pubrounds{$s}{$sh}{$t} || []}),
                 $pubnon2xx{$s}{$sh}{$t} // 0);
        }
    }
}
$p->('');
if (@puberr) {
    $p->('Error log lines of the section\'s nginx:');
    $p->('');
    $p->('```');
    $p->($_) for @puberr;
    $p->('```');
    $p->('');
}

# 1b
$p->('### 1b. JSON validation alone');
$p->('');
if (defined $jsonbench && $jsonbench =~ /^\|/m) {
    $p->('`bench/jsonbench.sh`, run after the wrk runs of section 1 with nginx',
         ' idle: the validation of bodies alone, in MB/s on one core (the',
         ' thread\'s CPU time, the best of 3 runs of 0.25 s), over pools of',
         ' `bench/jsonbench.c`\'s documents (about 512 KiB of different ones',
         ' per row). Its orders are the shape of the ones above, but with the',
         ' number of lines nearest to the size and no note (hence `avg bytes`).',
         ' `yajl + strict pass (old)` is the validation the module had (yajl',
         ' with its callbacks, then a UTF-8 and surrogate pass); `new, SSE2` is',
         ' `ngx_omnibus_json_valid()` as the module compiles it; `new, 8 bytes',
         ' at a time` the same without SSE2; simdjson (DOM) for comparison,',
         ' when `libsimdjson-dev` is there.');
    $p->('');
    (my $j = $jsonbench) =~ s/\s+$//;
    $p->($j);
    $p->('');
    # MB/s of the module's validator -> microseconds per body of the size
    my ($hdr) = $jsonbench =~ /^(\| shape .*)$/m;
    my @h = map { s/^\s+|\s+$//gr } split /\|/, $hdr // '';
    my ($col) = grep { $h[$_] =~ /^new, SSE2/ } 0 .. $#h;
    my %us;
    for my $l ($jsonbench =~ /^(\| (?:orders|padded) \|.*)$/mg) {
        my @c = map { s/^\s+|\s+$//gr } split /\|/, $l;
        $us{$c[2]}{$c[1]} = $c[3] / $c[$col] if $col && $c[$col] && $c[3];
    }
    if (%us) {
        $p->('At those rates the module\'s validator spends, per body: ',
             join('; ', map {
                 my $z = $_;
                 sprintf '%s: %s us orders, %s us padded', human($z),
                         map { defined $us{$z}{$_} ? sprintf('%.2f', $us{$z}{$_}) : 'n/a' }
                             qw(orders padded)
             } sort { $a <=> $b } keys %us),
             ' (the `omnibus` minus `json off` CPU per request above is the',
             ' same cost measured in nginx, with the noise of the run).');
        $p->('');
    }
} elsif (($pmeta{jsonbench} // '') =~ /^(failed|skipped)/) {
    $p->("Not measured in this run: $pmeta{jsonbench}.");
    $p->('');
} else {
    $p->('No data (`bench/jsonbench.sh` did not run: a run from before 1b).');
    $p->('');
}

# 2
$p->('## 2. End to end: publish -> webhook');
$p->('');
$p->('The zone `e2e` (8 shards, default `concurrency=4` per shard and route)',
     ' routes every topic to a second nginx (1 worker) that answers',
     ' `return 200`. Closed loop: wrk as in section 1 (1 KiB bodies) for',
     " ${dur} s, then `message_bus_delivered_total` is polled from `/metrics`",
     ' until every accepted message is delivered; delivered/s = deliveries /',
     ' (time from the start of the publish run until drained).');
$p->('');
$p->('| round | published/s (wrk) | accepted | delivered | drained after s | delivered/s until drained | delivered/s during the publish run | CPU us per message: bus / receiver |');
$p->('|---|---|---|---|---|---|---|---|');
for my $r (@e2e) {
    $p->(sprintf '| %d | %s | %s | %s | %s | %s | %s | %s / %s |', $r->{round},
         num($r->{publish_rate}), num($r->{accepted}), num($r->{delivered}),
         $r->{drain_s}, num($r->{delivered_rate}),
         num($r->{delivered_in_window_rate}), $r->{bus_cpu_us_per_msg},
         $r->{recv_cpu_us_per_msg});
}
$p->(sprintf '| median | %s | | | %s | %s | %s | %s / %s |', num($e2emed{publish}),
     $e2emed{drain} // 'n/a', num($e2emed{delivered}), num($e2emed{window}),
     $e2emed{buscpu} // 'n/a', $e2emed{recvcpu} // 'n/a');
$p->('');
$p->(sprintf 'Delivered/s is %s x the publish rate of the same runs and %s x'
             . ' the section 1 omnibus rate for 1 KiB (%s req/s). In these runs'
             . ' the two cores are shared by wrk, the bus workers (accepting and'
             . ' delivering) and the receiver nginx, which is why the publish'
             . ' rate with routes on is below the publish-only rate; the CPU'
             . ' column splits the server side cost per message between the bus'
             . ' and the receiver.',
         r2(ratio($e2emed{delivered}, $e2emed{publish})),
         r2(ratio($e2emed{delivered}, $pub1k)), num($pub1k));
$p->('');
$p->(sprintf 'Latency, open loop: h2load, %d HTTP/1.1 connections each sending'
             . ' at a fixed rate (`--rps`) for %s s, %s messages/s in all:'
             . ' 50%% of the end-to-end maximum (the lower of the median'
             . ' published/s and delivered/s above, %s/s). The publish'
             . ' location logs `$msec $omnibus_message_id`, the receiver'
             . ' `$msec $http_x_omnibus_id`; latency is receipt minus publish'
             . ' for each id (first receipt). `$msec` has 1 ms resolution and'
             . ' is nginx\'s cached time of the current event loop iteration,'
             . ' and the publish line is written after the 202 went out (the'
             . ' delivery may already be on its way), so each value is only'
             . ' good to about +-1 ms and 0 ms means "under a millisecond".',
         $meta{lat_clients} // 8, $meta{lat_dur}, num($meta{lat_rate}),
         num($meta{max_rate}));
$p->('');
$p->('| published (202) | received | not received | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | mean ms |');
$p->('|---|---|---|---|---|---|---|---|---|');
$p->(sprintf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |',
     num($lat{published}), num($lat{matched}), num($lat{not_received}),
     map { $lat{$_} // 'n/a' } qw(p50_ms p90_ms p99_ms p999_ms max_ms mean_ms));
$p->('');
$p->("h2load: $meta{lat_h2load}; $meta{lat_h2load_status}; $meta{lat_h2load_finished}")
    if $meta{lat_h2load};
$p->('');
if (%low) {
    $p->(sprintf 'Latency at low load: `bench/lowlat.pl` publishes %s messages'
                 . ' of 1 KiB, one every %.0f ms (%s/s, open loop) on one'
                 . ' keepalive connection, and is itself the webhook of their'
                 . ' route, so both ends are timed by one clock in'
                 . ' microseconds: latency is the time the delivery was read'
                 . ' minus the time the publish request was written.',
         num($low{sent}), 1000 / ($low{rate_per_s} || 200), num($low{rate_per_s}));
    $p->('');
    $p->('| sent | accepted (202) | received | p50 ms | p90 ms | p99 ms | max ms | mean ms |');
    $p->('|---|---|---|---|---|---|---|---|');
    $p->(sprintf '| %s | %s | %s | %s | %s | %s | %s | %s |',
         num($low{sent}), num($low{accepted}), num($low{received}),
         map { $low{$_} // 'n/a' } qw(p50_ms p90_ms p99_ms max_ms mean_ms));
    $p->('');
}

# 3
$p->('## 3. Fan-out');
$p->('');
if ($fmeta{only}) {
    $p->(sprintf 'Measured alone (`bench/run.sh fanout`) on %s, commit %s,'
         . ' load average %s before it.', $fmeta{date} // '?',
         $fmeta{commit} // '?', $fmeta{loadavg} // '?');
    $p->('');
}
$p->("`bench/fanout.pl` opens $meta{fan_subs} SSE connections",
     ' (`Accept: text/event-stream`) to one topic, waits until all are',
     " answered, then one publisher (h2load, 1 connection) posts $meta{fan_msgs}",
     ' messages of 256 B, one after the other. Deliveries/s = events received',
     ' / time from the first publish to the last event. CPU = utime + stime',
     ' of the nginx worker processes (`/proc/PID/stat`, 10 ms ticks) over the',
     ' same interval, per 100,000 deliveries. omnibus: `omnibus_subscribe bus`;',
     ' nchan: `nchan_subscriber eventsource`. Rounds alternate the order.');
$p->('');
$p->('| target | deliveries/s (median) | CPU s per 100k deliveries (median) | rounds (deliveries/s) | events received / expected |');
$p->('|---|---|---|---|---|');
for my $t (qw(omnibus nchan)) {
    $p->(sprintf '| %s | %s | %s | %s | %s |', $t, num($fanmed{$t}{rate}),
         defined $fanmed{$t}{cpu} ? sprintf('%.3f', $fanmed{$t}{cpu}) : 'n/a',
         $fanmed{$t}{rounds}, $fanmed{$t}{events});
}
$p->('');
$p->('The perl client parses every byte on the same two cores, so both',
     ' numbers are partly bounded by the client; the ratio is the fair part.',
     ' Where the difference comes from (perf of the workers): a worker feeds',
     ' its streams in rounds, each event rendered once per round and shared',
     ' by every stream (no copy per subscriber), and a round that took d',
     ' makes the next wait 2d (at most 50 ms), so that a burst of publishes',
     ' goes out in a few writes per stream instead of one per message and',
     ' stream; the kernel\'s TCP send path is most of what is left.');
$p->('');

# 4
$p->('## 4. Memory per queued message');
$p->('');
$p->('One zone per payload size (16 MiB, `shards=1`, `retain=0`,',
     ' `omnibus_json off; omnibus_dedup off;`), its shard paused through the',
     ' admin API, then wrk (8 connections, 3 s) publishes until the zone',
     ' answers `503 zone_full`. Bytes per message = growth of the admin',
     ' status `bytes_used` (slab pages in use) / messages queued.');
$p->('');
$p->('| payload | messages queued | bytes used | bytes per message | overhead per message | per message / payload | zone full (503) |');
$p->('|---|---|---|---|---|---|---|');
for my $m (@mem) {
    $p->(sprintf '| %s | %s | %s | %s | %s | %.2f | %s |', human($m->{payload}),
         num($m->{queued}), num($m->{bytes_used_delta}), num($m->{bytes_per_msg}, 0),
         num($m->{bytes_per_msg} - $m->{payload}, 0),
         $m->{bytes_per_msg} / $m->{payload}, $m->{zone_full});
}
$p->('');

# 5
$p->('## 5. Scaling');
$p->('');
$p->('Worker processes: the bench nginx restarted with `worker_processes 1`',
     ' and `2` in alternating rounds; wrk as in section 1 with 1 KiB bodies.');
$p->('');
$p->('| workers | omnibus req/s | `return 202` req/s | omnibus / `return 202` | rounds (omnibus) | worker CPU us per request (omnibus / 202) |');
$p->('|---|---|---|---|---|---|');
for my $w (sort keys %wmed) {
    my $o = median(@{$wmed{$w}{omnibus} || []});
    my $c = median(@{$wmed{$w}{plain} || []});
    $p->(sprintf '| %d | %s | %s | %s | %s | %s / %s |', $w, num($o), num($c),
         r2(ratio($o, $c)), join(' / ', map { num($_) } @{$wmed{$w}{omnibus} || []}),
         map { sprintf '%.1f', median(@{$wcpu{$w}{$_} || []}) // 0 } qw(omnibus plain));
}
if ($wmed{1} && $wmed{2}) {
    $p->('');
    $p->(sprintf '2 workers / 1 worker: omnibus %s x, `return 202` %s x (wrk'
                 . ' itself takes one of the two cores).',
         r2(ratio(median(@{$wmed{2}{omnibus}}), median(@{$wmed{1}{omnibus}}))),
         r2(ratio(median(@{$wmed{2}{plain}}), median(@{$wmed{1}{plain}}))));
}
$p->('');
$p->('Backlog: zone `fill` (8 shards), every shard paused through the admin',
     ' API so that nothing is dispatched; either empty or first filled with',
     ' 50,000 messages of 1 KiB (h2load), then the same wrk run publishes into',
     ' it (both cases keep queueing during the run). Shards resumed and',
     ' drained between runs.');
$p->('');
$p->('| backlog | queued before the run | publish req/s | rounds |');
$p->('|---|---|---|---|');
for my $b (sort { $a <=> $b } keys %bmed) {
    $p->(sprintf '| %s | %s | %s | %s |', $b ? num($b) : 'empty',
         num(median(@{$bmed{$b}{queued}})), num(median(@{$bmed{$b}{rate}})),
         join(' / ', map { num($_) } @{$bmed{$b}{rate}}));
}
if (my @k = sort { $a <=> $b } keys %bmed) {
    if (@k == 2) {
        $p->('');
        $p->(sprintf 'With the backlog / empty: %s x.',
             r2(ratio(median(@{$bmed{$k[1]}{rate}}), median(@{$bmed{$k[0]}{rate}}))));
    }
}
$p->('');

# 6
$md .= $soak_md;

# 7
$p->('## 7. Kafka');
$p->('');
if (!%kmeta) {
    $p->('Not run (`BENCH_KAFKA=0`, or no data from an earlier run).');
    $p->('');
} else {
    my $n = num($kmeta{records});
    $p->(sprintf 'One librdkafka mock cluster (`t/tools/kafka-mock.c`, %d brokers,'
                 . ' topics of %d partitions, replication 3) for the whole section,'
                 . ' and a fresh nginx (%d workers) whose zone `kafka` (8 shards)'
                 . ' routes `kafka.>` to `kafka://<the mock>/bench` with `%s` (the'
                 . ' route defaults, written out; key = the bus topic, 3 headers per'
                 . ' record). Records are 1 KiB JSON bodies over the %d topics'
                 . ' `kafka.t0` .. `kafka.t%d`. librdkafka %s, kcat %s. Started %s'
                 . ' (load average %s).',
         $kmeta{brokers} // 3, $kmeta{partitions} // 6, $kmeta{workers} // 2,
         $kmeta{settings} // '', $kmeta{topics} // 100, ($kmeta{topics} // 100) - 1,
         $kmeta{librdkafka} || '?', $kmeta{kcat} || '?', $kmeta{date} // '?',
         $kmeta{loadavg} // '?');
    $p->('');
    if (($kmeta{status} // '') ne 'done') {
        $p->("**The Kafka section did not complete: $kmeta{status}.** What"
             . ' follows, if anything, was measured before it stopped; the'
             . ' output of `make bench` says why.');
        $p->('');
    }

    $p->('### 7a. Backlog drain into Kafka, against `kcat -P`');
    $p->('');
    $p->("Every shard paused through the admin API, $n messages queued"
         . ' (h2load, 8 connections), the shards resumed: records/s = '
         . "$n / time from the resume until `message_bus_kafka_produced_total`"
         . " (records acknowledged, acks=all) has grown by $n (polled every"
         . ' 10 ms). Against it, `kcat -P` produces the same records (same'
         . ' keys, three headers of the same sizes, `-X acks=all -X'
         . ' enable.idempotence=true -X compression.codec=gzip -X linger.ms=5'
         . ' -X batch.size=16384`) to another topic of the same cluster: the'
         . ' whole kcat run is timed, its start (metadata, producer id) and'
         . ' final flush included; its count is checked with the end offsets.'
         . ' Both producers\' producer ids were obtained before (warm-up'
         . ' records). Rounds alternate which goes first. CPU: the nginx'
         . ' workers\' (librdkafka threads included) and kcat\'s, per record.');
    $p->('');
    $p->('| round | kcat -P records/s | backlog drain records/s | drain / kcat | seconds (kcat / drain) | CPU us per record (kcat / workers) | mock cluster CPU us per record (drain) |');
    $p->('|---|---|---|---|---|---|---|');
    my %byr;
    push @{$byr{$_->{round}}}, $_ for @kdrain;
    for my $r (sort { $a <=> $b } keys %byr) {
        my ($kc) = grep { $_->{goer} eq 'kcat' } @{$byr{$r}};
        my ($om) = grep { $_->{goer} eq 'omnibus' } @{$byr{$r}};
        $p->(sprintf '| %d | %s | %s | %s | %s / %s | %s / %s | %s |', $r,
             num($kc->{rate}), num($om->{rate}),
             r2(ratio($om->{rate}, $kc->{rate})),
             $kc->{seconds} // 'n/a', $om->{seconds} // 'n/a',
             $kc->{cpu_us_per_record} // 'n/a', $om->{cpu_us_per_record} // 'n/a',
             $om->{mock_cpu_us_per_record} // 'n/a');
    }
    $p->(sprintf '| median | %s | %s | %s | %s / %s | %s / %s | %s |',
         num($kmed{kcat}), num($kmed{drain}), r2(ratio($kmed{drain}, $kmed{kcat})),
         $kmed{kcat_s} // 'n/a', $kmed{drain_s} // 'n/a',
         $kmed{kcat_cpu} // 'n/a', $kmed{drain_cpu} // 'n/a', $kmed{mock_cpu} // 'n/a');
    $p->('');
    my @short = grep { $_->{goer} eq 'omnibus' && $_->{acked} < $_->{records} } @kdrain;
    $p->('**Not every queued record was acknowledged within 120 s in '
         . scalar(@short) . ' round(s).**') if @short;
    $p->('') if @short;

    $p->('### 7b. Steady publish -> Kafka');
    $p->('');
    $p->("wrk as in section 1 ($kmeta{conns} connections, $kmeta{duration} s,"
         . ' 1 KiB) publishes to `kafka.t*` at full speed. Acknowledged/s'
         . ' during the run = growth of `message_bus_kafka_produced_total`'
         . ' from the start of wrk to its end / that time; until all in ='
         . ' every accepted record acknowledged / the time from the start of'
         . ' wrk until the last one was (what the goal uses, as in section 2).'
         . ' For reference, the same wrk run to `none.t*` in the same nginx'
         . ' (no route: queued, then dropped at dispatch), rounds alternating'
         . ' the order.');
    $p->('');
    $p->('| round | published/s (wrk) | accepted | acknowledged/s during the run | acknowledged/s until all in | all in after s | acknowledged / published | published/s without a route | worker CPU us per record |');
    $p->('|---|---|---|---|---|---|---|---|---|');
    for my $r (@ksteady) {
        $p->(sprintf '| %d | %s | %s | %s | %s | %s | %s | %s | %s |', $r->{round},
             num($r->{publish_rate}), num($r->{accepted}), num($r->{window_rate}),
             num($r->{drained_rate}), $r->{drain_s},
             r2(ratio($r->{drained_rate}, $r->{publish_rate})),
             num($r->{noroute_publish_rate}), $r->{cpu_us_per_record});
    }
    $p->(sprintf '| median | %s | | %s | %s | %s | %s | %s | %s |', num($kmed{publish}),
         num($kmed{window}), num($kmed{drained}), $kmed{steady_drain_s} // 'n/a',
         r2(ratio($kmed{drained}, $kmed{publish})), num($kmed{noroute}),
         $kmed{steady_cpu} // 'n/a');
    $p->('');
    $p->(sprintf 'Acknowledged / published: %s during the run, %s until all in.'
                 . ' Publishing with the Kafka route on runs at %s x the rate'
                 . ' without a route in the same nginx (the route\'s producers'
                 . ' share the two cores with the publish path and wrk).',
         r2(ratio($kmed{window}, $kmed{publish})),
         r2(ratio($kmed{drained}, $kmed{publish})),
         r2(ratio($kmed{publish}, $kmed{noroute})));
    $p->('');

    $p->('### 7c. Publish-to-ack latency (acks=all)');
    $p->('');
    $p->(sprintf 'Open loop: h2load, %s HTTP/1.1 connections at a fixed rate'
                 . ' (`--rps`), %s messages/s in all (half the median backlog'
                 . ' drain rate) for %s s. The module\'s histograms give the two'
                 . ' parts of publish-to-ack: `message_bus_message_age_seconds`'
                 . ' (publish -> dispatch: the wait in the queue; recorded in'
                 . ' whole milliseconds, so values under 1 ms are interpolated'
                 . ' within the first bucket) and `message_bus_kafka_delivery_seconds`'
                 . ' (produce -> the acknowledged delivery report handled by the'
                 . ' worker, per attempt); percentiles by linear interpolation'
                 . ' within the buckets of the difference before/after'
                 . ' (`bench/kafka-hist.pl`; bucket bounds 0.5, 1, 2.5, 5, 10, 25,'
                 . ' 50, 100, 250 ms...). They are per part: the end-to-end'
                 . ' percentile is not their sum.',
         $kmeta{lat_clients} // '?', num($kmeta{lat_rate}), $kmeta{lat_dur} // '?');
    $p->('');
    $p->('| measure | records | mean ms | p50 ms | p90 ms | p99 ms | highest bucket ms |');
    $p->('|---|---|---|---|---|---|---|');
    for my $m (['publish -> dispatch (`message_bus_message_age_seconds`)',
                'message_bus_message_age_seconds'],
               ['produce -> ack (`message_bus_kafka_delivery_seconds`)',
                'message_bus_kafka_delivery_seconds']) {
        my $row = $klatm{$m->[1]} or next;
        $p->(sprintf '| %s | %s | %s | %s | %s | %s | %s |', $m->[0],
             num($row->{count}), map { $row->{$_} // 'n/a' }
             qw(mean_ms p50_ms p90_ms p99_ms max_le_ms));
    }
    $p->('');
    $p->("h2load: $kmeta{lat_h2load}; $kmeta{lat_h2load_status}")
        if $kmeta{lat_h2load};
    $p->('');
    if (%klow) {
        $p->(sprintf 'One at a time, end to end: `bench/kafka-lowlat.pl` publishes'
                     . ' %s messages of 1 KiB, one every %.0f ms (never two in'
                     . ' flight), and after each reads `/metrics` until'
                     . ' `message_bus_kafka_produced_total` has grown by one:'
                     . ' latency = that read minus the write of the publish'
                     . ' request, good to one `/metrics` read (%s ms on'
                     . ' average). At this load the route\'s `linger=5ms` is'
                     . ' most of it.',
             num($klow{sent}), 1000 / ($klow{rate_per_s} || 50), $klow{poll_ms} // '?');
        $p->('');
        $p->('| sent | accepted (202) | acknowledged | p50 ms | p90 ms | p99 ms | max ms | mean ms |');
        $p->('|---|---|---|---|---|---|---|---|');
        $p->(sprintf '| %s | %s | %s | %s | %s | %s | %s | %s |', num($klow{sent}),
             num($klow{accepted}), num($klow{acked}),
             map { $klow{$_} // 'n/a' } qw(p50_ms p90_ms p99_ms max_ms mean_ms));
        $p->('');
    }

    $p->('### 7d. Consumer: Kafka -> bus');
    $p->('');
    my @kc = tsv('kafka-consume.tsv');
    if (@kc) {
        my %med;
        for my $g (qw(kcat omnibus)) {
            my @r = sort { $a <=> $b } map { $_->{rate} } grep { $_->{goer} eq $g } @kc;
            $med{$g} = @r ? $r[$#r / 2] : 0;
        }
        $p->(sprintf 'The same 1 KiB records read from the beginning by `kcat -C` and'
             . ' by `omnibus_kafka_consume` (2 workers in one consumer group,'
             . ' every record queued with its dedup key and its offset stored).'
             . ' The omnibus time runs from the first record in the bus to the'
             . ' last, sampled every 50 ms; nginx\'s start and the group\'s join'
             . ' come before it (start_s). Medians: omnibus %s/s, kcat %s/s,'
             . ' **%.2f x**.', num($med{omnibus}), num($med{kcat}),
             $med{kcat} ? $med{omnibus} / $med{kcat} : 0);
        $p->('');
        $p->('| round | reader | records | seconds | records/s | CPU us/record | start s |');
        $p->('|---|---|---|---|---|---|---|');
        $p->(sprintf '| %s | %s | %s | %s | %s | %s | %s |', @$_{qw(round goer records seconds)},
             num($_->{rate}), @$_{qw(cpu_us_per_record start_s)}) for @kc;
    } else {
        $p->('Not measured in this run (see data/kafka-errors.txt).');
    }
    $p->('');
    if (@kerr) {
        $p->('Error log lines of the Kafka nginx:');
        $p->('');
        $p->('```');
        $p->($_) for @kerr;
        $p->('```');
        $p->('');
    }
}

# 8
$p->('## 8. Durable store (PostgreSQL)');
$p->('');
if (!%smeta) {
    $p->('Not run (`BENCH_STORE=0`, or no data from an earlier run).');
    $p->('');
} else {
    store_section($p);
}

# 9
$p->('## 9. Redis');
$p->('');
if (!%rmeta) {
    $p->('Not run (`BENCH_REDIS=0`, or no data from an earlier run).');
    $p->('');
} else {
    redis_section($p);
}

# 10
$p->('## 10. Cluster');
$p->('');
if (!%cmeta) {
    $p->('Not run (`BENCH_CLUSTER=0`, or no data from an earlier run).');
    $p->('');
} else {
    cluster_section($p);
}

# commands
$p->('## Commands');
$p->('');
$p->('As run by `bench/run.sh` (the first run of each kind; later rounds',
     ' differ only in the round number in topic names). Ports are picked free',
     ' at start; `bench/tmp/` holds the generated `nginx.conf` files while it',
     ' runs (`BENCH_KEEP=1` keeps them).');
$p->('');
$p->('```sh');
$p->("# $_->[0]\n$_->[1]") for @cmds;
$p->('```');
$p->('');
$p->('## Problems seen');
$p->('');
if (@errors) {
    $p->('Lines from the error logs (`[alert]`, `[crit]`, `[emerg]`, workers',
         ' exiting on a signal):');
    $p->('');
    $p->('```');
    $p->($_) for @errors;
    $p->('```');
} else {
    $p->('No `[alert]`, `[crit]` or `[emerg]` lines and no worker exiting on a',
         ' signal in any error log of the run.');
}
my @problems;
for my $s (@sizes) {
    for my $sh (@shapes) {
        for my $t (@targets) {
            push @problems, "$tname{$t}, " . human($s) . " $shname{$sh}:"
                            . " $pubnon2xx{$s}{$sh}{$t}"
                            . ' non-2xx answers or socket errors'
                if $pubnon2xx{$s}{$sh}{$t};
        }
    }
}
push @problems, 'publish (`bench/run.sh publish`): [alert]/[crit]/[emerg] lines'
                . ' or a worker exiting on a signal in its error logs (see'
                . ' section 1)' if @puberr;
push @problems, "jsonbench (section 1b): $pmeta{jsonbench}"
    if ($pmeta{jsonbench} // '') =~ /^failed/;
push @problems, "fan-out: not every event arrived for $_ ($fanmed{$_}{events})"
    for grep { $fanmed{$_}{n} && !$fanmed{$_}{complete} } qw(omnibus nchan);
push @problems, "end to end: $lat{not_received} published messages were not"
                . ' received by the end of the latency run'
    if ($lat{not_received} // 0) > 0;
push @problems, "end to end: a closed-loop run did not drain"
    if grep { $_->{delivered} < $_->{accepted} } @e2e;
push @problems, "memory: the $_->{payload} B zone did not reach 503 zone_full"
    for grep { $_->{zone_full} ne 'yes' } @mem;
push @problems, @soak_problems;
push @problems, "kafka: $kmeta{status}"
    if %kmeta && ($kmeta{status} // '') ne 'done';
push @problems, 'kafka: [alert]/[crit]/[emerg] lines or a worker exiting on a'
                . ' signal in its error log' if @kerr;
push @problems, 'kafka: a backlog drain was not acknowledged in full'
    if grep { $_->{goer} eq 'omnibus' && $_->{acked} < $_->{records} } @kdrain;
push @problems, 'kafka: a steady run was not acknowledged in full'
    if grep { $_->{acked} < $_->{accepted} } @ksteady;
push @problems, "kafka: $klow{timeouts} one-at-a-time publishes were not"
                . ' acknowledged in 5 s' if ($klow{timeouts} // 0) > 0;
push @problems, "store: $smeta{status}"
    if %smeta && ($smeta{status} // '') ne 'done';
push @problems, 'store: [alert]/[crit]/[emerg] or store error lines in its'
                . ' error log (see section 8)' if @serr;
for my $t (@stargets) {
    next unless $smed{$t};
    push @problems, "store: $sname{$t}: $smed{$t}{non2xx} non-2xx answers,"
                    . ' socket errors or failed transactions'
        if $smed{$t}{non2xx};
    push @problems, "store: $sname{$t}: $smed{$t}{store_errors_sum} store errors"
                    . ' (message_bus_store_errors_total)'
        if $smed{$t}{store_errors_sum};
}
push @problems, 'store: an async run was not written in full'
    if grep { $_->{target} eq 'async' && $_->{rows_inserted} < $_->{accepted} } @sruns;
push @problems, "store: the latency run had $slat{non2xx} non-2xx answers"
    if ($slat{non2xx} // 0) > 0;
push @problems, "redis: $rmeta{status}"
    if %rmeta && ($rmeta{status} // '') ne 'done';
if (@rerr) {
    my $sig = grep { /exited on signal/ } @rerr;
    push @problems, 'redis: [alert]/[crit]/[emerg] or omnibus_redis error lines in'
                    . ' the error logs of its nginx'
                    . ($sig ? ", $sig worker(s) exiting on a signal" : '')
                    . ' (see section 9)';
}
for my $t (@rtargets) {
    my $x = $rmed{$t} or next;
    my $bad = ($x->{non2xx_sum} // 0) + ($x->{sockerr_sum} // 0);
    push @problems, "redis: $rname{$t}: $bad non-2xx answers or socket errors"
        if $bad;
    push @problems, "redis: $rname{$t}: $x->{fallbacks_sum} publishes deduplicated"
                    . ' by the pod alone (Redis did not answer)'
        if $x->{fallbacks_sum};
    push @problems, "redis: $rname{$t}: $x->{redis_errors_sum} Redis errors"
        if $x->{redis_errors_sum};
}
push @problems, 'redis: the cluster nginx claimed fewer keys in Redis than it'
                . ' accepted publishes'
    if grep { $_->{target} eq 'cluster' && ($_->{claimed} // 0) < ($_->{accepted} // 0) } @rpub;
for my $t (qw(omnibus nchan)) {
    my $x = $rfmed{$t} or next;
    push @problems, "redis: fan-out, $t: $x->{failed} run(s) failed" if $x->{failed};
    push @problems, sprintf('redis: fan-out, %s: %s events missing (%s'
                            . ' subscriber-rounds short)', $t, num($x->{missing}),
                            num($x->{short}))
        if $x->{missing};
    push @problems, sprintf('redis: fan-out, %s: %s subscriber-rounds got more'
                            . ' events than were published', $t, num($x->{over}))
        if $x->{over};
}
push @problems, "cluster: $cmeta{status}"
    if %cmeta && ($cmeta{status} // '') ne 'done';
push @problems, "cluster: the harness's error.log checks: $cmeta{harness}"
    if $cmeta{harness};
push @problems, 'cluster: [alert]/[crit]/[emerg] or [error] lines in the error'
                . ' logs of its nginx (see section 10)' if @$cerr;
for my $n (sort keys %cmed) {
    my $x = $cmed{$n};
    my $bad = $x->{non2xx_sum} + $x->{sockerr_sum};
    push @problems, "cluster: $n pod(s): $bad non-2xx answers or socket errors"
        if $bad;
    push @problems, "cluster: $n pod(s): $x->{fallbacks_sum} Redis fallbacks,"
                    . " $x->{redis_errors_sum} Redis errors, $x->{store_errors_sum}"
                    . ' store errors'
        if $x->{fallbacks_sum} || $x->{redis_errors_sum} || $x->{store_errors_sum};
}
push @problems, "cluster: $clat{not_received} messages of the latency run did"
                . ' not reach the webhook' if ($clat{not_received} // 0) > 0;
push @problems, "cluster: $cmeta{open_rows_after} rows of the store left open"
                . ' after the runs' if ($cmeta{open_rows_after} // 0) > 0;
if (@problems) {
    $p->('');
    $p->("- $_") for @problems;
}

open(my $o, '>', $out) or die "$out: $!\n";
print $o $md;
close $o;

# ------------------------------------------------------------ section 8

sub mib2 { defined $_[0] && $_[0] =~ /\d/ ? sprintf('%.1f', $_[0] / 1048576) : 'n/a' }
sub na { defined $_[0] && length $_[0] ? $_[0] : 'n/a' }
sub fx {  # fx VALUE DECIMALS: a number so formatted, or the value as is
    my ($v, $d) = @_;
    return 'n/a' unless defined $v && length $v;
    return $v =~ /^-?[\d.]+$/ ? sprintf('%.*f', $d, $v) : $v;
}

sub store_section {
    my ($p) = @_;
    my %m = %smeta;
    my $n = $smed{sync}{n} // 0;
    (my $dir = $m{store_directive} // '') =~ s/password_file=\S+/password_file=FILE/;
    $dir =~ s{\@127\.0\.0\.1:\d+/}{\@127.0.0.1:PORT/};
    $p->(sprintf 'One PostgreSQL server (%s) for the whole section, initdb\'d'
                 . ' into `bench/tmp/store/pg` and started by the bench on a'
                 . ' free port of 127.0.0.1, durability as shipped and written'
                 . ' out in `postgresql.conf`: `%s` (every commit waits for its'
                 . ' WAL to reach the disk). Its files are on %s; one synced'
                 . ' 8 KiB write (`dd oflag=dsync`) takes %s ms there. Three'
                 . ' databases: one per store (`omnibus_sync`, `omnibus_async`)'
                 . ' and `baseline` for pgbench. Started %s (load average %s);'
                 . ' the server, nginx and the readiness of both stores took %s s.',
         $m{postgres} // '?', $m{pg_settings} // '?', $m{filesystem} // '?',
         $m{dsync_8k_write_ms} // '?', $m{date} // '?', $m{loadavg} // '?',
         $m{setup_s} // '?');
    $p->('');
    $p->(sprintf 'One nginx (%d workers, `omnibus_node bench`) with three'
                 . ' zones of the same settings (`shards=8 min_shards=2'
                 . ' max_shards=16 queue_size=100000 retain=100`, 256 MiB):'
                 . ' `mem` (memory only), `sync` with `%s` and `async`, the'
                 . ' same with `mode=async` into its own database. **No'
                 . ' routes**: every message is accepted, dispatched to the'
                 . ' retain ring and done at once, so the queue never fills'
                 . ' (queued + in flight after a run: at most %s) and a store'
                 . ' writes two rows per message, the message and its done'
                 . ' mark. No webhook route on purpose: its receiver would'
                 . ' take its share of the two cores, and the rate measured'
                 . ' would then be the delivery\'s, not the publish path\'s.'
                 . ' %d topics, 1 KiB JSON bodies.',
         $m{workers} // 2, $dir,
         (sort { $b <=> $a } map { $_->{queued_after} || 0 }
                             grep { $_->{target} ne 'pgbench' } @sruns)[0] // 'n/a',
         $m{topics} // 100);
    $p->('');
    if (($m{status} // '') ne 'done') {
        $p->("**The store section did not complete: $m{status}.** What"
             . ' follows, if anything, was measured before it stopped; the'
             . ' output of `make bench` says why.');
        $p->('');
    }
    $p->('Goals of the issue: `mode=sync` publishes at **>= 0.4 x the'
         . ' memory-only rate** and at **>= 4 x a client doing one INSERT per'
         . ' commit**, with a **p99 publish latency <= 10 ms at half its'
         . ' maximum rate** (see the Goals table above for the verdicts).');
    $p->('');

    $p->('### 8a. Publish rate against the one-INSERT-per-commit baseline');
    $p->('');
    $p->(sprintf 'wrk as in section 1 (%s connections, %s s, `bench/pub.lua`)'
                 . ' to each zone, and `pgbench -n -M prepared -c %s -j 2 -T %s`'
                 . ' over TCP as the same role with the script `\set t'
                 . ' random(0, 99)` / `INSERT INTO baseline (topic, payload)'
                 . ' VALUES (\'bench.t\' || :t, :payload);` (`-D payload=` the'
                 . ' same 1 KiB JSON body, sent as a parameter each time) into'
                 . ' `baseline (id bigserial PRIMARY KEY, topic text, payload'
                 . ' bytea)`: one row, one transaction, one WAL flush per'
                 . ' client at a time (concurrent commits still share flushes'
                 . ' inside PostgreSQL). %d rounds in rotating order; rates count'
                 . ' 2xx answers (pgbench: transactions/s without the connection'
                 . ' time).',
         $m{conns} // '?', $m{duration} // '?', $m{conns} // '?',
         $m{duration} // '?', $m{rounds} // 0);
    $p->('');
    $p->('| round | memory only req/s | `mode=sync` req/s | `mode=async` req/s | pgbench transactions/s |');
    $p->('|---|---|---|---|---|');
    my %byr;
    push @{$byr{$_->{round}}{$_->{target}}}, $_ for @sruns;
    for my $r (sort { $a <=> $b } keys %byr) {
        $p->(sprintf '| %d | %s |', $r, join(' | ', map {
            my $x = $byr{$r}{$_}; $x ? num($x->[0]{rate}) : 'n/a' } @stargets));
    }
    $p->(sprintf '| median | %s |', join(' | ', map { num($srate->($_)) } @stargets));
    $p->('');
    $p->(sprintf '**sync / memory only: %s x; async / memory only: %s x;'
                 . ' sync / pgbench baseline: %s x**; async / pgbench: %s x.',
         r2(ratio($srate->('sync'), $srate->('mem'))),
         r2(ratio($srate->('async'), $srate->('mem'))),
         r2(ratio($srate->('sync'), $srate->('pgbench'))),
         r2(ratio($srate->('async'), $srate->('pgbench'))));
    $p->('');
    $p->('Per target (medians of the rounds). wrk\'s p50/p99 are closed-loop'
         . ' latencies at full speed. CPU: utime + stime of the nginx workers'
         . ' per request answered, and of the whole PostgreSQL server (every'
         . ' process of the postmaster, exited backends included) per message'
         . ' row inserted (pgbench: per transaction); for async both run until'
         . ' every accepted row is written. CPU busy = (nginx + PostgreSQL CPU'
         . ' per message) x the rate (async: x the rows written/s until all'
         . ' written): the share of the machine\'s'
         . " $meta{nproc} CPUs the server side took, wrk or pgbench and"
         . ' anything else running come on top.');
    $p->('');
    $p->('| target | req/s | wrk p50 / p99 ms | rows inserted (message / done) | nginx CPU us per request | PostgreSQL CPU us per row | server CPU busy (cores of the rate) | non-2xx + errors |');
    $p->('|---|---|---|---|---|---|---|---|');
    for my $t (@stargets) {
        my $x = $smed{$t} or next;
        $p->(sprintf '| %s | %s | %s | %s | %s | %s | %s | %d |', $sname{$t},
             num($x->{rate}),
             $t eq 'pgbench' ? sprintf('mean %s', fx($x->{commit_mean_ms}, 2))
                             : sprintf('%.2f / %.2f', $x->{p50_ms}, $x->{p99_ms}),
             $t eq 'mem' ? '-' : $t eq 'pgbench' ? num($x->{rows_inserted}) . ' / -'
                 : num($x->{rows_inserted}) . ' / ' . num($x->{rows_done}),
             $t eq 'pgbench' ? '-' : fx($x->{nginx_cpu_us_per_req}, 1),
             $t eq 'mem' ? '-' : fx($x->{pg_cpu_us_per_row}, 1),
             fx((($t eq 'pgbench' ? 0 : $x->{nginx_cpu_us_per_req} // 0)
                 + ($t eq 'mem' ? 0 : $x->{pg_cpu_us_per_row} // 0))
                * (($t eq 'async' ? $x->{written_rate} : $x->{rate}) // 0) / 1e6, 2),
             $x->{non2xx} + $x->{store_errors_sum});
    }
    $p->('');
    if ($smed{async}) {
        my @a = grep { $_->{target} eq 'async' } @sruns;
        $p->(sprintf '`mode=async` writes behind: after wrk ended, every accepted'
                     . ' row was in PostgreSQL %s s later (median; rounds: %s);'
                     . ' rows written / time from the start of wrk until all'
                     . ' written: %s rows/s (median). Rows inserted / accepted:'
                     . ' %s. Rows kept in memory only because the backlog was'
                     . ' full (`backlog_full`) or failed writes: %s.',
             fx($smed{async}{drain_s}, 2), join(' / ', map { fx($_->{drain_s}, 2) } @a),
             num($smed{async}{written_rate}),
             join('; ', map { num($_->{rows_inserted}) . ' of ' . num($_->{accepted}) } @a),
             $smed{async}{store_errors_sum});
        $p->('');
    }

    $p->('### 8b. Commit latency and rows per commit');
    $p->('');
    $p->('From `/metrics` before and after each run: `message_bus_store_commit_seconds`'
         . ' (a batch\'s statements sent -> its commit answered)'
         . ' and `message_bus_store_batch_rows` (rows per committed'
         . ' transaction, message rows and done marks together); percentiles'
         . ' by linear interpolation within the buckets of the difference'
         . ' (`bench/kafka-hist.pl`; bounds 0.5, 1, 2.5, 5, 10, 25 ms...,'
         . ' rows 1, 2, 4, 8...), so they are estimates. Message rows per'
         . ' commit = `message_bus_store_rows_total{op="insert"}` / commits.');
    $p->('');
    $p->('| run | commits | commit mean ms | commit p50 ms | commit p99 ms | rows per commit (mean) | rows p50 / p99 | message rows per commit |');
    $p->('|---|---|---|---|---|---|---|---|');
    for my $t (qw(sync async)) {
        my $x = $smed{$t} or next;
        $p->(sprintf '| `mode=%s`, full speed (median of %d) | %s | %s | %s | %s | %s | %s / %s | %s |',
             $t, $x->{n}, num($x->{commits}),
             map({ fx($x->{$_}, 2) } qw(commit_mean_ms commit_p50_ms commit_p99_ms)),
             map({ fx($x->{$_}, 1) } qw(rows_per_commit rows_p50 rows_p99 msgs_per_commit)));
    }
    if (%slat) {
        $p->(sprintf '| `mode=sync`, half rate (8c) | %s | %s | %s | %s | %s | %s / %s | %s |',
             num($slat{commits}),
             map({ fx($slat{$_}, 2) } qw(commit_mean_ms commit_p50_ms commit_p99_ms)),
             map({ fx($slat{$_}, 1) } qw(rows_per_commit rows_p50 rows_p99 msgs_per_commit)));
    }
    $p->('');
    $p->('The clock of a commit starts when the batch\'s statements go out'
         . ' on a connection. In `mode=async` no producer waits: rows'
         . ' gather while the previous batch commits, so batches are larger'
         . ' and the server busier (the `mode=async` row): that is time to'
         . ' durability of a row, not a latency any client sees.')
        if $smed{async};
    $p->('') if $smed{async};

    $p->('### 8c. Publish latency of `mode=sync` at half its maximum rate');
    $p->('');
    if (%slat) {
        $p->(sprintf 'Open loop: h2load, %s HTTP/1.1 connections at `--rps=%s`'
                     . ' each, %s requests/s asked in all (half the median'
                     . ' `mode=sync` rate of 8a) for %s s to the `sync` zone;'
                     . ' latency = publish request start -> whole 202 answer,'
                     . ' per request, from h2load\'s `--log-file`'
                     . ' (`bench/store-lat.pl`, nearest rank). Over HTTP/1.1'
                     . ' a connection has one request out at a time, so an'
                     . ' answer slower than 1/rps delays its next request:'
                     . ' the achieved rate shows whether that happened.',
             $slat{clients} // '?', $slat{rps_per_client} // '?',
             num($slat{target_rate}), $slat{duration_s} // '?');
        $p->('');
        $p->('| asked req/s | achieved 2xx/s | requests | non-2xx | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | mean ms |');
        $p->('|---|---|---|---|---|---|---|---|---|---|');
        $p->(sprintf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |',
             num($slat{target_rate}), num($slat{rate_per_s}), num($slat{requests}),
             num($slat{non2xx}), map { na($slat{$_}) }
             qw(p50_ms p90_ms p99_ms p999_ms max_ms mean_ms));
        $p->('');
        $p->("h2load: $slat{h2load}; $slat{h2load_status}") if $slat{h2load};
        $p->('');
    } else {
        $p->('Not measured in this run.');
        $p->('');
    }

    $p->('### 8d. Table sizes after the sync runs');
    $p->('');
    $p->('After each `mode=sync` run (and a second for the statistics): the'
         . ' partitions `omnibus_messages_0..3` and `omnibus_done_0..3` of the'
         . ' `omnibus_sync` database, `pg_total_relation_size` and'
         . ' `pg_indexes_size` summed, `count(*)`, and `n_live_tup` /'
         . ' `n_dead_tup` of `pg_stat_user_tables` (as last reported by the'
         . ' backends). The store truncates its generations in turn once'
         . ' every message in one is done, so the tables hold the last'
         . ' generations, not every row ever written (last column).');
    $p->('');
    $p->('| round | table | rows | total MiB | indexes MiB | bytes per row | n_live_tup | n_dead_tup | message rows inserted so far |');
    $p->('|---|---|---|---|---|---|---|---|---|');
    for my $z (@ssizes) {
        $p->(sprintf '| %d | `omnibus_%s_N` (%d) | %s | %s | %s | %s | %s | %s | %s |',
             $z->{round}, $z->{table}, $z->{partitions}, num($z->{rows}),
             mib2($z->{total_bytes}), mib2($z->{index_bytes}),
             $z->{rows} ? num($z->{total_bytes} / $z->{rows}) : 'n/a',
             num($z->{n_live_tup}), num($z->{n_dead_tup}),
             num($z->{sync_rows_inserted_so_far}));
    }
    $p->('');
    if (@serr) {
        $p->('Error log lines of the store nginx:');
        $p->('');
        $p->('```');
        $p->($_) for @serr;
        $p->('```');
        $p->('');
    }
}

# ------------------------------------------------------------ section 9

sub redis_section {
    my ($p) = @_;
    my %m = %rmeta;
    my $subs = $m{fan_subs} // 0;
    my $qmax = (sort { $b <=> $a } map { $_->{queued_after} || 0 }
                grep { $_->{target} !~ /^nchan/ } @rpub)[0];
    $p->(sprintf 'One redis-server %s for the whole section, started by the'
                 . ' bench on a free port of 127.0.0.1 without persistence'
                 . ' (`redis-server --port PORT --bind 127.0.0.1 --save \'\''
                 . ' --appendonly no --dir bench/tmp/redis/server`; `CONFIG'
                 . ' GET`: %s) and killed at the end. Every nginx has %d'
                 . ' workers and the zone `bus` of section 1 (`shards=8'
                 . ' min_shards=2 max_shards=16 queue_size=100000 retain=100`,'
                 . ' 256 MiB) with section 1\'s locations. **No routes**: a'
                 . ' message is queued, dispatched to the retain ring and done,'
                 . ' so the queue never fills (queued + in flight after a'
                 . ' run: at most %s). Started %s (load average %s); the'
                 . ' section took %s s.',
         $m{redis} // '?', $m{redis_settings} // '?', $m{workers} // 2,
         $qmax // 'n/a', $m{date} // '?', $m{loadavg} // '?',
         $m{elapsed_s} // '?');
    $p->('');
    if (($m{status} // '') ne 'done') {
        $p->("**The Redis section did not complete: $m{status}.** What"
             . ' follows, if anything, was measured before it stopped; the'
             . ' output of `make bench` says why.');
        $p->('');
    }
    $p->('Goals of the issue: publishing with `omnibus_redis` dedup at'
         . ' **>= 0.7 x the zone alone**, and fan-out across pods at **>= 1.5 x'
         . ' nchan on Redis** (see the Goals table above for the verdicts).');
    $p->('');

    $p->('### 9a. Publish with an idempotency key: the zone alone vs Redis dedup');
    $p->('');
    (my $cdir = $m{cluster_directive} // '') =~ s/\s+$//;
    $p->(sprintf 'wrk as in section 1 (%s connections, %s s, 1 KiB JSON'
                 . ' bodies, 100 topics, `bench/pub.lua`) with `KEY_PREFIX`'
                 . ' set, so that every request carries its own'
                 . ' `Idempotency-Key` (`r<round>-<target>-<thread>-<n>`): none'
                 . ' is a duplicate, each is a new identity to remember. Four'
                 . ' nginx: the zone alone (the identity goes into the zone\'s'
                 . ' dedup index in shared memory); the same nginx plus `%s`'
                 . ' (each identity is also claimed in Redis, one `SET NX GET`'
                 . ' per publish, before the 202); and, for context, nchan\'s'
                 . ' publisher (section 1\'s locations; the key means nothing'
                 . ' to it) in memory and on the same Redis (`%s`; storage mode'
                 . ' distributed, the default). %d rounds in rotating order;'
                 . ' rates count 2xx answers.',
         $m{conns} // '?', $m{duration} // '?', $cdir || '?',
         $m{nchan_redis} // '?', $m{rounds} // 0);
    $p->('');
    $p->('| round | zone only req/s | zone + Redis dedup req/s | nchan memory req/s | nchan Redis req/s |');
    $p->('|---|---|---|---|---|');
    my %byr;
    push @{$byr{$_->{round}}{$_->{target}}}, $_ for @rpub;
    for my $r (sort { $a <=> $b } keys %byr) {
        $p->(sprintf '| %d | %s |', $r, join(' | ', map {
            my $x = $byr{$r}{$_}; $x ? num($x->[0]{rate}) : 'n/a' } @rtargets));
    }
    $p->(sprintf '| median | %s |', join(' | ', map { num($rrate->($_)) } @rtargets));
    $p->('');
    $p->(sprintf '**zone + Redis dedup / zone only: %s x**; nchan Redis / nchan'
                 . ' memory: %s x; zone + Redis dedup / nchan Redis: %s x; zone'
                 . ' only / nchan memory: %s x.',
         r2(ratio($rrate->('cluster'), $rrate->('local'))),
         r2(ratio($rrate->('nchan-redis'), $rrate->('nchan-memory'))),
         r2(ratio($rrate->('cluster'), $rrate->('nchan-redis'))),
         r2(ratio($rrate->('local'), $rrate->('nchan-memory'))));
    $p->('');
    $p->('Per target (medians of the rounds; counts summed over them). wrk\'s'
         . ' p50/p99 are closed-loop latencies at full speed. CPU: utime +'
         . ' stime of the nginx workers, and of redis-server (all its'
         . ' threads), per request answered. Claimed / duplicates / fallbacks'
         . ' / errors: `message_bus_redis_answers_total`,'
         . ' `message_bus_redis_fallbacks_total{feature="dedup"}` (a publish'
         . ' the pod deduplicated alone because Redis did not answer) and'
         . ' `message_bus_redis_errors_total` of the cluster nginx around each'
         . ' run.');
    $p->('');
    $p->('| target | req/s | wrk p50 / p99 ms | nginx CPU us per request | redis-server CPU us per request | accepted | claimed in Redis | duplicates | fallbacks | Redis errors | non-2xx + socket errors |');
    $p->('|---|---|---|---|---|---|---|---|---|---|---|');
    for my $t (@rtargets) {
        my $x = $rmed{$t} or next;
        my $c = $t eq 'cluster';
        $p->(sprintf '| %s | %s | %s / %s | %s | %s | %s | %s | %s | %s | %s | %s |',
             $rname{$t}, num($x->{rate}), fx($x->{p50_ms}, 2), fx($x->{p99_ms}, 2),
             fx($x->{nginx_cpu_us_per_req}, 1), fx($x->{redis_cpu_us_per_req}, 1),
             num($x->{accepted_sum}),
             $c ? num($x->{claimed_sum}) : '-', $c ? num($x->{duplicates_sum}) : '-',
             $c ? num($x->{fallbacks_sum}) : '-', $c ? num($x->{redis_errors_sum}) : '-',
             ($x->{non2xx_sum} // 0) + ($x->{sockerr_sum} // 0));
    }
    $p->('');
    if (my $x = $rmed{cluster}) {
        my $all = defined $x->{claimed_sum} && defined $x->{accepted_sum}
                  && $x->{claimed_sum} >= $x->{accepted_sum};
        $p->(sprintf '%s: %s claims for %s publishes accepted by the cluster'
                     . ' nginx in the measured runs. Keys in Redis after 9a'
                     . ' (warm-up runs included): %s, used memory %s.',
             $all ? 'Every accepted publish was claimed in Redis'
                  : '**Not every accepted publish was claimed in Redis**',
             num($x->{claimed_sum}), num($x->{accepted_sum}),
             num($m{keys_after_a}), $m{used_memory_after_a} || 'n/a');
        $p->('');
    }

    $p->('### 9b. Fan-out across pods');
    $p->('');
    (my $fdir = $m{fanout_directive} // '') =~ s/\s+$//;
    $p->(sprintf 'Three nginx with `%s` on the same Redis (`FLUSHALL`ed'
                 . ' after 9a). A message published on pod A enters its'
                 . ' retain ring and is relayed: `XADD` to the zone\'s stream'
                 . ' (`MAXLEN ~ 100000`) from an outbox; one worker per pod'
                 . ' reads the stream (`XREAD BLOCK`) and puts the other pods\''
                 . ' messages into its own retain rings, where its SSE'
                 . ' subscribers get them. Against it, three nginx with nchan'
                 . ' on the same Redis (`nchan_redis_pass`, distributed):'
                 . ' publisher on one, `nchan_subscriber eventsource` on the two'
                 . ' others. As in section 3, `bench/fanout.pl` opens %s SSE'
                 . ' connections to one topic, in turn to pod B and pod C (%s +'
                 . ' %s), waits until all are answered, then h2load (1'
                 . ' connection) publishes %s messages of %s B on pod A, one'
                 . ' after the other. Deliveries/s = events received / time'
                 . ' from the first publish to the last event. Missing = the'
                 . ' events short of %s, summed over the subscribers. CPU ='
                 . ' utime + stime of the workers of the three nginx, and of'
                 . ' redis-server, over the same interval, per 100,000'
                 . ' deliveries. Rounds alternate the order.',
         $fdir || '?', num($subs), num($subs - int($subs / 2)), num(int($subs / 2)),
         num($m{fan_msgs}), $m{fan_size} // 256, num($m{fan_msgs}));
    $p->('');
    $p->('| target | deliveries/s (median) | rounds (deliveries/s) | events received / expected | missing events | subscribers short (over) | events on pod B / C | nginx CPU s per 100k (median) | redis-server CPU s per 100k (median) |');
    $p->('|---|---|---|---|---|---|---|---|---|');
    for my $t (qw(omnibus nchan)) {
        my $x = $rfmed{$t} or next;
        $p->(sprintf '| %s | %s | %s | %s | %s | %s (%s) | %s | %s | %s |',
             $t eq 'omnibus' ? 'omnibus, 3 pods' : 'nchan, 3 on Redis',
             num($x->{rate}), $x->{rounds}, $x->{events}, num($x->{missing}),
             num($x->{short}), num($x->{over}), $x->{pods},
             fx($x->{cpu}, 3), fx($x->{rcpu}, 3));
    }
    $p->('');
    if ($rfmed{omnibus} || $rfmed{nchan}) {
        my $v = sub {
            my $x = $rfmed{$_[0]} or return 'n/a';
            return $x->{complete} ? 'every subscriber got every message'
                 : sprintf('**%s events missing**', num($x->{missing}));
        };
        $p->(sprintf '**omnibus / nchan: %s x.** omnibus: %s; nchan: %s.',
             r2(ratio($rfmed{omnibus} && $rfmed{omnibus}{rate},
                      $rfmed{nchan} && $rfmed{nchan}{rate})),
             $v->('omnibus'), $v->('nchan'));
        $p->('');
    }
    my @ro = grep { $_->{target} eq 'omnibus' } @rfan;
    if (@ro) {
        $p->(sprintf 'The relay of the omnibus pods per round, from their'
                     . ' `message_bus_redis_relay_total`: sent by pod A (each'
                     . ' of its %s messages once), received by pods B and C'
                     . ' (%s expected), dropped (the outbox full), skipped'
                     . ' (seen before); fallbacks = `message_bus_redis_'
                     . 'fallbacks_total{feature="fanout"}` of the three.',
             num($m{fan_msgs}), num(2 * ($m{fan_msgs} // 0)));
        $p->('');
        $p->('| round | sent (pod A) | received (pods B + C) | dropped | skipped | fallbacks | Redis errors | publisher exit code |');
        $p->('|---|---|---|---|---|---|---|---|');
        $p->(sprintf '| %d | %s | %s | %s | %s | %s | %s | %s |', $_->{round},
             map({ num($_) } @$_{qw(relay_sent relay_received relay_dropped
                                    relay_skipped fallbacks redis_errors)}),
             na($_->{pub_rc})) for @ro;
        $p->('');
    }
    my @failed = grep { ($_->{result} // '') ne 'ok' } @rfan;
    if (@failed) {
        $p->('Failed runs:');
        $p->('');
        $p->("- round $_->{round}, $_->{target}: $_->{result}") for @failed;
        $p->('');
    }
    if (@rerr) {
        $p->('Error log lines of the section\'s nginx:');
        $p->('');
        $p->('```');
        $p->($_) for @rerr;
        $p->('```');
        $p->('');
    }
}

# ------------------------------------------------------------ section 10

sub cluster_section {
    my ($p) = @_;
    my %m = %cmeta;
    my @n = sort { $a <=> $b } keys %cmed;
    my $cores = $m{nproc} // 2;
    $p->(sprintf 'The production picture of `t/90-cluster.t`, built by the'
                 . ' same harness (`t/lib/Omnibus/Cluster.pm`, from'
                 . ' `bench/cluster.pl`): one redis-server %s (`%s`: every'
                 . ' write fsynced before its reply), one PostgreSQL %s'
                 . ' (initdb into a temp dir; `%s`), librdkafka\'s mock Kafka'
                 . ' cluster (3 brokers, topic `cluster-orders` of 3'
                 . ' partitions), %s omnibus pods of %s workers and a front'
                 . ' nginx (2 workers, no module) whose upstream is the pods'
                 . ' (`keepalive 32`). Every pod: `omnibus_node pod-x`, zone'
                 . ' `bus` (64 MiB, 4 shards) with `omnibus_store ...'
                 . ' mode=sync` (a publish is answered once its row is'
                 . ' committed), `omnibus_redis` with dedup, rate limits and'
                 . ' fan-out (each Idempotency-Key claimed in Redis), a webhook'
                 . ' route and a Kafka route for `orders.>`, so that every'
                 . ' message is one PostgreSQL row written and marked done,'
                 . ' one Redis claim and one relay into the fan-out stream, one'
                 . ' webhook POST and one Kafka record. The webhook receiver is'
                 . ' an nginx `return 200` as in section 2 (1 worker), **not**'
                 . ' the harness\'s Perl `Omnibus::Receiver`, which logs every'
                 . ' request as JSON in one process and would be the'
                 . ' bottleneck; the pods and the front log no request'
                 . ' (`access_log off`, the harness\'s `access_log => 0`).'
                 . ' All of it shares the machine\'s %s CPUs with wrk. Started'
                 . ' %s (load average %s; module commit `%s`, built %s); the'
                 . ' section took %s s.',
         $m{redis} // '?', $m{redis_settings} // '?', $m{postgres} // '?',
         $m{pg_settings} // '?', $m{pods} // '?', $m{workers} // 2, $cores,
         $m{date} // '?', $m{loadavg} // '?', $m{commit} // '?',
         $m{module_built} // '?', $m{elapsed_s} // '?');
    $p->('');
    if (($m{status} // '') ne 'done') {
        $p->("**The cluster section did not complete: $m{status}.** What"
             . ' follows, if anything, was measured before it stopped; the'
             . ' output of `make bench` says why.');
        $p->('');
    }
    if ($cpodconf =~ /(    omnibus_node.*)/s) {
        (my $conf = $1) =~ s/\s+\}\s*\z/\n/;
        $p->('A pod\'s configuration (the harness\'s `nginx.conf`, ports and'
             . ' paths made generic; `bench/data/cluster-pod.conf` has it all):');
        $p->('');
        $p->('```nginx');
        $p->($conf =~ s/\n+\z//r);
        $p->('```');
        $p->('');
    }

    $p->('### 10a. Accepted messages/s through the front: 1, 2 and 3 pods');
    $p->('');
    $p->(sprintf 'wrk as in section 9a (-t1, %s connections, %s s per run, 1'
                 . ' KiB JSON bodies, 100 topics `orders.t0..99`,'
                 . ' `bench/pub.lua` with `KEY_PREFIX`: every request has its'
                 . ' own `Idempotency-Key`) against the front, with 1, 2 or 3'
                 . ' pods in its upstream: all pods run all the time, the'
                 . ' front is reloaded with the first N of them before each'
                 . ' run, and every pod has settled first (nothing queued or'
                 . ' in flight: the deliveries of the last run done). %s'
                 . ' rounds in rotating order; msg/s = 2xx answers per second.',
         $m{conns} // '?', $m{duration} // '?', $m{rounds} // 0);
    $p->('');
    $p->('| round | ' . join(' | ', map { "$_ pod" . ($_ == 1 ? '' : 's') . ' msg/s' } @n) . ' |');
    $p->('|---|' . join('', map { '---|' } @n));
    my %byr;
    $byr{$_->{round}}{$_->{pods}} = $_ for @cruns;
    for my $r (sort { $a <=> $b } keys %byr) {
        $p->(sprintf '| %d | %s |', $r, join(' | ', map {
            my $x = $byr{$r}{$_}; $x ? num($x->{rate}) : 'n/a' } @n));
    }
    $p->(sprintf '| median | %s |', join(' | ', map { num($crate->($_)) } @n));
    $p->('');
    $p->(sprintf '**Scaling: 2 pods / 1 pod = %s x, 3 pods / 1 pod = %s x.**',
         r2(ratio($crate->(2), $crate->(1))), r2(ratio($crate->(3), $crate->(1))));
    $p->('');
    $p->('Per pod count (medians of the rounds; counts summed over them).'
         . ' Accepted = `message_bus_published_total` of the pods around each'
         . ' run, claimed = `message_bus_redis_answers_total{result="claimed"}`,'
         . ' fallbacks / errors = `message_bus_redis_fallbacks_total`,'
         . ' `message_bus_redis_errors_total`, `message_bus_store_errors_total`;'
         . ' commits and rows per commit from `message_bus_store_batch_rows`'
         . ' and `message_bus_store_rows_total` (a message is two rows: its'
         . ' insert, and its done mark once both routes have it); Redis'
         . ' commands = `total_commands_processed` of redis-server;'
         . ' fan-out receptions = `message_bus_redis_relay_total{outcome='
         . '"received"}` of all pods: every pod, in the front or not, reads'
         . ' the others\' messages from the Redis stream into its retain ring'
         . ' for its SSE subscribers; wake-ups = the voluntary context'
         . ' switches of the pods\' workers (`/proc/PID/status`), one per'
         . ' `epoll_wait` that had to wait.');
    $p->('');
    $p->('| pods | msg/s | wrk p50 / p99 ms | accepted | per pod | PostgreSQL commits | rows per commit | Redis commands per message | fan-out receptions per message | pod worker wake-ups per message | claimed in Redis | duplicates | fallbacks / Redis errors / store errors | non-2xx + socket errors |');
    $p->('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
    for my $k (@n) {
        my $x = $cmed{$k};
        $p->(sprintf '| %d | %s | %s / %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s / %s | %s |',
             $k, num($x->{rate}), fx($x->{p50_ms}, 1), fx($x->{p99_ms}, 1),
             num($x->{accepted_sum}), $x->{per_pod}, num($x->{commits_sum}),
             fx(ratio($x->{store_rows_sum}, $x->{commits_sum}), 1),
             fx(ratio($x->{redis_cmds_sum}, $x->{accepted_sum}), 1),
             fx(ratio($x->{relayed_sum}, $x->{accepted_sum}), 1),
             fx(ratio($x->{pod_wakeups_sum}, $x->{accepted_sum}), 2),
             num($x->{claimed_sum}),
             num($x->{duplicates_sum}), num($x->{fallbacks_sum}),
             num($x->{redis_errors_sum}), num($x->{store_errors_sum}),
             num($x->{non2xx_sum} + $x->{sockerr_sum}));
    }
    $p->('');
    $p->(sprintf 'Where the CPU goes: utime + stime from `/proc/PID/stat` over'
                 . ' each run, in %% of one core (%s cores = %d%%), medians:'
                 . ' wrk (reaped child), the front\'s and the pods\' workers,'
                 . ' redis-server, the postmaster and all its backends, the'
                 . ' Kafka mock, the receiver\'s worker; interrupts + softirqs'
                 . ' from `/proc/stat` (charged to no process: the loopback TCP'
                 . ' traffic between all of these, block I/O completions); other'
                 . ' = the machine\'s busy time minus all of these (other work'
                 . ' on the machine, the bench\'s own scripts, kernel threads;'
                 . ' 0 when the parts add up to more than the busy time: the'
                 . ' softirqs run in a process\'s context are in its system time'
                 . ' too, and the parts are medians); idle = the rest. Below it, the same per accepted'
                 . ' message in CPU microseconds.',
         $cores, 100 * $cores);
    $p->('');
    $p->('| pods | ' . join(' | ', map { $_->[1] } @ccomp) . ' | idle | busy |');
    $p->('|---|' . join('', map { '---|' } @ccomp) . '---|---|');
    for my $k (@n) {
        my $x = $cmed{$k};
        $p->(sprintf '| %d, %% of a core | %s | %s | %s |', $k,
             join(' | ', map { fx($x->{"pct_$_->[0]"}, 0) } @ccomp),
             fx($x->{pct_idle}, 0), fx($x->{pct_busy}, 0));
    }
    for my $k (@n) {
        my $x = $cmed{$k};
        $p->(sprintf '| %d, us per message | %s | - | %s |', $k,
             join(' | ', map { fx($x->{"us_$_->[0]"}, 0) } @ccomp),
             fx($x->{us_busy}, 0));
    }
    $p->('');
    $p->('Other processes seen during the runs (CPU seconds summed over the'
         . ' rounds; processes that exited within a run are not seen):'
         . join(';', map { " $_ pod" . ($_ == 1 ? '' : 's') . ': '
                           . ($cmed{$_}{other_top} || 'none') } @n) . '.'
         . (grep({ defined $_->{forks} && length $_->{forks} } @cruns)
            ? ' Processes and threads started on the machine during the runs'
              . ' (`processes` of `/proc/stat`, wrk\'s not counted; of the'
              . ' cluster only PostgreSQL may start some, autovacuum workers'
              . ' and new backends): ' . join('; ', map { "$_ pod" . ($_ == 1 ? '' : 's')
                . ': ' . num($cmed{$_}{forks_sum}) } @n) . '.'
            : ''));
    $p->('');
    cluster_why($p, \@n, $cores);

    $p->('### 10b. Publish-to-webhook latency in the cluster');
    $p->('');
    $p->(sprintf '%s pods in the front. %s processes of `bench/cluster.pl`'
                 . ' publish 1 KiB messages through the front to'
                 . ' `orders.lat.<i>`, each on one keepalive connection, open'
                 . ' loop at %s msg/s in all for %s s (each with its'
                 . ' Idempotency-Key), noting the time each request was'
                 . ' written and the id of its answer; the receiver nginx logs'
                 . ' `$msec $http_x_omnibus_id` of the `orders.lat.*` deliveries;'
                 . ' `bench/latency.pl` joins them on the id. Publish -> webhook'
                 . ' = receipt - the publish\'s start, so it holds the publish'
                 . ' itself (front, pod, Redis claim, PostgreSQL commit) and the'
                 . ' delivery; the receipt time is nginx\'s cached'
                 . ' millisecond clock (+-1 ms). The publish answer is the'
                 . ' client\'s own time from writing the request to reading the'
                 . ' answer.',
         $m{pods} // '?', $clat{clients} // '?', num($clat{rate}),
         $clat{duration_s} // '?');
    $p->('');
    $p->('| rate msg/s | sent | accepted | at the webhook | redelivered | publish answer p50 / p99 ms | publish -> webhook p50 / p90 / p99 / p99.9 / max ms |');
    $p->('|---|---|---|---|---|---|---|');
    $p->(sprintf '| %s | %s | %s | %s | %s | %s / %s | **%s** / %s / **%s** / %s / %s |',
         num($clat{rate}), num($clat{sent}), num($clat{accepted}),
         num($clat{matched}), num($clat{redelivered}),
         na($clat{publish_p50_ms}), na($clat{publish_p99_ms}),
         map { na($clat{$_}) } qw(p50_ms p90_ms p99_ms p999_ms max_ms));
    $p->('');
    $p->('The webhook typically arrives before the publisher has its'
         . ' answer (p50 publish -> webhook below the p50 publish answer): the'
         . ' delivery starts once the row is committed, while the answer is'
         . ' still on its way back through the front.')
        if ($clat{p50_ms} // '') =~ /^[\d.]+$/ && ($clat{publish_p50_ms} // '') =~ /^[\d.]+$/
           && $clat{p50_ms} < $clat{publish_p50_ms};
    $p->('') if ($clat{p50_ms} // '') =~ /^[\d.]+$/ && ($clat{publish_p50_ms} // '') =~ /^[\d.]+$/
                && $clat{p50_ms} < $clat{publish_p50_ms};
    $p->(sprintf 'After the runs: %s rows of the store left open (messages not'
                 . ' yet done with), %s keys in Redis, zone bytes used per pod %s.',
         $m{open_rows_after} // 'n/a', num($m{redis_keys_after}),
         $m{zone_bytes_used_after} // 'n/a');
    $p->('');
    if (@$cerr) {
        $p->('Error log lines of the cluster\'s nginx:');
        $p->('');
        $p->('```');
        $p->($_) for @$cerr;
        $p->('```');
        $p->('');
    }
}

# why the scaling is what it is, from the CPU split: how busy the machine
# was, who took the cores, and whose cost per message grew with the pods
sub cluster_why {
    my ($p, $n, $cores) = @_;
    my ($lo, $hi) = ($cmed{$n->[0]}, $cmed{$n->[-1]});
    return unless $lo && $hi && @$n > 1 && $lo->{us_busy} && $hi->{us_busy};
    my $full = 100 * $cores;
    my $pods = sub { "$_[0] pod" . ($_[0] == 1 ? '' : 's') };
    my @top = sort { ($lo->{"pct_$b->[0]"} // 0) <=> ($lo->{"pct_$a->[0]"} // 0) } @ccomp;
    my @text;
    push @text, sprintf('**Why:** the machine is busy %s%% of %d%% with %s (the'
                        . ' rest idle, or waiting for the disk: PostgreSQL\'s'
                        . ' and Redis\'s fsyncs), and the pods are not the only'
                        . ' consumer of its %d cores: with 1 pod the largest'
                        . ' shares are %s. A pod more has no core of its own,'
                        . ' so the rate can only grow with the idle CPU left,'
                        . ' and only hold if the CPU per message stays the same.',
                        join(', ', map { fx($cmed{$_}{pct_busy}, 0) } @$n), $full,
                        join(', ', map { $pods->($_) } @$n), $cores,
                        join(', ', map { sprintf '%s %s%%', $_->[1],
                                             fx($lo->{"pct_$_->[0]"}, 0) } @top[0 .. 2]));
    my $other = median(map { $cmed{$_}{pct_other} // 0 } @$n) // 0;
    push @text, sprintf('**Other work on the machine took %s%% of a core**'
                        . ' (median of the steps; see the processes above):'
                        . ' the rates are lower than on a quiet machine, and'
                        . ' their ratios noisier.', fx($other, 0))
        if $other > 20;
    my @grow = sort { $b->[2] <=> $a->[2] }
               map { [$_->[1], $_->[0], abs(($hi->{"us_$_->[0]"} // 0) - ($lo->{"us_$_->[0]"} // 0))] }
               grep { $_->[0] ne 'other' } @ccomp;
    my $more = $hi->{us_busy} > 1.15 * $lo->{us_busy};
    push @text, sprintf('%s: per accepted message the busy CPU goes from %s us'
                        . ' (1 pod) to %s us (%s); the largest changes: %s,'
                        . ' while redis-server %s %s -> %s us (%s -> %s'
                        . ' commands per message).',
                        $more ? 'It does not' : 'It roughly does',
                        fx($lo->{us_busy}, 0), fx($hi->{us_busy}, 0), $pods->($n->[-1]),
                        join(', ', map {
                            sprintf '%s %s -> %s us', $_->[0],
                                fx($lo->{"us_$_->[1]"}, 0), fx($hi->{"us_$_->[1]"}, 0)
                        } @grow[0 .. 1]),
                        abs(($hi->{us_redis} // 0) - ($lo->{us_redis} // 0))
                            < 0.15 * ($lo->{us_redis} || 1) ? 'stays at' : 'goes',
                        fx($lo->{us_redis}, 0), fx($hi->{us_redis}, 0),
                        fx(ratio($lo->{redis_cmds_sum}, $lo->{accepted_sum}), 1),
                        fx(ratio($hi->{redis_cmds_sum}, $hi->{accepted_sum}), 1));
    my ($rl, $rh) = map { ratio($_->{store_rows_sum}, $_->{commits_sum}) } $lo, $hi;
    my ($cl, $ch) = map { ratio($_->{commits_sum}, $_->{accepted_sum}) } $lo, $hi;
    my ($wl, $wh) = map { ratio($_->{pod_wakeups_sum}, $_->{accepted_sum}) } $lo, $hi;
    push @text, sprintf('The work per message is the same (%s -> %s rows, and'
                        . ' the same Redis commands and fan-out receptions per'
                        . ' message); what grows is the work per batch. Each'
                        . ' pod batches only what it accepts itself: PostgreSQL'
                        . ' gets %s rows per commit with 1 pod and %s with %s'
                        . ' (%s -> %s commits per message, each a round trip'
                        . ' from the pod and a WAL flush)%s.',
                        fx(ratio($lo->{store_rows_sum}, $lo->{accepted_sum}), 1),
                        fx(ratio($hi->{store_rows_sum}, $hi->{accepted_sum}), 1),
                        fx($rl, 1), fx($rh, 1), $pods->($n->[-1]), fx($cl, 2), fx($ch, 2),
                        $wl && $wh && $wh > 1.2 * $wl
                        ? sprintf(', and the pods\' workers wake up %s -> %s'
                                  . ' times per message (fewer messages per turn'
                                  . ' of the event loop): the per-batch and'
                                  . ' per-wake-up costs of PostgreSQL and of the'
                                  . ' pods are spread over fewer messages',
                                  fx($wl, 2), fx($wh, 2))
                        : sprintf(': the per-commit cost is spread over fewer'
                                  . ' messages (the pods\' workers wake up %s ->'
                                  . ' %s times per message)', fx($wl, 2), fx($wh, 2)))
        if $more && defined $rl && defined $rh && $rh < $rl;
    my @out = grep { $_->{pods} < ($cmeta{pods} // 0) } @cruns;
    push @text, sprintf('The pods outside the front are not free either: %s%%'
                        . ' of a core each (median), reading the others\''
                        . ' messages from the Redis stream.',
                        fx(median(map { 100 * ($_->{"cpu_pod-" . chr(ord('a') + $_->{pods})} // 0)
                                        / $_->{wall} } @out), 1))
        if @out;
    # rate = busy CPU / CPU per message: the ratio is the product of both
    my ($fb, $fc) = (ratio($hi->{pct_busy}, $lo->{pct_busy}),
                     ratio($lo->{us_busy}, $hi->{us_busy}));
    push @text, sprintf('Together: %s / 1 pod = (busy CPU %s / %s = %s) x (CPU'
                        . ' per message %s / %s = %s) = %s; measured %s.',
                        $pods->($n->[-1]), fx($hi->{pct_busy}, 0),
                        fx($lo->{pct_busy}, 0), r2($fb), fx($lo->{us_busy}, 0),
                        fx($hi->{us_busy}, 0), r2($fc), r2($fb * $fc),
                        r2(ratio($hi->{rate}, $lo->{rate})))
        if $fb && $fc;
    push @text, 'Pods add throughput when each has cores of its own and'
                . ' PostgreSQL and Redis have headroom; on this 2-core machine'
                . ' they share the cores with everything else, and a pod more'
                . ' makes every message cost more.';
    $p->(join ' ', @text);
    $p->('');
}
