# Monitoring (docker/monitoring/): the alert rules pass `promtool check
# rules` and their unit tests, with a case where each rule fires and one
# where it does not; every PromQL expression of the Grafana dashboard
# parses; every metric the dashboard and the rules name is one the module
# exports, with the labels they use, and every dashboard query returns
# data from a real NGINX after some traffic (a failed delivery included;
# the store's families from a real PostgreSQL, t/lib/Omnibus/Pg.pm, and
# Redis's from a real Redis with a password, t/lib/Omnibus/Redis.pm, when
# this machine has them); the dashboard shows every family; yamllint
# passes. The Redis rules (OmnibusRedisDown, OmnibusRedisRelayDropped)
# have their cases in alerts.test.yml like the others.

use strict;
use warnings;

use Test::More;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use JSON::PP;
use lib 't/lib';
use Omnibus::Test;
use Omnibus::Receiver;
use Omnibus::Pg;
use Omnibus::Redis;

my $mon = abs_path(dirname(__FILE__) . '/../docker/monitoring');
my $alerts = "$mon/alerts.yml";
my $alerts_test = "$mon/alerts.test.yml";
my $dashboard_file = "$mon/dashboard.json";

my $t = Omnibus::Test->new(ports => 3);
my $d = $t->dir;

for my $cmd (qw(promtool yamllint)) {
    ok(Omnibus::Test::have_cmd($cmd), "$cmd is installed");
}

sub run {
    my ($cmd) = @_;
    my $out = `$cmd 2>&1`;
    return ($? == 0, $out);
}

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or die "$file: $!";
    local $/;
    my $text = <$fh>;
    close $fh;
    return $text;
}

sub spew {
    my ($file, $text) = @_;
    open my $fh, '>', $file or die "$file: $!";
    print $fh $text;
    close $fh;
}

# the files

my ($ok, $out) = run("yamllint -s $alerts $alerts_test");
ok($ok, 'yamllint passes') or diag($out);

($ok, $out) = run("promtool check rules $alerts");
ok($ok, 'promtool check rules alerts.yml') or diag($out);

($ok, $out) = run("promtool test rules $alerts_test");
ok($ok, 'promtool test rules alerts.test.yml') or diag($out);

# The rule files as this repository writes them (a list item per rule,
# `expr: >-` blocks): good enough here, without a YAML module in core Perl.

