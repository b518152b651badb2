#!/usr/bin/perl
# cpu.pl MASTER_PID: CPU seconds (utime + stime) used so far by the
# worker processes of an nginx master (its children), from /proc/PID/stat.
use strict;
use warnings;
use POSIX ();

my $master = shift or die "usage: cpu.pl MASTER_PID\n";
my $clk = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;
my $ticks = 0;
opendir(my $d, '/proc') or die "/proc: $!\n";
for my $pid (grep { /^\d+$/ } readdir $d) {
    open(my $f, '<', "/proc/$pid/stat") or next;
    my $s = <$f>;
    close $f;
    next unless defined $s;
    $s =~ s/^.*\)\s+//s;            # the name may hold spaces
    my @f = split ' ', $s;          # $f[0] is field 3 (state)
    next unless $f[1] == $master;   # ppid
    $ticks += $f[11] + $f[12];      # utime, stime
}
printf "%.2f\n", $ticks / $clk;
