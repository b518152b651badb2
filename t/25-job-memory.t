# A delivery that finds no memory for its job is not lost: the message
# stays in flight with that route owed, and the one-second sweep starts
# the job again.  The fault: malloc() of a job's size fails in the
# workers (an LD_PRELOAD shim, switched by a file) while messages are
# dispatched; once it is switched off, every message is delivered.

use strict;
use warnings;

use Test::More;
use lib 't/lib';
use Omnibus::Test;
use Omnibus::Receiver;
use Time::HiRes qw(sleep);

plan skip_all => 'the LD_PRELOAD malloc shim cannot replace ASan\'s allocator'
    if $ENV{OMNIBUS_SANITIZE};

my $t = Omnibus::Test->new(ports => 2);

my $job = `gdb -batch -ex 'print sizeof(ngx_omnibus_job_t)' $Omnibus::Test::MODULE 2>/dev/null`;
my ($size) = $job =~ /= (\d+)/;
plan skip_all => 'needs gdb to read the size of a job' unless $size;

# the shim: fails malloc() and calloc() of that size while the file exists

my $dir = $t->dir;
open my $c, '>', "$dir/failjob.c" or die $!;
print $c <<'C';
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);

static size_t  fail_size;
static char    fail_file[4096];

/* copied: nginx writes its process titles over the environment */

__attribute__((constructor)) static void
init(void)
{
    const char  *s = getenv("OMNIBUS_FAIL_SIZE"), *f;

    fail_size = s ? (size_t) strtoul(s, NULL, 10) : 0;
    f = getenv("OMNIBUS_FAIL_FILE");

    if (f && strlen(f) < sizeof(fail_file)) {
        strcpy(fail_file, f);
    }
}

void *
malloc(size_t n)
{
    if (n == fail_size && fail_file[0] && access(fail_file, F_OK) == 0) {
        return NULL;
    }

    return __libc_malloc(n);
}

/* NGINX's ngx_calloc() is malloc() and memset(), which compilers merge */

void *
calloc(size_t n, size_t size)
{
    if (n * size == fail_size && fail_file[0]
        && access(fail_file, F_OK) == 0)
    {
        return NULL;
    }

    return __libc_calloc(n, size);
}
C
close $c;
system("cc -shared -fPIC -O2 -o $dir/failjob.so $dir/failjob.c") == 0
    or plan skip_all => 'cannot build the malloc shim';

my $rx = Omnibus::Receiver->new(t => $t, index => 1);

$t->conf(<<'EOF');
    omnibus_zone zone=bus:8m shards=2 min_shards=1;
    omnibus_route bus hooked.> http://127.0.0.1:%%PORT1%%/hook;

    server {
        listen 127.0.0.1:%%PORT0%%;
        location /publish/ { omnibus_publish bus; }
        location /omnibus/ { omnibus_admin bus; }
    }
EOF

{
    local $ENV{LD_PRELOAD} = "$dir/failjob.so";
    local $ENV{OMNIBUS_FAIL_SIZE} = $size;
    local $ENV{OMNIBUS_FAIL_FILE} = "$dir/fail";
    $t->start;
}

open my $f, '>', "$dir/fail" or die $!;
close $f;

my $n = 20;
my %ids;
for my $i (1 .. $n) {
    my $r = $t->http(POST => "/publish/hooked.t$i", body => qq({"i":$i}));
    $ids{$r->{json}{id}} = 1 if $r->{status} == 202;
}
is(scalar keys %ids, $n, "$n published while jobs cannot be had");

ok(Omnibus::Test::wait_until(sub {
       $t->error_log =~ /no memory for a delivery of message/
   }), 'the missing job is logged');

sub shards_sum {
    my ($field) = @_;
    my $s = $t->http(GET => '/omnibus/')->{json};
    my $n = 0;
    $n += $_->{$field} for @{$s->{shards}};
    return $n;
}

sub inflight { shards_sum('inflight') }

# a shard dispatches a window's worth ahead of its deliveries; the rest
# wait in the queue behind those

sleep 1.5;
is(scalar $rx->requests_for('/hook'), 0, 'nothing delivered meanwhile');
ok(inflight() > 0, 'some in flight, owed to the route');
is(inflight() + shards_sum('queued'), $n, 'the rest queued, none lost');

unlink "$dir/fail";

ok(Omnibus::Test::wait_until(sub { $rx->requests_for('/hook') >= $n },
                             timeout => 10),
   'every message delivered once memory is back');
is_deeply({ map { $_->{headers}{'x-omnibus-id'} => 1 }
                $rx->requests_for('/hook') },
          \%ids, 'exactly the published ones');
ok(Omnibus::Test::wait_until(sub { inflight() == 0 }), 'none left in flight');
is($t->http(GET => '/omnibus/')->{json}{delivered}, $n, 'counted delivered');

$t->finish(allow => [qr/malloc\(\d+\) failed/]);
