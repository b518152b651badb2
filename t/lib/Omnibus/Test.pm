package Omnibus::Test;

# A small harness in the spirit of nginx-tests: one test file = one
# nginx.conf in its own temp dir, free loopback ports, the stock nginx
# with the module, and an error.log check at the end.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use IO::Select;
use JSON::PP;
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(sleep time);

our $NGINX = $ENV{NGINX} || '/usr/sbin/nginx';
my $ROOT = abs_path(dirname(__FILE__) . '/../../..');
our $MODULE = "$ROOT/objs/ngx_omnibus_module.so";

sub new {
    my ($class, %opts) = @_;

    my $self = bless {
        workers => $opts{workers} // 2,
        module  => $opts{module} // 1,
        ports   => [],
        running => 0,
    }, $class;

    if ($self->{module} && !-f $MODULE) {
        BAIL_OUT("$MODULE is missing: run make first");
    }

    $self->{dir} = tempdir('omnibus-test-XXXXXX', TMPDIR => 1,
                           CLEANUP => !$ENV{OMNIBUS_KEEP});
    diag("test dir: $self->{dir}") if $ENV{OMNIBUS_KEEP};

    # every socket stays bound until all ports are picked: closed one at a
    # time, the same port could be handed out twice
    my @held;
    for (1 .. ($opts{ports} // 4)) {
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                      LocalPort => 0, Listen => 1,
                                      ReuseAddr => 1)
            or die "cannot bind: $!";
        push @{$self->{ports}}, $s->sockport;
        push @held, $s;
    }
    close $_ for @held;

    return $self;
}

sub dir { $_[0]{dir} }
sub port { $_[0]{ports}[$_[1] // 0] }

sub conf {
    my ($self, $http, %opts) = @_;
    my $d = $self->{dir};

    my $text = '';
    $text .= "load_module $MODULE;\n" if $self->{module};
    $text .= "user root;\n" if $> == 0;
    $text .= <<"EOF";
worker_processes $self->{workers};
master_process on;
daemon on;
error_log $d/error.log info;
pid $d/nginx.pid;
EOF
    $text .= ($opts{main} // '') . "\n";
    $text .= <<"EOF";
events {
    worker_connections 1024;
}

http {
    access_log $d/access.log;
    client_body_temp_path $d/client_body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    default_type application/octet-stream;

$http
}
EOF
    $text =~ s/%%PORT(\d+)%%/$self->{ports}[$1]/g;
    $text =~ s/%%DIR%%/$d/g;
    $self->{listen} = [ $text =~ /listen\s+(?:127\.0\.0\.1:)?(\d+)/g ];

    open my $fh, '>', "$d/nginx.conf" or die "$d/nginx.conf: $!";
    print $fh $text;
    close $fh;

    return $self;
}

sub test_conf {
    my ($self) = @_;
    my $out = `$NGINX -t -p $self->{dir}/ -c $self->{dir}/nginx.conf 2>&1`;
    return ($? == 0, $out);
}

sub start {
    my ($self) = @_;
    my $d = $self->{dir};

    my $out = `$NGINX -p $d/ -c $d/nginx.conf 2>&1`;
    if ($? != 0) {
        BAIL_OUT("nginx failed to start: $out");
    }
    $self->{running} = 1;

    for my $port (@{$self->{listen}}) {
        wait_until(sub {
            IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
                                  Timeout => 1)
        }, timeout => 20) or BAIL_OUT("nginx does not listen on $port");
    }

    wait_until(sub { scalar($self->worker_pids) == $self->{workers} },
               timeout => 20)
        or BAIL_OUT("nginx workers did not start");

    return $self;
}

sub master_pid {
    my ($self) = @_;
    open my $fh, '<', "$self->{dir}/nginx.pid" or return undef;
    my $pid = <$fh>;
    close $fh;
    chomp $pid if defined $pid;
    return $pid;
}

sub worker_pids {
    my ($self) = @_;
    my $master = $self->master_pid or return ();
    my @pids;

    opendir my $dh, '/proc' or return ();
    for my $pid (grep { /^\d+$/ } readdir $dh) {
        open my $st, '<', "/proc/$pid/stat" or next;
        my $stat = <$st>;
        close $st;
        next unless defined $stat && $stat =~ /\)\s+\S+\s+(\d+)/;
        next unless $1 == $master && $stat !~ /\)\s+Z\s/;
        open my $cl, '<', "/proc/$pid/cmdline" or next;
        my $cmd = <$cl> // '';
        close $cl;
        push @pids, $pid if $cmd =~ /worker process/;
    }
    closedir $dh;

    my @sorted = sort { $a <=> $b } @pids;
    return @sorted;
}

