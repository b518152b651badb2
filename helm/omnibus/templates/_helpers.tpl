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
parameters take the module's defaults (5s, 3, 10ms, 30s).
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
{{- $sum := mul $timeout (add $retries 1) -}}
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
{{- $why = printf "%d s for the slowest route, %s: timeout x (retries + 1) + backoffs" (div (add (atoi (first $slow)) 999) 1000) (last $slow) -}}
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
{{- range $v.routes -}}
{{- if not (regexMatch "^[A-Za-z0-9_:*>-]+(\\.[A-Za-z0-9_:*>-]+)*$" (toString .pattern)) -}}
{{- fail (printf "routes: pattern %q: dot-separated tokens of [A-Za-z0-9_:-], * and a final >" (toString .pattern)) -}}
{{- end -}}
{{- if not (regexMatch "^http://[A-Za-z0-9._-]+(:[0-9]+)?(/[A-Za-z0-9._~%!$&'()*+,=:@/?-]*)?$" (toString .url)) -}}
{{- fail (printf "routes: url %q: only http://HOST[:PORT][/PATH] webhooks exist in this module version" (toString .url)) -}}
{{- end -}}
{{- if and .name (not (regexMatch "^[A-Za-z0-9_.:-]+$" (toString .name))) -}}
{{- fail (printf "routes: name %q: letters, digits, _ . : - only" (toString .name)) -}}
{{- end -}}
{{- if and .breaker (not (regexMatch "^[0-9]+:[0-9a-zA-Z]+:[0-9]+$" (toString .breaker))) -}}
{{- fail (printf "routes: breaker %q: expected FAILURES:TIME:SUCCESSES" (toString .breaker)) -}}
{{- end -}}
{{- $_ := include "omnibus.routeBudgetMs" . -}}
{{- end -}}
{{- range $v.admin.allow -}}
{{- if not (regexMatch "^[0-9A-Fa-f.:]+(/[0-9]+)?$" (toString .)) -}}
{{- fail (printf "admin.allow: %q is not an address or CIDR" (toString .)) -}}
{{- end -}}
{{- end -}}
{{- if regexMatch "[;{}\"\\s]" (toString $v.publish.rateLimit.key) -}}
{{- fail "publish.rateLimit.key: no spaces, quotes, ; { or }" -}}
{{- end -}}
{{- range $v.secrets -}}
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
