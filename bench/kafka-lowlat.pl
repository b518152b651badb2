#!/usr/bin/perl
# Publish-to-ack latency of a kafka:// route, one message at a time
# (bench/kafka.sh, section 7): POST a JSON body to the bus, then read
# /metrics over and over until the route's message_bus_kafka_produced_total
# has grown by one: the record was acknowledged (acks=all) and its
# delivery report handled by the worker. Latency = that moment minus the
# moment the publish request was written; its resolution is one /metrics
# read (poll_ms below). The next message goes out on the next tick of
# --interval ms (open loop, never two in flight).
#
#   kafka-lowlat.pl --port P --path /publish/kafka.lat --route kafka \
#                   --messages 300 --interval 20 --size 1024
#
# prints key<TAB>value lines: sent accepted acked timeouts rate_per_s
# p50_ms p90_ms p99_ms max_ms mean_ms poll_ms

use strict;
use warnings;
use Getopt::Long;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);

my %o = (port => 0, path => '/publish/kafka.lat', route => 'kafka',
         zone => 'kafka', messages => 300, interval => 20, size => 1024,
         timeout => 5);
GetOptions(\%o, 'port=i', 'path=s', 'route=s', 'zone=s', 'messages=i',
           'interval=f', 'size=i', 'timeout=f') && $o{port}
    or die "usage: kafka-lowlat.pl --port P [--path --route --zone"
         . " --messages --interval MS --size --timeout S]\n";

my ($h, $t) = (q({"seq":0,"pad":"), q("}));
my $body = $h . ('x' x ($o{size} - length($h) - length($t))) . $t;

# one HTTP/1.0 request on a fresh connection: (status, body)
sub request {
    my ($method, $path, $data) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $o{port}, Proto => 'tcp')
        or die "connect: $!\n";
    $s->autoflush(1);
    my $req = "$method $path HTTP/1.0\r\nHost: 127.0.0.1\r\n";
    $req .= "Content-Type: application/json\r\nContent-Length: "
            . length($data) . "\r\n" if defined $data;
    print $s $req, "\r\n", $data // '';
    local $/;
    my $resp = <$s> // '';
    close $s;
    my ($status) = $resp =~ m{^HTTP/\d\.\d (\d+)};
    my ($content) = $resp =~ /\r\n\r\n(.*)\z/s;
    return ($status // 0, $content // '');
}

my $series = qr/^message_bus_kafka_produced_total\{zone="\Q$o{zone}\E",route="\Q$o{route}\E"\} (\d+)$/m;

my ($polls, $poll_time) = (0, 0);
sub produced {
    my $t0 = time;
    my (undef, $m) = request(GET => '/metrics');
    $poll_time += time - $t0;
    $polls++;
    return $m =~ $series ? $1 : undef;
}

my $base = produced();
defined $base or die "no series message_bus_kafka_produced_total for"
                   . " route $o{route} in /metrics\n";

my (@lat, $accepted, $timeouts);
$accepted = $timeouts = 0;
my $start = time;
for my $i (0 .. $o{messages} - 1) {
    my $slot = $start + $i * $o{interval} / 1000;
    my $wait = $slot - time;
    sleep $wait if $wait > 0;

    my $t0 = time;
    my ($status) = request(POST => $o{path}, $body);
    next unless $status == 202;
    $accepted++;
    my $want = $base + 1;
    while (1) {
        my $p = produced() // $base;
        if ($p >= $want) {
            push @lat, (time - $t0) * 1000;
            $base = $p;
            last;
        }
        if (time - $t0 > $o{timeout}) {
            $timeouts++;
            $base = $p;
            last;
        }
    }
}
my $elapsed = time - $start;

my @s = sort { $a <=> $b } @lat;
my $pct = sub {
    return 'n/a' unless @s;
    my $i = int($_[0] / 100 * @s + 0.5) - 1;
    $i = 0 if $i < 0;
    $i = $#s if $i > $#s;
    return sprintf '%.2f', $s[$i];
};
my $mean = 0;
$mean += $_ for @s;

print "sent\t$o{messages}\n";
print "accepted\t$accepted\n";
print "acked\t", scalar(@s), "\n";
print "timeouts\t$timeouts\n";
printf "rate_per_s\t%.0f\n", 1000 / $o{interval};
printf "elapsed_s\t%.2f\n", $elapsed;
print "p50_ms\t", $pct->(50), "\n";
print "p90_ms\t", $pct->(90), "\n";
print "p99_ms\t", $pct->(99), "\n";
printf "max_ms\t%s\n", @s ? sprintf('%.2f', $s[-1]) : 'n/a';
printf "mean_ms\t%s\n", @s ? sprintf('%.2f', $mean / @s) : 'n/a';
printf "poll_ms\t%.3f\n", $polls ? $poll_time / $polls * 1000 : 0;
