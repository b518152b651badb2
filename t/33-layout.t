# A reload adopts the zone only if it was laid out by a build with the
# same memory layout.  The fault: the layout version in the live zone is
# changed in place (through the master's /proc/PID/mem), as a zone made
# by another build of the module would carry; the reload must fail with
# a clear [emerg] and the running workers keep serving from the zone.

use strict;
use warnings;
no warnings 'portable';    # 64-bit addresses from /proc

use Test::More;
use lib 't/lib';
use Omnibus::Test;
use Time::HiRes qw(sleep);

use constant MAGIC  => 0x626e6d6f;      # NGX_OMNIBUS_MAGIC, "omnb"
use constant LAYOUT => 5;               # NGX_OMNIBUS_LAYOUT
use constant SIZE   => 3 * 1024 * 1024; # a zone size no other zone has

plan skip_all => 'needs /proc/PID/mem' unless -e "/proc/$$/mem";

my $t = Omnibus::Test->new;

$t->conf(<<"EOF")->start;
    omnibus_zone zone=bus:@{[SIZE]} shards=4 min_shards=1;

    server {
        listen 127.0.0.1:%%PORT0%%;
        location /publish/ { omnibus_publish bus; }
        location /omnibus/ { omnibus_admin bus; }
    }
EOF

is($t->http(POST => '/publish/before', body => '{"n":1}')->{status}, 202,
   'published before');

# the zone is the master's shared anonymous mapping of that size

sub layout_address {
    my ($pid) = @_;
    open my $maps, '<', "/proc/$pid/maps" or return;
    for (<$maps>) {
        my ($lo, $hi) = /^([0-9a-f]+)-([0-9a-f]+) rw-s .*\/dev\/zero/
            or next;
        next unless hex($hi) - hex($lo) == SIZE;
        open my $mem, '<:raw', "/proc/$pid/mem" or return;
        sysseek($mem, hex $lo, 0) or return;
        sysread($mem, my $zone, SIZE) == SIZE or return;
        my $at = index($zone, pack('VV', MAGIC, LAYOUT));
        return $at < 0 ? undef : hex($lo) + $at + 4;
    }
    return;
}

sub poke {
    my ($pid, $addr, $value) = @_;
    open my $mem, '+<:raw', "/proc/$pid/mem" or return 0;
    sysseek($mem, $addr, 0) or return 0;
    return (syswrite($mem, pack('V', $value)) // 0) == 4;
}

my $master = $t->master_pid;
my $addr = layout_address($master);

SKIP: {
    # reading and writing another process's memory needs ptrace rights
    skip 'cannot read or write the master\'s memory', 7
        unless $addr && poke($master, $addr, 99);

    ok($addr, 'the zone header found in the master');

    my @workers = $t->worker_pids;
    kill 'HUP', $master;

    ok(Omnibus::Test::wait_until(sub {
           $t->error_log =~ /\[emerg\].*omnibus\ zone\ "bus"\ was\ created
                             \ by\ a\ module\ build\ with\ another\ memory
                             \ layout\ \(version\ 99,/x
       }, timeout => 10), 'the reload says why it cannot adopt the zone');

    sleep 0.5;
    is_deeply([$t->worker_pids], \@workers, 'the old workers keep running');
    is($t->http(POST => '/publish/during', body => '{"n":2}')->{status}, 202,
       'and keep accepting');

    ok(poke($master, $addr, LAYOUT), 'the layout as this build has it');
    $t->reload;
    my @now = $t->worker_pids;
    ok(!(grep { my $w = $_; grep { $_ == $w } @workers } @now),
       'a reload adopts it again');

    is($t->http(GET => '/omnibus/')->{json}{published}, 2,
       'with both messages published in it');
}

$t->finish(allow => [qr/another memory layout/]);
