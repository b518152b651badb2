#!/usr/bin/perl
# Checks the layering of src/ on the built objects: a file calls only
# into its own layer or the layers below (core < delivery < backends <
# http < the module file), no files call each other in a cycle, and no
# layer includes a higher one's header (core and delivery: no ngx_http.h).
# Edges come from the symbols each object defines and uses (nm), so they
# are the calls the compiler really made.
#
#   scripts/layers.pl [OBJDIR]       (default build/nginx/objs/addon)
#
# Prints the file graph with -v.  Exits 1 on a violation, naming it.

use strict;
use warnings;

use File::Basename qw(basename dirname);
use File::Find;
use Cwd qw(abs_path);

my $verbose = @ARGV && $ARGV[0] eq '-v' ? shift : 0;
my $root = abs_path(dirname(__FILE__) . '/..');
my $objdir = shift // "$root/build/nginx/objs/addon";

my %rank = (core => 0, delivery => 1, backends => 2, http => 3, top => 4);

# every source file and its layer: the first folder under src/
my (%layer, %path);
find(sub {
    my ($name) = /^(ngx_omnibus_\w+)\.c$/ or return;
    my $rel = substr($File::Find::name, length("$root/src/"));
    my ($top) = $rel =~ m{^([^/]+)/};
    $layer{$name} = $top;
    $path{$name} = "src/$rel";
}, "$root/src");
$layer{ngx_omnibus_module} = 'top';
$path{ngx_omnibus_module} = 'ngx_omnibus_module.c';

my @objs;
find(sub { push @objs, $File::Find::name if /\.o$/ }, $objdir);
die "layers: no objects under $objdir: build first\n" unless @objs;

my (%def, %uses, %built);
for my $o (@objs) {
    my $file = basename($o, '.o');
    die "layers: $o has no source under src/\n" unless $layer{$file};
    my @nm = `nm $o`;
    die "layers: nm $o failed\n" if $? != 0;
    $built{$file} = 1;
    for (@nm) {
        if (/^[0-9a-f]+ [TDBRC] (\S+)$/) {
            $def{$1} = $file;
        } elsif (/^\s+U (\S+)$/) {
            push @{$uses{$file}}, $1;
        }
    }
}

# a partial or link-time-optimised build would hide calls
for my $file (sort keys %layer) {
    die "layers: $path{$file} has no object under $objdir\n"
        unless $built{$file};
}
die "layers: no symbols defined in the objects\n" unless %def;

my @bad;
my %edge;

for my $file (sort keys %uses) {
    for my $sym (@{$uses{$file}}) {
        my $to = $def{$sym} or next;
        next if $to eq $file;

        # the module descriptor: every file that reads its configuration
        # names it, as in NGINX itself
        next if $sym eq 'ngx_omnibus_module';

        $edge{$file}{$to} //= $sym;

        if ($rank{$layer{$file}} < $rank{$layer{$to}}) {
            push @bad, "$path{$file} ($layer{$file}) calls up into "
                     . "$path{$to} ($layer{$to}): $sym";
        }
    }
}

# cycles among files, by depth-first search
my (%state, @stack);

sub visit {
    my ($f) = @_;
    $state{$f} = 1;
    push @stack, $f;
    for my $to (sort keys %{$edge{$f} || {}}) {
        if (($state{$to} // 0) == 1) {
            my ($at) = grep { $stack[$_] eq $to } 0 .. $#stack;
            my @cycle = (@stack[$at .. $#stack], $to);
            push @bad, "cycle: " . join(' -> ', map { $path{$_} } @cycle);
        } elsif (!$state{$to}) {
            visit($to);
        }
    }
    pop @stack;
    $state{$f} = 2;
}

visit($_) for grep { !$state{$_} } sort keys %layer;

# headers: core and delivery are HTTP-free, no layer includes a higher
# one's; a header's layer is its folder's, whatever path names it
my %header_layer = ('ngx_omnibus.h' => 'top');

find(sub {
    return unless /\.h$/;
    my ($l) = substr($File::Find::name, length("$root/src/")) =~ m{^([^/]+)/}
        or return;
    $header_layer{$_} = $l;
}, "$root/src");

sub header_layer {
    my ($h) = @_;
    $h = basename($h);
    # NGINX's HTTP: for the endpoints, and the webhook sink's upstreams
    return 'backends' if $h =~ /^ngx_http/;
    return $header_layer{$h};
}

find(sub {
    return unless /\.[ch]$/;
    my $rel = substr($File::Find::name, length("$root/"));
    my ($l) = $rel =~ m{^src/([^/]+)/} or return;
    open my $fh, '<', $_ or die "$rel: $!";
    while (<$fh>) {
        my ($h) = /^\s*#\s*include\s+[<"]([\w.\/-]+)[>"]/ or next;
        my $hl = header_layer($h) or next;
        if ($rank{$l} < $rank{$hl}) {
            push @bad, "$rel ($l) includes $h ($hl)";
        }
    }
}, "$root/src");

if ($verbose) {
    for my $f (sort { $rank{$layer{$a}} <=> $rank{$layer{$b}} || $a cmp $b }
               keys %edge)
    {
        printf "%-40s -> %s\n", $path{$f},
               join(' ', map { basename($path{$_}, '.c')
                                   =~ s/^ngx_omnibus_//r }
                         sort keys %{$edge{$f}});
    }
}

if (@bad) {
    print "$_\n" for @bad;
    exit 1;
}

printf "layers: %d files, %d calls between them, all down, no cycle\n",
       scalar(keys %layer), scalar(map { keys %$_ } values %edge);
