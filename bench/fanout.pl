#!/usr/bin/perl
# Fan-out client: open N SSE connections, wait until every one has its
# response header, then run one publisher command (M messages) and count
# the events that arrive on all connections until N x M are in (or the
# stream goes quiet). Also samples the CPU time (utime + stime) of the
# nginx worker processes (the children of the master) around the run.
#
#   fanout.pl --port 8080 --path /subscribe/fan.r1 --conns 1000 \
#             --messages 200 --master-pid PID -- h2load -n 200 ...
#
# --port may be given more than once (or as a comma list): the connections
# are spread over the ports in turn (the subscribers of several nginx
# instances: bench/redis.sh); --master-pid likewise (the workers of every
# master are counted), and --pid PID adds the CPU time of that process
# itself (e.g. redis-server) as pid_cpu_s.
#
# Prints one line:
#   RESULT conns=N connected=N events=N expected=N elapsed_s=F cpu_s=F
#          first_event_s=F pub_rc=N closed=N min_per_conn=N max_per_conn=N
#          missing=N short_conns=N over_conns=N pid_cpu_s=F
#          ports=P1,P2 port_events=N1,N2 port_short=S1,S2
# missing: the events short of --messages, summed over the connections;
# short_conns / over_conns: connections with fewer / more events than
# --messages. Events are counted by the marker '"seq":' that every
# published body carries in its payload (one per event, whatever the SSE
# framing).

use strict;
use warnings;

use Getopt::Long;
use IO::Poll qw(POLLIN POLLOUT POLLERR POLLHUP);
use IO::Socket::INET;
use POSIX qw(:sys_wait_h);
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(time sleep);

my %o = (host => '127.0.0.1', conns => 1000, messages => 200,
         timeout => 30, quiet => 3, marker => '"seq":');
GetOptions(\%o, 'host=s', 'port=s@', 'path=s', 'conns=i', 'messages=i',
           'master-pid=s@', 'pid=s@', 'timeout=f', 'quiet=f', 'marker=s')
    or die "bad options\n";
my @ports = map { split /,/ } @{$o{port} || []};
my @masters = map { split /,/ } @{$o{'master-pid'} || []};
my @pids = map { split /,/ } @{$o{pid} || []};
die "--port, --path and a publisher command are needed\n"
    unless @ports && $o{path} && @ARGV;
/^\d+$/ or die "bad port or pid: $_\n" for @ports, @masters, @pids;

my $clk = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;

sub worker_cpu {  # the workers of every master
    my $t = 0;
    $t += one_master_cpu($_) for @masters;
    return $t;
}

sub pid_cpu {  # the processes themselves (all their threads)
    my $ticks = 0;
    for my $pid (@pids) {
        open(my $f, '<', "/proc/$pid/stat") or next;
        my $s = <$f>;
        close $f;
        next unless defined $s;
        $s =~ s/^.*\)\s+//s;
        my @f = split ' ', $s;
        $ticks += $f[11] + $f[12];
    }
    return $ticks / $clk;
}

sub one_master_cpu {
    my ($master) = @_;
    return 0 unless $master;
    my $ticks = 0;
    opendir(my $d, '/proc') or return 0;
    for my $pid (grep { /^\d+$/ } readdir $d) {
        open(my $f, '<', "/proc/$pid/stat") or next;
        my $s = <$f>;
        close $f;
        next unless defined $s;
        # the command name may hold spaces: split after the last ')'
        $s =~ s/^.*\)\s+//s;
        my @f = split ' ', $s;
        # fields from 3 (state) on: ppid = $f[1], utime = $f[11], stime = $f[12]
        next unless $f[1] == $master;
        $ticks += $f[11] + $f[12];
    }
    closedir $d;
    return $ticks / $clk;
}

my $req = "GET $o{path} HTTP/1.1\r\nHost: $o{host}\r\n"
        . "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n";

my (@socks, %state);
my $poll = IO::Poll->new;

for my $i (1 .. $o{conns}) {
    my $s;
    my $port = $ports[($i - 1) % @ports];
    for my $try (1 .. 5) {
        $s = IO::Socket::INET->new(PeerAddr => $o{host}, PeerPort => $port,
                                   Proto => 'tcp', Timeout => 5)
            and last;
        sleep 0.05;
    }
    die "connect $i (port $port): $!\n" unless $s;
    setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1);
    syswrite($s, $req) == length $req or die "write $i: $!\n";
    $s->blocking(0);
    push @socks, $s;
    $state{fileno $s} = { sock => $s, head => '', ok => 0, carry => '',
                          events => 0, port => $port };
    $poll->mask($s => POLLIN);
}

