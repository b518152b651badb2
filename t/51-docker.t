# docker/ without Docker: the image's entrypoint renders nginx.conf from
# the template for a few environments (Kafka routes and consumers among
# them, and the environment compose.yml gives its replicas), and each
# result passes `nginx -t` with the built module (one is served for real,
# its Kafka route writing to its fallback file); bad variables are refused
# with their name; the load balancer's configuration passes `nginx -t`;
# the compose file passes `docker-compose config`, the YAML files
# yamllint, prometheus.yml promtool and alertmanager.yml amtool (each
# skipped, with the reason, when its tool is missing). The store
# (omnibus_store, PostgreSQL) renders from OMNIBUS_STORE_*, bad values are
# refused, and a rendered store is served against a real PostgreSQL
# (t/lib/Omnibus/Pg.pm; skipped without its tools). Redis (omnibus_redis)
# renders from OMNIBUS_REDIS_*, only with a URL; a password in the URL, a
# bad URL, an unknown parameter are refused naming the variable; a missing
# password file stops the entry point before nginx; compose.yml's redis
# (AOF, the password from its secret) is run here with its command and
# healthcheck on the local redis-server; and a rendered Redis is served
# against a real Redis (t/lib/Omnibus/Redis.pm; skipped without
# redis-server), publishes and /readyz unaffected while it is down.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX ();
use Test::More;
use lib 't/lib';
use Omnibus::Test;
use Omnibus::Pg;
use Omnibus::Redis;

my $ROOT = abs_path(dirname(__FILE__) . '/..');
my $ENTRY = "$ROOT/docker/entrypoint.sh";
my $TEMPLATE = "$ROOT/docker/nginx.conf.template";
my $NGINX = $Omnibus::Test::NGINX;
my $MODULE = $Omnibus::Test::MODULE;

BAIL_OUT("$MODULE is missing: run make first") unless -f $MODULE;

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or return '';
    local $/;
    my $text = <$fh>;
    return $text // '';
}

sub spew {
    my ($file, $text) = @_;
    open my $fh, '>', $file or die "$file: $!";
    print $fh $text;
    close $fh or die "$file: $!";
}

# run(\%env, @cmd): (exit status, stdout, stderr), with no OMNIBUS_*
# variable (nor PGPASSWORD, PGPASSFILE) of the caller's but the module and
# the template, plus %env
sub run {
    my ($env, @cmd) = @_;
    my $dir = tempdir('omnibus-t51-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    local %ENV = %ENV;
    delete $ENV{$_} for grep { /^(?:OMNIBUS_|PGPASS)/ } keys %ENV;
    $ENV{OMNIBUS_MODULE} = $MODULE;
    $ENV{OMNIBUS_TEMPLATE} = $TEMPLATE;
    $ENV{$_} = $env->{$_} for keys %$env;

    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', "$dir/out";
        open STDERR, '>', "$dir/err";
        exec @cmd or exit 127;
    }
    waitpid $pid, 0;
    return ($? >> 8, slurp("$dir/out"), slurp("$dir/err"));
}

# the renderer under the system's POSIX sh (dash on Debian)
sub render { my (%env) = @_; run(\%env, '/bin/sh', $ENTRY, 'render') }

