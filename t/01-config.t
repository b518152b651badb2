# Bad configuration fails `nginx -t` with a message that names the
# directive and the problem; a configuration with every directive, as
# the README documents them, passes.

use strict;
use warnings;

use Test::More;
use lib 't/lib';
use Omnibus::Test;

my $t = Omnibus::Test->new;

my $server = <<'EOF';
    server {
        listen 127.0.0.1:%%PORT0%%;
        location /publish/ { omnibus_publish bus; }
    }
EOF

sub fails {
    my ($http, $re, $name) = @_;
    $t->conf($http);
    my ($ok, $out) = $t->test_conf;
    ok(!$ok, "$name: nginx -t fails");
    like($out, $re, "$name: the message says why");
    like($out, qr/\[emerg\]\ \d+\#\d+:\ (?:omnibus_\w+:\ 
                                          |"omnibus_\w+"\ directive\ 
                                          |.*\ in\ "omnibus_\w+")/x,
         "$name: the message names the directive");
}

my $zone = "omnibus_zone zone=bus:8m;\n";

fails("server { listen 127.0.0.1:%%PORT0%%;
       location /p/ { omnibus_publish nope; } }",
      qr/unknown omnibus zone "nope"/, 'publish to an unknown zone');
fails("server { listen 127.0.0.1:%%PORT0%%;
       location /a/ { omnibus_admin nope; } }",
      qr/unknown omnibus zone "nope"/, 'admin of an unknown zone');
fails("server { listen 127.0.0.1:%%PORT0%%;
       location /h/ { omnibus_health nope; } }",
      qr/unknown omnibus zone "nope"/, 'health of an unknown zone');
fails("omnibus_zone shards=8;\n$server",
      qr/omnibus_zone: a "zone=NAME:SIZE" parameter is required/, 'zone= missing');
fails("omnibus_zone zone=bus:lots;\n$server",
      qr/invalid zone size "zone=bus:lots"/, 'bad size');
fails("omnibus_zone zone=bus:8m colour=blue;\n$server",
      qr/omnibus_zone: invalid parameter "colour=blue"/, 'unknown parameter');
fails("omnibus_zone zone=bus:8m shards=20;\n$server",
      qr/shards must satisfy 1 <= min_shards <= shards <= max_shards/,
      'shards above max_shards');
fails("omnibus_zone zone=bus:8m shards=8 max_shards=300;\n$server",
      qr/invalid "max_shards=300": expected a number from 1 to 256/,
      'max_shards above 256');
fails("omnibus_zone zone=bus:8m backpressure=50%:60%;\n$server",
      qr/backpressure must be HIGH%:LOW% with LOW < HIGH/,
      'backpressure low above high');
fails("omnibus_zone zone=bus:8m backpressure=80;\n$server",
      qr/expected backpressure=HIGH%:LOW%/, 'backpressure without percents');
fails("omnibus_zone zone=bus:128k max_shards=64;\n$server",
      qr/omnibus zone "bus" is too small for max_shards=64/,
      'zone too small for its shards');
fails("$zone omnibus_zone zone=bus:8m;\n$server",
      qr/duplicate omnibus zone "bus"/, 'duplicate zone');
fails("$zone omnibus_zone zone=bus:8m dedup_ttl=soon;\n$server",
      qr/invalid "dedup_ttl=soon"/, 'bad dedup_ttl');
fails("$zone omnibus_rate_limit \$binary_remote_addr rate=0r/s;\n$server",
      qr/invalid rate "rate=0r\/s"/, 'zero rate');
fails("$zone omnibus_rate_limit \$binary_remote_addr rate=5r/h;\n$server",
      qr/invalid rate "rate=5r\/h"/, 'rate per hour');
fails("$zone omnibus_dedup maybe;\n$server",
      qr/invalid value "maybe", expected "off", "key" or "content"/,
      'bad dedup mode');
fails("$zone omnibus_max_message_size 2048m;\n$server",
      qr/"omnibus_max_message_size" directive must be from 1 byte to 1024m/,
      'message size above 1024m');
fails("$zone omnibus_json sometimes;\n$server",
      qr/invalid value "sometimes" in "omnibus_json"/, 'bad json flag');
fails("$zone server { listen 127.0.0.1:%%PORT0%%;
       location /p/ { omnibus_publish bus; omnibus_publish bus; } }",
      qr/"omnibus_publish" directive is duplicate/, 'two handlers');
fails("$zone server { listen 127.0.0.1:%%PORT0%%;
       location /h/ { omnibus_health bus lively; } }",
      qr/invalid parameter "lively", expected "ready"/, 'bad health mode');
fails("$zone omnibus_route bus orders.> https://127.0.0.1:9/x;\n$server",
      qr/invalid route URL "https:\/\/127.0.0.1:9\/x"/, 'route over https');
fails("$zone omnibus_route bus a.>.b http://127.0.0.1:9/x;\n$server",
      qr/invalid topic pattern "a.>.b"/, '> not at the end');
fails("$zone omnibus_route bus a..b http://127.0.0.1:9/x;\n$server",
      qr/invalid topic pattern "a..b"/, 'empty token');
fails("$zone omnibus_route bus a.*x http://127.0.0.1:9/x;\n$server",
      qr/invalid topic pattern "a.\*x"/, 'wildcard inside a token');
fails("$zone omnibus_route bus a.> http://127.0.0.1:9/x retries=x;\n$server",
      qr/omnibus_route: invalid parameter "retries=x"/, 'bad retries');
fails("$zone omnibus_route bus a.> http://127.0.0.1:9/x breaker=5:0:1;\n"
      . $server,
      qr/omnibus_route: invalid parameter "breaker=5:0:1"/, 'bad breaker');
fails("$zone omnibus_route bus a.> http://127.0.0.1:9/x concurrency=0;\n"
      . $server,
      qr/omnibus_route: invalid parameter "concurrency=0"/,
      'zero concurrency');
fails("omnibus_zone zone=bus:8m retain=0;\n"
      . "server { listen 127.0.0.1:%%PORT0%%;
         location /s/ { omnibus_subscribe bus; } }",
      qr/has retain=0: subscribers read the retain ring/,
      'subscribers without a retain ring');
fails("$zone omnibus_autoscale bus up=20% down=50%;\n$server",
      qr/down= must be below up=/, 'autoscale bounds crossed');

$t->conf(<<'EOF');
    omnibus_zone zone=bus:64m shards=8 min_shards=2 max_shards=16
                 queue_size=10000 concurrency=4 dedup_ttl=3600s
                 dlq_size=10000 retain=1000 backpressure=80%:50%;

    omnibus_route bus orders.> http://127.0.0.1:9000/hooks/orders
                  timeout=5s retries=3 backoff=10ms max_backoff=30s
                  breaker=5:60s:3 concurrency=4;

    omnibus_autoscale bus interval=60s up=80% down=20%;
    omnibus_rate_limit $binary_remote_addr rate=1000r/m;

    server {
        listen 127.0.0.1:%%PORT0%%;
        location /publish/   { omnibus_publish bus; }
        location /subscribe/ { omnibus_subscribe bus; }
        location /omnibus/   { omnibus_admin bus; allow 127.0.0.1; deny all; }
        location = /metrics  { omnibus_metrics; }
        location = /healthz  { omnibus_health bus; }
        location = /readyz   { omnibus_health bus ready; }
    }
EOF

my ($ok, $out) = $t->test_conf;
ok($ok, 'every directive as the README documents it passes') or diag($out);

$t->finish;
