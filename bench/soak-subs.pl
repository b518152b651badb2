#!/usr/bin/perl
# SSE subscribers for the soak (bench/soak.sh): open N SSE connections, one
# per topic PREFIX0 .. PREFIX(T-1) in turn, read every stream until SIGTERM
# and count the events. Every second (and at the end) the counts go to
# --status FILE (written to a temporary file and renamed) as one line:
#   connected=N closed=N events=N bytes=N min_per_conn=N max_per_conn=N
# A stream that ends is counted in `closed` and not reopened, so that a
# dropped subscriber shows. Events are counted by a marker that every
# published body carries ('"seq":', one per event whatever the SSE framing).
#
#   soak-subs.pl --port 8080 --path /subscribe/ --topic soak.t --topics 100 \
#                --conns 100 --status FILE

use strict;
use warnings;

use Getopt::Long;
use IO::Poll qw(POLLIN POLLERR POLLHUP);
use IO::Socket::INET;
use Time::HiRes qw(time sleep);

my %o = (host => '127.0.0.1', conns => 100, topics => 100, topic => 'soak.t',
         path => '/subscribe/', marker => '"seq":');
GetOptions(\%o, 'host=s', 'port=i', 'path=s', 'topic=s', 'topics=i',
           'conns=i', 'status=s', 'marker=s')
    or die "bad options\n";
die "--port and --status are needed\n" unless $o{port} && $o{status};

my $stop = 0;
$SIG{TERM} = $SIG{INT} = sub { $stop = 1 };

my (%state, @socks);
my $poll = IO::Poll->new;

for my $i (0 .. $o{conns} - 1) {
    my $path = $o{path} . $o{topic} . ($i % $o{topics});
    my $s;
    for my $try (1 .. 5) {
        $s = IO::Socket::INET->new(PeerAddr => $o{host}, PeerPort => $o{port},
                                   Proto => 'tcp', Timeout => 5)
            and last;
        sleep 0.05;
    }
    die "connect $i: $!\n" unless $s;
    my $req = "GET $path HTTP/1.1\r\nHost: $o{host}\r\n"
            . "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n";
    syswrite($s, $req) == length $req or die "write $i: $!\n";
    $s->blocking(0);
    push @socks, $s;
    $state{fileno $s} = { head => '', ok => 0, carry => '', events => 0 };
    $poll->mask($s => POLLIN);
}

my $mlen = length $o{marker};
my ($connected, $closed, $events, $bytes) = (0, 0, 0, 0);

sub status {
    my @per = sort { $a <=> $b } map { $_->{events} } values %state;
    my $tmp = "$o{status}.tmp";
    open(my $f, '>', $tmp) or die "$tmp: $!\n";
    printf $f "connected=%d closed=%d events=%d bytes=%d min_per_conn=%d "
            . "max_per_conn=%d\n", $connected, $closed, $events, $bytes,
            $per[0] // 0, $per[-1] // 0;
    close $f;
    rename $tmp, $o{status} or die "rename $tmp: $!\n";
}

my $next = 0;
while (!$stop) {
    my $now = time;
    if ($now >= $next) {
        status();
        $next = $now + 1;
    }
    next if $poll->poll(0.2) <= 0;
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
            $connected-- if $st->{ok};
            $st->{ok} = 0;
            next;
        }
        $bytes += $r;
        unless ($st->{ok}) {
            $st->{head} .= $buf;
            my $end = index($st->{head}, "\r\n\r\n");
            next if $end < 0;
            die "bad answer: " . substr($st->{head}, 0, 200) . "\n"
                unless $st->{head} =~ m{^HTTP/1\.[01] 200 };
            $st->{ok} = 1;
            $connected++;
            $buf = substr($st->{head}, $end + 4);
            $st->{head} = '';
        }
        my $text = $st->{carry} . $buf;
        my ($c, $p) = (0, 0);
        while (($p = index($text, $o{marker}, $p)) >= 0) {
            $c++;
            $p += $mlen;
        }
        $st->{carry} = length $text >= $mlen - 1
            ? substr($text, -($mlen - 1)) : $text;
        $st->{events} += $c;
        $events += $c;
    }
}
status();
close $_ for @socks;