sub reload {
    my ($self) = @_;
    my %old = map { $_ => 1 } $self->worker_pids;

    kill 'HUP', $self->master_pid;

    wait_until(sub {
        my @now = $self->worker_pids;
        @now == $self->{workers} && !grep { $old{$_} } @now;
    }, timeout => 20) or fail('reload: workers not replaced');

    # the old workers may still finish requests: wait until they are gone
    wait_until(sub { !grep { alive($_) } keys %old }, timeout => 20);

    return $self;
}

sub stop {
    my ($self) = @_;
    return $self unless $self->{running};
    my $pid = $self->master_pid;
    $self->{running} = 0;
    return $self unless $pid;

    kill 'QUIT', $pid;
    unless (wait_until(sub { !alive($pid) }, timeout => 20)) {
        kill 'TERM', $pid;
        unless (wait_until(sub { !alive($pid) }, timeout => 5)) {
            kill 'KILL', $pid;
        }
        fail('nginx did not quit within 20 s');
    }

    return $self;
}

sub error_log {
    my ($self) = @_;
    open my $fh, '<', "$self->{dir}/error.log" or return '';
    local $/;
    my $text = <$fh>;
    close $fh;
    return $text // '';
}

sub finish {
    my ($self, %opts) = @_;
    $self->check_log(%opts);
    done_testing();
}

sub check_log {
    my ($self, %opts) = @_;
    $self->stop;

    my @allow = @{$opts{allow} || []};
    my @bad = grep {
        my $line = $_;
        /\[(alert|emerg|crit)\]|exited on signal|AddressSanitizer|LeakSanitizer/
        && !grep { $line =~ $_ } @allow
    } split /\n/, $self->error_log;

    ok(!@bad, 'error.log has no alert, emerg, crit or crash')
        or diag(join("\n", @bad));
}

sub DESTROY {
    my ($self) = @_;
    local $?;
    if ($self->{running}) {
        my $pid = $self->master_pid;
        kill 'TERM', $pid if $pid;
    }
}

# a zombie (nobody reaps in some sandboxes) is not alive
sub alive {
    my ($pid) = @_;
    return 0 unless $pid && kill 0, $pid;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my $stat = <$fh> // '';
    close $fh;
    return $stat !~ /\)\s+Z\s/;
}

