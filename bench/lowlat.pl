#!/usr/bin/perl
# Publish-to-webhook latency at low load, with microsecond clocks on both
# ends: one process is both the publisher (one keepalive connection, one
# message every --interval ms, open loop) and the webhook receiver (the
# route's URL points at --listen). Each body carries "seq":N; latency is
# the time the receiver has read the whole delivery minus the time the
# publish request was written. Both clocks are this process's, so no
# log resolution or clock skew enters the figure.
#
#   lowlat.pl --port 8080 --path /lowlat/lowlat.t --listen 9001 \
#             --messages 2000 --interval 5
#
# Prints key<TAB>value lines: sent, accepted, received, p50_ms, p90_ms,
# p99_ms, max_ms, mean_ms.

use strict;
use warnings;

use Getopt::Long;
use IO::Select;
use IO::Socket::INET;
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(time);

my %o = (host => '127.0.0.1', messages => 2000, interval => 5,
         topics => 10, size => 256, timeout => 10);
GetOptions(\%o, 'host=s', 'port=i', 'path=s', 'listen=i', 'messages=i',
           'interval=f', 'topics=i', 'size=i', 'timeout=f')
    or die "bad options\n";
die "--port, --path and --listen are needed\n"
    unless $o{port} && $o{path} && $o{listen};

my $lsn = IO::Socket::INET->new(LocalAddr => $o{host}, LocalPort => $o{listen},
                                Listen => 128, ReuseAddr => 1)
    or die "listen $o{listen}: $!\n";
my $pub = IO::Socket::INET->new(PeerAddr => $o{host}, PeerPort => $o{port})
    or die "connect $o{port}: $!\n";
setsockopt($pub, IPPROTO_TCP, TCP_NODELAY, 1);
$_->blocking(0) for $lsn, $pub;

my $sel = IO::Select->new($lsn, $pub);
my (%inbuf, %sent, %recv, $accepted, $pubbuf);
$pubbuf = '';
my $pad = 'x' x ($o{size} > 64 ? $o{size} - 64 : 1);

sub publish {
    my ($seq) = @_;
    my $body = qq({"seq":$seq,"pad":"$pad"});
    my $topic = $seq % $o{topics};
    my $req = "POST $o{path}$topic HTTP/1.1\r\nHost: $o{host}\r\n"
            . "Content-Type: application/json\r\n"
            . "Content-Length: " . length($body) . "\r\n\r\n$body";
    $sent{$seq} = time;
    my $n = syswrite($pub, $req);
    die "publish write: $!\n" unless defined $n && $n == length $req;
}

# answers of the bus: count the 202s (bodies are short, keepalive)
sub read_publisher {
    my $n = sysread($pub, $pubbuf, 65536, length $pubbuf);
    die "publisher connection closed\n" unless $n;
    while ($pubbuf =~ s/^HTTP\/1\.1 (\d+)[^\r]*\r\n(.*?)\r\n\r\n//s) {
        my ($status, $hdr) = ($1, $2);
        my ($len) = $hdr =~ /content-length:\s*(\d+)/i;
        $len //= 0;
        $pubbuf = substr($pubbuf, $len);
        $accepted++ if $status == 202;
    }
}

# deliveries: parse requests by Content-Length, answer 200, keep alive
sub read_hook {
    my ($c) = @_;
    my $n = sysread($c, $inbuf{$c}, 65536, length $inbuf{$c});
    unless ($n) { $sel->remove($c); delete $inbuf{$c}; close $c; return }
    my $now = time;
    while ($inbuf{$c} =~ /\r\n\r\n/) {
        my $end = index($inbuf{$c}, "\r\n\r\n") + 4;
        my ($len) = substr($inbuf{$c}, 0, $end) =~ /content-length:\s*(\d+)/i;
        $len //= 0;
        last if length($inbuf{$c}) < $end + $len;
        my $body = substr($inbuf{$c}, $end, $len);
        $inbuf{$c} = substr($inbuf{$c}, $end + $len);
        if ($body =~ /"seq":(\d+)/ && !exists $recv{$1}) {
            $recv{$1} = $now;
        }
        syswrite($c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    }
}

my $t0 = time;
my $next = $t0;
my $seq = 0;
my $deadline;

while (1) {
    my $now = time;
    if ($seq < $o{messages} && $now >= $next) {
        publish($seq++);
        $next += $o{interval} / 1000;
        $deadline = time + $o{timeout} if $seq == $o{messages};
        next;
    }
    last if $seq == $o{messages} && keys %recv == $o{messages};
    last if $deadline && $now > $deadline;

    my $wait = $seq < $o{messages} ? $next - $now : 0.05;
    $wait = 0 if $wait < 0;
    for my $fh ($sel->can_read($wait)) {
        if ($fh == $lsn) {
            while (my $c = $lsn->accept) {
                $c->blocking(0);
                setsockopt($c, IPPROTO_TCP, TCP_NODELAY, 1);
                $inbuf{$c} = '';
                $sel->add($c);
            }
        } elsif ($fh == $pub) {
            read_publisher();
        } else {
            read_hook($fh);
        }
    }
}

my @lat = sort { $a <=> $b }
          map { ($recv{$_} - $sent{$_}) * 1000 } grep { $sent{$_} } keys %recv;
my $n = @lat;
my $sum = 0;
$sum += $_ for @lat;

sub pct {  # nearest rank
    my ($q) = @_;
    return 'NaN' unless $n;
    my $i = int($q / 100 * $n + 0.999999) - 1;
    return sprintf '%.3f', $lat[$i < 0 ? 0 : $i];
}

printf "sent\t%d\n", $seq;
printf "accepted\t%d\n", $accepted // 0;
printf "received\t%d\n", $n;
printf "rate_per_s\t%.0f\n", 1000 / $o{interval};
printf "p50_ms\t%s\n", pct(50);
printf "p90_ms\t%s\n", pct(90);
printf "p99_ms\t%s\n", pct(99);
printf "max_ms\t%s\n", $n ? sprintf('%.3f', $lat[-1]) : 'NaN';
printf "mean_ms\t%.3f\n", $n ? $sum / $n : 0;
