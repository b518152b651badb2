#!/usr/bin/perl
# Publish latency from h2load's per-request log (--log-file: start time in
# microseconds since the epoch, HTTP status, microseconds until the end of
# the response), for bench/store.sh (section 8): one request per line,
# the latency is the time from the request's start to its whole answer
# as h2load saw it, so no log resolution enters the figure.
#
#   store-lat.pl h2load.log > store-latency.tsv
#
# Prints key<TAB>value lines: requests, ok (2xx), non2xx, span_s (first
# start to last end), rate_per_s (2xx answers / span), and over the 2xx
# answers mean_ms, p50_ms, p90_ms, p99_ms, p999_ms, max_ms (nearest rank).

use strict;
use warnings;

my ($log) = @ARGV;
die "usage: store-lat.pl h2load.log\n" unless $log;

my (@lat, $n, $bad, $t0, $t1);
open(my $f, '<', $log) or die "$log: $!\n";
while (<$f>) {
    my ($start, $status, $us) = split /\t/;
    next unless defined $us && $start =~ /^\d+$/;
    $n++;
    $t0 = $start if !defined $t0 || $start < $t0;
    $t1 = $start + $us if !defined $t1 || $start + $us > $t1;
    if ($status =~ /^2\d\d$/) {
        push @lat, $us / 1000;
    } else {
        $bad++;
    }
}
close $f;

@lat = sort { $a <=> $b } @lat;
my $k = @lat;

sub pct {  # nearest rank
    my ($q) = @_;
    return 'n/a' unless $k;
    my $i = int($q / 100 * $k + 0.999999) - 1;
    $i = 0 if $i < 0;
    return sprintf '%.2f', $lat[$i];
}

my $sum = 0;
$sum += $_ for @lat;
my $span = defined $t0 ? ($t1 - $t0) / 1e6 : 0;

printf "requests\t%d\n", $n // 0;
printf "ok\t%d\n", $k;
printf "non2xx\t%d\n", $bad // 0;
printf "span_s\t%.3f\n", $span;
printf "rate_per_s\t%.0f\n", $span > 0 ? $k / $span : 0;
printf "mean_ms\t%s\n", $k ? sprintf('%.2f', $sum / $k) : 'n/a';
printf "p50_ms\t%s\n", pct(50);
printf "p90_ms\t%s\n", pct(90);
printf "p99_ms\t%s\n", pct(99);
printf "p999_ms\t%s\n", pct(99.9);
printf "max_ms\t%s\n", $k ? sprintf('%.2f', $lat[-1]) : 'n/a';
