#!/usr/bin/perl
# Join the publish access log ("$msec $omnibus_message_id $status") and
# the webhook receiver's access log ("$msec $http_x_omnibus_id $attempt")
# by message id; print publish-to-receipt latency statistics (ms) as
# key<TAB>value lines. $msec has millisecond resolution and is nginx's
# cached time of the event loop iteration, so each value is +-1 ms.
#
#   latency.pl publish.log receiver.log > latency.tsv

use strict;
use warnings;

my ($publog, $recvlog) = @ARGV;
die "usage: latency.pl publish.log receiver.log\n" unless $recvlog;

my (%pub, $published);
open(my $p, '<', $publog) or die "$publog: $!\n";
while (<$p>) {
    my ($t, $id, $status) = split;
    next unless defined $status && $status eq '202' && $id ne '-';
    $pub{$id} = $t;
    $published++;
}
close $p;

my (%seen, @lat, $received, $retries, $unknown);
open(my $r, '<', $recvlog) or die "$recvlog: $!\n";
while (<$r>) {
    my ($t, $id, $attempt) = split;
    next unless defined $id;
    $received++;
    $retries++ if defined $attempt && $attempt ne '1';
    next if $seen{$id}++;              # first receipt counts
    if (!exists $pub{$id}) { $unknown++; next; }
    push @lat, ($t - $pub{$id}) * 1000;
}
close $r;

@lat = sort { $a <=> $b } @lat;
my $n = @lat;

sub pct {  # nearest rank
    my ($q) = @_;
    return 'NaN' unless $n;
    my $i = int($q / 100 * $n + 0.999999) - 1;
    $i = 0 if $i < 0;
    return sprintf '%.0f', $lat[$i];
}

my $sum = 0;
$sum += $_ for @lat;

printf "published\t%d\n", $published // 0;
printf "received\t%d\n", $received // 0;
printf "matched\t%d\n", $n;
printf "not_received\t%d\n", ($published // 0) - $n;
printf "redelivered\t%d\n", $retries // 0;
printf "unknown_ids\t%d\n", $unknown // 0;
printf "mean_ms\t%.2f\n", $n ? $sum / $n : 0;
printf "p50_ms\t%s\n", pct(50);
printf "p90_ms\t%s\n", pct(90);
printf "p99_ms\t%s\n", pct(99);
printf "p999_ms\t%s\n", pct(99.9);
printf "max_ms\t%s\n", $n ? sprintf('%.0f', $lat[-1]) : 'NaN';
printf "min_ms\t%s\n", $n ? sprintf('%.0f', $lat[0]) : 'NaN';
