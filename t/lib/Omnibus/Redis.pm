package Omnibus::Redis;

# A real redis-server for a test: a free port on 127.0.0.1 and a temp dir,
# started, stopped, crashed and frozen by the test itself. The server is a
# child of this process (not daemonized), so it is reaped, never a zombie.
# No Redis.pm (libredis-perl): a small RESP2 client on IO::Socket::INET.
# OMNIBUS_REDIS_BIN names the directory of redis-server and redis-cli
# (default /usr/bin). OMNIBUS_KEEP or TEST_KEEP keeps the temp dir.

use strict;
use warnings;

use Carp qw(croak);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use Scalar::Util qw(weaken);
use Socket qw(MSG_DONTWAIT MSG_PEEK);
use Test::More;
use Time::HiRes qw(sleep time);

our $BIN = $ENV{OMNIBUS_REDIS_BIN} // '/usr/bin';
our $TIMEOUT = 60;      # a reply later than this: the server hangs

# every server alive in this process, for the END block below
my @ALL;

sub require_tools {
    -x "$BIN/$_" or plan skip_all => "$_ is missing (Debian: redis-server)"
        for qw(redis-server redis-cli);
}

# password => ..., aof => 1, port => N
sub new {
    my ($class, %o) = @_;
    die "no redis-server in '$BIN'\n" unless -x "$BIN/redis-server";
    my $keep = $ENV{OMNIBUS_KEEP} || $ENV{TEST_KEEP};
    my $self = bless { owner => $$, password => $o{password},
        aof => $o{aof}, port => $o{port},
        dir => tempdir('omnibus-redis-XXXXXX', TMPDIR => 1, CLEANUP => !$keep),
    }, $class;
    diag("redis dir: $self->{dir}") if $keep;
    # a free port: asked of the kernel, then let go for the server to bind
    $self->{port} ||= (IO::Socket::INET->new(LocalAddr => '127.0.0.1',
        LocalPort => 0, Proto => 'tcp', Listen => 1)
        or die "no free port: $!\n")->sockport;
    push @ALL, $self;
    weaken $ALL[-1];
    return $self->start;
}

sub port     { $_[0]{port} }
sub dir      { $_[0]{dir} }
sub pid      { $_[0]{server} }
sub password { $_[0]{password} }
sub url      { "redis://127.0.0.1:$_[0]{port}/0" }

# again on the same port and dir: with aof, the data comes back
sub start {
    my ($self) = @_;
    return $self if $self->alive;
    my $d = $self->{dir};
    my @args = ('--port', $self->{port}, '--bind', '127.0.0.1', '--dir', $d,
                '--save', '', '--logfile', "$d/redis.log",
                '--enable-debug-command', 'local');
    push @args, '--requirepass', $self->{password}
        if defined $self->{password};
    # always: the AOF is fsynced before the reply goes out, so an
    # acknowledged write survives kill -9
    push @args, qw(--appendonly yes --appendfsync always) if $self->{aof};

    my $pid = fork // die "fork: $!\n";
    if (!$pid) {
        chdir $d;
        open STDIN, '<', '/dev/null';
        # what it says before its log file is open (bad option, ...)
        open STDOUT, '>>', "$d/redis.log";
        open STDERR, '>&', \*STDOUT;
        exec "$BIN/redis-server", @args or POSIX::_exit(127);
    }
    $self->{server} = $pid;
    delete $self->{conn};

    # its PING, and its own pid in INFO: not another server on the port
    my $deadline = time + 10;
    until (eval { $self->cmd('PING') eq 'PONG' and $self->cmd('INFO',
               'server') =~ /^process_id:$pid\r?$/m }) {
        my $why = !$self->alive ? "exited (status $?)"
            : time > $deadline ? "does not answer PING: $@" : '';
        if ($why) {
            $self->kill9;
            my @log = split /^/, $self->log;
            splice @log, 0, -20 if @log > 20;
            die "redis-server $why\nredis.log:\n", @log;
        }
        sleep 0.05;
    }
    return $self;
}

sub stop    { $_[0]->_kill('TERM') }
sub kill9   { $_[0]->_kill('KILL') }
sub restart { $_[0]->kill9->start }

sub alive {
    my ($self) = @_;
    my $pid = $self->{server} or return 0;
    my $w = waitpid $pid, POSIX::WNOHANG();
    # -1: not our child (a forked test): ask /proc
    return 1 if $w == 0 || ($w < 0 && _alive($pid));
    delete @$self{qw(server conn)};
    return 0;
}

# the value; an error reply dies with its message
sub cmd { my ($v, $e) = shift->_call(@_); croak $e if defined $e; $v }

# ($value, undef), or (undef, 'ERR ...') for an error reply, or (undef,
# 'redis ...: ...') when the server cannot be reached
sub cmd_err {
    my ($self, @args) = @_;
    my @r = eval { $self->_call(@args) };
    return @r if @r;
    chomp(my $e = $@);
    return (undef, $e);
}

