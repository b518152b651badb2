#!/usr/bin/perl
# Percentiles of a Prometheus histogram between two /metrics snapshots
# (bench/kafka.sh, section 7): the bucket counts of the second minus the
# first, summed over the series whose labels match, then p50/p90/p99 by
# linear interpolation inside the bucket that holds the rank (as
# Prometheus' histogram_quantile does). A rank in the +Inf bucket prints
# as ">LAST_BOUND".
#
#   kafka-hist.pl BEFORE AFTER FAMILY [LABEL_REGEX]
#
# prints one line: count=N mean_ms=X p50_ms=X p90_ms=X p99_ms=X max_le_ms=X
# (max_le_ms: the upper bound of the highest non-empty bucket)

use strict;
use warnings;

my ($before, $after, $family, $sel) = @ARGV;
die "usage: kafka-hist.pl BEFORE AFTER FAMILY [LABEL_REGEX]\n" unless $family;
$sel //= '';

sub snapshot {  # le => cumulative count, and sum, count
    my ($file) = @_;
    my (%le, $sum, $count);
    open(my $f, '<', $file) or die "$file: $!\n";
    while (<$f>) {
        if (/^\Q$family\E_bucket\{([^}]*)\} (\S+)$/) {
            my ($labels, $v) = ($1, $2);
            next unless $labels =~ /$sel/;
            my ($b) = $labels =~ /le="([^"]+)"/ or next;
            $le{$b} += $v;
        } elsif (/^\Q$family\E_(sum|count)\{([^}]*)\} (\S+)$/) {
            my ($what, $labels, $v) = ($1, $2, $3);
            next unless $labels =~ /$sel/;
            if ($what eq 'sum') { $sum += $v } else { $count += $v }
        }
    }
    return (\%le, $sum // 0, $count // 0);
}

my ($b0, $s0, $c0) = snapshot($before);
my ($b1, $s1, $c1) = snapshot($after);

my $key = sub { $_[0] eq '+Inf' ? 9**9**9 : $_[0] };
my @les = sort { $key->($a) <=> $key->($b) } keys %$b1;
my @cum = map { $b1->{$_} - ($b0->{$_} // 0) } @les;
my $n = $c1 - $c0;

my $ms = sub { sprintf '%.2f', $_[0] * 1000 };

sub quantile {
    my ($q) = @_;
    return 'n/a' unless $n > 0 && @cum;
    my $rank = $q * $cum[-1];
    my $prev = 0;
    my $lo = 0;
    for my $i (0 .. $#les) {
        if ($cum[$i] >= $rank && $cum[$i] > $prev) {
            return '>' . $ms->($lo) if $les[$i] eq '+Inf';
            my $hi = $les[$i];
            return $ms->($lo + ($hi - $lo) * ($rank - $prev) / ($cum[$i] - $prev));
        }
        $prev = $cum[$i];
        $lo = $les[$i] eq '+Inf' ? $lo : $les[$i];
    }
    return 'n/a';
}

my $top = 'n/a';
for my $i (0 .. $#les) {
    if ($cum[$i] >= ($cum[-1] // 0) && ($cum[-1] // 0) > 0) {
        $top = $les[$i] eq '+Inf' ? 'inf' : $ms->($les[$i]);
        last;
    }
}

printf "count=%d mean_ms=%s p50_ms=%s p90_ms=%s p99_ms=%s max_le_ms=%s\n",
    $n, $n > 0 ? $ms->(($s1 - $s0) / $n) : 'n/a',
    quantile(0.50), quantile(0.90), quantile(0.99), $top;
