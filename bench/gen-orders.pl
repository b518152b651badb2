#!/usr/bin/perl
# bench/gen-orders.pl [-n COUNT] [-s STATS.tsv] SIZE > orders-SIZE.ndjson
#
# The "orders" bodies of bench/run.sh's section 1: COUNT (16) different
# JSON documents of exactly SIZE bytes each, one per line (compact JSON
# has no raw newline), deterministic for a given SIZE and COUNT.
#
# The shape is bench/jsonbench.c's generator: an order object (id,
# timestamp, a customer object, currency) with an array of order lines,
# each an object of short strings (SKU, product names, some of them
# non-ASCII UTF-8, one with escaped quotes), integers, decimals, an
# exponent, a nested array of tags (an emoji and \u escapes among them),
# an array of dimensions and a boolean; then total, paid, coupon: null.
# The same xorshift64* and the same seeds (0x9e3779b97f4a7c15 x (i + 1)),
# but not byte for byte jsonbench's documents: C leaves the order in which
# a call's arguments are evaluated to the compiler, Perl goes left to
# right.  Where jsonbench takes the number of lines nearest to the size,
# this takes the most lines that fit and then fills the rest exactly with
# a delivery note of short words (some non-ASCII): `"note":"..."`, as the
# last member.  Sizes below about 220 bytes do not fit an order.
#
# Each document is checked: SIZE bytes, and valid JSON (JSON::PP, strict
# UTF-8); the script dies otherwise.  With -s, one line of statistics per
# run is appended to STATS.tsv (with a header when the file is new):
#   size docs lines_min lines_max non_ascii_pct note_pct

use strict;
use warnings;
use Getopt::Std;
use JSON::PP ();
no warnings "portable";    # the 64-bit constants: checked below

my %opt;
getopts('n:s:', \%opt) && @ARGV == 1 && $ARGV[0] =~ /^\d+$/
    or die "usage: gen-orders.pl [-n COUNT] [-s STATS.tsv] SIZE\n";
my $size = $ARGV[0];
my $count = $opt{n} // 16;

# xorshift64* wants 64-bit unsigned integers
~0 == 18446744073709551615 or die "gen-orders.pl: needs a 64-bit perl\n";

my $M32 = 0xffffffff;

sub mul64 {  # a * b mod 2^64, in 32-bit halves so as never to overflow
    my ($a, $b) = @_;
    my ($al, $ah, $bl, $bh) = ($a & $M32, $a >> 32, $b & $M32, $b >> 32);
    my $p0 = $al * $bl;    # < 2^64: stays an integer
    my $hi = (($p0 >> 32) + (($ah * $bl) & $M32) + (($al * $bh) & $M32)) & $M32;
    return ($hi << 32) | ($p0 & $M32);
}

my $state;

sub rnd {  # bench_rand(): xorshift64*, the high half modulo n
    my ($n) = @_;
    my $x = $state;
    $x ^= $x >> 12;
    $x ^= ($x << 25) & 0xffffffffffffffff;
    $x ^= $x >> 27;
    $state = $x;
    return (mul64($x, 0x2545f4914f6cdd1d) >> 32) % $n;
}

sub pick { $_[rnd(scalar @_)] }

# jsonbench.c's lists, as bytes (JSON escapes included as JSON text)
my @names = ("Anna Schmidt", "John Smith", "Zo\xc3\xab M\xc3\xbcller",
    "Jos\xc3\xa9 \xc3\x81lvarez", "\xc5\x81ukasz W\xc3\xb3jcik",
    "Chlo\xc3\xa9 Dubois", "Bj\xc3\xb6rn \xc3\x85ngstr\xc3\xb6m",
    "\xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd \xd0\x9f\xd0\xb5\xd1\x82\xd1\x80"
    . "\xd0\xbe\xd0\xb2",
    "Mary O'Neil", "Kenji Tanaka", "\xe6\x9d\x8e\xe5\xb0\x8f\xe9\xbe\x8d",
    "Nguy\xe1\xbb\x85n V\xc4\x83n An", "Priya Patel", "Lars Nilsen");
my @products = ("Espresso", "Caf\xc3\xa9 cr\xc3\xa8me", "Croissant", "Bagel",
    "Sm\xc3\xb8rbr\xc3\xb8d", "Cr\xc3\xaape Suzette", "Sparkling water",
    "P\xc3\xa3o de queijo", "Green tea \xe7\xb7\x91\xe8\x8c\xb6",
    "Oat milk 1 l", "Dark chocolate 70%", "Sandwich \\\"club\\\"",
    "Orange juice", "Muffin (blueberry)");
my @tags = ("food", "drink", "hot", "cold", "vegan", "gluten-free", "promo",
    "new", "\xf0\x9f\x94\xa5", "bio", "\\u00e9t\\u00e9", "bulk");
