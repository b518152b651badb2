#!/bin/sh
# scripts/sanitize.sh: `make test-sanitize`.
#
# Builds NGINX from Debian's source package (scripts/nginx-source.sh) and
# the module against it, both with AddressSanitizer and
# UndefinedBehaviorSanitizer, under build/sanitize/, then runs the whole
# suite (prove -r t/) with that nginx and module, and sorts every
# sanitizer report by where it comes from:
#   - a frame of the module (a function or file ngx_omnibus_*, or its .so):
#     listed, and the run fails;
#   - NGINX's own code only (its parsers' deliberate unaligned loads):
#     listed, not failed.
# Each test file's reports are in build/sanitize/logs/TEST/san.PID (the
# sanitizers' log_path: nginx points stderr at its error_log, where the
# harness would count NGINX's own reports as failures, and reports from
# before that redirection would be lost), sorted in
# build/sanitize/report.txt. A failed test file keeps its harness dir
# under build/sanitize/tmp/TEST/ (OMNIBUS_KEEP).
#
# clang, not gcc (SANITIZE_CC): with gcc, libasan and libubsan are two
# runtimes and UBSan's reports ignore log_path (they go to stderr, i.e.
# the error_log); clang's one runtime writes both to log_path.
#
# LeakSanitizer is off (detect_leaks=0): NGINX leaves its cycle's pools and
# the workers' memory to exit(), so LSan reports them at every exit.
# detect_odr_violation=0: every dynamic module defines ngx_module_names
# (and ngx_modules), as the binary does; -fsanitize-address-use-odr-indicator
# makes the module register its own copies of them, not the binary's that
# its references resolve to: without it, ASan poisons the binary's
# ngx_modules past the module's 16 bytes and the master's next
# ngx_cycle_modules() (a reload) dies of a global-buffer-overflow.
# Pools allocate each block with malloc (NGX_DEBUG_PALLOC) so that ASan
# sees overflows of pool memory; the shared zone (ngx_slab) is not checked.
# -Wno-error: warnings are `make`'s business (-Werror there); -O1 with the
# sanitizers gives false -Wmaybe-uninitialized/-Wstringop-* ones.
#
# Environment: JOBS (make -j, default 2), SANITIZE_TESTS (test files
# instead of t/), SANITIZE_SKIP_BUILD=1 (reuse the build),
# SANITIZE_TIMEOUT (seconds for one test file, default 300),
# SANITIZE_LEAKS=1 (LeakSanitizer on: see above).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/build/sanitize
logs=$out/logs

