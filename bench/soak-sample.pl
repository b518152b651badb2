#!/usr/bin/perl
# One sample of the soak (bench/soak.sh) as a TSV line: the zone's counters
# and bytes from /metrics, the connections from stub_status, the SSE
# client's counts, and per worker process (the children of the master, in
# pid order) VmRSS, RssAnon, open file descriptors and sockets.
#
#   soak-sample.pl --header --workers N
#   soak-sample.pl --port P --zone soak --master PID --subs FILE \
#                  --t SECONDS --phase load|drained
#
# Columns: t_s minute phase published delivered completed queued inflight
# rejected slow_dropped missed subscribers sse_connected sse_closed
# sse_events zone_used_bytes active_conns worker_pids, then per worker i
# rss_kb_i rss_anon_kb_i fds_i sockets_i.

use strict;
use warnings;

use Getopt::Long;
use HTTP::Tiny;

my %o = (zone => 'soak', workers => 2, phase => 'load');
GetOptions(\%o, 'header', 'workers=i', 'port=i', 'zone=s', 'master=i',
           'subs=s', 't=f', 'phase=s')
    or die "bad options\n";

my @cols = qw(t_s minute phase published delivered completed queued inflight
              rejected slow_dropped missed subscribers sse_connected sse_closed
              sse_events zone_used_bytes active_conns worker_pids);
if ($o{header}) {
    print join("\t", @cols,
               map { ("rss_kb_$_", "rss_anon_kb_$_", "fds_$_", "sockets_$_") }
                   1 .. $o{workers}), "\n";
    exit 0;
}
die "--port and --master are needed\n" unless $o{port} && $o{master};

my $http = HTTP::Tiny->new(timeout => 10);
my $res = $http->get("http://127.0.0.1:$o{port}/metrics");
die "metrics: $res->{status} $res->{reason}\n" unless $res->{success};
my %m;
my $z = quotemeta $o{zone};
for (split /\n/, $res->{content}) {
    next unless /^message_bus_(\w+)\{zone="$z"(?:,([^}]*))?\} (\d+)$/;
    my ($name, $labels, $v) = ($1, $2 // '', $3);
    $m{$name} += $v;   # sums over shards, priorities, reasons
}
$res = $http->get("http://127.0.0.1:$o{port}/stub_status");
my $active = $res->{success} && $res->{content} =~ /Active connections:\s*(\d+)/
    ? $1 : -1;

my %s;
if ($o{subs} && open(my $f, '<', $o{subs})) {
    %s = <$f> =~ /(\w+)=(\d+)/g;
}

my @workers;
opendir(my $d, '/proc') or die "/proc: $!\n";
for my $pid (sort { $a <=> $b } grep { /^\d+$/ } readdir $d) {
    open(my $f, '<', "/proc/$pid/stat") or next;
    my $st = <$f>;
    next unless defined $st;
    $st =~ s/^.*\)\s+//s;
    my @f = split ' ', $st;
    push @workers, $pid if $f[1] == $o{master};
}
closedir $d;

my @per;
for my $pid (@workers) {
    my %st;
    if (open(my $f, '<', "/proc/$pid/status")) {
        while (<$f>) { $st{$1} = $2 if /^(VmRSS|RssAnon):\s+(\d+)/ }
    }
    my ($fds, $socks) = (0, 0);
    if (opendir(my $fd, "/proc/$pid/fd")) {
        for (grep { /^\d+$/ } readdir $fd) {
            $fds++;
            my $l = readlink "/proc/$pid/fd/$_";
            $socks++ if defined $l && $l =~ /^socket:/;
        }
        closedir $fd;
    }
    push @per, $st{VmRSS} // 0, $st{RssAnon} // 0, $fds, $socks;
}

print join("\t", sprintf('%.1f', $o{t}), sprintf('%.2f', $o{t} / 60),
           $o{phase}, (map { $m{$_} // 0 } qw(published_total delivered_total
           completed_total queue_size inflight_messages rejected_total
           slow_subscribers_dropped_total subscriber_missed_total
           subscribers)), $s{connected} // 0, $s{closed} // 0,
           $s{events} // 0, $m{zone_used_bytes} // 0, $active,
           join(',', @workers) || '-', @per), "\n";
