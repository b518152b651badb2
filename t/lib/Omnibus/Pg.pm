package Omnibus::Pg;

# A real PostgreSQL server for a test: initdb into a temp dir, a free port
# on 127.0.0.1, started, stopped and crashed by the test itself. The
# superuser `postgres` comes in over the unix socket (trust); the role
# `omnibus` over TCP with a password (scram-sha-256), as the module does.
# No DBI (no DBD::Pg): SQL goes through the psql binary.
#
# OMNIBUS_PG_BIN names the directory of initdb, pg_ctl and psql (default:
# the highest /usr/lib/postgresql/*/bin). OMNIBUS_KEEP or TEST_KEEP keeps
# the temp dir.

use strict;
use warnings;

use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX ();
use Scalar::Util qw(weaken);
use Test::More;
use Time::HiRes qw(sleep time);

my ($VER_BIN) = sort { _ver($b) <=> _ver($a) } glob '/usr/lib/postgresql/*/bin';
our $BIN = $ENV{OMNIBUS_PG_BIN} // $VER_BIN // '';
sub _ver { $_[0] =~ m{/(\d+(?:\.\d+)?)/bin$} ? $1 : 0 }

# every server alive in this process, for the END block below
my @ALL;

sub require_tools {
    -x "$BIN/$_" or plan skip_all => "PostgreSQL's $_ is missing "
        . '(Debian: postgresql)' for qw(initdb pg_ctl pg_isready psql);
    # the server refuses to run as root: it then runs as postgres or nobody
    $> != 0 || getpwnam('postgres') || getpwnam('nobody')
        or plan skip_all => 'root, and no user to run PostgreSQL as';
}

# password => ..., no_db => 1
sub new {
    my ($class, %o) = @_;
    die "no initdb in '$BIN'\n" unless -x "$BIN/initdb";
    my $keep = $ENV{OMNIBUS_KEEP} || $ENV{TEST_KEEP};
    my $self = bless {
        pid      => $$,
        password => $o{password}
                    // 'omnibus-secret-' . join('', map { int rand 10 } 1 .. 12),
        db       => $o{no_db} ? 'postgres' : 'omnibus',
        dir      => tempdir('omnibus-pg-XXXXXX', TMPDIR => 1, CLEANUP => !$keep),
    }, $class;
    my $d = $self->{dir};
    diag("postgres dir: $d") if $keep;

    if ($> == 0) {
        my @pw = getpwnam('postgres');
        @pw = getpwnam('nobody') unless @pw;
        @$self{qw(uid gid)} = @pw[2, 3];
        chown $pw[2], $pw[3], $d or die "chown $d: $!\n";
    }

    # a free port: asked of the kernel, then let go for the server to bind
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp', Listen => 1)
        or die "no free port: $!\n";
    $self->{port} = $s->sockport;
    close $s;

    # --no-sync: the catalog need not survive a crash of the machine
    $self->_run({ server => 1 }, "$BIN/initdb", '-D', "$d/data", '-U',
                'postgres', '-E', 'UTF8', '--locale=C', '--no-sync',
                '--auth-local=trust', '--auth-host=scram-sha-256');

    open my $fh, '>>', "$d/data/postgresql.conf" or die "postgresql.conf: $!\n";
    print $fh "listen_addresses = '127.0.0.1'\nport = $self->{port}\n",
        "unix_socket_directories = '$d'\nsynchronous_commit = on\n",
        "max_connections = 200\nshared_buffers = 128MB\n",
        "logging_collector = off\n";
    close $fh;

    push @ALL, $self;
    weaken $ALL[-1];
    $self->start;

    (my $pw = $self->{password}) =~ s/'/''/g;
    $self->psql("CREATE ROLE omnibus LOGIN PASSWORD '$pw'", db => 'postgres');
    $self->psql('CREATE DATABASE omnibus OWNER omnibus', db => 'postgres')
        unless $o{no_db};
    return $self;
}

sub port     { $_[0]{port} }
sub dir      { $_[0]{dir} }
sub password { $_[0]{password} }
sub url      { "postgresql://omnibus\@127.0.0.1:$_[0]{port}/omnibus" }

sub password_file {
    my ($self) = @_;
    my $f = "$self->{dir}/password";
    sysopen my $fh, $f, POSIX::O_WRONLY | POSIX::O_CREAT | POSIX::O_TRUNC,
        0600 or die "$f: $!\n";
    print $fh "$self->{password}\n";
    close $fh;
    chmod 0600, $f;
    return $f;
}