sub wait_until {
    my ($cond, %opts) = @_;
    my $deadline = time + ($opts{timeout} // 10);
    my $interval = $opts{interval} // 0.05;

    while (1) {
        my $r = eval { $cond->() };
        return $r if $r;
        return 0 if time > $deadline;
        sleep $interval;
    }
}

sub have_cmd {
    my ($cmd) = @_;
    return scalar grep { -x "$_/$cmd" } split /:/, $ENV{PATH};
}

# HTTP

sub http {
    my ($self, $method, $path, %opts) = @_;
    my $conn = Omnibus::Test::Conn->new($self, %opts) or return undef;
    my $res = $conn->request($method, $path, %opts,
                             keepalive => $opts{keepalive});
    $conn->close;
    return $res;
}

sub conn {
    my ($self, %opts) = @_;
    return Omnibus::Test::Conn->new($self, %opts);
}

# a message_bus_NAME{zone="ZONE"} sample from /metrics, or -1 if none
sub metric {
    my ($self, $name, $zone) = @_;
    $zone //= 'bus';
    my ($v) = $self->http(GET => '/metrics')->{body}
                  =~ /^message_bus_\Q$name\E\{zone="\Q$zone\E"\} (\d+)$/m;
    return $v // -1;
}

sub get_json { my ($self, $path, %o) = @_; $self->http(GET => $path, %o) }

sub post_json {
    my ($self, $path, $data, %o) = @_;
    my $body = ref $data ? encode_json($data) : $data;
    return $self->http(POST => $path, body => $body, %o);
}

package Omnibus::Test::Conn;

use strict;
use warnings;

use IO::Socket::INET;
use IO::Select;
use JSON::PP;

sub new {
    my ($class, $t, %opts) = @_;
    my $port = $opts{port} // $t->port(0);
    my $sock = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
                                     Timeout => $opts{timeout} // 10)
        or return undef;
    binmode $sock;
    return bless { sock => $sock, buf => '',
                   timeout => $opts{timeout} // 10 }, $class;
}

sub sock { $_[0]{sock} }

sub close {
    my ($self) = @_;
    close $self->{sock} if $self->{sock};
    $self->{sock} = undef;
}

sub send_raw {
    my ($self, $data) = @_;
    local $SIG{PIPE} = 'IGNORE';
    my $sock = $self->{sock};
    my $off = 0;
    while ($off < length $data) {
        my $n = syswrite($sock, $data, length($data) - $off, $off);
        return 0 unless defined $n;
        $off += $n;
    }
    return 1;
}

sub request {
    my ($self, $method, $path, %opts) = @_;

    my @headers;
    my $h = $opts{headers} || {};
    @headers = ref $h eq 'HASH' ? map { [$_, $h->{$_}] } sort keys %$h
                                : map { [$h->[$_ * 2], $h->[$_ * 2 + 1]] }
                                      0 .. $#$h / 2;

    my $req = "$method $path HTTP/1.1\r\nHost: localhost\r\n";
    $req .= "Connection: close\r\n" unless $opts{keepalive};
    $req .= "$_->[0]: $_->[1]\r\n" for @headers;

    if ($opts{chunked}) {
        $req .= "Transfer-Encoding: chunked\r\n\r\n";
        for my $c (@{$opts{chunked}}) {
            $req .= sprintf("%x\r\n%s\r\n", length $c, $c);
        }
        $req .= "0\r\n\r\n";

    } elsif (defined $opts{body}) {
        $req .= "Content-Length: " . length($opts{body}) . "\r\n\r\n"
                . $opts{body};

    } else {
        $req .= "\r\n";
    }

    $self->send_raw($req) or return undef;
    return $self->read_response(head => $method eq 'HEAD');
}

sub _fill {
    my ($self, $timeout) = @_;
    my $sel = IO::Select->new($self->{sock});
    return 0 unless $sel->can_read($timeout // $self->{timeout});
    my $n = sysread($self->{sock}, my $chunk, 65536);
    return 0 unless $n;
    $self->{buf} .= $chunk;
    return 1;
}

sub read_response {
    my ($self, %opts) = @_;

    until ($self->{buf} =~ /\r\n\r\n/) {
        return undef unless $self->_fill;
    }

    $self->{buf} =~ s/^(.*?)\r\n\r\n//s;
    my @lines = split /\r\n/, $1;
    my $status_line = shift @lines;
    my ($status) = $status_line =~ m{^HTTP/\d\.\d (\d+)} or return undef;

    my %headers;
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
        $headers{lc $k} = $v;
    }

    my $body = '';

    if ($opts{head} || $status == 204 || $status == 304 || $status < 200) {
        # no body

    } elsif (defined $headers{'content-length'}) {
        my $len = $headers{'content-length'};
        while (length $self->{buf} < $len) {
            last unless $self->_fill;
        }
        $body = substr($self->{buf}, 0, $len, '');

    } elsif (($headers{'transfer-encoding'} // '') =~ /chunked/i) {
        while (1) {
            until ($self->{buf} =~ /^([0-9a-fA-F]+)[^\r\n]*\r\n/) {
                last unless $self->_fill;
            }
            last unless $self->{buf} =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//;
            my $size = hex $1;
            while (length $self->{buf} < $size + 2) {
                last unless $self->_fill;
            }
            $body .= substr($self->{buf}, 0, $size, '');
            substr($self->{buf}, 0, 2, '');
            if ($size == 0) {
                last;
            }
        }

    } else {
        1 while $self->_fill;
        $body = $self->{buf};
        $self->{buf} = '';
    }

    my $json;
    if (($headers{'content-type'} // '') =~ m{application/json}) {
        $json = eval { decode_json($body) };
    }

    return { status => $status, headers => \%headers, body => $body,
             json => $json };
}

1;
