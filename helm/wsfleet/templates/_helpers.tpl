{{/* Chart name, shortened to the 63 characters of a DNS label. */}}
{{- define "wsfleet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped base name of the objects this chart creates. */}}
{{- define "wsfleet.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "wsfleet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object the chart renders (selector labels are added per component). */}}
{{- define "wsfleet.labels" -}}
helm.sh/chart: {{ include "wsfleet.chart" . }}
app.kubernetes.io/part-of: wsfleet
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The operator's pods. Its app name differs from the fleet's ("wsfleet"), so a fleet Service
     that selects name+instance never picks up the operator, whatever the release is called. */}}
{{- define "wsfleet.operator.fullname" -}}
{{- printf "%s-operator" (include "wsfleet.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "wsfleet.operator.selectorLabels" -}}
app.kubernetes.io/name: wsfleet-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "wsfleet.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "wsfleet.operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "wsfleet.operator.image" -}}
{{- printf "%s:%s" .Values.operator.image.repository (default .Chart.AppVersion .Values.operator.image.tag) }}
{{- end }}

{{/* The WsFleet this chart creates (fleet.enabled) and the labels the operator puts on its pods
     (fixed by the operator: name, instance, component). */}}
{{- define "wsfleet.fleet.name" -}}
{{- default (include "wsfleet.fullname" .) .Values.fleet.name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "wsfleet.fleet.selectorLabels" -}}
app.kubernetes.io/name: wsfleet
app.kubernetes.io/instance: {{ include "wsfleet.fleet.name" . }}
app.kubernetes.io/component: node
{{- end }}

{{- define "wsfleet.fleet.image" -}}
{{- printf "%s:%s" .Values.fleet.image.repository (default .Chart.AppVersion .Values.fleet.image.tag) }}
{{- end }}

{{/* The fleet's bus-key Secret: the user's (fleet.busKey.existingSecret) or the generated one. */}}
{{- define "wsfleet.fleet.busKeySecretName" -}}
{{- default (printf "%s-bus-key" (include "wsfleet.fleet.name" .) | trunc 63 | trimSuffix "-") .Values.fleet.busKey.existingSecret.name }}
{{- end }}

{{- define "wsfleet.fleet.busKeySecretKey" -}}
{{- if .Values.fleet.busKey.existingSecret.name }}
{{- default "keys" .Values.fleet.busKey.existingSecret.key }}
{{- else }}
{{- "keys" }}
{{- end }}
{{- end }}

{{/* The single-node dev Redis. */}}
{{- define "wsfleet.devRedis.fullname" -}}
{{- printf "%s-dev-redis" (include "wsfleet.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "wsfleet.devRedis.selectorLabels" -}}
app.kubernetes.io/name: wsfleet-dev-redis
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: dev-redis
{{- end }}

{{/* The fleet's Redis nodes as a YAML list: fleet.redis.nodes, then the dev Redis when enabled.
     Fails with one sentence when a fleet would have none. */}}
{{- define "wsfleet.fleet.redisNodes" -}}
{{- $nodes := list }}
{{- range .Values.fleet.redis.nodes }}
{{- $nodes = append $nodes . }}
{{- end }}
{{- if .Values.devRedis.enabled }}
{{- $host := printf "%s.%s.svc" (include "wsfleet.devRedis.fullname" .) .Release.Namespace }}
{{- $nodes = append $nodes (dict "host" $host "port" 6379 "db" 0) }}
{{- end }}
{{- $seen := dict }}
{{- range $nodes }}
{{- $key := printf "%s:%v/%v" .host (default 6379 .port) (default 0 .db) }}
{{- if hasKey $seen $key }}
{{- fail (printf "fleet.redis.nodes lists the Redis node %s twice" $key) }}
{{- end }}
{{- $_ := set $seen $key true }}
{{- end }}
{{- if not $nodes }}
{{- fail "fleet.enabled is true but the fleet has no Redis node: list yours in fleet.redis.nodes (e.g. --set fleet.redis.nodes[0].host=redis.example.internal) or set devRedis.enabled=true for a throwaway single-node Redis" }}
{{- end }}
{{- toYaml $nodes }}
{{- end }}

{{/* The Redis ports the fleet and the operator dial, for the NetworkPolicy egress rules. */}}
{{- define "wsfleet.redisPorts" -}}
{{- $ports := list }}
{{- range .Values.networkPolicy.redisPorts }}
{{- $ports = append $ports (int .) }}
{{- end }}
{{- if .Values.fleet.enabled }}
{{- range .Values.fleet.redis.nodes }}
{{- $ports = append $ports (int (default 6379 .port)) }}
{{- end }}
{{- end }}
{{- if .Values.devRedis.enabled }}
{{- $ports = append $ports 6379 }}
{{- end }}
{{- toYaml (uniq $ports) }}
{{- end }}

{{/* The operator's rights where it manages WsFleets. The same rule list as operator/rbac.yaml in
     the wsfleet repository, which the operator's tests run against a real API server (the chart
     tests compare the two). */}}
{{- define "wsfleet.operator.rules" -}}
# The custom resource: kopf watches it and keeps its own state in annotations (patch).
- apiGroups: [wsfleet.io]
  resources: [wsfleets]
  verbs: [list, watch, patch]
# Status is written through the status subresource.
- apiGroups: [wsfleet.io]
  resources: [wsfleets/status]
  verbs: [patch]
# Owner references carry blockOwnerDeletion: with the OwnerReferencesPermissionEnforcement
# admission plugin (on by default in OpenShift) that needs update on the owner's finalizers.
- apiGroups: [wsfleet.io]
  resources: [wsfleets/finalizers]
  verbs: [update]
# Owned Deployments: server-side apply (create + patch), read back, watched for their status
# and for hand edits.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch]
# The other owned objects: server-side apply, watched so hand edits and deletions are repaired
# within seconds. Nothing is ever deleted by the operator: owned objects go with their WsFleet
# through ownerReferences and the garbage collector.
- apiGroups: [""]
  resources: [services, configmaps]
  verbs: [list, watch, create, patch]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [list, watch, create, patch]
# Events on the WsFleet: the operator's transitions and kopf's handler failures.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- with .Values.operator.rbac.readSecrets }}
{{- if .enabled }}
# Opt-in: the Redis password Secrets (passwordSecretRef), so the operator can PING those Redis
# nodes and publish the hot-plug message to them. Pods mount the Secrets and never need this.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
  {{- with .names }}
  resourceNames:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The WsFleet that Ingress, HTTPRoute and NetworkPolicy point at: the chart's own fleet, or one
     created by hand and named in fleet.name. */}}
{{- define "wsfleet.fleet.target" -}}
{{- if not (or .root.Values.fleet.enabled .root.Values.fleet.name) }}
{{- fail (printf "%s needs a fleet: set fleet.enabled=true, or fleet.name to a WsFleet you created yourself" .what) }}
{{- end }}
{{- include "wsfleet.fleet.name" .root }}
{{- end }}

{{/* "{matchers}" for the alert expressions, or nothing when monitoring.prometheusRule.matchers is empty. */}}
{{- define "wsfleet.alertSelector" -}}
{{- with .Values.monitoring.prometheusRule.matchers }}{{ printf "{%s}" . }}{{ end }}
{{- end }}

{{/* A selector with its own matchers plus monitoring.prometheusRule.matchers:
     include "wsfleet.alertSelectorWith" (list $ `type="Degraded"`) -> {type="Degraded",<matchers>} */}}
{{- define "wsfleet.alertSelectorWith" -}}
{{- $root := index . 0 }}
{{- printf "{%s}" (compact (list (index . 1) $root.Values.monitoring.prometheusRule.matchers) | join ",") }}
{{- end }}

{{/* NetworkPolicy egress rules shared by the fleet and the operator. */}}
{{- define "wsfleet.networkPolicy.dnsEgress" -}}
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- end }}
{{- define "wsfleet.networkPolicy.redisEgress" -}}
- ports:
    {{- range .ports }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
  {{- with .to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
