package Omnibus::Receiver;

# A real webhook receiver for the tests: a forked HTTP/1.1 server with
# keepalive that logs every request as a JSON line and answers as the
# test tells it, per path prefix:
#
#   $rx->set('/hook' => { status => 503 });
#   $rx->set('/slow' => { delay => 1.5 });            # others not blocked
#   $rx->set('/flaky' => { fail_first => 2, status => 503 });
#   $rx->set('/drop' => { close => 1 });              # close, no answer
#   $rx->set('/split' => { split => 10 });  # 10 bytes, the rest 0.2 s later
#
# Omnibus::Receiver->new(t => $t, index => 1) listens on the harness's
# port 1 (released by the harness just before the bind) and logs into its
# directory; port => and dir => give them explicitly instead.

use strict;
use warnings;

use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time);

sub new {
    my ($class, %opts) = @_;

    my $self = bless {
        port => $opts{port},
        dir  => $opts{dir} // ($opts{t} && $opts{t}->dir),
    }, $class;

    $self->{port} = $opts{t}->take_port($opts{index} // 0) if $opts{t};
    die "Omnibus::Receiver: no port\n" unless $self->{port};

    $self->{log} = "$self->{dir}/receiver-$self->{port}.log";
    $self->{control} = "$self->{dir}/receiver-$self->{port}.json";
    $self->set();

    my $listen = IO::Socket::INET->new(LocalAddr => "127.0.0.1",
                                       LocalPort => $self->{port},
                                       Listen => 128, ReuseAddr => 1)
        or die "receiver cannot listen on $self->{port}: $!";

    # the child says (by closing its end) when it has dropped its copies of
    # the held ports: until then they stay bound, and the next bind of one
    # (another receiver, nginx) fails with "Address already in use"
    pipe(my $ready_r, my $ready_w) or die "pipe: $!";
    my $pid = fork // die "fork: $!";

    if ($pid == 0) {
        close $ready_r;
        # the harness ports still held are the parent's to hand out
        Omnibus::Test::close_inherited_ports()
            if defined &Omnibus::Test::close_inherited_ports;
        close $ready_w;
        $self->_serve($listen);
        POSIX::_exit(0);
    }

    close $ready_w;
    sysread $ready_r, my $eof, 1;
    close $ready_r;
    close $listen;
    $self->{pid} = $pid;

    return $self;
}

sub port { $_[0]{port} }

sub set {
    my ($self, %rules) = @_;
    $self->{rules} = { %{$self->{rules} || {}}, %rules };
    my $tmp = "$self->{control}.tmp";
    open my $fh, '>', $tmp or die "$tmp: $!";
    print $fh encode_json($self->{rules});
    close $fh;
    rename $tmp, $self->{control} or die "rename: $!";
}

sub requests {
    my ($self) = @_;
    open my $fh, '<', $self->{log} or return ();
    my @r = map { decode_json($_) } grep { /\S/ } <$fh>;
    close $fh;
    return @r;
}

sub requests_for {
    my ($self, $prefix) = @_;
    return grep { index($_->{path}, $prefix) == 0 } $self->requests;
}

sub stop {
    my ($self) = @_;
    return unless $self->{pid};
    kill 'TERM', $self->{pid};
    waitpid $self->{pid}, 0;
    $self->{pid} = undef;
}

sub DESTROY {
    my ($self) = @_;
    local $?;
    $self->stop;
}

# the child

sub _serve {
    my ($self, $listen) = @_;

    $SIG{TERM} = sub { POSIX::_exit(0) };
    $SIG{PIPE} = 'IGNORE';

    my $sel = IO::Select->new($listen);
    my (%buf, @later, %count);

    open my $log, '>>', $self->{log} or die;
    $log->autoflush(1);

    while (1) {
        my $wait = @later ? ($later[0][0] - time) : 1;
        $wait = 0 if $wait < 0;

        for my $fh ($sel->can_read($wait)) {
            if ($fh == $listen) {
                my $c = $listen->accept or next;
                $c->blocking(0);
                $sel->add($c);
                $buf{$c} = '';
                next;
            }

            my $n = sysread($fh, my $chunk, 65536);
            if (!$n) {
                $sel->remove($fh);
                delete $buf{$fh};
                close $fh;
                next;
            }
            $buf{$fh} .= $chunk;

            while ($buf{$fh} =~ /\r\n\r\n/) {
                my $end = index($buf{$fh}, "\r\n\r\n");
                my @lines = split /\r\n/, substr($buf{$fh}, 0, $end);
                my ($method, $path) = split / /, shift @lines;
                my %h = map { /^([^:]+):\s*(.*)$/ ? (lc $1 => $2) : () }
                        @lines;
                my $len = $h{'content-length'} // 0;
                last if length($buf{$fh}) < $end + 4 + $len;

                my $body = substr($buf{$fh}, $end + 4, $len);
                substr($buf{$fh}, 0, $end + 4 + $len, '');

                my $rule = $self->_rule($path);
                my $status = $rule->{status} // 200;

                if (defined $rule->{fail_first}) {
                    my $key = $rule->{prefix};
                    $status = $count{$key}++ < $rule->{fail_first}
                              ? ($rule->{status} // 503)
                              : ($rule->{then_status} // 200);
                }

                print $log encode_json({
                    method => $method, path => $path, headers => \%h,
                    body => $body, time => time, status => $status,
                }), "\n";

                if ($rule->{close}) {
                    $sel->remove($fh);
                    delete $buf{$fh};
                    close $fh;
                    last;
                }

                my $resp = "HTTP/1.1 $status X\r\nContent-Length: 2\r\n"
                           . "Content-Type: text/plain\r\n\r\nok";

                if ($rule->{delay}) {
                    push @later, [time + $rule->{delay}, $fh, $resp];
                    @later = sort { $a->[0] <=> $b->[0] } @later;

                } elsif ($rule->{split}) {
                    _send($fh, substr($resp, 0, $rule->{split}));
                    push @later, [time + 0.2, $fh,
                                  substr($resp, $rule->{split})];
                    @later = sort { $a->[0] <=> $b->[0] } @later;

                } else {
                    _send($fh, $resp);
                }
            }
        }

        while (@later && $later[0][0] <= time) {
            my $l = shift @later;
            _send($l->[1], $l->[2]) if exists $buf{$l->[1]};
        }
    }
}

sub _send {
    my ($fh, $data) = @_;
    $fh->blocking(1);
    syswrite($fh, $data);
    $fh->blocking(0);
}

sub _rule {
    my ($self, $path) = @_;

    my $rules = eval {
        open my $fh, '<', $self->{control} or die;
        local $/;
        decode_json(<$fh>);
    } || {};

    my ($best) = sort { length $b <=> length $a }
                 grep { index($path, $_) == 0 } keys %$rules;

    return {} unless defined $best;
    return { %{$rules->{$best}}, prefix => $best };
}

1;
