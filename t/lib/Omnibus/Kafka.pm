package Omnibus::Kafka;

# A Kafka cluster for a test: librdkafka's mock brokers in a process of
# their own (t/tools/kafka-mock.c, built on first use), with faults on
# command, and kcat to read what reached them.

use strict;
use warnings;

use IPC::Open2;
use IO::Handle;
use File::Basename qw(dirname);
use Cwd qw(abs_path);
use JSON::PP;
use Test::More;

my $ROOT = abs_path(dirname(__FILE__) . '/../../..');
my $MOCK = $ENV{OMNIBUS_KAFKA_MOCK} // "$ROOT/build/kafka-mock";

# skip the whole file when the cluster or kcat cannot be had
sub require_tools {
    my $src = "$ROOT/t/tools/kafka-mock.c";
    if (!-x $MOCK || (-e $src && -M $src < -M $MOCK)) {
        system("mkdir -p " . dirname($MOCK) . " && cc -O2 -Wall -o $MOCK "
               . "$src -lrdkafka 2>&1") == 0
            or plan skip_all => "cannot build the mock cluster (librdkafka)";
    }
    system("kcat -V >/dev/null 2>&1") == 0
        or plan skip_all => 'kcat is missing (Debian: kcat)';
}

# brokers => N, topics => ['name:partitions', ...]
sub new {
    my ($class, %o) = @_;
    my $self = bless { brokers => $o{brokers} // 3 }, $class;

    $self->{pid} = open2(my $out, my $in, $MOCK, $self->{brokers},
                         @{$o{topics} || []})
        or die "kafka-mock: $!";
    $in->autoflush(1);
    @$self{qw(out in)} = ($out, $in);

    my $line = <$out>;
    die "kafka-mock printed no bootstrap list\n" unless defined $line;
    chomp $line;
    $self->{bootstrap} = $line;

    return $self;
}

sub bootstrap { $_[0]{bootstrap} }

# a command of the mock (down ID, up ID, errors APIKEY COUNT CODE,
# topic NAME PARTITIONS); dies unless it says ok
sub cmd {
    my ($self, $cmd) = @_;
    print { $self->{in} } "$cmd\n";
    my $reply = readline $self->{out};
    die "kafka-mock: no answer to '$cmd'\n" unless defined $reply;
    die "kafka-mock: '$cmd': $reply" unless $reply =~ /^ok/;
    return 1;
}

sub broker_down { my ($s, $id) = @_; $s->cmd("down $id") }
sub broker_up   { my ($s, $id) = @_; $s->cmd("up $id") }

sub all_down { my $s = shift; $s->broker_down($_) for 1 .. $s->{brokers} }
sub all_up   { my $s = shift; $s->broker_up($_) for 1 .. $s->{brokers} }

# every record of a topic: [{ key, value, headers => {..}, partition,
# offset }], read with kcat from the beginning to the end
sub records {
    my ($self, $topic) = @_;
    my @r;
    open my $fh, '-|', 'kcat', '-C', '-b', $self->{bootstrap}, '-t', $topic,
         '-o', 'beginning', '-e', '-q', '-J'
        or die "kcat: $!";
    while (my $line = <$fh>) {
        my $rec = eval { decode_json($line) } or next;
        my %h = @{$rec->{headers} || []};
        push @r, { key => $rec->{key}, value => $rec->{payload},
                   headers => \%h, partition => $rec->{partition},
                   offset => $rec->{offset} };
    }
    close $fh;
    return @r;
}

# records into a topic with kcat: each [key, value]
sub produce {
    my ($self, $topic, @records) = @_;
    open my $fh, '|-', 'kcat', '-P', '-b', $self->{bootstrap}, '-t', $topic,
         '-K', "\t", '-X', 'acks=all'
        or die "kcat: $!";
    print $fh "$_->[0]\t$_->[1]\n" for @records;
    close $fh or die "kcat -P failed\n";
}

sub stop {
    my ($self) = @_;
    return unless $self->{pid};
    local $?;        # at exit, the mock's status must not become ours
    close $self->{in};
    kill 'KILL', $self->{pid};
    waitpid $self->{pid}, 0;
    delete $self->{pid};
}

sub DESTROY { $_[0]->stop }

1;