my @tiers = ("basic", "silver", "gold");
# the delivery note's words; the one-byte ones let it end on any length
my @words = ("please", "leave", "at", "the", "door", "ring", "twice", "call",
    "on", "arrival", "bitte", "klingeln", "T\xc3\xbcr", "merci", "\xc3\xa0",
    "c\xc3\xb4t\xc3\xa9", "no", "cutlery", "extra", "napkins", "gate", "code",
    "4711", "floor", "2", "\xc3\xa9tage", "entr\xc3\xa9" . "e", "B", "a",
    "thanks", "\xe8\xb0\xa2\xe8\xb0\xa2", "back", "yard", "side", "by");

sub line {  # bench_line()
    my ($n) = @_;
    my $s = sprintf '{"line":%u,"sku":"SKU-%05u","name":"%s","qty":%u,'
                    . '"unit_price":%u.%02u', $n, rnd(100000), pick(@products),
                    1 + rnd(12), rnd(80), rnd(100);
    $s .= sprintf ',"discount":-0.%02u', 1 + rnd(99) if rnd(4) == 0;
    my $ntags = rnd(4);
    $s .= ',"tags":[' . join(',', map { '"' . pick(@tags) . '"' } 1 .. $ntags)
          . ']';
    $s .= sprintf ',"dims":[%u,%u.%u,%ue-%u],"gift":%s}', 1 + rnd(60), rnd(40),
                  rnd(10), 1 + rnd(9), 1 + rnd(3), rnd(5) ? 'false' : 'true';
    return $s;
}

sub order {  # bench_order(): an order of nlines lines, from seed
    my ($nlines, $seed) = @_;
    $state = $seed;
    my $s = sprintf '{"order_id":"ORD-%08u","created":"2026-%02u-%02uT'
                    . '%02u:%02u:%02uZ","customer":{"id":%u,"name":"%s",'
                    . '"tier":"%s"},"currency":"EUR","lines":[',
                    rnd(100000000), 1 + rnd(12), 1 + rnd(28), rnd(24),
                    rnd(60), rnd(60), rnd(1000000), pick(@names), pick(@tiers);
    $s .= join(',', map { line($_) } 1 .. $nlines);
    $s .= sprintf '],"total":%u.%02u,"paid":%s,"coupon":null}', rnd(5000),
                  rnd(100), rnd(2) ? 'true' : 'false';
    return $s;
}

my $NOTE = ',"note":""';

sub order_of_size {  # (document, lines, note bytes) of exactly $size bytes
    my ($seed) = @_;
    my ($n, $doc) = (0);
    while (1) {
        my $o = order($n, $seed);
        last if length($o) + length($NOTE) > $size;
        $doc = $o;
        $n++;
    }
    die "gen-orders.pl: $size bytes do not fit an order\n" unless defined $doc;
    $n--;
    $doc = order($n, $seed);    # again: the generator's state after it
    my $gap = $size - length($doc) - length($NOTE);
    my $note = '';
    while ((my $r = $gap - length $note) > 0) {
        my $sep = length $note ? ' ' : '';
        my @fit = grep { length($sep . $_) <= $r } @words;
        $note .= @fit ? $sep . pick(@fit) : '.';
    }
    substr($doc, -1, 1, qq(,"note":"$note"}));
    return ($doc, $n, length $note);
}

binmode STDOUT;
my $json = JSON::PP->new->utf8;
my ($lmin, $lmax, $nonascii, $notes);
for my $i (1 .. $count) {
    my ($doc, $n, $nb) = order_of_size(mul64(0x9e3779b97f4a7c15, $i));
    length($doc) == $size
        or die "gen-orders.pl: document $i is ", length($doc), " bytes, not $size\n";
    eval { $json->decode($doc); 1 }
        or die "gen-orders.pl: document $i is not valid JSON: $@$doc\n";
    $lmin = $n if !defined $lmin || $n < $lmin;
    $lmax = $n if !defined $lmax || $n > $lmax;
    $nonascii += () = $doc =~ /[\x80-\xff]/g;
    $notes += $nb;
    print $doc, "\n";
}

if (defined $opt{s}) {
    my $new = !-s $opt{s};
    open(my $f, '>>', $opt{s}) or die "$opt{s}: $!\n";
    print $f "size\tdocs\tlines_min\tlines_max\tnon_ascii_pct\tnote_pct\n" if $new;
    printf $f "%d\t%d\t%d\t%d\t%.1f\t%.1f\n", $size, $count, $lmin, $lmax,
        100 * $nonascii / ($size * $count), 100 * $notes / ($size * $count);
    close $f or die "$opt{s}: $!\n";
}