# prove runs each test file through here (--exec): the file's own report
# directory and harness temp dir
if [ "${1:-}" = --run-one ]; then
    t=$2
    name=$(basename "$t" .t)
    mkdir -p "$logs/$name" "$out/tmp/$name"
    ASAN_OPTIONS="$ASAN_OPTIONS:log_path=$logs/$name/san"
    UBSAN_OPTIONS="$UBSAN_OPTIONS:log_path=$logs/$name/san"
    export ASAN_OPTIONS UBSAN_OPTIONS
    rc=0
    TMPDIR=$out/tmp/$name OMNIBUS_KEEP=1 timeout "${SANITIZE_TIMEOUT:-300}" \
        perl -I "$root/t/lib" "$t" 2>"$out/tmp/$name.stderr" || rc=$?
    if [ $rc -eq 124 ]; then
        echo "# sanitize: $t killed after ${SANITIZE_TIMEOUT:-300} s" \
            >> "$out/tmp/$name.stderr"
        # the nginx it left running: the daemon leads its workers' group
        for pid in $(cat "$out/tmp/$name"/*/nginx.pid 2>/dev/null); do
            kill -KILL -- "-$pid" "$pid" 2>/dev/null || true
        done
    fi
    if [ $rc -eq 0 ]; then
        grep -v '^# test dir: ' "$out/tmp/$name.stderr" >&2 || true
        rm -rf "$out/tmp/$name" "$out/tmp/$name.stderr"
    else
        cat "$out/tmp/$name.stderr" >&2
    fi
    exit $rc
fi

jobs=${JOBS:-2}
tree=$out/nginx
cc=${SANITIZE_CC:-clang}
san='-fsanitize=address,undefined'
cc_opt="-g -O1 -fno-omit-frame-pointer $san -DNGX_DEBUG_PALLOC=1"
cc_opt="$cc_opt -fsanitize-address-use-odr-indicator"
cc_opt="$cc_opt -Wall -Wextra -Wno-unused-parameter -Wno-error"
ld_opt="$san"

# Debian's configure arguments (nginx -V), minus the modules no test uses
# and the dynamic ones
conf_args="--prefix=/usr/share/nginx --conf-path=/etc/nginx/nginx.conf
 --http-log-path=/var/log/nginx/access.log --error-log-path=stderr
 --lock-path=/var/lock/nginx.lock --pid-path=/run/nginx.pid
 --modules-path=/usr/lib/nginx/modules
 --http-client-body-temp-path=/var/lib/nginx/body
 --http-fastcgi-temp-path=/var/lib/nginx/fastcgi
 --http-proxy-temp-path=/var/lib/nginx/proxy
 --http-scgi-temp-path=/var/lib/nginx/scgi
 --http-uwsgi-temp-path=/var/lib/nginx/uwsgi
 --with-compat --with-debug --with-pcre-jit --with-threads
 --with-http_ssl_module --with-http_stub_status_module
 --with-http_realip_module --with-http_auth_request_module
 --with-http_v2_module"

now() { date +%s; }

if [ "${SANITIZE_SKIP_BUILD:-}" != 1 ]; then
    t0=$(now)
    src=$("$root/scripts/nginx-source.sh" "$out/src" | tail -1)

    # configure again when the arguments or the module's build scripts
    # change (as the Makefile does for the default build)
    # shellcheck disable=SC2086
    sig=$(printf '%s\n' "$src" "$cc" "$cc_opt" "$ld_opt" $conf_args | cksum)
    stale=
    if [ ! -f "$tree/objs/Makefile" ] \
        || [ "$(cat "$tree/.omnibus-configure" 2>/dev/null)" != "$sig" ]
    then
        stale=1
    elif [ -n "$(find "$root/config" "$root/src" -name config \
                     -newer "$tree/objs/Makefile")" ]; then
        stale=1
    fi
    if [ -n "$stale" ]; then
        echo "sanitize: configuring NGINX $(basename "$src"): $cc $san"
        rm -rf "$tree"
        cp -a "$src" "$tree"
        # shellcheck disable=SC2086
        (cd "$tree" && ./configure $conf_args --with-cc="$cc" \
             --with-cc-opt="$cc_opt" \
             --with-ld-opt="$ld_opt" --add-dynamic-module="$root" \
             > configure.log 2>&1) \
            || { tail -30 "$tree/configure.log"; exit 1; }
        echo "$sig" > "$tree/.omnibus-configure"
    fi
    echo "sanitize: building NGINX and the module (make -j$jobs)"
    make -s -C "$tree" -f objs/Makefile -j"$jobs" binary modules \
        > "$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
    t1=$(now)
    echo "sanitize: build took $((t1 - t0)) s"
fi

nginx=$tree/objs/nginx
module=$tree/objs/ngx_omnibus_module.so
[ -x "$nginx" ] && [ -f "$module" ] \
    || { echo "sanitize: no build under $tree" >&2; exit 1; }

rm -rf "$logs" "$out/tmp" "$out/report.txt"
mkdir -p "$logs" "$out/tmp"

# the options are read when a process starts: the master's environment
# reaches the workers it forks, whatever nginx's `env` keeps
# symbolize=0: symbolized here afterwards (addr2line). A symbolizer that
# the runtime starts inherits nginx's stdout and stderr, and the daemon's
# pipe to it: it outlives `nginx` and the harness waits for its output
# forever.
export ASAN_OPTIONS="detect_odr_violation=0:detect_leaks=${SANITIZE_LEAKS:-0}:halt_on_error=1:abort_on_error=0:symbolize=0:print_summary=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=0:symbolize=0:print_summary=1"
export OMNIBUS_NGINX="$nginx" OMNIBUS_MODULE="$module" OMNIBUS_SANITIZE=1

t0=$(now)
rc=0
# shellcheck disable=SC2086
(cd "$root" && prove --exec "$root/scripts/sanitize.sh --run-one" \
                       ${SANITIZE_TESTS:--r t/}) \
    || rc=$?
t1=$(now)
echo "sanitize: suite took $((t1 - t0)) s"

# every report of every process, sorted into the module's and NGINX's
src_rc=0
perl - "$logs" "$out/report.txt" <<'PERL' || src_rc=$?
use strict;
use warnings;

my ($logs, $report) = @ARGV;
my $MOD = qr/ngx_omnibus_/;
my $FRAME = qr/^\s*#\d+\s+0x[0-9a-f]+\s+\((\S+?)\+(0x[0-9a-f]+)\)/;

my (%text, %addr, %sym);
for my $file (sort glob("$logs/*/san.*")) {
    open my $fh, '<', $file or next;
    my @lines = <$fh>;
    chomp @lines;
    close $fh;
    $text{$file} = \@lines;
    /$FRAME/ and $addr{$1}{$2} = 1 for @lines;
}

# the frames "(/path/obj+0x1234)": one addr2line per object
for my $obj (keys %addr) {
    my @off = sort keys %{$addr{$obj}};
    next unless -f $obj;
    my @o = `addr2line -f -C -e '$obj' @off 2>/dev/null`;
    chomp @o;
    next unless @o == 2 * @off;
    for my $i (0 .. $#off) {
        my ($f, $l) = @o[2 * $i, 2 * $i + 1];
        $sym{"$obj $off[$i]"} = " in $f $l" unless $f eq '??';
    }
}

