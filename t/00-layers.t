#!/usr/bin/perl
# The layers of src/ (core < delivery < backends < http < the module
# file): calls only go down and no files call each other in a cycle,
# checked on the symbols of the built objects by scripts/layers.pl.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);

plan skip_all => 'make test checks the layers of its own build'
    if $ENV{OMNIBUS_SANITIZE};

# the objects of the build under test: those beside OMNIBUS_MODULE when it
# was built in an NGINX tree (make test-nginx-1.26), else make's
my $objdir = '';
if ($ENV{OMNIBUS_MODULE}) {
    (my $addon = $ENV{OMNIBUS_MODULE}) =~ s{[^/]*$}{addon};
    $objdir = $addon if -d $addon;
}

my $out = `perl $Bin/../scripts/layers.pl $objdir 2>&1`;

is($? >> 8, 0, 'calls only go down, no cycle, no header from above')
    or diag($out);
like($out, qr/^layers: \d+ files, [1-9]\d* calls between them/m,
     'the check saw the objects') or diag($out);

done_testing();