my $marker = $o{marker};
my $mlen = length $marker;
my ($connected, $events, $closed) = (0, 0, 0);

# read what is there on every readable socket; count events
sub pump {
    my ($wait) = @_;
    my $n = $poll->poll($wait);
    return 0 if $n <= 0;
    my $got = 0;
    for my $s ($poll->handles(POLLIN | POLLERR | POLLHUP)) {
        my $st = $state{fileno $s};
        my $buf;
        my $r = sysread($s, $buf, 262144);
        if (!defined $r) {
            next if $!{EAGAIN} || $!{EINTR};
            $r = 0;
        }
        if ($r == 0) {
            $poll->remove($s);
            $closed++;
            next;
        }
        $got += $r;
        unless ($st->{ok}) {
            $st->{head} .= $buf;
            my $end = index($st->{head}, "\r\n\r\n");
            next if $end < 0;
            die "bad answer on $o{path}: " . substr($st->{head}, 0, 200) . "\n"
                unless $st->{head} =~ m{^HTTP/1\.[01] 200 };
            $st->{ok} = 1;
            $connected++;
            $buf = substr($st->{head}, $end + 4);
            $st->{head} = '';
        }
        my $text = $st->{carry} . $buf;
        my $c = 0;
        my $p = 0;
        while (($p = index($text, $marker, $p)) >= 0) {
            $c++;
            $p += $mlen;
        }
        $st->{carry} = length $text >= $mlen - 1
            ? substr($text, -($mlen - 1)) : $text;
        $st->{events} += $c;
        $events += $c;
    }
    return $got;
}

# every subscriber must be answered before the publisher starts
my $deadline = time + 20;
while ($connected < $o{conns} && time < $deadline && !$closed) {
    pump(0.2);
}
die "only $connected of $o{conns} subscribers connected ($closed closed)\n"
    if $connected < $o{conns};
# let the server finish registering the last ones
my $settle = time + 0.3;
pump($settle - time) while time < $settle;
$events = 0;
$_->{events} = 0 for values %state;

my $expected = $o{conns} * $o{messages};
my $cpu0 = worker_cpu();
my $pcpu0 = pid_cpu();
my $t0 = time;

my $pub = fork;
die "fork: $!\n" unless defined $pub;
if (!$pub) {
    open(STDOUT, '>', '/dev/null');
    exec @ARGV or die "exec $ARGV[0]: $!\n";
}

my ($last, $first) = ($t0, 0);
while ($events < $expected) {
    my $now = time;
    last if $now - $t0 > $o{timeout} || $now - $last > $o{quiet};
    if (pump(0.5) > 0) {
        $last = time;
        $first ||= $last if $events;
    }
}
my $t1 = $last;
my $cpu1 = worker_cpu();
my $pcpu1 = pid_cpu();

waitpid($pub, 0);
my $pubrc = $? >> 8;
close $_ for @socks;

my @per = sort { $a <=> $b } map { $_->{events} } values %state;
my ($missing, $short, $over) = (0, 0, 0);
my (%pev, %pshort);
for my $st (values %state) {
    my $e = $st->{events};
    $pev{$st->{port}} += $e;
    if ($e < $o{messages}) {
        $missing += $o{messages} - $e;
        $short++;
        $pshort{$st->{port}}++;
    }
    $over++ if $e > $o{messages};
}

printf "RESULT conns=%d connected=%d events=%d expected=%d elapsed_s=%.4f "
     . "cpu_s=%.2f first_event_s=%.4f pub_rc=%d closed=%d "
     . "min_per_conn=%d max_per_conn=%d missing=%d short_conns=%d "
     . "over_conns=%d pid_cpu_s=%.2f ports=%s port_events=%s port_short=%s\n",
       $o{conns}, $connected, $events, $expected, $t1 - $t0, $cpu1 - $cpu0,
       $first ? $first - $t0 : -1, $pubrc, $closed, $per[0] // 0, $per[-1] // 0,
       $missing, $short, $over, $pcpu1 - $pcpu0, join(',', @ports),
       join(',', map { $pev{$_} // 0 } @ports),
       join(',', map { $pshort{$_} // 0 } @ports);
