# A streaming SSE client: de-chunks the response and parses whole events
# only, so an event split across reads or chunks is never half-counted.

package Omnibus::Sse;

use strict;
use warnings;

use IO::Select;
use IO::Socket::INET;
use Socket;

use Omnibus::Test ();

sub new {
    my ($class, $port, $path, %h) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
                                  Timeout => 10) or die $!;
    if ($h{rcvbuf}) {
        setsockopt($s, SOL_SOCKET, SO_RCVBUF, $h{rcvbuf});
    }
    my $extra = $h{last} ? "Last-Event-ID: $h{last}\r\n" : '';
    print $s "GET $path HTTP/1.1\r\nHost: x\r\n"
             . "Accept: text/event-stream\r\n$extra\r\n";
    return bless { s => $s, raw => '', data => '', events => [],
                   comments => 0, head => undef }, $class;
}

sub sock { $_[0]{s} }

# one read, for callers that select over many streams
sub read_once {
    my ($self) = @_;
    my $n = sysread($self->{s}, my $buf, 1 << 20);
    if (!$n) { $self->{closed} = 1; return 0 }
    $self->{raw} .= $buf;
    $self->parse;
    return $n;
}

sub pump {
    my ($self, $timeout) = @_;
    my $sel = IO::Select->new($self->{s});
    while ($sel->can_read($timeout // 0.05)) {
        last unless $self->read_once;
        $timeout = 0;
    }
    $self->parse;
}

sub parse {
    my ($self) = @_;
    if (!defined $self->{head} && $self->{raw} =~ s/^(.*?)\r\n\r\n//s) {
        $self->{head} = $1;
    }
    return unless defined $self->{head};
    while ($self->{raw} =~ /^([0-9a-f]+)\r\n/i
           && length($self->{raw}) >= length($1) + 2 + hex($1) + 2)
    {
        my $len = hex $1;
        substr($self->{raw}, 0, length($1) + 2, '');
        $self->{data} .= substr($self->{raw}, 0, $len, '');
        substr($self->{raw}, 0, 2, '');
    }
    while ($self->{data} =~ s/^(.*?)\n\n//s) {
        my $block = $1;
        if ($block =~ /^:/) { $self->{comments}++; next }
        my %e = (data => []);
        for (split /\n/, $block) {
            my ($k, $v) = /^([^:]+): ?(.*)$/ or next;
            if ($k eq 'data') { push @{$e{data}}, $v } else { $e{$k} = $v }
        }
        push @{$self->{events}}, \%e;
    }
}

# streams until there are at least $min, on two workers (reuseport)
sub spread {
    my ($class, $port, $path, $min) = @_;
    my (@subs, %on);
    for (1 .. 40) {
        my $s = $class->new($port, $path);
        Omnibus::Test::wait_until(sub { $s->pump; defined $s->{head} },
                                  timeout => 10);
        push @subs, $s;
        $on{$s->worker // ''}++;
        last if @subs >= $min && keys %on == 2;
    }
    return @subs;
}

sub worker { ($_[0]{head} // '') =~ /X-Worker: (\d+)/ ? $1 : undef }
sub ids { map { $_->{id} } @{$_[0]{events}} }

1;