# rows as arrayrefs (list context) or the first field (scalar); NULL is
# '', and a value with a newline or a tab in it comes back split
sub psql {
    my ($self, $sql, %o) = @_;
    my $in = File::Temp->new(DIR => $self->{dir});
    print $in $sql;
    close $in;
    my $out = $self->_run({ in => "$in" }, "$BIN/psql", '-X', '-q', '-A',
                          '-t', '-v', 'ON_ERROR_STOP=1', '-F', "\t",
                          '-h', $self->{dir}, '-p', $self->{port},
                          '-U', 'postgres', '-d', $o{db} // $self->{db});
    my @rows = map { [split /\t/, $_, -1] } split /\n/, $out;
    return wantarray ? @rows : @rows ? $rows[0][0] : undef;
}

sub psql_ok { my $self = shift; eval { $self->psql(@_); 1 } ? 1 : 0 }

sub start {
    my ($self) = @_;
    # a postmaster killed here stays a zombie when pid 1 reaps no orphans
    # (some containers): the server would take it for alive and refuse
    # its lock files, which it removes by itself when the pid is gone
    for my $lock ("$self->{dir}/data/postmaster.pid",
                  "$self->{dir}/.s.PGSQL.$self->{port}.lock") {
        my $pid = _first_number($lock);
        unlink $lock if $pid && !_alive($pid);
    }

    eval {
        $self->_run({ server => 1 }, "$BIN/pg_ctl", '-w', '-t', '60', 'start',
                    '-D', "$self->{dir}/data", '-l', "$self->{dir}/server.log");
        1;
    } or die $@ . "server.log:\n" . _tail($self->server_log);
    my $deadline = time + 30;
    until ($self->running) {
        die "postgres does not accept connections; server.log:\n"
            . _tail($self->server_log) if time > $deadline;
        sleep 0.1;
    }
    return $self;
}

# 'fast' (default) or 'immediate'
sub stop {
    my ($self, $mode) = @_;
    my $pid = $self->_postmaster_pid;
    return $self unless $pid && _alive($pid);
    $self->_run({ server => 1 }, "$BIN/pg_ctl", '-w', '-t', '60', 'stop',
                '-m', $mode // 'fast', '-D', "$self->{dir}/data");
    return $self;
}

# a crash: the postmaster dies and its children, who see it gone, follow;
# the next start must recover from the WAL
sub kill9 {
    my ($self) = @_;
    my ($pid, @kids) = $self->_server_pids;
    kill 'KILL', $pid;
    my $deadline = time + 30;
    while (grep { _alive($_) } $pid, @kids) {
        die "postgres (pid $pid) outlives SIGKILL\n" if time > $deadline;
        sleep 0.05;
    }
    return $self;
}

# frozen for $secs (SIGSTOP, then SIGCONT): connections stay open and
# nothing is answered, as a server stuck on its disk
sub stall {
    my ($self, $secs) = @_;
    my @pids = $self->_server_pids;
    kill 'STOP', @pids;
    sleep $secs;
    kill 'CONT', @pids;
    return $self;
}

sub running {
    my ($self) = @_;
    return eval {
        $self->_run({}, "$BIN/pg_isready", '-q', '-h', $self->{dir}, '-p',
                    $self->{port}, '-U', 'postgres', '-d', 'postgres');
        1;
    } ? 1 : 0;
}

sub server_log {
    my ($self) = @_;
    open my $fh, '<', "$self->{dir}/server.log" or return '';
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
    return unless ($self->{pid} // 0) == $$ && defined $self->{port};
    local ($?, $@);
    eval { $self->stop('immediate') };
}

sub _postmaster_pid { _first_number("$_[0]{dir}/data/postmaster.pid") }

# the postmaster and its children
sub _server_pids {
    my ($self) = @_;
    my $pid = $self->_postmaster_pid or die "postgres is not running\n";
    return ($pid, grep { _ppid($_) == $pid }
                  map { m{/(\d+)$} } glob '/proc/[0-9]*');
}

sub _first_number {
    open my $fh, '<', $_[0] or return undef;
    return (<$fh> // '') =~ /^(\d+)/ ? $1 : undef;
}

# the last 20 lines of a log
sub _tail {
    my @l = split /\n/, $_[0];
    splice @l, 0, -20 if @l > 20;
    return join '', map { "$_\n" } @l;
}

# alive and not a zombie
sub _alive {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    return (<$fh> // '') !~ /\)\s+Z\s/;
}

sub _ppid {
    open my $fh, '<', "/proc/$_[0]/stat" or return 0;
    return (<$fh> // '') =~ /\)\s+\S+\s+(\d+)/ ? $1 : 0;
}

# runs a command in the dir with stdin from $o->{in}; returns its stdout,
# dies with its output unless it exits 0. $o->{server}: as the server's
# user, when we are root
sub _run {
    my ($self, $o, @cmd) = @_;
    my $out = File::Temp->new(DIR => $self->{dir});
    my $pid = fork // die "fork: $!\n";
    if (!$pid) {
        # not the caller's PGHOST, PGUSER, ... nor its language
        delete @ENV{grep { /^PG/ } keys %ENV};
        @ENV{qw(PGCLIENTENCODING LC_ALL)} = ('UTF8', 'C');
        chdir $self->{dir};
        open STDIN, '<', $o->{in} // '/dev/null';
        open STDOUT, '>&', $out;
        open STDERR, '>', "$out.err";
        if ($o->{server} && defined $self->{uid}) {
            $) = "$self->{gid} $self->{gid}";
            $( = $self->{gid};
            POSIX::setuid($self->{uid}) or POSIX::_exit(126);
        }
        exec @cmd or POSIX::_exit(127);
    }
    waitpid $pid, 0;
    my $rc = $?;
    local $/;
    seek $out, 0, 0;     # the child moved the offset it shares with us
    my $text = readline($out) // '';
    my $err = '';
    if (open my $fh, '<', "$out.err") { $err = <$fh> // ''; unlink "$out.err" }
    die "$cmd[0] failed (status $rc): $err$text" if $rc;
    return $text;
}

1;