my (@reports);
for my $file (sort keys %text) {
    my ($test) = $file =~ m{/([^/]+)/[^/]+$};
    my @lines = map { /$FRAME/ ? $_ . ($sym{"$1 $2"} // '') : $_ }
                    @{$text{$file}};

    my $cur;
    for my $l (@lines) {
        my @m;
        if (@m = $l =~ /^==\d+==ERROR: (Address|Leak)Sanitizer: (\S+)/) {
            $cur = { kind => $m[0] eq 'Address' ? 'ASan' : 'LSan',
                     what => $m[1] };
        } elsif (@m = $l =~ /^(\S+:\d+(?::\d+)?): runtime error: (.*)/) {
            $cur = { kind => 'UBSan', where => $m[0], what => $m[1] };
        }
        if (@m) {
            @$cur{qw(test file text frames nstack)} =
                ($test, $file, [$l], [], 0);
            push @reports, $cur;
            next;
        }
        next unless $cur;
        push @{$cur->{text}}, $l;
        if ($l =~ /^\s*#(\d+) /) {
            $cur->{nstack}++ if $1 == 0;
            # the first stack: where the fault happened
            push @{$cur->{frames}}, $l if $cur->{nstack} == 1;
        }
        $cur = undef if $l =~ /^SUMMARY: /;
    }
}

for my $r (@reports) {
    my @f = @{$r->{frames}};
    # the place: for ASan, the first frame outside the sanitizer runtime,
    # or the module's first frame when it is on the stack
    if (!$r->{where}) {
        my @app = grep { !/ in (__asan|__interceptor|__sanitizer|__ubsan|__lsan)|lib(asan|ubsan)\.so|compiler-rt|sanitizer_common/ } @f;
        my ($mod) = grep { $_ =~ $MOD } @app;
        my $top = $mod // $app[0];
        $r->{where} = $top && $top =~ /\s(\S+:\d+)(?::\d+)?\s*$/ ? $1
                    : $top && $top =~ /\((\S+\+0x[0-9a-f]+)\)/ ? $1 : '?';
        $r->{func} = $top && $top =~ / in (\S+)/ ? $1 : '?';
        $r->{below} = $1 if $mod && $app[0] ne $mod
                            && $app[0] =~ / in (\S+)/;
    } else {
        $r->{func} = $f[0] && $f[0] =~ / in (\S+)/ ? $1 : '?';
    }
    $r->{where} =~ s{^.*?/(src/|ngx_omnibus_module\.c)}{$1};
    my $in_module = $r->{where} =~ $MOD || $r->{func} =~ $MOD;
    my $via_module = grep { $_ =~ $MOD } @f;
    # a deliberate unaligned load of NGINX's stays NGINX's even when the
    # module is further up the stack
    $r->{module} = $in_module
        || ($via_module && !($r->{kind} eq 'UBSan'
                             && $r->{what} =~ /misaligned/));
    $r->{via} = $via_module && !$in_module;
}

my (%group, @order);
for my $r (@reports) {
    my $what = $r->{what};
    $what =~ s/0x[0-9a-f]+/ADDR/g;
    $what =~ s/-?\d{3,}/N/g;
    my $key = join "\t", $r->{module} ? 'module' : 'nginx', $r->{kind},
                         $r->{where}, $what;
    push @order, $key unless $group{$key};
    my $g = $group{$key} //= { r => $r, n => 0, tests => {} };
    $g->{n}++;
    $g->{tests}{$r->{test}}++;
}

my @mod = grep { /^module/ } @order;
my @ngx = grep { /^nginx/ } @order;

sub line {
    my ($key) = @_;
    my $g = $group{$key};
    my $r = $g->{r};
    return sprintf "  %s %s: %s (in %s%s%s) x%d [%s]\n", $r->{kind},
        $r->{where}, $r->{what}, $r->{func},
        $r->{below} ? ", faulting in $r->{below}" : '',
        $r->{via} ? ', called from the module' : '', $g->{n},
        join(' ', sort keys %{$g->{tests}});
}

my $summary = '';
$summary .= sprintf "sanitize: %d report(s) from the module's code (fail)%s\n",
                    scalar @mod, @mod ? ':' : '';
$summary .= line($_) for @mod;
$summary .= sprintf "sanitize: %d from NGINX's code only (listed)%s\n",
                    scalar @ngx, @ngx ? ':' : '';
$summary .= line($_) for @ngx;
print $summary;

open my $out, '>', $report or die "$report: $!";
print $out $summary, "\n";
for my $key (@mod, @ngx) {
    my $r = $group{$key}{r};
    print $out "==== $r->{test}: $r->{file}\n", map({ "$_\n" } @{$r->{text}}),
               "\n";
}
close $out;
print "sanitize: details in $report\n";
exit(@mod ? 1 : 0);
PERL

if [ $rc -ne 0 ]; then
    echo "sanitize: FAILED: the suite failed under the sanitizers" \
         "(harness dirs of failed tests in $out/tmp/)"
fi
if [ $src_rc -ne 0 ]; then
    echo "sanitize: FAILED: sanitizer reports from the module"
fi
[ $rc -eq 0 ] && [ $src_rc -eq 0 ]
