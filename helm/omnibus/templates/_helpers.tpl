{{/* Names and labels */}}

{{- define "omnibus.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "omnibus.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "omnibus.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "omnibus.selectorLabels" -}}
app.kubernetes.io/name: {{ include "omnibus.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "omnibus.labels" -}}
helm.sh/chart: {{ include "omnibus.chart" . }}
{{ include "omnibus.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "omnibus.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "omnibus.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "omnibus.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) -}}
{{- end -}}

{{/*
"omnibus.ms": an nginx time ("5s", "10ms", "1m30s", "2h"; a bare number
is seconds) in milliseconds, as a string (pipe it to atoi).
*/}}
{{- define "omnibus.ms" -}}
{{- $s := toString . | trim -}}
{{- if regexMatch "^[0-9]+$" $s -}}
{{- mul (atoi $s) 1000 -}}
{{- else if regexMatch "^([0-9]+(ms|[smhdwMy]))+$" $s -}}
{{- $unit := dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000 "d" 86400000 "w" 604800000 "M" 2592000000 "y" 31536000000 -}}
{{- $ms := 0 -}}
{{- range regexFindAll "[0-9]+(ms|[smhdwMy])" $s -1 -}}
{{- $ms = add $ms (mul (atoi (regexFind "^[0-9]+" .)) (get $unit (regexReplaceAll "^[0-9]+" . ""))) -}}
{{- end -}}
{{- $ms -}}
{{- else -}}
{{- fail (printf "invalid nginx time %q (expected e.g. 5s, 500ms, 1m30s)" $s) -}}
{{- end -}}
{{- end -}}

{{/*
"omnibus.routeBudgetMs": the longest a route may work on one message:
every attempt at its timeout, (retries + 1) x timeout, plus the backoffs
between them, backoff x 2^(n-1) each, at most max_backoff. Unset
parameters take the module's defaults (5s, 3, 10ms, 30s). A kafka://
attempt may last a second longer: the module waits that long past the
timeout (librdkafka's message.timeout.ms) for the delivery report.
*/}}
{{- define "omnibus.routeBudgetMs" -}}
{{- $timeout := 5000 -}}
{{- if not (kindIs "invalid" .timeout) -}}{{- $timeout = include "omnibus.ms" .timeout | atoi -}}{{- end -}}
{{- $retries := 3 -}}
{{- if not (kindIs "invalid" .retries) -}}{{- $retries = int .retries -}}{{- end -}}
{{- $backoff := 10 -}}
{{- if not (kindIs "invalid" .backoff) -}}{{- $backoff = include "omnibus.ms" .backoff | atoi -}}{{- end -}}
{{- $max := 30000 -}}
{{- if not (kindIs "invalid" .maxBackoff) -}}{{- $max = include "omnibus.ms" .maxBackoff | atoi -}}{{- end -}}
{{- $attempt := $timeout -}}
{{- if hasPrefix "kafka:" (toString .url) -}}{{- $attempt = add $timeout 1000 -}}{{- end -}}
{{- $sum := mul $attempt (add $retries 1) -}}
{{- $b := min $backoff $max -}}
{{- range until $retries -}}
{{- $sum = add $sum $b -}}
{{- $b = min (mul $b 2) $max -}}
{{- end -}}
{{- $sum -}}
{{- end -}}

{{/* "omnibus.routeBudgetMax": "MS NAME" of the slowest route, "0 -" if none */}}
{{- define "omnibus.routeBudgetMax" -}}
{{- $max := 0 -}}
{{- $who := "-" -}}
{{- range .Values.routes -}}
{{- $ms := include "omnibus.routeBudgetMs" . | atoi -}}
{{- if gt $ms $max -}}
{{- $max = $ms -}}
{{- $who = default .pattern .name -}}
{{- end -}}
{{- end -}}
{{- printf "%d %s" $max $who -}}
{{- end -}}

{{/*
"omnibus.minGraceSeconds": what the grace period must exceed: the preStop
delay, the drain and the slowest route's whole retry budget.
*/}}
{{- define "omnibus.minGraceSeconds" -}}
{{- $ms := include "omnibus.routeBudgetMax" . | splitList " " | first | atoi -}}
{{- add (int .Values.termination.preStopDelaySeconds) (int .Values.termination.drainSeconds) (div (add $ms 999) 1000) -}}
{{- end -}}

{{/*
"omnibus.routeUrl" (dict "r" ROUTE "v" .Values): the route's URL as
rendered: kafka:///TOPIC gets the brokers of kafka.brokers.
*/}}
{{- define "omnibus.routeUrl" -}}
{{- $u := toString .r.url -}}
{{- if hasPrefix "kafka:///" $u -}}
{{- printf "kafka://%s/%s" (toString .v.kafka.brokers) (trimPrefix "kafka:///" $u) -}}
{{- else -}}
{{- $u -}}
{{- end -}}
{{- end -}}

{{/*
"omnibus.fallbackFile" (dict "r" ROUTE "v" .Values): the path of the
route's fallback file in kafka.fallback.dir, empty without one. fallback:
true names it after the route (its name, or its pattern with _ for what
is not [A-Za-z0-9_.-]); a string is the file's name.
*/}}
{{- define "omnibus.fallbackFile" -}}
{{- $f := .r.fallback -}}
{{- if kindIs "bool" $f -}}
{{- if $f -}}
{{- $f = printf "%s.ndjson" (regexReplaceAll "[^A-Za-z0-9_.-]" (toString (default .r.pattern .r.name)) "_") -}}
{{- else -}}
{{- $f = "" -}}
{{- end -}}
{{- else if kindIs "invalid" $f -}}
{{- $f = "" -}}
{{- end -}}
{{- if $f -}}
{{- printf "%s/%s" (trimSuffix "/" (toString .v.kafka.fallback.dir)) (toString $f) -}}
{{- end -}}
{{- end -}}

{{/* "omnibus.scalar": a value as nginx.conf text, numbers as integers */}}
{{- define "omnibus.scalar" -}}
{{- if or (kindIs "float64" .) (kindIs "int" .) (kindIs "int64" .) -}}
{{- int64 . -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{/*
"omnibus.storePasswordFile": where the store's password Secret is mounted
(password_file=), empty when the store is off or has no password Secret
*/}}
{{- define "omnibus.storePasswordFile" -}}
{{- if and .Values.store.enabled .Values.store.passwordSecret.name -}}
/run/secrets/omnibus-store/password
{{- end -}}
{{- end -}}

{{/*
"omnibus.redisPasswordFile": where Redis's password Secret is mounted
(password_file=), empty when Redis is off or has no password Secret
*/}}
{{- define "omnibus.redisPasswordFile" -}}
{{- if and .Values.redis.enabled .Values.redis.passwordSecret.name -}}
/run/secrets/omnibus-redis/password
{{- end -}}
{{- end -}}

{{/*
"omnibus.onOff": a switch of the values (true / false, or "on" / "off")
as nginx.conf's on or off; .v the value, .d the default when unset
*/}}
{{- define "omnibus.onOff" -}}
{{- $x := .v -}}
{{- if kindIs "invalid" $x -}}{{- $x = .d -}}{{- end -}}
{{- ternary "on" "off" (has (toString $x) (list "true" "on")) -}}
{{- end -}}

{{/* "omnibus.kafkaFallback": "true" when a route has a fallback file */}}
{{- define "omnibus.kafkaFallback" -}}
{{- $v := .Values -}}
{{- $any := false -}}
{{- range $v.routes -}}
{{- if include "omnibus.fallbackFile" (dict "r" . "v" $v) -}}
{{- $any = true -}}
{{- end -}}
{{- end -}}
{{- if $any -}}true{{- end -}}
{{- end -}}

{{/* "omnibus.zoneBytes": omnibus_zone's SIZE (k, m) in bytes */}}
{{- define "omnibus.zoneBytes" -}}
{{- $s := toString .Values.zone.size -}}
{{- if not (regexMatch "^[0-9]+[kKmM]?$" $s) -}}
{{- fail (printf "zone.size %q: expected a number with an optional k or m suffix (nginx takes no g here)" $s) -}}
{{- end -}}
{{- $n := regexFind "^[0-9]+" $s | atoi -}}
{{- $u := lower (regexReplaceAll "^[0-9]+" $s "") -}}
{{- mul $n (get (dict "" 1 "k" 1024 "m" 1048576) $u) -}}
{{- end -}}

{{/* "omnibus.quantityBytes": a Kubernetes memory quantity in bytes */}}
{{- define "omnibus.quantityBytes" -}}
{{- $s := toString . -}}
{{- if not (regexMatch "^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$" $s) -}}
{{- fail (printf "memory quantity %q: expected e.g. 512Mi, 2Gi, 1G" $s) -}}
{{- end -}}
{{- $n := regexFind "^[0-9]+(\\.[0-9]+)?" $s | float64 -}}
{{- $u := regexReplaceAll "^[0-9]+(\\.[0-9]+)?" $s "" -}}
{{- $f := get (dict "" 1 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776) $u -}}
{{- mulf $n $f | floor | int64 -}}
{{- end -}}

{{/*
"omnibus.validate": refuse values that would render a configuration nginx
rejects or a pod that cannot stop cleanly. Included by the ConfigMap and
the Deployment; renders nothing.
*/}}
{{- define "omnibus.validate" -}}
{{- $v := .Values -}}
{{- $grace := int $v.termination.gracePeriodSeconds -}}
{{- $min := include "omnibus.minGraceSeconds" . | atoi -}}
{{- if le $grace $min -}}
{{- $slow := include "omnibus.routeBudgetMax" . | splitList " " -}}
{{- $why := "no routes" -}}
{{- if $v.routes -}}
{{- $why = printf "%d s for the slowest route, %s: timeout x (retries + 1) + backoffs (a kafka:// attempt counts timeout + 1 s)" (div (add (atoi (first $slow)) 999) 1000) (last $slow) -}}
{{- end -}}
{{- fail (printf "termination.gracePeriodSeconds is %d: it must be longer than %d s = preStopDelaySeconds %d + drainSeconds %d + %s" $grace $min (int $v.termination.preStopDelaySeconds) (int $v.termination.drainSeconds) $why) -}}
{{- end -}}
{{- if not (regexMatch "^[A-Za-z0-9_]+$" (toString $v.zone.name)) -}}
{{- fail (printf "zone.name %q: letters, digits and _ only" (toString $v.zone.name)) -}}
{{- end -}}
{{- if not (regexMatch "^[0-9]+%:[0-9]+%$" (toString $v.zone.backpressure)) -}}
{{- fail (printf "zone.backpressure %q: expected HIGH%%:LOW%%" (toString $v.zone.backpressure)) -}}
{{- end -}}
{{- $zone := include "omnibus.zoneBytes" . | atoi -}}
{{- with $v.resources.limits -}}
{{- if .memory -}}
{{- $limit := include "omnibus.quantityBytes" .memory | atoi -}}
{{- if gt (add $zone 33554432) $limit -}}
{{- fail (printf "zone.size %s does not fit resources.limits.memory %s with 32Mi to spare for the nginx processes" (toString $v.zone.size) (toString .memory)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if gt (len $v.routes) 64 -}}
{{- fail "routes: at most 64 routes per zone" -}}
{{- end -}}
{{- range $v.upstreams -}}
{{- if not (regexMatch "^[A-Za-z0-9_-]+$" (toString .name)) -}}
{{- fail (printf "upstreams: name %q: letters, digits, _ and - only" (toString .name)) -}}
{{- end -}}
{{- if not .servers -}}
{{- fail (printf "upstreams: %s has no servers" .name) -}}
{{- end -}}
{{- range .servers -}}
{{- if not (regexMatch "^[A-Za-z0-9._:\\[\\]-]+( [a-z_]+(=[A-Za-z0-9.]+)?)*$" (toString .)) -}}
{{- fail (printf "upstreams: server %q: expected HOST[:PORT] [parameters]" (toString .)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $broker := "(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+)(:[0-9]+)?" -}}
{{- $brokers := printf "%s(,%s)*" $broker $broker -}}
{{- $kbrokers := toString (default "" $v.kafka.brokers) -}}
{{- if and $kbrokers (not (regexMatch (printf "^%s$" $brokers) $kbrokers)) -}}
{{- fail (printf "kafka.brokers %q: expected HOST:PORT[,HOST:PORT...]" $kbrokers) -}}
{{- end -}}
{{- $fbdir := toString $v.kafka.fallback.dir -}}
{{- if not (regexMatch "^/[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$" $fbdir) -}}
{{- fail (printf "kafka.fallback.dir %q: an absolute path" $fbdir) -}}
{{- end -}}
{{- if has (trimSuffix "/" $fbdir) (list (trimSuffix "/" (toString $v.nginx.stateDir)) "/etc/omnibus" "/tmp") -}}
{{- fail (printf "kafka.fallback.dir %q: a directory of its own (not nginx.stateDir, /etc/omnibus or /tmp)" $fbdir) -}}
{{- end -}}
{{- if and $v.kafka.fallback.existingClaim (not (regexMatch "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$" (toString $v.kafka.fallback.existingClaim))) -}}
{{- fail (printf "kafka.fallback.existingClaim %q: the name of a PersistentVolumeClaim" (toString $v.kafka.fallback.existingClaim)) -}}
{{- end -}}
{{- $files := dict -}}
{{- range $v.routes -}}
{{- $r := . -}}
{{- $who := toString (default .pattern .name) -}}
{{- if not (regexMatch "^[A-Za-z0-9_:*>-]+(\\.[A-Za-z0-9_:*>-]+)*$" (toString .pattern)) -}}
{{- fail (printf "routes: pattern %q: dot-separated tokens of [A-Za-z0-9_:-], * and a final >" (toString .pattern)) -}}
{{- end -}}
{{- $url := toString .url -}}
{{- if hasPrefix "kafka:" $url -}}
{{- if not (regexMatch (printf "^kafka://(%s)?/([A-Za-z0-9._-]|\\{topic\\})+$" $brokers) $url) -}}
{{- fail (printf "routes: url %q: expected kafka://HOST:PORT[,HOST:PORT...]/TOPIC or kafka:///TOPIC (the brokers of kafka.brokers), TOPIC of [A-Za-z0-9._-] and {topic}" $url) -}}
{{- end -}}
{{- if and (hasPrefix "kafka:///" $url) (not $kbrokers) -}}
{{- fail (printf "routes: %s: url %q takes its brokers from kafka.brokers, which is empty" $who $url) -}}
{{- end -}}
{{- if not (kindIs "invalid" .acks) -}}
{{- if not (has (toString .acks) (list "all" "1" "0")) -}}
{{- fail (printf "routes: %s: acks %q: all, 1 or 0" $who (toString .acks)) -}}
{{- end -}}
{{- end -}}
{{- if not (kindIs "invalid" .linger) -}}{{- $_ := include "omnibus.ms" .linger -}}{{- end -}}
{{- if and (not (kindIs "invalid" .batch)) (not (regexMatch "^[1-9][0-9]*[kKmM]?$" (include "omnibus.scalar" .batch))) -}}
{{- fail (printf "routes: %s: batch %q: a size (16384, 64k, 1m)" $who (include "omnibus.scalar" .batch)) -}}
{{- end -}}
{{- if and .compression (not (has (toString .compression) (list "none" "gzip" "snappy" "lz4" "zstd"))) -}}
{{- fail (printf "routes: %s: compression %q: none, gzip, snappy, lz4 or zstd" $who (toString .compression)) -}}
{{- end -}}
{{- if not (kindIs "invalid" .idempotence) -}}
{{- if not (or (kindIs "bool" .idempotence) (has (toString .idempotence) (list "on" "off"))) -}}
{{- fail (printf "routes: %s: idempotence %q: true or false" $who (toString .idempotence)) -}}
{{- end -}}
{{- if and (has (toString .idempotence) (list "true" "on")) (not (kindIs "invalid" .acks)) (ne (toString .acks) "all") -}}
{{- fail (printf "routes: %s: idempotence needs acks: all" $who) -}}
{{- end -}}
{{- end -}}
{{- if and .key (not (has (toString .key) (list "topic" "id" "idempotency_key"))) -}}
{{- fail (printf "routes: %s: key %q: topic, id or idempotency_key" $who (toString .key)) -}}
{{- end -}}
{{- if and (not (kindIs "invalid" .fallback)) (not (kindIs "bool" .fallback)) (not (regexMatch "^[A-Za-z0-9_][A-Za-z0-9._-]*$" (toString .fallback))) -}}
{{- fail (printf "routes: %s: fallback %q: true, or a file name (no /) in kafka.fallback.dir" $who (toString .fallback)) -}}
{{- end -}}
{{- $file := include "omnibus.fallbackFile" (dict "r" . "v" $v) -}}
{{- if $file -}}
{{- if hasKey $files $file -}}
{{- fail (printf "routes: %s and %s: the same fallback file %s" (get $files $file) $who $file) -}}
{{- end -}}
{{- $_ := set $files $file $who -}}
{{- end -}}
{{- else -}}
{{- if not (regexMatch "^http://[A-Za-z0-9._-]+(:[0-9]+)?(/[A-Za-z0-9._~%!$&'()*+,=:@/?-]*)?$" $url) -}}
{{- fail (printf "routes: url %q: expected http://HOST[:PORT][/PATH] (a webhook) or kafka://HOST:PORT[,HOST:PORT...]/TOPIC" $url) -}}
{{- end -}}
{{- range $k := list "acks" "linger" "batch" "compression" "idempotence" "key" "fallback" -}}
{{- if not (kindIs "invalid" (index $r $k)) -}}
{{- fail (printf "routes: %s: %s is for kafka:// routes only" $who $k) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and .name (not (regexMatch "^[A-Za-z0-9_.:-]+$" (toString .name))) -}}
{{- fail (printf "routes: name %q: letters, digits, _ . : - only" (toString .name)) -}}
{{- end -}}
{{- if and .breaker (not (regexMatch "^[0-9]+:[0-9a-zA-Z]+:[0-9]+$" (toString .breaker))) -}}
{{- fail (printf "routes: breaker %q: expected FAILURES:TIME:SUCCESSES" (toString .breaker)) -}}
{{- end -}}
{{- $_ := include "omnibus.routeBudgetMs" . -}}
{{- end -}}
{{- range $i, $c := $v.kafka.consumers -}}
{{- $who := printf "kafka.consumers[%d]" $i -}}
{{- $b := toString (default $kbrokers $c.brokers) -}}
{{- if not $b -}}
{{- fail (printf "%s: no brokers (its own brokers, or kafka.brokers)" $who) -}}
{{- end -}}
{{- if not (regexMatch (printf "^%s$" $brokers) $b) -}}
{{- fail (printf "%s: brokers %q: expected HOST:PORT[,HOST:PORT...]" $who $b) -}}
{{- end -}}
{{- $topics := $c.topics -}}
{{- if kindIs "string" $topics -}}{{- $topics = splitList "," $topics -}}{{- end -}}
{{- if not $topics -}}
{{- fail (printf "%s: topics: the Kafka topics to read (a list)" $who) -}}
{{- end -}}
{{- range $topics -}}
{{- if not (regexMatch "^[A-Za-z0-9._-]+$" (toString .)) -}}
{{- fail (printf "%s: topics: %q: letters, digits, . _ - only" $who (toString .)) -}}
{{- end -}}
{{- end -}}
{{- if and $c.group (not (regexMatch "^[A-Za-z0-9._:-]+$" (toString $c.group))) -}}
{{- fail (printf "%s: group %q: letters, digits, . _ : - only" $who (toString $c.group)) -}}
{{- end -}}
{{- if and $c.topic (not (regexMatch "^([A-Za-z0-9._:-]|\\{topic\\})+$" (toString $c.topic))) -}}
{{- fail (printf "%s: topic %q: the bus topic, of [A-Za-z0-9._:-] and {topic}" $who (toString $c.topic)) -}}
{{- end -}}
{{- if and $c.offsetReset (not (has (toString $c.offsetReset) (list "latest" "earliest"))) -}}
{{- fail (printf "%s: offsetReset %q: latest or earliest" $who (toString $c.offsetReset)) -}}
{{- end -}}
{{- if not (kindIs "invalid" $c.maxPoll) -}}
{{- if or (lt (int64 $c.maxPoll) 1) (gt (int64 $c.maxPoll) 100000) -}}
{{- fail (printf "%s: maxPoll %v: 1 to 100000" $who $c.maxPoll) -}}
{{- end -}}
{{- end -}}
{{- if not (kindIs "invalid" $c.sessionTimeout) -}}{{- $_ := include "omnibus.ms" $c.sessionTimeout -}}{{- end -}}
{{- end -}}
{{- range $v.admin.allow -}}
{{- if not (regexMatch "^[0-9A-Fa-f.:]+(/[0-9]+)?$" (toString .)) -}}
{{- fail (printf "admin.allow: %q is not an address or CIDR" (toString .)) -}}
{{- end -}}
{{- end -}}
{{- if regexMatch "[;{}\"\\s]" (toString $v.publish.rateLimit.key) -}}
{{- fail "publish.rateLimit.key: no spaces, quotes, ; { or }" -}}
{{- end -}}
{{- if $v.store.enabled -}}
{{- $url := toString (default "" $v.store.url) -}}
{{- if not $url -}}
{{- fail "store.url: the PostgreSQL URL, postgresql://USER@HOST[:PORT]/DB (store.enabled is true)" -}}
{{- end -}}
{{- if or (regexMatch "^[a-z]+://[^@/]*:[^@/]*@" $url) (regexMatch "[?&]password=" $url) -}}
{{- fail "store.url has a password: put it in a Secret, store.passwordSecret (mounted as a file)" -}}
{{- end -}}
{{- $pq := "[a-z_]+=[A-Za-z0-9._/:-]+" -}}
{{- if not (regexMatch (printf "^postgres(ql)?://[A-Za-z0-9._-]+@(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+)(:[0-9]+)?/[A-Za-z0-9._-]+(\\?%s(&%s)*)?$" $pq $pq) $url) -}}
{{- fail (printf "store.url %q: expected postgresql://USER@HOST[:PORT]/DB[?PARAM=VALUE&...] (one host, no password)" $url) -}}
{{- end -}}
{{- if not (has (toString $v.store.mode) (list "sync" "async")) -}}
{{- fail (printf "store.mode %q: sync or async" (toString $v.store.mode)) -}}
{{- end -}}
{{- with $v.store.passwordSecret -}}
{{- if and .name (not (regexMatch "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$" (toString .name))) -}}
{{- fail (printf "store.passwordSecret.name %q: the name of a Secret" (toString .name)) -}}
{{- end -}}
{{- if and .name (not (regexMatch "^[-._a-zA-Z0-9]+$" (toString .key))) -}}
{{- fail (printf "store.passwordSecret.key %q: a key of the Secret" (toString .key)) -}}
{{- end -}}
{{- end -}}
{{- $time := "([0-9]+(ms|s|m|h|d|w|M|y)?)+" -}}
{{- $known := dict "pool" "[1-9][0-9]*" "overflow" "[0-9]+" "batch" "[1-9][0-9]*" "recycle" $time "flush" $time "timeout" $time "retention" $time "adopt_after" $time "breaker" (printf "[1-9][0-9]*:%s:[1-9][0-9]*" $time) -}}
{{- range $k, $val := ($v.store.params | default dict) -}}
{{- if not (hasKey $known $k) -}}
{{- fail (printf "store.params: %s: not a parameter of omnibus_store (pool, overflow, recycle, batch, flush, timeout, retention, adopt_after, breaker; mode and the password have keys of their own)" $k) -}}
{{- end -}}
{{- $sv := include "omnibus.scalar" $val -}}
{{- if not (regexMatch (printf "^(%s)$" (get $known $k)) $sv) -}}
{{- fail (printf "store.params: %s %q: expected %s" $k $sv (get (dict "pool" "a number from 1" "overflow" "a number" "batch" "a number from 1" "breaker" "FAILURES:TIME:SUCCESSES (5:60s:3)") $k | default "a time (5s, 500ms, 1h)")) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $v.redis.enabled -}}
{{- $url := toString (default "" $v.redis.url) -}}
{{- if not $url -}}
{{- fail "redis.url: the Redis URL, redis://[USER@]HOST[:PORT][/DB] (redis.enabled is true)" -}}
{{- end -}}
{{- if or (regexMatch "^[a-z]+://[^@/]*:[^@/]*@" $url) (regexMatch "[?&]password=" $url) -}}
{{- fail "redis.url has a password: put it in a Secret, redis.passwordSecret (mounted as a file)" -}}
{{- end -}}
{{- if not (regexMatch "^redis://([A-Za-z0-9._-]+@)?(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+)(:[0-9]+)?(/[0-9]+)?$" $url) -}}
{{- fail (printf "redis.url %q: expected redis://[USER@]HOST[:PORT][/DB] (one host, no password)" $url) -}}
{{- end -}}
{{- with $v.redis.passwordSecret -}}
{{- if and .name (not (regexMatch "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$" (toString .name))) -}}
{{- fail (printf "redis.passwordSecret.name %q: the name of a Secret" (toString .name)) -}}
{{- end -}}
{{- if and .name (not (regexMatch "^[-._a-zA-Z0-9]+$" (toString .key))) -}}
{{- fail (printf "redis.passwordSecret.key %q: a key of the Secret" (toString .key)) -}}
{{- end -}}
{{- end -}}
{{- range $k := list "dedup" "rateLimit" "fanout" -}}
{{- $s := index $v.redis $k -}}
{{- if not (kindIs "invalid" $s) -}}
{{- if not (or (kindIs "bool" $s) (has (toString $s) (list "on" "off"))) -}}
{{- fail (printf "redis.%s %q: true or false" $k (toString $s)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $time := "([0-9]+(ms|s|m|h|d|w|M|y)?)+" -}}
{{- $known := dict "prefix" "[A-Za-z0-9._:-]+" "timeout" $time "lock" $time "stream" "[1-9][0-9]*" "breaker" (printf "[1-9][0-9]*:%s:[1-9][0-9]*" $time) -}}
{{- range $k, $val := ($v.redis.params | default dict) -}}
{{- if not (hasKey $known $k) -}}
{{- fail (printf "redis.params: %s: not a parameter of omnibus_redis (prefix, timeout, breaker, lock, stream; dedup, rate_limit, fanout and the password have keys of their own)" $k) -}}
{{- end -}}
{{- $sv := include "omnibus.scalar" $val -}}
{{- if not (regexMatch (printf "^(%s)$" (get $known $k)) $sv) -}}
{{- fail (printf "redis.params: %s %q: expected %s" $k $sv (get (dict "prefix" "letters, digits and . _ : -" "stream" "a number from 1" "breaker" "FAILURES:TIME:SUCCESSES (5:60s:3)") $k | default "a time (1s, 500ms)")) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $v.secrets -}}
{{- if eq (toString .name) "omnibus-store" -}}
{{- fail "secrets: omnibus-store is the store's password (store.passwordSecret)" -}}
{{- end -}}
{{- if eq (toString .name) "omnibus-redis" -}}
{{- fail "secrets: omnibus-redis is Redis's password (redis.passwordSecret)" -}}
{{- end -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" (toString .name)) -}}
{{- fail (printf "secrets: name %q: a DNS label (mounted at /run/secrets/NAME)" (toString .name)) -}}
{{- end -}}
{{- if not .existingSecret -}}
{{- fail (printf "secrets: %s needs existingSecret" .name) -}}
{{- end -}}
{{- end -}}
{{- if not (has $v.ingress.flavor (list "nginx-org" "ingress-nginx")) -}}
{{- fail (printf "ingress.flavor %q: nginx-org (F5 NGINX Ingress Controller) or ingress-nginx (community)" (toString $v.ingress.flavor)) -}}
{{- end -}}
{{- if and $v.hpa.enabled (gt (int $v.hpa.minReplicas) (int $v.hpa.maxReplicas)) -}}
{{- fail "hpa.minReplicas is above hpa.maxReplicas" -}}
{{- end -}}
{{- if and $v.httpRoute.enabled (not $v.httpRoute.parentRefs) -}}
{{- fail "httpRoute.parentRefs: name the Gateway the route attaches to" -}}
{{- end -}}
{{- end -}}
