package Omnibus::Test;

# A small harness in the spirit of nginx-tests: one test file = one
# nginx.conf in its own temp dir, free loopback ports, the stock nginx
# with the module, and an error.log check at the end -- also when the test
# dies or forgets it (see _final_check).
#
# OMNIBUS_NGINX names the nginx binary (default /usr/sbin/nginx). Not
# NGINX: nginx itself reads that variable as a list of inherited listening
# sockets (binary upgrade) and then does not daemonize.
# OMNIBUS_MODULE names the module's .so (default objs/); scripts/sanitize.sh
# sets both to its ASan/UBSan build, and OMNIBUS_SANITIZE=1 for tests that
# cannot run under the sanitizers (they plan skip_all).

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(rmtree);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use IO::Select;
use JSON::PP;
use POSIX qw(WNOHANG);
use Scalar::Util qw(weaken);
use Test::More;
use Test2::API qw(test2_add_callback_exit test2_stack);
use Time::HiRes qw(sleep time);

our $NGINX = $ENV{OMNIBUS_NGINX} || '/usr/sbin/nginx';
my $ROOT = abs_path(dirname(__FILE__) . '/../../..');
our $MODULE = $ENV{OMNIBUS_MODULE} || "$ROOT/objs/ngx_omnibus_module.so";

# nginx must not see NGINX (see above), whatever the caller's environment
if (defined $ENV{NGINX}) {
    diag('NGINX is ignored by the tests (and would stop nginx from '
         . 'daemonizing): use OMNIBUS_NGINX') if $ENV{NGINX} ne '';
    delete $ENV{NGINX};
}

# every harness alive in this process, to close their held ports in a child
my @ALL;

# error.log findings of harnesses that went away after the tests ended
# (done_testing already run): no test can be added any more, so they are
# reported here, when Test2 works out the exit status
my @LATE;
test2_add_callback_exit(sub {
    my ($ctx, $real, $new) = @_;
    return unless @LATE;
    $ctx->diag($_) for @LATE;
    $$new ||= 1;
});

sub new {
    my ($class, %opts) = @_;

    my $self = bless {
        workers => $opts{workers} // 2,
        module  => $opts{module} // 1,
        allow   => $opts{allow} || [],
        ports   => [],
        held    => {},
        running => 0,
        pid     => $$,
    }, $class;

    if ($self->{module} && !-f $MODULE) {
        BAIL_OUT("$MODULE is missing: run make first");
    }

    # removed by _final_check, not by File::Temp: its END block could take
    # the pid file and error.log away before the last look at them
    $self->{dir} = tempdir('omnibus-test-XXXXXX', TMPDIR => 1);
    diag("test dir: $self->{dir}") if $ENV{OMNIBUS_KEEP};

    # every picked port stays held by a listening socket until nginx (in
    # start) or a test server (take_port) is about to bind it: released
    # early, another process could take it in between, and released one at
    # a time while picking, the same port could be handed out twice
    for my $i (0 .. ($opts{ports} // 4) - 1) {
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                      LocalPort => 0, Listen => 1,
                                      ReuseAddr => 1)
            or die "cannot bind: $!";
        push @{$self->{ports}}, $s->sockport;
        $self->{held}{$i} = $s;
    }

    push @ALL, $self;
    weaken($ALL[-1]);

    return $self;
}

