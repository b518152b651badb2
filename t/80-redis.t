# omnibus_redis: several nginx instances ("pods", each its own harness and
# omnibus_node) share one redis-server. An idempotency identity is claimed
# cluster-wide (the first pod answers 202, the others 200 duplicate with
# the first id; the zone's own dedup answers repeats on a pod first); a
# rate limit counts N per window across all pods; with Redis gone, wrong
# or frozen, publishing goes on and dedup and limits fall back to the pod,
# counted, and come back without a restart; a wrong password is one line
# per attempt behind the backoff, and a reload with the right one
# recovers; worker 0 of one pod holds the cluster lock, another pod takes
# it over when the holder dies, and a holder that finds the key taken
# stops leading.
#
# Each scenario has its own redis-server: claims and limits of one would
# answer the next.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);
use lib 't/lib';
use Omnibus::Test;
use Omnibus::Redis;
use Omnibus::Receiver;

Omnibus::Redis::require_tools();

sub wait_until { Omnibus::Test::wait_until(@_) }

sub sum { my $s = 0; $s += $_ // 0 for @_; $s }

# a pod: zone "bus" on Redis $o{redis} as node $o{node}, with the
# omnibus_redis parameters $o{params}; $o{password} goes to a password
# file in the pod's dir (pw_file), named by password_file=
sub pod {
    my (%o) = @_;
    my $t = Omnibus::Test->new(ports => 1, allow => $o{allow} || []);
    my $url = $o{redis}->url;
    my $pw = '';
    if (defined $o{password}) {
        write_file(pw_file($t), "$o{password}\n");
        $pw = ' password_file=' . pw_file($t);
    }
    my $params = $o{params} // 'lock=1s breaker=3:1s:1';
    $t->conf(<<"EOF");
    omnibus_zone zone=bus:16m shards=4 dedup_ttl=1h retain=10;
    omnibus_node $o{node};
    omnibus_redis bus $url$pw $params;

    server {
        listen 127.0.0.1:%%PORT0%%;
        add_header X-Worker \$pid always;

        location /publish/ { omnibus_publish bus; }
        location /content/ { omnibus_publish bus; omnibus_dedup content; }
        location /limited/ {
            omnibus_publish bus;
            omnibus_rate_limit \$http_x_client rate=10r/m;
        }
        location /omnibus/ { omnibus_admin bus; }
        location = /metrics { omnibus_metrics; }
        location = /readyz { omnibus_health bus ready; }
    }
EOF
    $t->start unless $o{no_start};
    return $t;
}

sub pw_file { $_[0]->dir . '/redis.password' }

sub write_file {
    my ($file, $text) = @_;
    open my $fh, '>', $file or die "$file: $!";
    print $fh $text;
    close $fh;
    chmod 0600, $file;
}

# a message_bus_<family>{zone="bus",<labels>} sample, undef if none
sub metric {
    my ($t, $family, $labels) = @_;
    my $r = $t->http(GET => '/metrics') or return undef;
    $labels = defined $labels ? ",$labels" : '';
    my ($v) = $r->{body} =~ /^message_bus_\Q$family\E\{zone="bus"\Q$labels\E\}
                              \ (\d+)$/mx;
    return $v;
}

sub msum { my ($pods, @a) = @_; sum(map { metric($_, @a) } @$pods) }

sub status { my $r = $_[0]->http(GET => '/omnibus/'); $r && $r->{json}{redis} }

sub backend_up { metric($_[0], 'backend_up', 'backend="redis"') }

sub publish {
    my ($t, $path, %h) = @_;
    return $t->http(POST => $path, body => delete $h{body} // '{}',
                    headers => \%h);
}

# one request to each pod at once: every connection open, every request
# written, then the answers read (in the order given)
sub together {
    my (@req) = @_;         # [$t, $path, $body, {headers}]
    my @c = map { $_->[0]->conn } @req;
    for my $i (0 .. $#req) {
        my (undef, $path, $body, $h) = @{$req[$i]};
        my $raw = "POST $path HTTP/1.1\r\nHost: localhost\r\n"
                  . "Connection: close\r\n";
        $raw .= "$_: $h->{$_}\r\n" for sort keys %{$h || {}};
        $raw .= 'Content-Length: ' . length($body) . "\r\n\r\n$body";
        $c[$i]->send_raw($raw) if $c[$i];
    }
    return map { my $r = $_ && $_->read_response; $_->close if $_; $r } @c;
}

# every worker's last word on its Redis connection (lines after offset
# $from of error.log) is "connected": none is down, in its backoff or
# connecting. A connection that Redis closed says nothing until the
# worker's next attempt, so this is asked after a failure was seen.
sub connected {
    my ($t, $from) = @_;
    my $log = substr($t->error_log, $from // 0);
    my %last;
    while ($log =~ /\ (\d+)\#\d+:\ omnibus_redis\ "bus":\ (connected\ to
                    |cannot\ connect|\S+\ did\ not\ answer|AUTH\ to
                    |SELECT\ to|SCRIPT\ LOAD\ to)/gx)
    {
        my ($pid, $what) = ($1, $2);
        $last{$pid} = $what =~ /^connected/ ? 1 : 0;
    }
    my @w = $t->worker_pids;
    return @w && !grep { !$last{$_} } @w;
}

sub all_connected {
    my ($pods, $from) = @_;
    return wait_until(sub {
        my $i = 0;
        !grep { !connected($_, $from ? $from->[$i++] : 0) } @$pods
    }, timeout => 30);
}

# master and workers at once, as a pod dies
sub crash {
    my ($t) = @_;
    my @pids = ($t->master_pid, $t->worker_pids);
    kill 'KILL', @pids;
    return wait_until(sub { !grep { Omnibus::Test::alive($_) } @pids },
                      timeout => 20);
}

sub statuses { join ' ', map { $_ ? $_->{status} : 'none' } @_ }

# the answer for one identity sent to every pod: one 202, the rest 200
# duplicate with its id; returns the id or undef
sub one_accepted {
    my (@res) = @_;
    my @acc = grep { $_ && $_->{status} == 202 } @res;
    my @dup = grep { $_ && $_->{status} == 200 && $_->{json}{duplicate} }
              @res;
    return undef unless @acc == 1 && @dup == @res - 1;
    my $id = $acc[0]{json}{id} // return undef;
    return (grep { ($_->{json}{id} // '') ne $id } @dup) ? undef : $id;
}

my $ndjson = 'application/x-ndjson';

# 1. nginx -t refuses bad parameters, saying which and why

{
    # parsed, not connected to: no server needed
    my $url = 'redis://127.0.0.1:6379/0';
    my $t = Omnibus::Test->new(ports => 1);
    my $secret = 'pw-in-url-' . join('', map { int rand 10 } 1 .. 10);
    my $file_pw = 'pw-in-file-' . join('', map { int rand 10 } 1 .. 10);
    my $pwf = $t->dir . '/pw';
    write_file($pwf, "$file_pw\n");

    my $conf = sub {
        my ($line) = @_;
        $t->conf(<<"EOF");
    omnibus_zone zone=bus:4m;
    $line

    server {
        listen 127.0.0.1:%%PORT0%%;
        location /publish/ { omnibus_publish bus; }
    }
EOF
        return $t->test_conf;
    };

    my @bad = (
        [ 'omnibus_redis bus http://127.0.0.1:6379;',
          qr{"omnibus_redis" directive needs a redis://HOST}, 'not redis://' ],
        [ "omnibus_redis bus redis://app:$secret\@127.0.0.1:6379;",
          qr/"omnibus_redis"\ directive\ takes\ no\ password\ in\ its\ URL:\ use
             \ password_file=/x,
          'a password in the URL' ],
        [ "omnibus_redis bus $url colour=blue;",
          qr/omnibus_redis:\ unknown\ parameter\ "colour=blue"\ \(known:
             \ password_file/x,
          'an unknown parameter' ],
        [ "omnibus_redis bus $url dedup=maybe;",
          qr/omnibus_redis: invalid "dedup=maybe"/, 'dedup=maybe' ],
        [ "omnibus_redis bus $url rate_limit=yes;",
          qr/omnibus_redis: invalid "rate_limit=yes"/, 'rate_limit=yes' ],
        [ "omnibus_redis bus $url timeout=0;",
          qr/omnibus_redis: invalid "timeout=0"/, 'timeout=0' ],
        [ "omnibus_redis bus $url breaker=x;",
          qr/omnibus_redis: invalid "breaker=x"/, 'breaker=x' ],
        [ "omnibus_redis bus $url lock=1ms;",
          qr/omnibus_redis: invalid "lock=1ms"/, 'lock=1ms' ],
        [ "omnibus_redis bus $url stream=5;",
          qr/omnibus_redis: invalid "stream=5"/, 'stream=5' ],
        [ "omnibus_redis bus $url password_file=" . $t->dir . '/missing;',
          qr/omnibus_redis: cannot open password_file "[^"]*\/missing"/,
          'a password_file that does not exist' ],
        [ "omnibus_redis bus $url password_file=" . $t->dir . ';',
          qr/omnibus_redis: cannot read password_file/,
          'a password_file that cannot be read (a directory)' ],
        [ "omnibus_redis bus $url password_file=$pwf timeout=0;",
          qr/omnibus_redis: invalid "timeout=0"/,
          'a bad parameter after a good password_file' ],
        [ 'omnibus_redis bus redis://127.0.0.1/db0;',
          qr{omnibus_redis:\ "redis://127\.0\.0\.1/db0":\ the\ database\ is\ a
             \ number}x,
          'a database that is not a number' ],
        [ "omnibus_redis bus $url;\n    omnibus_redis bus $url;",
          qr/"omnibus_redis" directive is duplicate/, 'twice for a zone' ],
    );

    for my $case (@bad) {
        my ($line, $why, $name) = @$case;
        my ($ok, $out) = $conf->($line);
        ok(!$ok, "nginx -t: $name is refused");
        like($out, $why, "nginx -t: $name: says why") or diag($out);
        unlike($out, qr/\Q$secret\E|\Q$file_pw\E/,
               "nginx -t: $name: no password in the output");
    }

    my ($ok, $out) = $conf->("omnibus_node pod-x;\n    omnibus_redis bus "
        . "redis://app\@127.0.0.1:6380/3 password_file=$pwf "
        . 'prefix=x: timeout=1s breaker=5:60s:3 dedup=on rate_limit=off '
        . 'fanout=on lock=10s stream=100000;');
    ok($ok, 'nginx -t: every parameter, well formed, passes') or diag($out);
    unlike($out, qr/\Q$file_pw\E/, 'nginx -t: the password is not shown');
}

# 2. three pods: an idempotency key, and a body, claimed across pods

{
    my $r = Omnibus::Redis->new;
    my @pods = map { pod(redis => $r, node => "pod-$_") } 1 .. 3;
    ok(all_connected(\@pods), 'dedup: every worker of the 3 pods connected');

    my (%accepted, $claims, $dups);

    # one key, pod after pod

    my @res = map { publish($_, '/publish/orders.created',
                            'Idempotency-Key' => 'order-1') } @pods;
    is(statuses(@res), '202 200 200', 'dedup: one key on pods 1, 2, 3');
    my $id = $res[0]{json}{id};
    like($id, qr/^[0-9a-f]{20}-/, 'dedup: the first has an id');
    ok($res[1]{json}{duplicate} && $res[2]{json}{duplicate},
       'dedup: pods 2 and 3 answer duplicate');
    is_deeply([map { $_->{json}{id} } @res[1, 2]], [$id, $id],
              'dedup: with the first id');
    $accepted{$id}++;
    ($claims, $dups) = (1, 2);

    # a repeat on a pod is its own zone's answer: Redis is not asked

    my @before = map { status($_) } @pods;
    my $again = publish($pods[0], '/publish/orders.created',
                        'Idempotency-Key' => 'order-1');
    is($again->{status}, 200, 'dedup: repeated on pod 1: 200');
    is($again->{json}{id}, $id, 'dedup: with the same id');
    ok($again->{json}{duplicate}, 'dedup: marked duplicate');
    $again = publish($pods[1], '/publish/orders.created',
                     'Idempotency-Key' => 'order-1');
    is_deeply([$again->{status}, $again->{json}{id}], [200, $id],
              'dedup: repeated on pod 2 (a duplicate there): the first id');
    my @after = map { status($_) } @pods;
    is_deeply([map { [$_->{claimed}, $_->{duplicates}] } @after],
              [map { [$_->{claimed}, $_->{duplicates}] } @before],
              'dedup: the repeats were answered by the pods, not Redis');

    # 20 keys, each sent to the three pods at once, who goes first rotating

    my @odd;
    for my $k (1 .. 20) {
        my @order = map { $pods[($k + $_) % 3] } 0 .. 2;
        my @res = together(map { [$_, '/publish/orders.batch', qq({"k":$k}),
                                  { 'Idempotency-Key' => "key-$k" }] }
                           @order);
        my $one = one_accepted(@res);
        if (defined $one) {
            $accepted{$one}++;
        } else {
            push @odd, "key-$k: " . join ' | ',
                                    map { $_ ? $_->{body} : 'none' } @res;
        }
    }
    is_deeply(\@odd, [], 'dedup: 20 keys raced on 3 pods: each accepted '
              . 'once, the others duplicates of it');
    is(scalar keys %accepted, 21, 'dedup: 21 distinct ids accepted');
    $claims += 20;
    $dups += 40;

    # by content: the same topic and body, no key

    @odd = ();
    for my $k (1 .. 10) {
        my @order = map { $pods[($k + $_) % 3] } 0 .. 2;
        my @res = together(map { [$_, '/content/prices.tick',
                                  qq({"tick":$k}), {}] } @order);
        my $one = one_accepted(@res);
        if (defined $one) {
            $accepted{$one}++;
        } else {
            push @odd, "tick $k: " . join ' | ',
                                     map { $_ ? $_->{body} : 'none' } @res;
        }
    }
    is_deeply(\@odd, [], 'dedup: 10 bodies raced on 3 pods: each accepted '
              . 'once');
    $claims += 10;
    $dups += 20;

    my $other = publish($pods[1], '/content/prices.other',
                        body => '{"tick":1}');
    is($other->{status}, 202,
       'dedup: the same body on another topic is another message');
    $accepted{$other->{json}{id}}++;
    $claims++;
    my $plain = publish($pods[2], '/publish/prices.tick',
                        body => '{"tick":1}');
    is($plain->{status}, 202, 'dedup: without content mode a body is no key');
    $accepted{$plain->{json}{id}}++;

    is(scalar(grep { $_ != 1 } values %accepted), 0,
       'dedup: no id accepted twice');

    # Redis holds one claim per identity, under the first id

    my @keys = $r->keys('omnibus:bus:d:*');
    is(scalar(grep { !/^omnibus:bus:d:[0-9a-f]{32}$/ } @keys), 0,
       'dedup: claims are omnibus:bus:d:<32 hex>');
    is(scalar @keys, $claims, "dedup: $claims claims in Redis");
    my @values = map { $r->cmd('GET', $_) } @keys;
    my %claimed = map { $_ => 1 } @values;
    my %want = %accepted;
    delete $want{$plain->{json}{id}};
    is_deeply([sort keys %claimed], [sort keys %want],
              'dedup: their values are the accepted ids');
    my $ttl = $r->cmd('TTL', $keys[0]);
    ok($ttl > 0 && $ttl <= 3600, "dedup: a claim lives dedup_ttl ($ttl s)");

    # the counters

    is(msum(\@pods, 'redis_answers_total', 'result="claimed"'), $claims,
       "dedup: answers_total claimed over the pods: $claims");
    is(msum(\@pods, 'redis_answers_total', 'result="duplicate"'), $dups,
       "dedup: answers_total duplicate over the pods: $dups");
    is(sum(map { status($_)->{claimed} } @pods), $claims,
       'dedup: status claimed agrees');
    is(sum(map { status($_)->{duplicates} } @pods), $dups,
       'dedup: status duplicates agrees');
    is(msum(\@pods, 'redis_fallbacks_total', 'feature="dedup"'), 0,
       'dedup: nothing fell back to a pod');
    is(msum(\@pods, 'redis_errors_total', "reason=\"$_\""), 0,
       "dedup: no $_ errors") for qw(connect timeout auth reply);
    is(join(' ', map { backend_up($_) } @pods), '1 1 1',
       'dedup: backend_up{backend="redis"} 1 on each pod');
    is(join(' ', map { metric($_, 'backend_breaker_state', 'backend="redis"') }
                 @pods), '0 0 0', 'dedup: breakers closed');
    my $s = status($pods[0]);
    is_deeply([sort keys %$s],
              [sort qw(up breaker lock claimed duplicates pending
                       rate_limited relayed relay_dropped received skipped
                       fallbacks stream_last)],
              'dedup: the status has the redis fields');
    is_deeply([sort keys %{$s->{fallbacks}}], [qw(dedup fanout rate_limit)],
              'dedup: fallbacks by feature');
    ok($s->{up} && $s->{breaker} eq 'closed', 'dedup: status up, closed');

    # NDJSON batches are deduplicated per pod only

    my %h = ('Content-Type' => $ndjson, 'Idempotency-Key' => 'batch-1');
    my $lines = qq({"a":1}\n{"a":2}\n);
    my $b1 = publish($pods[0], '/publish/b.t', %h, body => $lines);
    my $b2 = publish($pods[1], '/publish/b.t', %h, body => $lines);
    my $b3 = publish($pods[0], '/publish/b.t', %h, body => $lines);
    is(join(' ', map { $_->{status} } @{$b1->{json}{results}}), '202 202',
       'batch: queued on pod 1');
    is(join(' ', map { $_->{status} } @{$b2->{json}{results}}), '202 202',
       'batch: queued again on pod 2 (per pod only)');
    is(join(' ', map { $_->{status} } @{$b3->{json}{results}}), '200 200',
       'batch: repeated on pod 1: duplicates');

    $_->check_log for @pods;
}

# 3. a rate limit counted across the pods

{
    my $r = Omnibus::Redis->new;
    my @pods = map { pod(redis => $r, node => "pod-$_") } 1 .. 3;
    ok(all_connected(\@pods), 'limit: every worker connected');

    my @res = map {
        publish($pods[$_ % 3], '/limited/l.t', 'X-Client' => 'alice')
    } 0 .. 29;
    is(join(' ', map { $_->{status} } @res),
       join(' ', (202) x 10, (429) x 20),
       'limit: 10r/m, 30 publishes round-robin over 3 pods: 10 accepted');
    my @refused = @res[10 .. 29];
    is(scalar(grep { ($_->{json}{error} // '') ne 'rate_limited' } @refused),
       0, 'limit: each refusal says rate_limited');
    my @ra = map { $_->{headers}{'retry-after'} // 'none' } @refused;
    is(scalar(grep { !/^\d+$/ || $_ < 1 || $_ > 60 } @ra), 0,
       "limit: each with Retry-After within the minute (@ra[0 .. 2] ...)");

    is(publish($pods[1], '/limited/l.t', 'X-Client' => 'bob')->{status}, 202,
       'limit: another client is independent');
    is(scalar(grep { publish($pods[$_ % 3], '/limited/l.t')->{status} == 202 }
              1 .. 12), 12, 'limit: no key, no limit');

    # a burst, all pods at once

    my @burst = together(map { [$pods[$_ % 3], '/limited/l.t', '{}',
                                { 'X-Client' => 'carol' }] } 0 .. 23);
    is(scalar(grep { $_ && $_->{status} == 202 } @burst), 10,
       'limit: 24 at once over 3 pods: 10 accepted');
    is(scalar(grep { $_ && $_->{status} == 429 } @burst), 14,
       'limit: and 14 refused');

    my @keys = $r->keys('omnibus:bus:l:*');
    is(scalar(grep { !/^omnibus:bus:l:[0-9a-f]{32}$/ } @keys), 0,
       'limit: windows are omnibus:bus:l:<32 hex>');
    is(scalar @keys, 3, 'limit: one per client (alice, bob, carol)');
    is(join(' ', sort map { $r->cmd('ZCARD', $_) } @keys), '1 10 10',
       'limit: holding the admissions');
    my @pttl = map { $r->cmd('PTTL', $_) } @keys;
    is(scalar(grep { $_ <= 0 || $_ > 60000 } @pttl), 0,
       'limit: each expires within the window');

    is(msum(\@pods, 'redis_answers_total', 'result="rate_limited"'), 34,
       'limit: answers_total rate_limited over the pods: 34');
    is(sum(map { status($_)->{rate_limited} } @pods), 34,
       'limit: status rate_limited agrees');
    is(msum(\@pods, 'redis_fallbacks_total', 'feature="rate_limit"'), 0,
       'limit: nothing fell back to a pod');

    $_->check_log for @pods;
}

# 4. Redis gone: publishing goes on, each pod alone; back without a restart

{
    my $r = Omnibus::Redis->new;
    my @pods = map { pod(redis => $r, node => "pod-$_") } 1 .. 3;
    ok(all_connected(\@pods), 'down: every worker connected');

    my @res = map { publish($_, '/publish/d.t', 'Idempotency-Key' => 'up-0') }
              @pods;
    is(statuses(@res), '202 200 200', 'down: cross-pod dedup at first');

    my %fb0 = map { $_ => msum(\@pods, 'redis_fallbacks_total',
                               "feature=\"$_\"") } qw(dedup rate_limit);
    my @offset = map { length $_->error_log } @pods;

    $r->kill9;
    ok(wait_until(sub { !grep { (backend_up($_) // 1) != 0 } @pods },
                  timeout => 20), 'down: backend_up{backend="redis"} 0 on '
       . 'each pod');
    ok(wait_until(sub {
           my $i = 0;
           !grep { substr($_->error_log, $offset[$i++])
                       !~ m{cannot\ connect\ to\ redis://127\.0\.0\.1:\d+/0:
                            \ Connection\ refused}x
                 } @pods
       }, timeout => 20), 'down: each pod says it cannot connect');
    ok(!status($pods[0])->{up}, 'down: status up false');
    is(join(' ', map { $_->http(GET => '/readyz')->{status} } @pods),
       '200 200 200', 'down: /readyz is not affected');

    my %status;
    my @first = map { publish($_, '/publish/d.t',
                              'Idempotency-Key' => 'down-1') } @pods;
    $status{$_->{status}}++ for @first;
    is(statuses(@first), '202 202 202',
       'down: the same key on 3 pods: each accepts it');
    my %ids = map { $_->{json}{id} => 1 } @first;
    is(scalar keys %ids, 3, 'down: under 3 ids');
    my @repeat = map { publish($_, '/publish/d.t',
                               'Idempotency-Key' => 'down-1') } @pods;
    $status{$_->{status}}++ for @repeat;
    is(statuses(@repeat), '200 200 200', 'down: repeated on each pod: 200');
    is_deeply([map { $_->{json}{id} } @repeat],
              [map { $_->{json}{id} } @first], 'down: with that pod\'s id');

    # the limit: each pod counts alone, 10 per pod

    for my $i (0, 1) {
        my @l = map {
            publish($pods[$i], '/limited/l.t', 'X-Client' => 'dave')
        } 1 .. 12;
        $status{$_->{status}}++ for @l;
        is(join(' ', map { $_->{status} } @l),
           join(' ', (202) x 10, (429) x 2),
           'down: 12 publishes on pod ' . ($i + 1)
           . ': its own 10 per minute');
    }
    for my $n (1 .. 20) {
        my $x = publish($pods[$n % 3], '/publish/d.t', body => qq({"n":$n}));
        $status{$x ? $x->{status} : 'none'}++;
    }
    is_deeply([sort keys %status], [200, 202, 429],
              'down: only 202, 200 and 429 (no 5xx)')
        or diag(explain \%status);

    cmp_ok(msum(\@pods, 'redis_fallbacks_total', "feature=\"$_\""), '>',
           $fb0{$_}, "down: fallbacks_total{feature=\"$_\"} grew")
        for qw(dedup rate_limit);
    cmp_ok(msum(\@pods, 'redis_errors_total', 'reason="connect"'), '>', 0,
           'down: errors_total{reason="connect"} counted');

    # back, on the same port: found without a restart of nginx

    @offset = map { length $_->error_log } @pods;
    $r->start;
    ok(all_connected(\@pods, \@offset),
       'down: every worker connected again');
    ok(wait_until(sub { !grep { (backend_up($_) // 0) != 1 } @pods },
                  timeout => 20), 'down: backend_up 1 again on each pod');

    my @odd;
    for my $k (1 .. 5) {
        my @order = map { $pods[($k + $_) % 3] } 0 .. 2;
        my @res = together(map { [$_, '/publish/d.t', '{}',
                                  { 'Idempotency-Key' => "back-$k" }] }
                           @order);
        push @odd, "back-$k: " . statuses(@res) unless one_accepted(@res);
    }
    is_deeply(\@odd, [], 'down: cross-pod dedup again, 5 keys raced');
    my @l = map {
        publish($pods[$_ % 3], '/limited/l.t', 'X-Client' => 'erin')
    } 0 .. 14;
    is(join(' ', map { $_->{status} } @l), join(' ', (202) x 10, (429) x 5),
       'down: the limit counted across pods again');

    ok(wait_until(sub {
           join(' ', sort map { status($_)->{lock} } @pods)
               eq 'elsewhere elsewhere held'
       }, timeout => 20), 'down: the lock is held again, by one pod');

    # back for good: the breaker that opened closes again
    ok(wait_until(sub {
           !grep { (metric($_, 'backend_breaker_state', 'backend="redis"')
                    // -1) != 0 } @pods
       }, timeout => 20), 'down: backend_breaker_state{backend="redis"} 0 '
       . 'again') or diag('breaker: ' . join ' ', map { status($_)->{breaker} }
                                                   @pods);

    $_->check_log for @pods;
}

# 5. Redis frozen: no publish waits for it past the timeout

{
    my $r = Omnibus::Redis->new;
    my @pods = map { pod(redis => $r, node => "pod-$_",
                         params => 'timeout=300ms breaker=2:1s:1 lock=1s') }
               1 .. 2;
    ok(all_connected(\@pods), 'stall: every worker connected');
    my @res = map { publish($_, '/publish/s.t', 'Idempotency-Key' => 's-0') }
              @pods;
    is(statuses(@res), '202 200', 'stall: cross-pod dedup at first');
    my $timeouts = msum(\@pods, 'redis_errors_total', 'reason="timeout"');

    my $secs = 3;
    my $start = time;
    $r->stall($secs);

    my (%status, $open);
    my ($n, $longest) = (0, 0);
    while (time < $start + $secs - 0.5) {
        my $t = $pods[$n % 2];
        my $since = time;
        my $x = $n % 4 == 3
              ? publish($t, '/limited/s.t', 'X-Client' => "frank-$n")
              : publish($t, '/publish/s.t', 'Idempotency-Key' => "frozen-$n");
        my $took = time - $since;
        $longest = $took if $took > $longest;
        $status{$x ? $x->{status} : 'none'}++;
        $n++;
        for my $p (@pods) {
            $open ||= (metric($p, 'backend_breaker_state', 'backend="redis"')
                       // 0) == 1 || (status($p)->{breaker} // '') eq 'open';
        }
        sleep 0.02;
    }
    ok($r->wait_stall, 'stall: Redis answered again');

    is_deeply([keys %status], [202], "stall: $n publishes while frozen, "
              . 'each 202') or diag(explain \%status);
    cmp_ok($longest, '<', $secs, sprintf('stall: none waited for Redis '
           . '(the longest %.2f s)', $longest));
    cmp_ok(msum(\@pods, 'redis_errors_total', 'reason="timeout"'), '>',
           $timeouts, 'stall: errors_total{reason="timeout"} grew');
    like(join('', map { $_->error_log } @pods),
         qr{omnibus_redis\ "bus":\ redis://127\.0\.0\.1:\d+/0\ did\ not\ answer
            \ within\ 300\ ms}x,
         'stall: the timeout is logged');
    ok($open, 'stall: the breaker opened');
    cmp_ok(msum(\@pods, 'redis_fallbacks_total', 'feature="dedup"'), '>', 0,
           'stall: dedup fell back to the pods');

    ok(all_connected(\@pods), 'stall: every worker connected after it');
    ok(wait_until(sub { !grep { (backend_up($_) // 0) != 1 } @pods },
                  timeout => 20), 'stall: backend_up 1');
    @res = map { publish($_, '/publish/s.t', 'Idempotency-Key' => 's-after') }
           @pods;
    is(statuses(@res), '202 200', 'stall: a cross-pod duplicate caught again');
    is($res[1]{json}{id}, $res[0]{json}{id}, 'stall: with the first id');
    ok(wait_until(sub {
           !grep { (metric($_, 'backend_breaker_state', 'backend="redis"')
                    // -1) != 0 } @pods
       }, timeout => 20), 'stall: the breaker closed again')
        or diag('breaker: ' . join ' ', map { status($_)->{breaker} } @pods);

    $_->check_log for @pods;
}

# 6. a wrong password: one line per attempt, backing off, no crash; a
# reload with the right one recovers

{
    my $right = 'right-' . join('', map { int rand 10 } 1 .. 12);
    my $wrong = 'wrong-' . join('', map { int rand 10 } 1 .. 12);
    my $r = Omnibus::Redis->new(password => $right);
    # the failed AUTHs are [error] lines, which the check takes as they are
    my $t = pod(redis => $r, node => 'pod-pw', password => $wrong,
                no_start => 1);

    my ($ok, $out) = $t->test_conf;
    ok($ok, 'password: nginx -t reads the file, tries nothing') or diag($out);
    my $start = time;
    $t->start;

    my (%status, @first);
    while (time < $start + 4) {
        my $x = publish($t, '/publish/pw.t',
                        'Idempotency-Key' => 'pw-' . int(rand 1e9));
        $status{$x ? $x->{status} : 'none'}++;
        push @first, publish($t, '/publish/pw.t', 'Idempotency-Key' => 'pw-1')
            if @first < 2;
        sleep 0.1;
    }
    my @auth = $t->error_log
               =~ /\[error\] (\d+)#\d+: omnibus_redis "bus": AUTH to /g;

    is_deeply([keys %status], [202], 'password: publishes accepted '
              . "($status{202} in 4 s)") or diag(explain \%status);
    is_deeply([map { $_->{status} } @first], [202, 200],
              'password: a repeated key is still caught by the pod');
    like($t->error_log,
         qr{\[error\]\ \d+\#\d+:\ omnibus_redis\ "bus":\ AUTH\ to
            \ redis://127\.0\.0\.1:\d+/0\ failed:\ WRONGPASS}x,
         'password: the error log says AUTH failed, WRONGPASS');
    my %per;
    $per{$_}++ for @auth;
    cmp_ok(scalar @auth, '<', 15, 'password: attempts back off ('
           . scalar(@auth) . ' in 4 s: ' . join(', ', map { $per{$_} }
                                               sort keys %per)
           . ' per worker)');
    ok(wait_until(sub {
           my $m = metric($t, 'redis_errors_total', 'reason="auth"');
           my $l = () = $t->error_log =~ /omnibus_redis "bus": AUTH to /g;
           defined $m && $m == $l
       }, timeout => 10), 'password: errors_total{reason="auth"} counts each');
    is(scalar(() = $t->error_log =~ /exited on signal/g), 0,
       'password: no worker crashed');
    unlike($t->error_log, qr/\Q$wrong\E|\Q$right\E/,
           'password: neither password in the log');
    unlike(join('', map { $t->http(GET => $_)->{body} } qw(/metrics /omnibus/)),
           qr/\Q$wrong\E|\Q$right\E/, 'password: nor in metrics and status');
    is($t->http(GET => '/readyz')->{status}, 200,
       'password: /readyz is not affected');
    is(backend_up($t), 0, 'password: backend_up 0');
    ok(!status($t)->{up}, 'password: status up false');
    cmp_ok(status($t)->{fallbacks}{dedup}, '>', 0,
           'password: dedup fell back to the pod');

    # read when the configuration is loaded: a reload

    write_file(pw_file($t), "$right\n");
    my $from = length $t->error_log;
    $t->reload;
    ok(all_connected([$t], [$from]),
       'password: the new workers connected after the reload');
    my $auth = () = $t->error_log =~ /omnibus_redis "bus": AUTH to /g;
    ok(wait_until(sub { (backend_up($t) // 0) == 1 }, timeout => 20),
       'password: backend_up 1 after the reload')
        or diag('status: ', explain(status($t)));
    ok(wait_until(sub { status($t)->{up} }, timeout => 5),
       'password: status up after the reload');

    my $claimed = status($t)->{claimed};
    my $x = publish($t, '/publish/pw.t', 'Idempotency-Key' => 'pw-fixed');
    is($x->{status}, 202, 'password: a publish after the reload');
    is(status($t)->{claimed}, $claimed + 1, 'password: claimed in Redis');
    is_deeply([map { $r->cmd('GET', $_) } $r->keys('omnibus:bus:d:*')],
              [$x->{json}{id}], 'password: its claim is there');
    is(scalar(() = $t->error_log =~ /omnibus_redis "bus": AUTH to /g), $auth,
       'password: no AUTH failed since');
    unlike($t->error_log, qr/\Q$wrong\E|\Q$right\E/,
           'password: neither password in the log after all');
    $t->check_log;
}

# 7. the cluster lock: one holder, taken over when it dies, given up when
# someone else has the key

{
    my $r = Omnibus::Redis->new;
    # a pod killed with its master: a worker's signal 9, if anyone logs it,
    # is what the scenario does
    my @pods = map { pod(redis => $r, node => "pod-$_",
                         allow => [qr/exited on signal 9/]) } qw(a b);
    my %pod = (a => $pods[0], b => $pods[1]);
    ok(all_connected(\@pods), 'lock: every worker connected');

    my $lock = sub { join ' ', map { status($_)->{lock} } @pods };
    ok(wait_until(sub { $lock->() =~ /^(held elsewhere|elsewhere held)$/ },
                  timeout => 20), 'lock: one pod holds it, the other knows')
        or diag($lock->());
    my ($holder, $other) = $lock->() eq 'held elsewhere' ? qw(a b) : qw(b a);
    my ($h, $o) = @pod{$holder, $other};
    note("pod-$holder holds the lock");

    is($r->cmd('GET', 'omnibus:bus:lock'), "pod-$holder",
       'lock: the key names the holder');
    my $pttl = $r->cmd('PTTL', 'omnibus:bus:lock');
    ok($pttl > 0 && $pttl <= 1000,
       "lock: it expires within lock=1s ($pttl ms)");
    like($h->error_log,
         qr/\[notice\]\ .*omnibus_redis\ "bus":\ node\ "pod-$holder"\ holds\ the
            \ cluster\ lock/x,
         'lock: the holder says so');
    is(join(' ', map { metric($_, 'redis_lock_held') } $h, $o), '1 0',
       'lock: redis_lock_held 1 on the holder, 0 on the other');

    # renewed: over three lives of the key nothing changes hands
    sleep 3;
    is($lock->(), $holder eq 'a' ? 'held elsewhere' : 'elsewhere held',
       'lock: still held by the same pod after 3 s');
    is(join(' ', map { metric($h, 'redis_lock_total', "event=\"$_\"") }
                 qw(acquired lost)), '1 0', 'lock: acquired once, never lost');
    is(metric($o, 'redis_lock_total', 'event="acquired"'), 0,
       'lock: the other never acquired it');

    # the holder dies

    ok(crash($h), "lock: pod-$holder killed, master and workers");
    ok(wait_until(sub { status($o)->{lock} eq 'held' }, timeout => 20),
       "lock: pod-$other takes it over");
    is($r->cmd('GET', 'omnibus:bus:lock'), "pod-$other",
       'lock: the key names it');
    is(metric($o, 'redis_lock_total', 'event="acquired"'), 1,
       'lock: lock_total{event="acquired"} 1');
    is(metric($o, 'redis_lock_held'), 1, 'lock: redis_lock_held 1');
    like($o->error_log,
         qr/\[notice\]\ .*omnibus_redis\ "bus":\ node\ "pod-$other"\ holds\ the
            \ cluster\ lock/x, 'lock: the new holder says so');

    # someone else has the key: the holder stops leading

    $r->cmd('SET', 'omnibus:bus:lock', 'intruder', 'PX', 4000);
    ok(wait_until(sub { status($o)->{lock} ne 'held' }, timeout => 10),
       'lock: the holder finds the key taken, and is no longer holding');
    is(status($o)->{lock}, 'elsewhere', 'lock: status says elsewhere');
    like($o->error_log,
         qr/\[warn\]\ .*omnibus_redis\ "bus":\ the\ cluster\ lock\ is\ no
            \ longer\ node\ "pod-$other"'s/x,
         'lock: and logs it');
    is(metric($o, 'redis_lock_total', 'event="lost"'), 1,
       'lock: lock_total{event="lost"} 1');
    is(metric($o, 'redis_lock_held'), 0, 'lock: redis_lock_held 0');
    is($r->cmd('GET', 'omnibus:bus:lock'), 'intruder',
       'lock: the intruder\'s key is left alone');

    # while the intruder's key lives, nobody else holds it
    my $meanwhile = '';
    ok(wait_until(sub {
           my $v = $r->cmd('GET', 'omnibus:bus:lock') // '';
           $meanwhile .= ' ' . status($o)->{lock} if $v eq 'intruder';
           $v ne 'intruder'
       }, timeout => 20, interval => 0.1),
       'lock: the intruder\'s key expires');
    unlike($meanwhile, qr/held/, 'lock: not taken back meanwhile');
    ok(wait_until(sub { status($o)->{lock} eq 'held' }, timeout => 20),
       'lock: taken back once the intruder\'s key expired');
    is($r->cmd('GET', 'omnibus:bus:lock'), "pod-$other",
       'lock: the key names it again');
    is(metric($o, 'redis_lock_total', 'event="acquired"'), 2,
       'lock: lock_total{event="acquired"} 2');
    my $notices = () = $o->error_log
                       =~ /node "pod-$other" holds the cluster lock/g;
    is($notices, 2, 'lock: two notices');

    $_->check_log for @pods;
}

# 8. a full socket to Redis: a frozen server (SIGSTOP, so the kernel stops
# reading its socket) and 300 relays of 64 KiB fill the send buffer; the
# worker must not spin on its write (each publish is still answered), and
# comes back when Redis does

{
    my $r = Omnibus::Redis->new;
    my $url = $r->url;
    my $t = Omnibus::Test->new(ports => 1);
    $t->conf(<<"EOF");
    omnibus_zone zone=bus:64m shards=4 retain=400;
    omnibus_node pod-full;
    omnibus_redis bus $url fanout=on dedup=off rate_limit=off timeout=1s
                  breaker=3:1s:1;

    server {
        listen 127.0.0.1:%%PORT0%%;
        keepalive_requests 100000;

        location /publish/ {
            omnibus_publish bus;
            omnibus_max_message_size 1m;
        }
        location /sub/ { omnibus_subscribe bus buffer=64m; }
        location /omnibus/ { omnibus_admin bus; }
        location = /metrics { omnibus_metrics; }
        location = /healthz { omnibus_health bus; }
    }
EOF
    $t->start;
    ok(all_connected([$t]), 'full: every worker connected');
    ok(wait_until(sub { (backend_up($t) // 0) == 1 }, timeout => 20),
       'full: backend_up 1');

    kill 'STOP', $r->pid;
    my $body = '{"pad":"' . ('x' x (64 * 1024 - 10)) . '"}';
    my ($n, $bad, $longest) = (0, undef, 0);
    for my $i (1 .. 300) {
        my $since = time;
        my $x = $t->http(POST => '/publish/full.t' . ($i % 16), body => $body,
                         timeout => 10);
        my $took = time - $since;
        $longest = $took if $took > $longest;
        if (!$x || $x->{status} != 202) {
            $bad = "publish $i: " . ($x ? "$x->{status} $x->{body}"
                                        : "no answer within 10 s");
            last;
        }
        $n++;
    }
    is($n, 300, sprintf('full: 300 publishes of 64 KiB with Redis frozen, '
       . 'each answered 202 (the longest %.2f s)', $longest))
        or diag($bad);
    my @h = map { $t->http(GET => '/healthz', timeout => 10) } 1 .. 4;
    is(join(' ', map { $_ ? $_->{status} : 'none' } @h), '200 200 200 200',
       'full: /healthz answers meanwhile');
    my $m = $t->http(GET => '/metrics', timeout => 10);
    is($m && $m->{status}, 200, 'full: /metrics answers meanwhile');

    kill 'CONT', $r->pid;
    ok(wait_until(sub { (backend_up($t) // 0) == 1 }, timeout => 30),
       'full: backend_up{backend="redis"} 1 again after Redis resumes');
    my $x = $t->http(POST => '/publish/full.after', body => '{}',
                     timeout => 10);
    is($x && $x->{status}, 202, 'full: a publish after it');

    $t->check_log;
}

# 9. a message held for its cluster claim, its workers killed: the new
# workers let it go (at least once), and its shard dispatches again; no
# omnibus_store here

{
    my $r = Omnibus::Redis->new;
    my $url = $r->url;
    my $t = Omnibus::Test->new(ports => 2,
                               allow => [qr/exited on signal 9/]);
    my $rx = Omnibus::Receiver->new(t => $t, index => 1);
    # one shard: held.two queues behind held.one
    $t->conf(<<"EOF");
    omnibus_zone zone=bus:16m shards=1 min_shards=1 max_shards=1
                 dedup_ttl=1h;
    omnibus_node pod-held;
    omnibus_redis bus $url dedup=on fanout=off rate_limit=off timeout=5s;
    omnibus_route bus held.> http://127.0.0.1:%%PORT1%%/held;

    server {
        listen 127.0.0.1:%%PORT0%%;

        location /publish/ { omnibus_publish bus; }
        location /omnibus/ { omnibus_admin bus; }
        location = /metrics { omnibus_metrics; }
        location = /healthz { omnibus_health bus; }
    }
EOF
    $t->start;
    ok(all_connected([$t]), 'held: every worker connected');
    ok(wait_until(sub { (backend_up($t) // 0) == 1 }, timeout => 20),
       'held: backend_up 1');

    my $queued = sub {
        my $h = $t->http(GET => '/healthz', timeout => 5);
        return $h && $h->{json} ? $h->{json}{queued} // -1 : -1;
    };
    kill 'STOP', $r->pid;
    my $c = $t->conn;
    my $body = '{"n":1}';
    $c->send_raw("POST /publish/held.one HTTP/1.1\r\nHost: localhost\r\n"
                 . "Connection: close\r\nIdempotency-Key: held-1\r\n"
                 . 'Content-Length: ' . length($body) . "\r\n\r\n$body");
    ok(wait_until(sub { $queued->() == 1 }, timeout => 4, interval => 0.05),
       'held: the keyed publish is queued held, waiting for its claim');

    my @old = $t->worker_pids;
    kill 'KILL', @old;
    ok(wait_until(sub {
           my @w = $t->worker_pids;
           @w == 2 && !grep { my $p = $_; grep { $_ == $p } @old } @w
       }, timeout => 20), 'held: both workers killed -9 and respawned');
    $c->close;
    kill 'CONT', $r->pid;

    my $two = $t->http(POST => '/publish/held.two', body => '{"n":2}');
    is($two && $two->{status}, 202, 'held: a publish without a key');
    my $topics = sub {
        my %t = map { ($_->{headers}{'x-omnibus-topic'} // '') => 1 }
                $rx->requests_for('/held');
        join ' ', sort keys %t;
    };
    ok(wait_until(sub { $topics->() =~ /\bheld\.two\b/ }, timeout => 30),
       'held: held.two reaches the receiver (the dead worker\'s held head '
       . 'was let go)') or diag('received: ' . $topics->());
    ok(wait_until(sub { $topics->() eq 'held.one held.two' }, timeout => 30),
       'held: and held.one too (at least once)')
        or diag('received: ' . $topics->());
    ok(wait_until(sub { $queued->() == 0 }, timeout => 20),
       'held: nothing left queued');

    $t->check_log;
}

done_testing;