sub rule_exprs {
    my ($text) = @_;
    my (@rules, $cur);
    my @lines = split /\n/, $text;

    for (my $i = 0; $i < @lines; $i++) {
        if ($lines[$i] =~ /^\s*-\s+(alert|record):\s*(\S+)/) {
            $cur = { kind => $1, name => $2 };
            push @rules, $cur;

        } elsif ($cur && $lines[$i] =~ /^(\s*)expr:\s*(.*)$/) {
            my ($indent, $v) = (length $1, $2);
            if ($v =~ /^[>|]/) {
                my @block;
                while ($i + 1 < @lines
                       && ($lines[$i + 1] =~ /^\s*$/
                           || $lines[$i + 1] =~ /^(\s*)/
                              && length $1 > $indent))
                {
                    push @block, $lines[++$i];
                }
                $v = join ' ', map { s/^\s+|\s+$//gr } @block;
            } else {
                $v =~ s/^(["'])(.*)\1$/$2/;
            }
            $cur->{expr} = $v;
        }
    }

    return @rules;
}

my @rules = rule_exprs(slurp($alerts));
my @alerts = grep { $_->{kind} eq 'alert' } @rules;
my %recorded = map { $_->{name} => 1 }
               grep { $_->{kind} eq 'record' } @rules;

ok(@alerts >= 5, scalar(@alerts) . ' alert rules');
is(scalar(grep { !defined $_->{expr} } @rules), 0, 'each has an expr');

my $rules_text = slurp($alerts);
for my $rule (@alerts) {
    # up to the next rule or group
    my ($block) = $rules_text =~ /-\s+alert:\s*\Q$rule->{name}\E\n
                                  (.*?)
                                  (?=\n\s*-\s+(?:alert|record|name):|\z)/sx;
    $block //= '';
    like($block, qr/^\s+severity:\s*(?:critical|warning|info)\s*(?:\#.*)?$/m,
         "$rule->{name}: a severity label");
    like($block, qr/^\s+summary:/m, "$rule->{name}: a summary");
    like($block, qr/^\s+description:/m, "$rule->{name}: a description");
}

# each rule has a test case where it fires and one where it does not

my $tests_text = slurp($alerts_test);
my (%fires, %quiet);
while ($tests_text =~ /alertname:\s*(\S+)\s*\n\s*exp_alerts:
                       (.*?)
                       (?=\n\s*-\s+(?:eval_time|interval):|\z)/sgx)
{
    my ($name, $exp) = ($1, $2);
    if ($exp =~ /^\s*\[\]\s*$/) {
        $quiet{$name}++;
    } elsif ($exp =~ /exp_labels:/) {
        $fires{$name}++;
    }
}

for my $rule (@alerts) {
    ok($fires{$rule->{name}}, "$rule->{name}: a test where it fires");
    ok($quiet{$rule->{name}}, "$rule->{name}: a test where it does not");
}

# the dashboard

my $dash = decode_json(slurp($dashboard_file));

ok($dash->{schemaVersion} >= 39, "schemaVersion $dash->{schemaVersion}");
ok($dash->{uid} && $dash->{title}, 'uid and title');

my %vars = map { $_->{name} => $_ } @{$dash->{templating}{list}};
is(($vars{datasource} // {})->{type}, 'datasource',
   'a datasource variable');
is(($vars{datasource} // {})->{query}, 'prometheus', 'of Prometheus');
is(($vars{$_} // {})->{type}, 'query', "variable $_") for qw(zone instance);

my @panels = map { $_, @{$_->{panels} || []} } @{$dash->{panels}};
my %ids;
$ids{$_->{id}}++ for @panels;
is(scalar(grep { $ids{$_} > 1 } keys %ids), 0, 'panel ids are unique');

my (@dash_exprs, @bad_ds);
for my $p (grep { $_->{type} ne 'row' } @panels) {
    push @bad_ds, $p->{title}
        unless ($p->{datasource}{uid} // '') eq '${datasource}';
    for my $q (@{$p->{targets} || []}) {
        push @bad_ds, "$p->{title}/$q->{refId}"
            unless ($q->{datasource}{uid} // '') eq '${datasource}';
        push @dash_exprs, { where => "panel $p->{id} \"$p->{title}\" "
                                     . "$q->{refId}",
                            expr => $q->{expr}, data => 1 };
    }
}

for my $a (@{$dash->{annotations}{list}}) {
    next unless defined $a->{expr};
    push @bad_ds, "annotation $a->{name}"
        unless ($a->{datasource}{uid} // '') eq '${datasource}';
    # events: empty while nothing happens
    push @dash_exprs, { where => "annotation \"$a->{name}\"",
                        expr => $a->{expr}, data => 0 };
}

for my $v (grep { $_->{type} eq 'query' } values %vars) {
    my $q = ref $v->{query} ? $v->{query}{query} : $v->{query};
    if ($q =~ /^\s*label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)\s*$/s) {
        push @dash_exprs, { where => "variable $v->{name}",
                            expr => "group by ($2) ($1)", data => 1 };
    } else {
        fail("variable $v->{name}: label_values(METRIC, LABEL)");
    }
}

is_deeply(\@bad_ds, [], 'panels and queries use the datasource variable');
ok(@dash_exprs >= 30, scalar(@dash_exprs) . ' dashboard expressions');

# Grafana's variables as Grafana fills them in: "All" is the allValue
# regex, a text box its default

my %subst = ('__rate_interval' => '5m', '__interval' => '1m',
             '__range' => '1h', '__range_s' => '3600',
             '__interval_ms' => '60000');
for my $v (values %vars) {
    next if $v->{type} eq 'datasource';
    $subst{$v->{name}} = $v->{type} eq 'textbox' ? $v->{query}
                         : $v->{includeAll} ? ($v->{allValue} // '.*')
                         : $v->{current}{value};
}

my @unknown;
for my $e (@dash_exprs) {
    my $x = $e->{expr};
    $x =~ s{\$\{(\w+)(?::\w+)?\}|\$(\w+)}{
        my $n = $1 // $2;
        push @unknown, "\$$n in $e->{where}" unless exists $subst{$n};
        $subst{$n} // '';
    }ge;
    $e->{promql} = $x;
}
is_deeply(\@unknown, [], 'expressions use only known variables');

# every expression parses: as recording rules in a rule file (JSON is YAML)

my $json = JSON::PP->new->canonical->pretty;
my $n = 0;
$_->{record} = 'dashboard:expr_' . ++$n for @dash_exprs;
spew("$d/dashboard-rules.yml", $json->encode({ groups => [{
    name => 'dashboard',
    rules => [ map { { record => $_->{record}, expr => $_->{promql} } }
               @dash_exprs ],
}] }));

($ok, $out) = run("promtool check rules $d/dashboard-rules.yml");
ok($ok, 'every dashboard expression parses') or diag($out, join "\n",
    map { "$_->{record}: $_->{where}: $_->{promql}" } @dash_exprs);

# The metric names and labels of an expression, with no PromQL parser at
# hand: strings, matchers and ranges out, label lists of by/on/... aside,
# then a name not followed by "(" that is not a keyword is a metric.

my %keyword = map { $_ => 1 } qw(and or unless bool offset by without on
                                 ignoring group_left group_right inf nan
                                 sum min max avg group stddev stdvar count
                                 count_values bottomk topk quantile);

sub promql_names {
    my ($e) = @_;
    my (%names, @matchers, @grouping);

    $e =~ s/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/""/g;

    while ($e =~ /([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}/g) {
        my ($name, $m) = ($1, $2);
        push @matchers, [$name, $_]
            for $m =~ /([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g;
    }
    $e =~ s/\{[^}]*\}/ /g;
    $e =~ s/\[[^\]]*\]/ /g;

    while ($e =~ s/\b(?:by|without|on|ignoring|group_left|group_right)
                   \s*\(([^)]*)\)/ /x)
    {
        push @grouping, grep { length } map { s/^\s+|\s+$//gr } split /,/, $1;
    }

    $e =~ s/(?<![\w:])\d[\w.]*(?:[eE][+-]?\d+)?/ /g;

    while ($e =~ /([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\(?)/g) {
        next if $2 || $keyword{lc $1};
        $names{$1} = 1;
    }

    # a selector's own name; "{...}" alone leaves it undef
    $_->[0] //= '' for @matchers;
    return ([sort keys %names], \@matchers, \@grouping);
}

# a real NGINX: two workers, a route that delivers, one whose webhook
# refuses connections (port 2 is never listened on: a failed delivery,
# the DLQ and an open breaker), a subscribe location

my $rx = Omnibus::Receiver->new(t => $t, index => 1);

# the PostgreSQL store (mode=sync), for its families and the backend ones:
# without PostgreSQL they are exported empty, and not checked for data
my ($pg, $store) = (undef, '');
if (-x "$Omnibus::Pg::BIN/initdb"
    && ($> != 0 || getpwnam('postgres') || getpwnam('nobody')))
{
    $pg = Omnibus::Pg->new;
    $store = 'omnibus_store bus ' . $pg->url
             . ' password_file=' . $pg->password_file . ';';
} else {
    diag('PostgreSQL is missing (Debian: postgresql): the store\'s'
         . ' families are not checked for data');
}

# Redis (omnibus_redis, every feature on), for its families and its
# backend line: without redis-server they are exported empty
my ($redis, $cluster) = (undef, '');
if (-x "$Omnibus::Redis::BIN/redis-server") {
    $redis = Omnibus::Redis->new(password => "t52-$$-secret");
    spew("$d/redis-password", $redis->password . "\n");
    $cluster = 'omnibus_redis bus ' . $redis->url
               . " password_file=$d/redis-password;";
} else {
    diag('redis-server is missing (Debian: redis-server): Redis\'s'
         . ' families are not checked for data');
}
my @no_data = (($pg ? () : qw(store backend)), ($redis ? () : 'redis'));
my $no_data = @no_data ? qr/^message_bus_(?:${\ join '|', @no_data })_/
                       : qr/^$/;

$t->conf(<<"EOF")->start;
    omnibus_zone zone=bus:8m shards=4 min_shards=2 retain=10;
    $store
    $cluster
    omnibus_route bus ok.> http://127.0.0.1:%%PORT1%%/ok name=ok;
    omnibus_route bus down.> http://127.0.0.1:%%PORT2%%/down
                  retries=0 breaker=1:60s:1 name=down;

    server {
        listen 127.0.0.1:%%PORT0%%;
        location /publish/ { omnibus_publish bus; }
        location /subscribe/ { omnibus_subscribe bus; }
        location = /metrics { omnibus_metrics; }
        location = /readyz { omnibus_health bus ready; }
    }
EOF

ok(scalar($t->worker_pids) >= 2, 'two workers or more');
# ready: the store connected and its (no) rows loaded
ok(Omnibus::Test::wait_until(
       sub { $t->http(GET => '/readyz')->{status} == 200 }, timeout => 30),
   'ready' . ($pg ? ', the store connected' : ''));
# Redis connected (/readyz does not wait for it)
ok(!$redis || Omnibus::Test::wait_until(
       sub { $t->http(GET => '/metrics')->{body}
             =~ /^message_bus_backend_up\{zone="bus",backend="redis"\} 1$/m },
       timeout => 30),
   'Redis ' . ($redis ? 'connected, with the password of its file'
                      : 'not here'));

sub publish {
    my ($topic, %o) = @_;
    return $t->http(POST => "/publish/$topic", body => '{"n":1}', %o)
               ->{status};
}

is(publish("ok.a$_"), 202, "publish ok.a$_") for 1 .. 4;
is(publish('ok.a1', headers => { 'Idempotency-Key' => 'k1' }), 202,
   'publish with a key');
is(publish('ok.a1', headers => { 'Idempotency-Key' => 'k1' }), 200,
   'its duplicate');
is(publish('unrouted.x'), 202, 'publish to no route');
is(publish('down.x'), 202, 'publish to the failing route');
is(publish('bad..topic'), 400, 'a refused publish');

ok(Omnibus::Test::wait_until(sub {
       $t->metric('dead_lettered_total') >= 1
       && $t->metric('delivered_total') >= 5
   }, timeout => 20), 'delivered, and dead-lettered once');

my $m1 = $t->http(GET => '/metrics')->{body};
is(publish('ok.b'), 202, 'one more');
ok(Omnibus::Test::wait_until(sub { $t->metric('delivered_total') >= 6 },
                             timeout => 20), 'delivered');
my $m2 = $t->http(GET => '/metrics')->{body};

# what /metrics exposes: families with their types, samples with labels

my (%type, %sample_labels, %series);
for my $i (1, 2) {
    for my $line (split /\n/, $i == 1 ? $m1 : $m2) {
        if ($line =~ /^# TYPE (\S+) (\S+)$/) {
            $type{$1} = $2;
        } elsif ($line =~ /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/) {
            my ($name, $labels, $v) = ($1, $2 // '', $3);
            $sample_labels{$name}{$_} = 1 for $labels =~ /(\w+)="/g;
            $series{"$name\{$labels\}"}[$i - 1] = $v;
        }
    }
}

sub family {
    my ($name) = @_;
    return $name =~ /^(.*)_(?:bucket|sum|count)$/
           && ($type{$1} // '') eq 'histogram' ? $1 : $name;
}

# Prometheus's own, for targets that do not answer
my %prometheus = (up => 1);
my %target_labels = (job => 1, instance => 1);

my (%used_by_dash, @bad);
for my $e (@dash_exprs, map { { %$_, where => "alert $_->{name}",
                                 promql => $_->{expr}, rule => 1 } }
                        @alerts)
{
    my ($names, $matchers, $grouping) = promql_names($e->{promql});
    push @bad, "$e->{where}: names no metric" unless @$names;

    my %labels = %target_labels;
    # the store's families without PostgreSQL, Redis's without Redis:
    # names checked, not data
    my $empty = grep { $_ =~ $no_data } @$names;
    $empty ||= !$redis && $e->{promql} =~ /backend="redis"/;
    $e->{data} = 0 if $empty;
    for my $name (@$names) {
        next if $recorded{$name} || $e->{rule} && $prometheus{$name};
        my $f = family($name);
        if (!$type{$f}) {
            push @bad, "$e->{where}: $name is not exported";
        } elsif ($type{$f} eq 'histogram' && $f eq $name) {
            push @bad, "$e->{where}: $name is a histogram: _bucket, "
                       . "_sum or _count";
        } elsif (!$sample_labels{$name}) {
            push @bad, "$e->{where}: no $name sample after the traffic"
                unless $name =~ $no_data;
        }
        $used_by_dash{$f} = 1 unless $e->{rule};
        %labels = (%labels, %{$sample_labels{$name} || {}});
    }

    for my $mt (@$matchers) {
        my ($name, $label) = @$mt;
        next if $label eq '__name__' || $target_labels{$label};
        next if $recorded{$name} || $prometheus{$name};
        next if $name =~ $no_data;
        push @bad, "$e->{where}: $name has no label $label"
            unless $sample_labels{$name}{$label};
    }
    next if $empty;
    for my $label (@$grouping) {
        push @bad, "$e->{where}: no metric of it has a label $label"
            unless $labels{$label};
    }
}
is_deeply(\@bad, [], 'the dashboard and the rules use exported metrics '
                     . 'and their labels');

my @missing = grep { !$used_by_dash{$_} } sort keys %type;
is_deeply(\@missing, [], 'the dashboard shows every exported family');
ok(keys %type >= 30, scalar(keys %type) . ' families exported');

# every dashboard query returns data from that NGINX: a promtool unit
# test over its two scrapes, the second repeated, one minute apart

my @input;
for my $s (sort keys %series) {
    my ($a, $b) = @{$series{$s}};
    $b //= $a;
    my $labels = $s =~ /\{\}$/ ? '' : ',';
    (my $with = $s) =~ s/\}$/${labels}job="omnibus",instance="nginx:80"}/;
    push @input, { series => $with,
                   values => (defined $a ? $a : '_') . " ${b}x13" };
}

my @with_data = grep { $_->{data} } @dash_exprs;
spew("$d/empty.yml", "groups: []\n");
spew("$d/dashboard-data.test.yml", $json->encode({
    rule_files => ['empty.yml'],
    evaluation_interval => '1m',
    tests => [{
        interval => '1m',
        input_series => \@input,
        promql_expr_test => [ map { {
            expr => "count($_->{promql}) > bool 0",
            eval_time => '14m',
            exp_samples => [{ labels => '{}', value => 1 }],
        } } @with_data ],
    }],
}));

($ok, $out) = run("promtool test rules $d/dashboard-data.test.yml");
ok($ok, scalar(@with_data) . ' dashboard queries return data')
    or diag($out);

$t->finish;