sub dir { $_[0]{dir} }
sub port { $_[0]{ports}[$_[1] // 0] }

# port $i for a server the test runs itself: released here, so call it
# right before that server binds (Omnibus::Receiver->new(t => $t, ...) does)
sub take_port {
    my ($self, $i) = @_;
    $i //= 0;
    die "no port $i: the harness was made with "
        . @{$self->{ports}} . " ports\n" unless defined $self->{ports}[$i];
    my $s = delete $self->{held}{$i};
    close $s if $s;
    return $self->{ports}[$i];
}

sub release_ports {
    my ($self) = @_;
    close $_ for grep { defined } values %{$self->{held}};
    $self->{held} = {};
}

# in a forked child (a test server): drop the copies of every harness's
# held ports, or they would stay bound after the parent releases them
sub close_inherited_ports {
    for my $t (grep { defined } @ALL) {
        close $_ for grep { defined } values %{$t->{held}};
        $t->{held} = {};
    }
}

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

    # nginx binds the ports now (a second start finds none held)
    $self->release_ports;

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
    open my $fh, '<', "$self->{dir}/nginx.pid" or return $self->{master};
    my $pid = <$fh>;
    close $fh;
    chomp $pid if defined $pid;
    $self->{master} = $pid if $pid;
    return $pid || $self->{master};
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
    my $quit = $self->_stop(20);
    fail("nginx did not quit within 20 s") unless $quit;
    return $self;
}

# QUIT, then TERM and KILL: false if QUIT did not do within $timeout s
sub _stop {
    my ($self, $timeout) = @_;
    return 1 unless $self->{running};
    my $pid = $self->master_pid;
    $self->{running} = 0;
    return 1 unless $pid;

    delete $self->{master};

    kill 'QUIT', $pid;
    return 1 if wait_until(sub { !alive($pid) }, timeout => $timeout);

    kill 'TERM', $pid;
    unless (wait_until(sub { !alive($pid) }, timeout => 5)) {
        kill 'KILL', $pid;
        wait_until(sub { !alive($pid) }, timeout => 5);
    }
    return 0;
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

    my $log = $self->error_log;
    $self->{checked} = length $log;
    my @bad = $self->_bad_lines($log, @{$opts{allow} || []});

    ok(!@bad, 'error.log has no alert, emerg, crit or crash')
        or diag(join("\n", @bad));
}

sub _bad_lines {
    my ($self, $log, @allow) = @_;
    push @allow, @{$self->{allow}};
    return grep {
        my $line = $_;
        # a literal: a lexical regex may be gone in global destruction
        $line =~ /\[(?:alert|emerg|crit)\]|exited\ on\ signal
                  |(?:Address|Leak|Thread|UndefinedBehavior)Sanitizer
                  |runtime\ error:/x
        && !grep { $line =~ $_ } @allow
    } split /\n/, $log;
}

# The test died, or ended without check_log/finish, or ran nginx again
# after it: stop nginx and check what check_log has not seen -- when the
# harness goes away, or at the latest in the END block below (a harness
# that a named sub closes over lives on into global destruction, after
# Test2 has settled the result). Found lines are a failed test while tests
# can still be added; after done_testing, a diag and a non-zero exit
# status.

END {
    $_->_final_check(1) for grep { defined && ($_->{pid} // 0) == $$ } @ALL;
}

sub DESTROY {
    my ($self) = @_;
    $self->_final_check(0);
}

sub _final_check {
    my ($self, $in_end) = @_;

    # a forked child (a test server) owns neither nginx nor the result;
    # new() may have died before there was a directory
    return unless ($self->{pid} // 0) == $$ && defined $self->{dir};
    return if $self->{final}++;

    my @bad;
    {
        local ($?, $@, $!);
        # (in global destruction the sockets may be gone before us)
        close $_ for grep { defined } values %{$self->{held} || {}};
        $self->{held} = {};

        my $ran = $self->{running};
        push @bad, 'nginx did not quit within 10 s'
            unless $self->_stop(10);

        my $log = $self->error_log;
        my $from = $self->{checked} // 0;
        if ($ran || length $log > $from) {
            @bad = ($self->_bad_lines(substr($log, $from)), @bad);
        }

        rmtree($self->{dir}) unless $ENV{OMNIBUS_KEEP};
    }
    return unless @bad;

    my $what = 'error.log has no alert, emerg, crit or crash'
               . ' (checked when the harness went away)';
    my $phase = ${^GLOBAL_PHASE};
    my $hub = eval { test2_stack->top };

    # our END block runs before Test2's, which settles the exit status
    if (($phase eq 'RUN' || $in_end) && $hub && !$hub->bailed_out) {
        if (!$hub->ended) {
            # still running, or dying: one more (failed) test
            local $?;
            ok(0, $what);
            diag(join("\n", @bad));

        } else {
            # after done_testing: told and counted when Test2 sets the
            # exit status
            push @LATE, "$what: failed", @bad;
        }
        return;
    }

    # global destruction or other END blocks (Test2 may be done already),
    # or after a bail out: straight to stderr and the exit status
    print STDERR map { "# $_\n" } "$what: failed", @bad;
    $? ||= 1;
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

# The counters' invariant of a bus, from one /metrics answer:
#   published + dlq_replayed = completed + queued + inflight + unrouted
# (queued and inflight summed over their shard/priority samples). Returns
# (left, right, {each part}); a side is undef when one of its counters is
# missing from /metrics. Deliveries move messages from queued/inflight to
# completed, so wait for them to settle before comparing:
#   wait_until(sub { my ($l, $r) = $t->invariant; defined $l && $l == $r })
sub invariant {
    my ($self, $zone) = @_;
    $zone //= 'bus';
    my $res = $self->http(GET => '/metrics');
    my $body = $res ? $res->{body} : '';

    my %p;
    for my $name (qw(published_total dlq_replayed_total completed_total
                     queue_size inflight_messages unrouted_total))
    {
        while ($body =~ /^message_bus_\Q$name\E\{zone="\Q$zone\E"
                          (?:,[^}]*)?\}\ (\d+)$/mgx)
        {
            $p{$name} = ($p{$name} // 0) + $1;
        }
    }

    my $sum = sub {
        my $n = 0;
        for (@_) { return undef unless defined $p{$_}; $n += $p{$_} }
        return $n;
    };
    return ($sum->(qw(published_total dlq_replayed_total)),
            $sum->(qw(completed_total queue_size inflight_messages
                      unrouted_total)),
            \%p);
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