# the DEBUG SLEEP is written here, before the fork, on a connection of its
# own: the server has it before anything sent after this returns
# (loopback delivers within the write, epoll reports in arrival order), so
# that finds the server frozen. The child only waits for the +OK.
sub stall {
    my ($self, $secs) = @_;
    $self->wait_stall;
    my $c = $self->_connect;
    _send($c, 'DEBUG', 'SLEEP', $secs);
    my $pid = fork // die "fork: $!\n";
    if (!$pid) {
        my ($v) = eval { _reply($c, time + $secs + $TIMEOUT) };
        POSIX::_exit(($v // '') eq 'OK' ? 0 : 1);
    }
    @$self{qw(staller stall_until)} = ($pid, time + $secs);
    return $self;
}

# true when the server answered the DEBUG SLEEP
sub wait_stall {
    my $pid = delete $_[0]{staller} or return 1;
    local $?;
    return waitpid($pid, 0) == $pid && $? == 0;
}

# sorted: KEYS has no order
sub keys { my @k = sort @{ $_[0]->cmd('KEYS', $_[1] // '*') }; @k }

sub log {
    open my $fh, '<', "$_[0]{dir}/redis.log" or return '';
    local $/;
    return <$fh> // '';
}

# the dir goes away in File::Temp's END: the server must be down by then,
# and this END block, compiled after File::Temp's, runs before it
END { $_->_shutdown for grep { defined } @ALL }

sub DESTROY { $_[0]->_shutdown }

# only the creating process owns the server: tests fork
sub _shutdown {
    my ($self) = @_;
    return unless ($self->{owner} // 0) == $$;
    local ($?, $@);
    eval { $self->kill9; $self->wait_stall };
}

# the signal, then up to 10 s for the server to be gone (reaped if ours,
# else out of /proc); SIGKILL when it outlives a SIGTERM
sub _kill {
    my ($self, $sig) = @_;
    my $pid = delete $self->{server} or return $self;
    delete $self->{conn};
    local $?;
    kill $sig, $pid;
    my ($deadline, $w, $late) = (time + 10);
    until (($w = waitpid $pid, POSIX::WNOHANG()) == $pid
           || ($w < 0 && !_alive($pid))) {
        if (time < $deadline) { sleep 0.02; next }
        die "redis-server (pid $pid) outlives SIGKILL\n"
            if $late || $sig eq 'KILL';
        kill 'KILL', $pid;     # and reaped, in the next 10 s
        ($late, $deadline) = ("outlived SIG$sig for 10 s", time + 10);
    }
    die "redis-server (pid $pid) $late: killed\n" if $late;
    return $self;
}

# one command on the cached connection; a new one when the server went
# away since (restarted here or elsewhere) or in a forked child, which
# must not share the socket; dies when the server cannot be reached
sub _call {
    my ($self, @args) = @_;
    my $c = $self->{conn};
    # usable: idle, nothing to read, not closed by the peer
    undef $c unless $c && $c->{pid} == $$
        && !defined recv($c->{sock}, my $peek, 1, MSG_PEEK | MSG_DONTWAIT)
        && ($!{EAGAIN} || $!{EWOULDBLOCK});
    $c = $self->{conn} = $self->_connect unless $c;
    my $deadline = time + $TIMEOUT;
    my $stall = ($self->{stall_until} // 0) - time;   # frozen till then
    $deadline += $stall if $stall > 0;
    my @r = eval { _send($c, @args); _reply($c, $deadline) };
    return @r if @r;
    delete $self->{conn};   # a reply may still come: out of step
    die $@;
}

sub _connect {
    my ($self) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', Proto => 'tcp',
                                  PeerPort => $self->{port}, Timeout => 5)
        or die "redis 127.0.0.1:$self->{port}: $@\n";
    binmode $s;
    my $c = { sock => $s, buf => '', pid => $$ };
    if (defined $self->{password}) {
        _send($c, 'AUTH', $self->{password});
        my (undef, $e) = _reply($c, time + $TIMEOUT);
        die "redis AUTH: $e\n" if defined $e;
    }
    return $c;
}

sub _send {
    my ($c, @args) = @_;
    my $msg = '*' . @args . "\r\n";
    for (@args) {
        my $arg = $_ // '';
        utf8::encode($arg) if utf8::is_utf8($arg);
        $msg .= '$' . length($arg) . "\r\n$arg\r\n";
    }
    local $SIG{PIPE} = 'IGNORE';    # a closed peer: EPIPE, not death
    print { $c->{sock} } $msg or die "redis: write: $!\n";   # autoflush
}

# ($value, $error) of one reply; an error inside an array (EXEC) becomes
# a reference to its message
sub _reply {
    my ($c, $deadline) = @_;
    my $i;
    _fill($c, $deadline) while ($i = index $c->{buf}, "\r\n") < 0;
    my ($t, $x) = substr($c->{buf}, 0, $i + 2, '') =~ /^(.)(.*)\r\n\z/s;
    return ($x, undef) if $t eq '+';
    return (undef, $x) if $t eq '-';
    return (0 + $x, undef) if $t eq ':';
    return (undef, undef) if ($t eq '$' || $t eq '*') && $x < 0;
    if ($t eq '$') {
        _fill($c, $deadline) while length $c->{buf} < $x + 2;
        return (substr($c->{buf}, 0, $x + 2, '') =~ s/\r\n\z//r, undef);
    }
    die "redis: bad reply '$t$x'\n" unless $t eq '*';
    my @a = map { my ($v, $e) = _reply($c, $deadline);
                  defined $e ? \$e : $v } 1 .. $x;
    return (\@a, undef);
}

sub _fill {
    my ($c, $deadline) = @_;
    my $left = $deadline - time;
    die "redis: no reply in time\n"
        unless $left > 0 && IO::Select->new($c->{sock})->can_read($left);
    my $n = sysread $c->{sock}, $c->{buf}, 65536, length $c->{buf};
    return if $n || (!defined $n && $!{EINTR});
    die 'redis: read: ' . (defined $n ? 'connection closed' : $!) . "\n";
}

# alive and not a zombie
sub _alive {
    open my $fh, '<', "/proc/$_[0]/stat" or return 0;
    return (<$fh> // '') !~ /\)\s+Z\s/;
}

1;