# nginx -t in a prefix as the entrypoint leaves it (kafka/ made for the
# fallback files)
sub nginx_t {
    my ($conf) = @_;
    my $dir = tempdir('omnibus-t51-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    mkdir "$dir/kafka" or die "$dir/kafka: $!";
    spew("$dir/nginx.conf", $conf);
    my $out = `$NGINX -t -p $dir/ -c $dir/nginx.conf 2>&1`;
    return ($? == 0, $out);
}

# render, then nginx -t; returns the configuration
sub renders_and_passes {
    my ($name, %env) = @_;
    my ($rc, $conf, $err) = render(%env);
    is($rc, 0, "$name: renders") or diag($err);
    is($err, '', "$name: nothing on stderr");
    my ($ok, $out) = nginx_t($conf);
    ok($ok, "$name: nginx -t passes with the module") or diag($out);
    if ($env{OMNIBUS_REDIS_URL}) {
        is(scalar(() = $conf =~ /^\s*omnibus_redis /mg), 1,
           "$name: one omnibus_redis");
    } else {
        unlike($conf, qr/omnibus_redis/,
               "$name: no Redis without OMNIBUS_REDIS_URL");
    }
    unlike($conf, qr/@[a-z_]+@/, "$name: no placeholder left");
    return $conf;
}

# --- the defaults: conf/omnibus.conf's bus on port 8080
my $conf = renders_and_passes('defaults');
like($conf, qr/^load_module \Q$MODULE\E;$/m, 'defaults: the module loaded');
like($conf, qr/^worker_processes 2;$/m, 'defaults: 2 workers');
like($conf, qr/^\s+listen 8080;$/m, 'defaults: listens on 8080');
like($conf, qr/omnibus_zone\s+zone=bus:64m\s+shards=8\s+min_shards=2
               \s+max_shards=16\s+queue_size=10000\s+concurrency=4
               \s+dedup_ttl=3600s\s+dlq_size=10000\s+retain=1000
               \s+backpressure=80%:50%;/x,
     'defaults: the zone as README documents its defaults');
like($conf, qr/omnibus_subscribe bus heartbeat=15s buffer=1m;/,
     'defaults: subscribers');
like($conf, qr/allow 127\.0\.0\.1;\s+allow ::1;\s+deny all;\s+omnibus_admin bus;/,
     'defaults: the admin API for loopback only');
like($conf, qr/^error_log stderr notice;$/m, 'defaults: errors to stderr');
like($conf, qr/access_log \/dev\/stdout omnibus;/, 'defaults: access log');
like($conf, qr/add_header X-Omnibus-Node [A-Za-z0-9._-]+ always;/,
     'defaults: the node name (the host name)');
unlike($conf, qr/omnibus_(?:route|autoscale|rate_limit)|^user /m,
       'defaults: no route, autoscaling, rate limit or user');
unlike($conf, qr/kafka/, 'defaults: nothing of Kafka');
unlike($conf, qr/omnibus_store|^env /m, 'defaults: no store, no env');
my $host = `uname -n`;
chomp $host;
like($conf, qr/^\s+omnibus_node \Q$host\E;$/m,
     'defaults: omnibus_node is the host name');

# --- routes: ";" and newlines separate them, parameters pass through
$conf = renders_and_passes('routes',
    OMNIBUS_ROUTES => "orders.> http://127.0.0.1:9000/hooks/orders "
                      . "timeout=2s retries=5 backoff=20ms max_backoff=10s "
                      . "breaker=5:60s:3 concurrency=1 name=orders;"
                      . " audit.*.eu   http://localhost:9001/a?src=bus ;\n"
                      . "\n*.alerts http://[::1]:9002/alerts;");
my @routes = $conf =~ /^\s*(omnibus_route .*);$/mg;
is_deeply(\@routes, [
    'omnibus_route bus orders.> http://127.0.0.1:9000/hooks/orders '
        . 'timeout=2s retries=5 backoff=20ms max_backoff=10s '
        . 'breaker=5:60s:3 concurrency=1 name=orders',
    'omnibus_route bus audit.*.eu http://localhost:9001/a?src=bus',
    'omnibus_route bus *.alerts http://[::1]:9002/alerts',
], 'routes: one omnibus_route per entry, in order');

# --- Kafka: kafka:// routes (quoted, brokers of their own or of
# OMNIBUS_KAFKA_BROKERS) beside webhooks, and consumers
$conf = renders_and_passes('kafka',
    OMNIBUS_KAFKA_BROKERS => 'kafka-1:9092,kafka-2.example:9093',
    OMNIBUS_ROUTES => "audit.> kafka:///audit-{topic} acks=all linger=10ms "
                      . "batch=64k compression=zstd idempotence=on key=topic "
                      . "fallback=kafka/audit.ndjson timeout=2s retries=2 "
                      . "name=audit;\n"
                      . "pay.> kafka://127.0.0.1:9092,[::1]:9093/payments "
                      . "acks=1 idempotence=off key=idempotency_key "
                      . "compression=none fallback=/tmp/pay.ndjson;"
                      . "kafka.> http://127.0.0.1:9000/in",
    OMNIBUS_KAFKA_CONSUME => "topics=orders,refunds group=bus "
                      . "topic=from-kafka.{topic} offset_reset=earliest "
                      . "max_poll=50 session_timeout=10s;\n"
                      . "10.0.0.7:9092 topics=events");
@routes = $conf =~ /^\s*(omnibus_route .*);$/mg;
is_deeply(\@routes, [
    'omnibus_route bus audit.> "kafka://kafka-1:9092,kafka-2.example:9093/'
        . 'audit-{topic}" acks=all linger=10ms batch=64k compression=zstd '
        . 'idempotence=on key=topic fallback=kafka/audit.ndjson timeout=2s '
        . 'retries=2 name=audit',
    'omnibus_route bus pay.> "kafka://127.0.0.1:9092,[::1]:9093/payments" '
        . 'acks=1 idempotence=off key=idempotency_key compression=none '
        . 'fallback=/tmp/pay.ndjson',
    'omnibus_route bus kafka.> http://127.0.0.1:9000/in',
], 'kafka: kafka:// routes quoted, kafka:/// with OMNIBUS_KAFKA_BROKERS');
my @consume = $conf =~ /^\s*(omnibus_kafka_consume .*);$/mg;
is_deeply(\@consume, [
    'omnibus_kafka_consume bus kafka-1:9092,kafka-2.example:9093 '
        . 'topics=orders,refunds group=bus "topic=from-kafka.{topic}" '
        . 'offset_reset=earliest max_poll=50 session_timeout=10s',
    'omnibus_kafka_consume bus 10.0.0.7:9092 topics=events',
], 'kafka: one omnibus_kafka_consume per entry, topic= quoted');
like($conf, qr/omnibus_route[^;]+;\n\s*omnibus_kafka_consume/,
     'kafka: consumers after the routes, in the http block');

# --- everything else changed
$conf = renders_and_passes('tuned',
    OMNIBUS_ZONE => 'events', OMNIBUS_ZONE_SIZE => '32m',
    OMNIBUS_SHARDS => 4, OMNIBUS_MIN_SHARDS => 1, OMNIBUS_MAX_SHARDS => 8,
    OMNIBUS_QUEUE_SIZE => 500, OMNIBUS_CONCURRENCY => 2,
    OMNIBUS_DEDUP_TTL => '10m', OMNIBUS_DLQ_SIZE => 100,
    OMNIBUS_RETAIN => 0, OMNIBUS_BACKPRESSURE => '90%:60%',
    OMNIBUS_WORKER_PROCESSES => 'auto', OMNIBUS_WORKER_CONNECTIONS => 4096,
    OMNIBUS_LOG_LEVEL => 'info', OMNIBUS_ACCESS_LOG => 'off',
    OMNIBUS_NODE => 'omnibus-7.example', OMNIBUS_LISTEN => '127.0.0.1:9080',
    OMNIBUS_AUTOSCALE => 'interval=30s up=70% down=10%',
    OMNIBUS_RATE_LIMIT => '600r/m',
    OMNIBUS_RATE_LIMIT_KEY => '$http_x_api_key',
    OMNIBUS_MAX_MESSAGE_SIZE => '256k', OMNIBUS_DEDUP => 'content',
    OMNIBUS_JSON => 'off', OMNIBUS_ADMIN_ALLOW => '10.0.0.0/8, fd00::/8',
    OMNIBUS_REAL_IP_FROM => '10.0.0.0/8 192.168.1.1',
    OMNIBUS_USER => 'nobody nogroup');
like($conf, qr/omnibus_zone\s+zone=events:32m\s+shards=4\s+min_shards=1
               \s+max_shards=8\s+queue_size=500\s+concurrency=2
               \s+dedup_ttl=10m\s+dlq_size=100\s+retain=0
               \s+backpressure=90%:60%;/x, 'tuned: the zone');
is(scalar(() = $conf =~ /omnibus_(?:publish|admin|health) events\b/g), 4,
   'tuned: every location uses the zone');
unlike($conf, qr/subscribe/, 'tuned: no subscribers without a retain ring');
like($conf, qr/^\s+omnibus_autoscale events interval=30s up=70% down=10%;$/m,
     'tuned: autoscaling');
like($conf, qr/^\s+omnibus_rate_limit \$http_x_api_key rate=600r\/m;$/m,
     'tuned: the rate limit');
like($conf, qr/allow 10\.0\.0\.0\/8;\s+allow fd00::\/8;\s+deny all;/,
     'tuned: the admin allow list');
like($conf, qr/set_real_ip_from\ 10\.0\.0\.0\/8;\s+set_real_ip_from\ 192\.168\.1\.1;
               \s+real_ip_header\ X-Forwarded-For;/x, 'tuned: real IP');
like($conf, qr/^user nobody nogroup;$/m, 'tuned: user');
like($conf, qr/^\s+access_log off;$/m, 'tuned: no access log');
like($conf, qr/^\s+listen 127\.0\.0\.1:9080;$/m, 'tuned: listen address');
like($conf, qr/omnibus_dedup content;\s+omnibus_json off;/,
     'tuned: dedup and JSON');
like($conf, qr/^\s+omnibus_node omnibus-7\.example;$/m,
     'tuned: omnibus_node is OMNIBUS_NODE');

# --- the store: OMNIBUS_STORE_* to omnibus_store, after the zone; the
# password from a file (read by nginx -t) or PGPASSWORD (kept for the
# workers by "env")
my $pwdir = tempdir('omnibus-t51-XXXXXX', TMPDIR => 1, CLEANUP => 1);
spew("$pwdir/pg-password", "dev-only\n");
$conf = renders_and_passes('store',
    OMNIBUS_STORE_URL => 'postgresql://omnibus@127.0.0.1:5432/omnibus'
                         . '?sslmode=require&connect_timeout=5',
    OMNIBUS_STORE_PASSWORD_FILE => "$pwdir/pg-password",
    OMNIBUS_STORE_MODE => 'async',
    OMNIBUS_STORE_PARAMS => ' pool=25  overflow=10 recycle=30m batch=256 '
                            . "flush=5ms timeout=3s retention=2d "
                            . 'adopt_after=90s breaker=5:60s:3 ',
    OMNIBUS_NODE => 'bus-1', PGPASSWORD => 'ignored');
my @store = $conf =~ /^\s*(omnibus_store .*);$/mg;
is_deeply(\@store, [
    'omnibus_store bus postgresql://omnibus@127.0.0.1:5432/omnibus'
        . "?sslmode=require&connect_timeout=5 password_file=$pwdir/pg-password"
        . ' mode=async pool=25 overflow=10 recycle=30m batch=256 flush=5ms'
        . ' timeout=3s retention=2d adopt_after=90s breaker=5:60s:3',
], 'store: one omnibus_store with the URL, password file, mode, params');
like($conf, qr/omnibus_zone[^;]+;\n\s*omnibus_store/,
     'store: after the zone');
like($conf, qr/^\s+omnibus_node bus-1;$/m, 'store: omnibus_node');
like($conf, qr/^pid [^;]+;\nenv PGPASSWORD;$/m,
     'store: env PGPASSWORD; in the main context');
$conf = renders_and_passes('store defaults',
    OMNIBUS_STORE_URL => 'postgres://bus@localhost/bus');
like($conf, qr/^\s+omnibus_store bus postgres:\/\/bus\@localhost\/bus mode=sync;$/m,
     'store defaults: mode=sync, nothing else');
unlike($conf, qr/^env /m, 'store defaults: no env line without PGPASSWORD');
my ($rc, $out, $err) = render(
    OMNIBUS_STORE_URL => 'postgresql://u@127.0.0.1/d',
    PGPASSWORD => 'x', PGPASSFILE => '/x/.pgpass');
like($out, qr/^env PGPASSWORD;\nenv PGPASSFILE;$/m,
     'store: env PGPASSWORD; and env PGPASSFILE;');
($rc, $out, $err) = render(PGPASSWORD => 'x');
unlike($out, qr/^env /m, 'no store: PGPASSWORD is not kept');

# --- Redis: OMNIBUS_REDIS_* to omnibus_redis, after the zone and the
# store; the password from a file (read by nginx -t), the parameters as
# given
spew("$pwdir/redis-password", "dev-only-too\n");
$conf = renders_and_passes('redis',
    OMNIBUS_REDIS_URL => 'redis://omnibus@127.0.0.1:6380/2',
    OMNIBUS_REDIS_PASSWORD_FILE => "$pwdir/redis-password",
    OMNIBUS_REDIS_PARAMS => ' prefix=bus: timeout=500ms  breaker=3:30s:2 '
                            . 'dedup=on rate_limit=off fanout=on lock=15s '
                            . 'stream=5000 ',
    OMNIBUS_STORE_URL => 'postgresql://omnibus@127.0.0.1:5432/omnibus',
    OMNIBUS_NODE => 'bus-1');
my @redis = $conf =~ /^\s*(omnibus_redis .*);$/mg;
is_deeply(\@redis, [
    'omnibus_redis bus redis://omnibus@127.0.0.1:6380/2'
        . " password_file=$pwdir/redis-password prefix=bus: timeout=500ms"
        . ' breaker=3:30s:2 dedup=on rate_limit=off fanout=on lock=15s'
        . ' stream=5000',
], 'redis: one omnibus_redis with the URL, password file, params');
like($conf, qr/omnibus_zone[^;]+;\n\s*omnibus_store[^;]+;\n\s*omnibus_redis /,
     'redis: after the zone and the store');
like($conf, qr/^\s+omnibus_node bus-1;$/m, 'redis: omnibus_node');
$conf = renders_and_passes('redis defaults',
    OMNIBUS_REDIS_URL => 'redis://localhost');
like($conf, qr/^\s+omnibus_redis bus redis:\/\/localhost;$/m,
     'redis defaults: the URL alone (the features on: the module\'s'
     . ' defaults)');
$conf = renders_and_passes('redis IPv6',
    OMNIBUS_REDIS_URL => 'redis://[::1]:6379/15');
like($conf, qr/^\s+omnibus_redis bus redis:\/\/\[::1\]:6379\/15;$/m,
     'redis IPv6: an address in brackets, database 15');

($rc, $out, $err) = render(OMNIBUS_AUTOSCALE => 'on');
like($out, qr/^\s+omnibus_autoscale bus;$/m, 'autoscale on: the defaults');
($rc, $out, $err) = render(OMNIBUS_ADMIN_ALLOW => 'all');
like($out, qr/allow all;\s+omnibus_admin/, 'admin allow all');
($rc, $out, $err) = render(OMNIBUS_ADMIN_ALLOW => 'none');
like($out, qr/\{\s+deny all;\s+omnibus_admin/, 'admin allow none');

# --- what only nginx knows is left to nginx -t, which names it
($rc, $out, $err) = render(OMNIBUS_SHARDS => 20);
is($rc, 0, 'shards above max_shards: renders');
my ($ok, $tout) = nginx_t($out);
ok(!$ok, 'shards above max_shards: nginx -t fails');
like($tout, qr/shards must satisfy 1 <= min_shards <= shards <= max_shards/,
     'shards above max_shards: nginx says why');
# Redis's host is resolved when nginx loads the configuration
($rc, $out, $err) = render(OMNIBUS_REDIS_URL => 'redis://no-such-host.invalid');
is($rc, 0, 'a Redis host that does not resolve: renders');
($ok, $tout) = nginx_t($out);
ok(!$ok, 'a Redis host that does not resolve: nginx -t fails');
like($tout, qr/omnibus_redis: "redis:\/\/no-such-host\.invalid"/,
     'a Redis host that does not resolve: nginx names it');
($rc, $out, $err) = render(OMNIBUS_REDIS_URL => 'redis://127.0.0.1',
                           OMNIBUS_REDIS_PARAMS => 'stream=10');
($ok, $tout) = nginx_t($out);
ok(!$ok && $tout =~ /omnibus_redis: invalid "stream=10"/,
   'a Redis stream below 100: nginx -t says so') or diag($tout);

# --- bad input: refused before nginx, naming the variable
my @bad = (
    [ { OMNIBUS_SHARDS => 'eight' }, qr/OMNIBUS_SHARDS="eight": expected a number/ ],
    [ { OMNIBUS_SHARDS => '0' }, qr/OMNIBUS_SHARDS="0"/ ],
    [ { OMNIBUS_ZONE_SIZE => '64m; include /etc/passwd' },
      qr/OMNIBUS_ZONE_SIZE="64m; include \/etc\/passwd": expected a size/ ],
    [ { OMNIBUS_ZONE_SIZE => "64m\nerror_log /tmp/x" },
      qr/OMNIBUS_ZONE_SIZE must be one line/ ],
    [ { OMNIBUS_DEDUP_TTL => 'soon' }, qr/OMNIBUS_DEDUP_TTL="soon"/ ],
    [ { OMNIBUS_BACKPRESSURE => '80' }, qr/OMNIBUS_BACKPRESSURE="80"/ ],
    [ { OMNIBUS_WORKER_PROCESSES => 'many' },
      qr/OMNIBUS_WORKER_PROCESSES="many": expected a number or auto/ ],
    [ { OMNIBUS_LOG_LEVEL => 'loud' }, qr/OMNIBUS_LOG_LEVEL="loud"/ ],
    [ { OMNIBUS_NODE => 'a b' }, qr/OMNIBUS_NODE="a b": expected a host name/ ],
    [ { OMNIBUS_NODE => 'x}' }, qr/OMNIBUS_NODE="x}"/ ],
    [ { OMNIBUS_LISTEN => '80 ssl' }, qr/OMNIBUS_LISTEN="80 ssl"/ ],
    [ { OMNIBUS_JSON => 'yes' }, qr/OMNIBUS_JSON="yes": expected on or off/ ],
    [ { OMNIBUS_DEDUP => 'both' }, qr/OMNIBUS_DEDUP="both"/ ],
    [ { OMNIBUS_ADMIN_ALLOW => 'everyone' },
      qr/OMNIBUS_ADMIN_ALLOW="everyone": expected IP addresses/ ],
    [ { OMNIBUS_REAL_IP_FROM => 'lb;' }, qr/OMNIBUS_REAL_IP_FROM="lb;"/ ],
    [ { OMNIBUS_AUTOSCALE => 'fast' }, qr/OMNIBUS_AUTOSCALE="fast"/ ],
    [ { OMNIBUS_RATE_LIMIT => '5r/h' },
      qr/OMNIBUS_RATE_LIMIT="5r\/h": expected Nr\/s or Nr\/m/ ],
    [ { OMNIBUS_RATE_LIMIT => '5r/s', OMNIBUS_RATE_LIMIT_KEY => 'ip' },
      qr/OMNIBUS_RATE_LIMIT_KEY="ip"/ ],
    [ { OMNIBUS_USER => 'root; daemon on' }, qr/OMNIBUS_USER=/ ],
    [ { OMNIBUS_ROUTES => 'orders.>' },
      qr/OMNIBUS_ROUTES entry 1 "orders.>": expected PATTERN URL/ ],
    [ { OMNIBUS_ROUTES => 'a.> http://h/x; b.> https://h/y' },
      qr/OMNIBUS_ROUTES entry 2 URL="https:\/\/h\/y": expected http:\/\// ],
    [ { OMNIBUS_ROUTES => 'a.> http://h/x colour=blue' },
      qr/OMNIBUS_ROUTES entry 1 parameter="colour=blue"/ ],
    [ { OMNIBUS_ROUTES => 'a.> http://h/{x}' },
      qr/OMNIBUS_ROUTES entry 1 URL="http:\/\/h\/\{x\}"/ ],
    [ { OMNIBUS_ROUTES => 'a"b http://h/x' },
      qr/OMNIBUS_ROUTES entry 1 pattern="a"b"/ ],
    # Kafka
    [ { OMNIBUS_ROUTES => 'a.> kafka://k:9092' },
      qr/OMNIBUS_ROUTES entry 1 URL="kafka:\/\/k:9092": expected http:\/\/.* or kafka:\/\/HOST:PORT/ ],
    [ { OMNIBUS_ROUTES => 'a.> kafka://k:9092/a{x}' },
      qr/OMNIBUS_ROUTES entry 1 URL="kafka:\/\/k:9092\/a\{x\}"/ ],
    # ";" separates entries: it cannot hide in a URL
    [ { OMNIBUS_ROUTES => 'a.> kafka://k;x/t' },
      qr/OMNIBUS_ROUTES entry 2 "x\/t": expected PATTERN URL/ ],
    [ { OMNIBUS_ROUTES => 'a.> kafka://k"x:9092/t' },
      qr/OMNIBUS_ROUTES entry 1 URL="kafka:\/\/k"x:9092\/t"/ ],
    [ { OMNIBUS_ROUTES => 'a.> kafka://k:9092/t}; include /etc/passwd' },
      qr/OMNIBUS_ROUTES entry 1 URL="kafka:\/\/k:9092\/t\}"/ ],
    [ { OMNIBUS_ROUTES => 'a.> kafka:///t' },
      qr/OMNIBUS_ROUTES entry 1 "kafka:\/\/\/t": kafka:\/\/\/TOPIC takes its brokers from OMNIBUS_KAFKA_BROKERS, which is not set/ ],
    [ { OMNIBUS_ROUTES => 'a.> kafka://k:9092/t acks=2' },
      qr/OMNIBUS_ROUTES entry 1 parameter="acks=2": expected .*acks=all\|1\|0/ ],
    [ { OMNIBUS_ROUTES => 'a.> kafka://k:9092/t compression=brotli' },
      qr/OMNIBUS_ROUTES entry 1 parameter="compression=brotli"/ ],
    [ { OMNIBUS_ROUTES => 'a.> kafka://k:9092/t key=user' },
      qr/OMNIBUS_ROUTES entry 1 parameter="key=user"/ ],
    [ { OMNIBUS_ROUTES => 'a.> kafka://k:9092/t fallback=kafka/' },
      qr/OMNIBUS_ROUTES entry 1 parameter="fallback=kafka\/"/ ],
    [ { OMNIBUS_ROUTES => 'a.> http://h/x acks=1' },
      qr/OMNIBUS_ROUTES entry 1 parameter="acks=1": .*are for kafka:\/\/ routes/ ],
    [ { OMNIBUS_ROUTES => 'a.> http://h/x fallback=kafka/x.ndjson' },
      qr/OMNIBUS_ROUTES entry 1 parameter="fallback=kafka\/x.ndjson"/ ],
    [ { OMNIBUS_KAFKA_BROKERS => 'k:9092;x' },
      qr/OMNIBUS_KAFKA_BROKERS="k:9092;x": expected HOST:PORT\[,HOST:PORT...\]/ ],
    [ { OMNIBUS_KAFKA_CONSUME => 'topics=a' },
      qr/OMNIBUS_KAFKA_CONSUME entry 1 "topics=a": no brokers/ ],
    [ { OMNIBUS_KAFKA_CONSUME => 'k:9092 group=g' },
      qr/OMNIBUS_KAFKA_CONSUME entry 1 "k:9092 group=g": expected \[BROKERS\] topics=/ ],
    [ { OMNIBUS_KAFKA_CONSUME => 'k:9092 topics=a,,b' },
      qr/OMNIBUS_KAFKA_CONSUME entry 1 parameter="topics=a,,b": expected topics=NAME/ ],
    [ { OMNIBUS_KAFKA_CONSUME => 'k:9092 topics=a offset_reset=never' },
      qr/OMNIBUS_KAFKA_CONSUME entry 1 parameter="offset_reset=never"/ ],
    [ { OMNIBUS_KAFKA_CONSUME => 'k:9092 topics=a topic=b{c}' },
      qr/OMNIBUS_KAFKA_CONSUME entry 1 parameter="topic=b\{c\}"/ ],
    [ { OMNIBUS_KAFKA_CONSUME => 'k:9092 topics=a; k/x topics=b' },
      qr/OMNIBUS_KAFKA_CONSUME entry 2 brokers="k\/x"/ ],
    # the store
    [ { OMNIBUS_STORE_URL => 'postgresql://omnibus:secret@db/omnibus' },
      qr/OMNIBUS_STORE_URL has a password: give it in OMNIBUS_STORE_PASSWORD_FILE \(a file\) or PGPASSWORD instead$/ ],
    [ { OMNIBUS_STORE_URL => 'postgresql://omnibus@db/omnibus?password=x' },
      qr/OMNIBUS_STORE_URL has a password/ ],
    [ { OMNIBUS_STORE_URL => 'postgresql://db/omnibus' },
      qr/OMNIBUS_STORE_URL="postgresql:\/\/db\/omnibus": expected postgresql:\/\/USER\@HOST\[:PORT\]\/DB\[\?PARAM=VALUE&...\] \(one host, no password\)$/ ],
    [ { OMNIBUS_STORE_URL => 'postgresql://u@db1,db2/omnibus' },
      qr/OMNIBUS_STORE_URL="postgresql:\/\/u\@db1,db2\/omnibus": expected/ ],
    [ { OMNIBUS_STORE_URL => 'postgresql://u@db:5432' },
      qr/OMNIBUS_STORE_URL="postgresql:\/\/u\@db:5432": expected/ ],
    [ { OMNIBUS_STORE_URL => 'mysql://u@db/omnibus' },
      qr/OMNIBUS_STORE_URL="mysql:/ ],
    [ { OMNIBUS_STORE_URL => 'postgresql://u@db/x;include /etc/passwd' },
      qr/OMNIBUS_STORE_URL="postgresql:\/\/u\@db\/x;include/ ],
    [ { OMNIBUS_STORE_URL => 'postgresql://u@db/x', OMNIBUS_STORE_MODE => 'fast' },
      qr/OMNIBUS_STORE_MODE="fast": expected sync or async/ ],
    [ { OMNIBUS_STORE_URL => 'postgresql://u@db/x',
        OMNIBUS_STORE_PARAMS => 'pool=4 colour=blue' },
      qr/OMNIBUS_STORE_PARAMS="colour=blue": expected pool=N, overflow=N, recycle=TIME, batch=N, flush=TIME, timeout=TIME, retention=TIME, adopt_after=TIME or breaker=FAILURES:TIME:SUCCESSES/ ],
    [ { OMNIBUS_STORE_URL => 'postgresql://u@db/x',
        OMNIBUS_STORE_PARAMS => 'mode=async' },
      qr/OMNIBUS_STORE_PARAMS="mode=async": expected .*the mode and the password file have variables of their own/ ],
    [ { OMNIBUS_STORE_URL => 'postgresql://u@db/x',
        OMNIBUS_STORE_PARAMS => 'pool=0' },
      qr/OMNIBUS_STORE_PARAMS="pool=0"/ ],
    [ { OMNIBUS_STORE_URL => 'postgresql://u@db/x',
        OMNIBUS_STORE_PARAMS => 'breaker=5' },
      qr/OMNIBUS_STORE_PARAMS="breaker=5"/ ],
    [ { OMNIBUS_STORE_URL => 'postgresql://u@db/x',
        OMNIBUS_STORE_PARAMS => 'timeout=soon' },
      qr/OMNIBUS_STORE_PARAMS="timeout=soon"/ ],
    [ { OMNIBUS_STORE_URL => 'postgresql://u@db/x',
        OMNIBUS_STORE_PASSWORD_FILE => '/run/secrets/a b' },
      qr/OMNIBUS_STORE_PASSWORD_FILE="\/run\/secrets\/a b": expected a file path/ ],
    [ { OMNIBUS_STORE_MODE => 'sync' },
      qr/OMNIBUS_STORE_MODE is set, but OMNIBUS_STORE_URL is not \(no store without it\)$/ ],
    [ { OMNIBUS_STORE_PASSWORD_FILE => '/run/secrets/pg' },
      qr/OMNIBUS_STORE_PASSWORD_FILE is set, but OMNIBUS_STORE_URL is not/ ],
    [ { OMNIBUS_STORE_PARAMS => 'pool=4' },
      qr/OMNIBUS_STORE_PARAMS is set, but OMNIBUS_STORE_URL is not/ ],
    # Redis
    [ { OMNIBUS_REDIS_URL => 'redis://:secret@redis:6379/0' },
      qr/OMNIBUS_REDIS_URL has a password: give it in OMNIBUS_REDIS_PASSWORD_FILE \(a file\) instead$/ ],
    [ { OMNIBUS_REDIS_URL => 'redis://bus:secret@redis/0' },
      qr/OMNIBUS_REDIS_URL has a password/ ],
    [ { OMNIBUS_REDIS_URL => 'redis://redis/0?password=secret' },
      qr/OMNIBUS_REDIS_URL has a password/ ],
    [ { OMNIBUS_REDIS_URL => 'rediss://redis:6380' },
      qr/OMNIBUS_REDIS_URL="rediss:\/\/redis:6380": expected redis:\/\/\[USER\@\]HOST\[:PORT\]\[\/DB\] \(one host, no password\)$/ ],
    [ { OMNIBUS_REDIS_URL => 'redis://redis/cache' },
      qr/OMNIBUS_REDIS_URL="redis:\/\/redis\/cache": expected redis:/ ],
    [ { OMNIBUS_REDIS_URL => 'redis://r1,r2:6379' },
      qr/OMNIBUS_REDIS_URL="redis:\/\/r1,r2:6379": expected/ ],
    [ { OMNIBUS_REDIS_URL => 'redis://redis/0;include /etc/passwd' },
      qr/OMNIBUS_REDIS_URL="redis:\/\/redis\/0;include/ ],
    [ { OMNIBUS_REDIS_URL => 'redis://redis',
        OMNIBUS_REDIS_PARAMS => 'timeout=1s colour=blue' },
      qr/OMNIBUS_REDIS_PARAMS="colour=blue": expected prefix=PREFIX \(A-Za-z0-9\._:-\), timeout=TIME, lock=TIME, stream=N, breaker=FAILURES:TIME:SUCCESSES, dedup=on\|off, rate_limit=on\|off or fanout=on\|off/ ],
    [ { OMNIBUS_REDIS_URL => 'redis://redis',
        OMNIBUS_REDIS_PARAMS => 'password_file=/run/secrets/r' },
      qr/OMNIBUS_REDIS_PARAMS="password_file=\/run\/secrets\/r": expected .*\(the password file has a variable of its own\)$/ ],
    [ { OMNIBUS_REDIS_URL => 'redis://redis',
        OMNIBUS_REDIS_PARAMS => 'dedup=maybe' },
      qr/OMNIBUS_REDIS_PARAMS="dedup=maybe"/ ],
    [ { OMNIBUS_REDIS_URL => 'redis://redis',
        OMNIBUS_REDIS_PARAMS => 'timeout=soon' },
      qr/OMNIBUS_REDIS_PARAMS="timeout=soon"/ ],
    [ { OMNIBUS_REDIS_URL => 'redis://redis',
        OMNIBUS_REDIS_PARAMS => 'breaker=5' },
      qr/OMNIBUS_REDIS_PARAMS="breaker=5"/ ],
    [ { OMNIBUS_REDIS_URL => 'redis://redis',
        OMNIBUS_REDIS_PARAMS => 'stream=0' },
      qr/OMNIBUS_REDIS_PARAMS="stream=0"/ ],
    [ { OMNIBUS_REDIS_URL => 'redis://redis',
        OMNIBUS_REDIS_PARAMS => 'prefix=a;b' },
      qr/OMNIBUS_REDIS_PARAMS="prefix=a;b"/ ],
    [ { OMNIBUS_REDIS_URL => 'redis://redis',
        OMNIBUS_REDIS_PASSWORD_FILE => '/run/secrets/a b' },
      qr/OMNIBUS_REDIS_PASSWORD_FILE="\/run\/secrets\/a b": expected a file path/ ],
    [ { OMNIBUS_REDIS_PASSWORD_FILE => '/run/secrets/redis-password' },
      qr/OMNIBUS_REDIS_PASSWORD_FILE is set, but OMNIBUS_REDIS_URL is not \(no Redis without it\)$/ ],
    [ { OMNIBUS_REDIS_PARAMS => 'dedup=off' },
      qr/OMNIBUS_REDIS_PARAMS is set, but OMNIBUS_REDIS_URL is not/ ],
);
for my $case (@bad) {
    my ($env, $re) = @$case;
    my $what = join ' ', map { "$_=$env->{$_}" } sort keys %$env;
    $what =~ s/\n/\\n/g;
    ($rc, $out, $err) = render(%$env);
    isnt($rc, 0, "bad input $what: fails");
    like($err, qr/^omnibus-entrypoint: .*$re/m, "bad input $what: says why");
    is($out, '', "bad input $what: renders nothing");
}

# a placeholder the renderer does not know is an error, not a blank
{
    my $dir = tempdir('omnibus-t51-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    spew("$dir/t", slurp($TEMPLATE) . "# \@bogus\@\n");
    ($rc, $out, $err) = render(OMNIBUS_TEMPLATE => "$dir/t");
    isnt($rc, 0, 'unknown placeholder: fails');
    like($err, qr/:\d+: unknown placeholder \@bogus\@/,
         'unknown placeholder: named with its line');
}

# --- the entrypoint's other modes
{
    my $dir = tempdir('omnibus-t51-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    ($rc, $out, $err) = run({ OMNIBUS_PREFIX => $dir, OMNIBUS_NGINX => $NGINX },
                            '/bin/sh', $ENTRY, '-t');
    is($rc, 0, 'entrypoint -t: renders into the prefix and nginx -t passes')
        or diag($err);
    like($err, qr/test is successful/, 'entrypoint -t: nginx said so');
    ok(-f "$dir/nginx.conf" && !-e "$dir/nginx.conf.tmp",
       'entrypoint -t: nginx.conf in the prefix');

    ($rc, $out, $err) = run({ OMNIBUS_PREFIX => "$dir/none",
                              OMNIBUS_NGINX => $NGINX },
                            '/bin/sh', $ENTRY, '-t');
    isnt($rc, 0, 'entrypoint with no prefix directory: fails');
    like($err, qr/OMNIBUS_PREFIX \Q$dir\E\/none is not a writable directory/,
         'entrypoint with no prefix directory: says so');

    ($rc, $out, $err) = run({ OMNIBUS_PREFIX => $dir, OMNIBUS_NGINX => $NGINX,
                              OMNIBUS_SHARDS => 'x' },
                            '/bin/sh', $ENTRY, '-t');
    isnt($rc, 0, 'entrypoint with a bad variable: does not start nginx');
    unlike($err, qr/nginx:/, 'entrypoint with a bad variable: nginx not run');

    ($rc, $out, $err) = run({}, '/bin/sh', $ENTRY, 'echo', 'a', 'command');
    is($out, "a command\n", 'entrypoint COMMAND: runs it');

    # Kafka fallback files: their directories made under the prefix (and
    # PREFIX/kafka always), a missing one elsewhere refused by name
    my $k = tempdir('omnibus-t51-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    ($rc, $out, $err) = run({ OMNIBUS_PREFIX => $k, OMNIBUS_NGINX => $NGINX,
        OMNIBUS_ROUTES => 'a.> kafka://127.0.0.1:9/a fallback=spool/a/x.ndjson',
        OMNIBUS_KAFKA_CONSUME => '127.0.0.1:9 topics=t' },
        '/bin/sh', $ENTRY, '-t');
    is($rc, 0, 'entrypoint -t with Kafka: nginx -t passes') or diag($err);
    ok(-d "$k/kafka" && -d "$k/spool/a",
       'entrypoint -t with Kafka: PREFIX/kafka and the fallback directory made');
    ($rc, $out, $err) = run({ OMNIBUS_PREFIX => $k, OMNIBUS_NGINX => $NGINX,
        OMNIBUS_ROUTES => "a.> kafka://127.0.0.1:9/a fallback=$k/none/x.ndjson" },
        '/bin/sh', $ENTRY, '-t');
    isnt($rc, 0, 'entrypoint with a missing fallback directory: fails');
    like($err, qr/^omnibus-entrypoint: OMNIBUS_ROUTES: fallback=\Q$k\E\/none\/x\.ndjson: \Q$k\E\/none is not a writable directory \(running as uid \d+\)$/m,
         'entrypoint with a missing fallback directory: says which');
    unlike($err, qr/nginx:/, 'entrypoint with a missing fallback directory: '
                             . 'nginx not run');

    # the store's password file: read by nginx -t when it is there,
    # refused by name before nginx when it is not
    my $s = tempdir('omnibus-t51-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    spew("$s/pg-password", "dev-only\n");
    my %store = (OMNIBUS_PREFIX => $s, OMNIBUS_NGINX => $NGINX,
                 OMNIBUS_STORE_URL => 'postgresql://omnibus@127.0.0.1:5432/omnibus',
                 OMNIBUS_STORE_PASSWORD_FILE => "$s/pg-password");
    ($rc, $out, $err) = run(\%store, '/bin/sh', $ENTRY, '-t');
    is($rc, 0, 'entrypoint -t with a store: nginx -t passes') or diag($err);
    like(slurp("$s/nginx.conf"),
         qr/omnibus_store bus \S+ password_file=\Q$s\E\/pg-password mode=sync;/,
         'entrypoint -t with a store: rendered into the prefix');
    ($rc, $out, $err) = run({ %store, OMNIBUS_STORE_PASSWORD_FILE => 'none' },
                            '/bin/sh', $ENTRY, '-t');
    isnt($rc, 0, 'entrypoint with a missing password file: fails');
    like($err, qr/^omnibus-entrypoint: OMNIBUS_STORE_PASSWORD_FILE: \Q$s\E\/none is not a readable file \(running as uid \d+\)$/m,
         'entrypoint with a missing password file: says which');
    unlike($err, qr/nginx:/, 'entrypoint with a missing password file: '
                             . 'nginx not run');

    # Redis's password file the same, named by its own variable
    spew("$s/redis-password", "dev-only-too\n");
    my %redis = (OMNIBUS_PREFIX => $s, OMNIBUS_NGINX => $NGINX,
                 OMNIBUS_REDIS_URL => 'redis://127.0.0.1:6379/0',
                 OMNIBUS_REDIS_PASSWORD_FILE => 'redis-password');
    ($rc, $out, $err) = run(\%redis, '/bin/sh', $ENTRY, '-t');
    is($rc, 0, 'entrypoint -t with Redis: nginx -t passes') or diag($err);
    like(slurp("$s/nginx.conf"),
         qr/omnibus_redis bus redis:\/\/127\.0\.0\.1:6379\/0 password_file=redis-password;/,
         'entrypoint -t with Redis: rendered into the prefix (a relative'
         . ' password file)');
    ($rc, $out, $err) = run({ %redis, %store,
                              OMNIBUS_REDIS_PASSWORD_FILE => "$s/none" },
                            '/bin/sh', $ENTRY, '-t');
    isnt($rc, 0, 'entrypoint with a missing Redis password file: fails');
    like($err, qr/^omnibus-entrypoint: OMNIBUS_REDIS_PASSWORD_FILE: \Q$s\E\/none is not a readable file \(running as uid \d+\)$/m,
         'entrypoint with a missing Redis password file: says which');
    unlike($err, qr/nginx:/, 'entrypoint with a missing Redis password file:'
                             . ' nginx not run');
}

# --- one rendered configuration served for real
{
    my $t = Omnibus::Test->new(ports => 2);
    my $d = $t->dir;
    my $port = $t->port(0);
    # a Kafka route to a port nothing listens on: one attempt of 1 s, then
    # the record goes to the fallback file under the prefix
    my $nobroker = $t->port(1);
    mkdir "$d/kafka" or die "$d/kafka: $!";
    ($rc, $conf, $err) = render(
        OMNIBUS_ROUTES => "audit.> kafka://127.0.0.1:$nobroker/audit "
                          . 'timeout=1s retries=0 fallback=kafka/audit.ndjson',
        OMNIBUS_LISTEN => "127.0.0.1:$port",
        OMNIBUS_ERROR_LOG => "$d/error.log", OMNIBUS_LOG_LEVEL => 'info',
        OMNIBUS_ACCESS_LOG => "$d/access.log", OMNIBUS_NODE => 't51-node',
        OMNIBUS_ZONE_SIZE => '8m',
        ($> == 0 ? (OMNIBUS_USER => 'root') : ()));
    is($rc, 0, 'served: renders') or diag($err);
    spew("$d/nginx.conf", $conf);
    # the harness waits for the ports its conf() found; this nginx.conf
    # is the renderer's
    $t->{listen} = [$port];
    $t->start;

    my $r = $t->post_json('/publish/orders.created', { order => 42 },
                          headers => { 'Content-Type' => 'application/json' });
    is($r->{status}, 202, 'served: publish 202');
    ok($r->{json} && $r->{json}{id}, 'served: with an id');
    is($r->{headers}{'x-omnibus-node'}, 't51-node',
       'served: X-Omnibus-Node');
    is($t->http(GET => '/healthz')->{status}, 200, 'served: /healthz');
    is($t->http(GET => '/readyz')->{status}, 200, 'served: /readyz');
    is($t->http(GET => '/omnibus/')->{status}, 200,
       'served: admin status from loopback');
    like($t->http(GET => '/metrics')->{body},
         qr/^message_bus_published_total\{zone="bus"\} 1$/m,
         'served: /metrics');
    $r = $t->http(GET => '/nothing');
    is($r->{status}, 404, 'served: other paths 404');
    is($r->{json} && $r->{json}{error}, 'not_found',
       'served: with a JSON error');

    $r = $t->http(POST => '/publish/audit.login', body => '{"user":7}');
    is($r->{status}, 202, 'served: publish to the Kafka route');
    my $audit = $r->{json} && $r->{json}{id} // 'none';
    ok(Omnibus::Test::wait_until(
           sub { slurp("$d/kafka/audit.ndjson") =~ /"id":"\Q$audit\E"/ },
           timeout => 15),
       'served: with no broker, the record in kafka/audit.ndjson');

    my @hc = run({ OMNIBUS_LISTEN => "127.0.0.1:$port" },
                 '/bin/sh', $ENTRY, 'healthcheck');
    is($hc[0], 0, 'healthcheck: 0 while /healthz answers 200')
        or diag($hc[2]);

    $t->check_log;
    @hc = run({ OMNIBUS_LISTEN => "127.0.0.1:$port" },
              '/bin/sh', $ENTRY, 'healthcheck');
    isnt($hc[0], 0, 'healthcheck: fails once nginx is gone');
    like(slurp("$d/error.log"), qr/gracefully shutting down/,
         'served: quit gracefully');
}

# --- a rendered store served against a real PostgreSQL: the password
# through PGPASSWORD (which reaches the workers only by the rendered "env
# PGPASSWORD;"), /readyz once connected, a publish committed (mode=sync)
# under the node name of OMNIBUS_NODE
SKIP: {
    my $why = !-x "$Omnibus::Pg::BIN/initdb"
              ? 'PostgreSQL is missing (Debian: postgresql)'
              : $> == 0 && !getpwnam('postgres') && !getpwnam('nobody')
              ? 'root, and no user to run PostgreSQL as' : '';
    skip "store served: $why", 8 if $why;

    my $pg = Omnibus::Pg->new;
    my $t = Omnibus::Test->new(ports => 1);
    my $d = $t->dir;
    my $port = $t->port(0);
    ($rc, $conf, $err) = render(
        OMNIBUS_STORE_URL => $pg->url,
        OMNIBUS_STORE_PARAMS => 'pool=1 overflow=0 flush=1ms',
        PGPASSWORD => $pg->password,
        OMNIBUS_LISTEN => "127.0.0.1:$port",
        OMNIBUS_ERROR_LOG => "$d/error.log", OMNIBUS_LOG_LEVEL => 'info',
        OMNIBUS_ACCESS_LOG => "$d/access.log", OMNIBUS_NODE => 't51-store',
        OMNIBUS_ZONE_SIZE => '8m',
        ($> == 0 ? (OMNIBUS_USER => 'root') : ()));
    is($rc, 0, 'store served: renders') or diag($err);
    spew("$d/nginx.conf", $conf);
    $t->{listen} = [$port];
    {
        local $ENV{PGPASSWORD} = $pg->password;
        $t->start;
    }
    ok(Omnibus::Test::wait_until(
           sub { $t->http(GET => '/readyz')->{status} == 200 },
           timeout => 30),
       'store served: /readyz 200 once the store is connected')
        or diag(slurp("$d/error.log"));
    my $r = $t->http(POST => '/publish/orders.created', body => '{"n":1}');
    is($r->{status}, 202, 'store served: publish 202 (mode=sync: committed)');
    my $id = $r->{json} && $r->{json}{id} // 'none';
    is(scalar $pg->psql("SELECT node FROM omnibus_messages WHERE id = '$id'"),
       't51-store', 'store served: the row, under OMNIBUS_NODE');
    like($t->http(GET => '/omnibus/')->{body},
         qr/"store":\{"backend":"postgresql","mode":"sync"/,
         'store served: the admin status shows the store');
    like(slurp("$d/error.log"), qr/omnibus store \S+: connected/,
         'store served: connected, with the password of PGPASSWORD');
    unlike(slurp("$d/error.log"), qr/\Q${\ $pg->password }\E/,
           'store served: the password is not in the log');
    $t->check_log;
    $pg->stop;
}

# --- a rendered Redis served against a real Redis that wants a password:
# connected with the password of OMNIBUS_REDIS_PASSWORD_FILE, an
# idempotency key claimed in Redis; Redis stopped: publishes still 202
# (the pod decides alone, counted), /readyz still 200; Redis back: the
# pod connects again by itself
SKIP: {
    skip 'redis served: redis-server is missing (Debian: redis-server)', 17
        unless -x "$Omnibus::Redis::BIN/redis-server"
               && -x "$Omnibus::Redis::BIN/redis-cli";

    my $redis = Omnibus::Redis->new(password => "t51-redis-$$-secret");
    my $t = Omnibus::Test->new(ports => 1);
    my $d = $t->dir;
    my $port = $t->port(0);
    spew("$d/redis-password", $redis->password . "\n");
    ($rc, $conf, $err) = render(
        OMNIBUS_REDIS_URL => $redis->url,
        OMNIBUS_REDIS_PASSWORD_FILE => "$d/redis-password",
        OMNIBUS_REDIS_PARAMS => 'timeout=500ms breaker=1:1s:1',
        OMNIBUS_LISTEN => "127.0.0.1:$port",
        OMNIBUS_ERROR_LOG => "$d/error.log", OMNIBUS_LOG_LEVEL => 'info',
        OMNIBUS_ACCESS_LOG => "$d/access.log", OMNIBUS_NODE => 't51-redis',
        OMNIBUS_ZONE_SIZE => '8m',
        ($> == 0 ? (OMNIBUS_USER => 'root') : ()));
    is($rc, 0, 'redis served: renders') or diag($err);
    spew("$d/nginx.conf", $conf);
    $t->{listen} = [$port];
    $t->start;

    my $metric = sub {
        my ($re) = @_;
        my $m = $t->http(GET => '/metrics')->{body} // '';
        return $m =~ /^message_bus_$re (\d+)$/m ? $1 : undef;
    };
    my $up = sub { $metric->('backend_up\{zone="bus",backend="redis"\}') };
    ok(Omnibus::Test::wait_until(sub { ($up->() // 0) == 1 }, timeout => 30),
       'redis served: connected with the password of the file'
       . ' (backend_up 1)') or diag(slurp("$d/error.log"));
    my $r = $t->http(POST => '/publish/orders.created', body => '{"n":1}',
                     headers => { 'Idempotency-Key' => 't51-1' });
    is($r->{status}, 202, 'redis served: publish with a key 202');
    my $id = $r->{json} && $r->{json}{id} // 'none';
    my @claims = $redis->keys('omnibus:bus:d:*');
    is(scalar @claims, 1, 'redis served: the key claimed in Redis');
    is(@claims && $redis->cmd('GET', $claims[0]), $id,
       'redis served: by the message\'s id');
    is($metric->('redis_answers_total\{zone="bus",result="claimed"\}'), 1,
       'redis served: message_bus_redis_answers_total claimed 1');
    like($t->http(GET => '/omnibus/')->{body},
         qr/"redis":\{"up":true,/, 'redis served: the admin status shows Redis');

    # Redis gone: nothing of the publish path or of readiness depends on it
    $redis->stop;
    my @st = map { $t->http(POST => '/publish/orders.created',
                            body => '{"n":2}',
                            headers => { 'Idempotency-Key' => 't51-2' })
                       ->{status} } 1 .. 2;
    is_deeply(\@st, [202, 200],
              'redis served, Redis down: publish 202, its duplicate 200');
    is($t->http(POST => '/publish/orders.created', body => '{"n":3}')
           ->{status}, 202, 'redis served, Redis down: a publish 202');
    is($t->http(GET => '/readyz')->{status}, 200,
       'redis served, Redis down: /readyz 200');
    ok(Omnibus::Test::wait_until(sub { defined $up->() && $up->() == 0 },
                                 timeout => 15),
       'redis served, Redis down: backend_up 0');
    cmp_ok($metric->('redis_fallbacks_total\{zone="bus",feature="dedup"\}')
           // 0, '>=', 1,
           'redis served, Redis down: the claim decided by the pod, counted'
           . ' (fallbacks dedup)');

    $redis->start;
    ok(Omnibus::Test::wait_until(sub { ($up->() // 0) == 1 }, timeout => 30),
       'redis served: connected again once Redis is back')
        or diag(slurp("$d/error.log"));
    is($t->http(POST => '/publish/orders.created', body => '{"n":4}',
                headers => { 'Idempotency-Key' => 't51-4' })->{status},
       202, 'redis served: a publish with a key after the outage');
    ok(Omnibus::Test::wait_until(sub {
           scalar(() = $redis->keys('omnibus:bus:d:*')) == 1 }, timeout => 5),
       'redis served: claimed in Redis again');
    unlike(slurp("$d/error.log"), qr/\Q${\ $redis->password }\E/,
           'redis served: the password is not in the log');
    $t->check_log;
    $redis->stop;
}

# --- the load balancer of compose.yml (its upstreams pointed at loopback:
# compose's names do not resolve here)
{
    my $lb = slurp("$ROOT/docker/lb.conf");
    my $n = $lb =~ s/server omnibus-\d:8080/server 127.0.0.1:9/g;
    is($n, 2, 'lb.conf: two replicas upstream');
    ($ok, $tout) = nginx_t($lb);
    ok($ok, 'lb.conf: nginx -t passes') or diag($tout);
}

# --- the Dockerfiles: what the image promises
{
    my $df = slurp("$ROOT/docker/Dockerfile");
    is(scalar(() = $df =~ /^FROM debian:12\b/mg), 2,
       'Dockerfile: two stages on debian:12');
    like($df, qr/^RUN make\b/m, "Dockerfile: the module built by make");
    like($df, qr/^STOPSIGNAL SIGQUIT$/m, 'Dockerfile: SIGQUIT');
    like($df, qr/^USER 10001$/m, 'Dockerfile: not root');
    like($df, qr/^HEALTHCHECK .*\n?.*healthcheck/m, 'Dockerfile: HEALTHCHECK');
    like($df, qr/--no-install-recommends nginx libyajl2/,
         'Dockerfile: the stock nginx and libyajl2');
    like($df, qr/install .*\\\n?.*\blibrdkafka-dev\b/,
         'Dockerfile: built with librdkafka-dev');
    like($df, qr/nginx libyajl2 \\\n\s+librdkafka1\b/,
         'Dockerfile: librdkafka1 in the image');
    like($df, qr/mkdir -p \/var\/lib\/omnibus\/kafka\b.*\n.*chown 10001:0 .*\/var\/lib\/omnibus\/kafka/,
         'Dockerfile: the fallback directory, owned by uid 10001');
    my $di = slurp("$ROOT/docker/Dockerfile.ingress");
    like($di, qr/^ARG BASE_IMAGE=/m, 'Dockerfile.ingress: base image ARG');
    like($di, qr/^ARG NGINX_VERSION=/m, 'Dockerfile.ingress: NGINX version');
    like($di, qr/make -C omnibus NGINX_SRC=/,
         'Dockerfile.ingress: make NGINX_SRC=');
    like($df, qr/install .*\\\n?.*\blibpq-dev\b/,
         'Dockerfile: built with libpq-dev (omnibus_store)');
    like($df, qr/nginx libyajl2 \\\n\s+librdkafka1 libpq5\b/,
         'Dockerfile: libpq5 in the image');

    # Redis: hiredis's headers to build, its library to run; the packages
    # of each stage's apt-get install (continuation lines joined)
    my @pkgs = map {
        (my $st = $_) =~ s/\\\n/ /g;
        my %p;
        if ($st =~ /apt-get install ([^&]*)/) {
            $p{$_} = 1 for grep { !/^-/ } split ' ', $1;
        }
        \%p;
    } (split /^FROM /m, $df)[1, 2];
    ok($pkgs[0]{'libhiredis-dev'},
       'Dockerfile: built with libhiredis-dev (omnibus_redis)');
    ok($pkgs[1]{'libhiredis0.14'} && !$pkgs[1]{'libhiredis-dev'},
       'Dockerfile: libhiredis0.14 in the image, not the headers');
    # the library's soname, as this machine's build (Debian 12, as the
    # image) links it, is the package's
    my ($so) = `ldd $MODULE 2>/dev/null` =~ /\blibhiredis\.so\.(\S+)/;
    ok(!defined $so || $pkgs[1]{"libhiredis$so"},
       'Dockerfile: the run-time package matches the module\'s hiredis'
       . (defined $so ? " (libhiredis.so.$so)" : ' (not linked here)'));
    like($df, qr/OMNIBUS_REDIS_URL=redis:\/\/127\.0\.0\.1:6379\/0 \\\n\s+omnibus-entrypoint -t -q/,
         'Dockerfile: the build fails on a module without omnibus_redis'
         . ' (nginx -t)');

    my $all = join '', map { slurp("$ROOT/docker/$_") }
        qw(Dockerfile Dockerfile.ingress nginx.conf.template entrypoint.sh
           compose.yml lb.conf);
    like($all, qr/kafka_consume/, 'the Kafka consumer is in the template');
    like($all, qr/\@store\@/, 'the store is in the template');
    like(slurp($TEMPLATE), qr/^\@store\@\n\@redis\@$/m,
         'Redis is in the template, after the store');
}

# --- the compose file and the YAML files, by their tools
my @yaml = map { "docker/$_" } qw(compose.yml prometheus.yml alertmanager.yml
    grafana/provisioning/datasources/prometheus.yml
    grafana/provisioning/dashboards/omnibus.yml);

SKIP: {
    skip 'docker-compose is missing (Debian package docker-compose)', 40
        unless Omnibus::Test::have_cmd('docker-compose');
    ($rc, $out, $err) = run({}, 'docker-compose', '-f',
                            "$ROOT/docker/compose.yml", 'config', '-q');
    is($rc, 0, 'docker-compose config -q') or diag($err);
    ($rc, $out, $err) = run({}, 'docker-compose', '-f',
                            "$ROOT/docker/compose.yml", 'config');
    my ($services) = $out =~ /^services:\n((?:[ ].*\n)+)/m;
    is_deeply([sort(($services // '') =~ /^  ([\w-]+):$/mg)],
              [sort qw(omnibus-1 omnibus-2 lb kafka kafka-init redis citus
                       prometheus alertmanager grafana)],
              'docker-compose: the services');
    like($out, qr/redis-server\s+--appendonly\s+yes\s+--requirepass\s+"\$\$\(cat\s+\/run\/secrets\/redis-password\)"/,
         'docker-compose: redis with AOF and the password of its secret');
    like($out, qr/image: redis:7\.4$/m, 'docker-compose: redis 7.4');
    like($out, qr/image: citusdata\/citus:12\.1/, 'docker-compose: citus 12.1');

    # Kafka, and the replicas' environment rendered and checked by nginx
    skip 'libyaml-libyaml-perl (YAML::XS) is missing', 35
        unless eval { require YAML::XS; 1 };
    my $c = YAML::XS::Load($out)->{services};
    my $kafka = $c->{kafka} // {};
    is($kafka->{image}, 'apache/kafka:3.9.0', 'docker-compose: apache/kafka');
    is($kafka->{environment}{KAFKA_PROCESS_ROLES}, 'broker,controller',
       'docker-compose: Kafka in KRaft mode, one node');
    like(join(' ', @{$kafka->{healthcheck}{test} // []}),
         qr/kafka-broker-api-versions\.sh --bootstrap-server localhost:9092/,
         'docker-compose: Kafka healthcheck');
    is(($c->{'kafka-init'}{depends_on}{kafka} // {})->{condition},
       'service_healthy', 'docker-compose: kafka-init waits for Kafka');
    my $env = $c->{'omnibus-1'}{environment} // {};
    my @rep = map { $c->{$_} // {} } qw(omnibus-1 omnibus-2);
    is_deeply([map { ($_->{depends_on}{'kafka-init'} // {})->{condition} }
               @rep], [('service_completed_successfully') x 2],
              'docker-compose: the replicas start after kafka-init');
    is_deeply([map { [grep { m{:/var/lib/omnibus/kafka\b} }
                      @{$_->{volumes} // []}] } @rep],
              [['omnibus-1-kafka:/var/lib/omnibus/kafka:rw'],
               ['omnibus-2-kafka:/var/lib/omnibus/kafka:rw']],
              'docker-compose: a fallback volume per replica');
    my %cenv = map { $_ => "$env->{$_}" } grep { /^OMNIBUS_/ } keys %$env;

    # the store: Citus's service, the compose secret, one node per replica
    my $secret = $c->{'omnibus-1'}{secrets}[0] // {};
    $secret = { source => $secret } unless ref $secret;
    my %secrets = %{YAML::XS::Load($out)->{secrets} // {}};
    my $secret_file = ($secrets{$secret->{source} // ''} // {})->{file} // '';
    is($cenv{OMNIBUS_STORE_URL}, 'postgresql://omnibus@citus:5432/omnibus',
       'docker-compose: the replicas\' store is the citus service');
    is($cenv{OMNIBUS_STORE_PASSWORD_FILE},
       '/run/secrets/' . ($secret->{target} // $secret->{source} // '-'),
       'docker-compose: the store password is the compose secret\'s file');
    is($secret_file, "$ROOT/docker/pg-password.dev",
       'docker-compose: the secret is docker/pg-password.dev');
    is(($c->{citus}{environment} // {})->{POSTGRES_PASSWORD_FILE},
       $cenv{OMNIBUS_STORE_PASSWORD_FILE},
       'docker-compose: Citus takes its password from the same secret');
    is_deeply([map { $_->{environment}{OMNIBUS_NODE} } @rep],
              ['omnibus-1', 'omnibus-2'],
              'docker-compose: each replica its own OMNIBUS_NODE');
    is_deeply([map { ($_->{depends_on}{citus} // {})->{condition} } @rep],
              [('service_healthy') x 2],
              'docker-compose: the replicas start once Citus is healthy');
    like(join(' ', @{$c->{citus}{healthcheck}{test} // []}),
         qr/^CMD pg_isready -h 127\.0\.0\.1 -p 5432 -U omnibus -d omnibus$/,
         'docker-compose: Citus healthcheck pg_isready over TCP');

    # the replica's environment with compose's names pointed here: the
    # citus and redis hosts at loopback (nginx resolves them), the
    # secrets at their files
    my %cenv_compose = %cenv;
    my $rfile = ($secrets{'redis-password'} // {})->{file} // '';
    $cenv{OMNIBUS_STORE_URL} =~ s{\@citus:}{\@127.0.0.1:};
    $cenv{OMNIBUS_STORE_PASSWORD_FILE} = $secret_file;
    $cenv{OMNIBUS_REDIS_URL} =~ s{//redis:}{//127.0.0.1:};
    $cenv{OMNIBUS_REDIS_PASSWORD_FILE} = $rfile;
    my $cconf = renders_and_passes('compose.yml replica', %cenv);
    like($cconf, qr{^\s*omnibus_route bus audit\.> "kafka://kafka:9092/omnibus-audit"[^;]*\bfallback=kafka/audit\.ndjson[^;]*;$}m,
         'compose.yml replica: audit.> to Kafka, with a fallback file');
    like($cconf, qr{^\s*omnibus_kafka_consume bus kafka:9092 topics=omnibus-audit group=omnibus "topic=kafka\.\{topic\}"}m,
         'compose.yml replica: the consumer of omnibus-audit');
    like($cconf, qr{^\s*omnibus_store bus postgresql://omnibus\@127\.0\.0\.1:5432/omnibus password_file=\Q$secret_file\E mode=sync pool=4 overflow=2;$}m,
         'compose.yml replica: the store, mode=sync, with the password file');
    like($cconf, qr{^\s*omnibus_node omnibus-1;$}m,
         'compose.yml replica: omnibus_node omnibus-1');

    # Redis: the replicas' omnibus_redis, the password of the compose
    # secret redis-password, which redis itself requires
    my $redis = $c->{redis} // {};
    my %mounted = map { ref $_ ? ($_->{source} => $_->{target} // $_->{source})
                               : ($_ => $_) } @{$c->{'omnibus-1'}{secrets} // []};
    is($cenv_compose{OMNIBUS_REDIS_URL}, 'redis://redis:6379/0',
       'docker-compose: the replicas\' Redis is the redis service');
    is($cenv_compose{OMNIBUS_REDIS_PASSWORD_FILE},
       '/run/secrets/' . ($mounted{'redis-password'} // '-'),
       'docker-compose: the Redis password is the compose secret\'s file');
    is($rfile, "$ROOT/docker/redis-password.dev",
       'docker-compose: the secret is docker/redis-password.dev');
    is_deeply([map { ($_->{depends_on}{redis} // {})->{condition} } @rep],
              [('service_healthy') x 2],
              'docker-compose: the replicas start once Redis is healthy');
    ok(grep({ (ref $_ ? $_->{source} : $_) eq 'redis-password' }
            @{$redis->{secrets} // []}),
       'docker-compose: redis has the secret too');
    my $rcmd = join ' ', @{$redis->{command} // []};
    like($rcmd, qr/^sh -c exec docker-entrypoint\.sh redis-server --appendonly yes --requirepass "\$\$\(cat \/run\/secrets\/redis-password\)"$/,
         'docker-compose: redis-server through the image\'s entry point (its'
         . ' redis user), AOF, --requirepass from the secret');
    my $rhc = join ' ', @{$redis->{healthcheck}{test} // []};
    like($rhc, qr/^CMD-SHELL REDISCLI_AUTH="\$\$\(cat \/run\/secrets\/redis-password\)" redis-cli ping \| grep -qx PONG$/,
         'docker-compose: the redis healthcheck authenticates');
    ok(grep({ m{^redis-data:/data\b} } @{$redis->{volumes} // []}),
       'docker-compose: redis keeps its data (and AOF) in a volume');

    # compose's redis command and healthcheck, run here on the local
    # redis-server ($$ is compose's escaped $; the image's entry point
    # left out), the secret at its file
    SKIP: {
        skip 'redis-server is missing (Debian: redis-server)', 4
            unless -x "$Omnibus::Redis::BIN/redis-server"
                   && -x "$Omnibus::Redis::BIN/redis-cli";
        my $rd = tempdir('omnibus-t51-XXXXXX', TMPDIR => 1, CLEANUP => 1);
        my $rport = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
            LocalPort => 0, Proto => 'tcp', Listen => 1)->sockport;
        my ($cmd, $hc) = map {
            (my $x = $_ // '') =~ s/\$\$/\$/g;
            $x =~ s{/run/secrets/redis-password}{$rfile}g;
            $x =~ s{\bdocker-entrypoint\.sh }{};
            $x =~ s{\bredis-(server|cli)\b}{$Omnibus::Redis::BIN/redis-$1}g;
            $x;
        } $redis->{command}[2], $redis->{healthcheck}{test}[1];
        $cmd .= " --port $rport --bind 127.0.0.1 --dir $rd --save ''"
                . " --logfile $rd/redis.log";
        $hc =~ s{redis-cli }{redis-cli -p $rport };
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            chdir $rd;
            open STDIN, '<', '/dev/null';
            exec '/bin/sh', '-c', $cmd or POSIX::_exit(127);
        }
        ok(Omnibus::Test::wait_until(
               sub { system('/bin/sh', '-c', $hc) == 0 }, timeout => 10),
           'compose\'s redis runs, and its healthcheck passes with the'
           . ' password') or diag(slurp("$rd/redis.log"));
        (my $noauth = $hc) =~ s/REDISCLI_AUTH="[^"]*"\s*//;
        isnt(system('/bin/sh', '-c', $noauth), 0,
             'compose\'s redis: the healthcheck fails without the password');
        my $pw = slurp($rfile);
        $pw =~ s/\s+\z//;
        local $ENV{REDISCLI_AUTH} = $pw;
        is(scalar `$Omnibus::Redis::BIN/redis-cli -p $rport config get appendonly`,
           "appendonly\nyes\n", 'compose\'s redis: AOF on');
        kill 'TERM', $pid;
        waitpid $pid, 0;
        ok(-d "$rd/appendonlydir" || -f "$rd/appendonly.aof",
           'compose\'s redis: the AOF in its data directory');
    }

    like($cconf, qr{^\s*omnibus_redis bus redis://127\.0\.0\.1:6379/0 password_file=\Q$rfile\E dedup=on rate_limit=on fanout=on timeout=1s;$}m,
         'compose.yml replica: omnibus_redis with the password file');
}

SKIP: {
    skip 'yamllint is missing (Debian package yamllint)', 1
        unless Omnibus::Test::have_cmd('yamllint');
    ($rc, $out, $err) = run({}, 'yamllint', '-s',
                            map { "$ROOT/$_" } @yaml);
    is($rc, 0, 'yamllint -s: ' . join(' ', @yaml)) or diag($out . $err);
}

SKIP: {
    skip 'promtool is missing (Debian package prometheus)', 1
        unless Omnibus::Test::have_cmd('promtool');
    ($rc, $out, $err) = run({}, 'promtool', 'check', 'config',
                            "$ROOT/docker/prometheus.yml");
    is($rc, 0, 'promtool check config docker/prometheus.yml (and its rules)')
        or diag($out . $err);
}

SKIP: {
    skip 'amtool is missing (Debian package prometheus-alertmanager)', 1
        unless Omnibus::Test::have_cmd('amtool');
    ($rc, $out, $err) = run({}, 'amtool', 'check-config',
                            "$ROOT/docker/alertmanager.yml");
    is($rc, 0, 'amtool check-config docker/alertmanager.yml')
        or diag($out . $err);
}

done_testing();
