{{/* Names ------------------------------------------------------------------------------------------- */}}

{{- define "spotalis.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "spotalis.fullname" -}}
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

{{- define "spotalis.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "spotalis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "spotalis.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "spotalis.labels" -}}
helm.sh/chart: {{ include "spotalis.chart" . }}
{{ include "spotalis.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubewright
{{- end }}

{{- define "spotalis.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "spotalis.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "spotalis.image" -}}
{{- $image := .Values.image }}
{{- $repository := $image.repository }}
{{- if $image.registry }}
{{- $repository = printf "%s/%s" (trimSuffix "/" $image.registry) $repository }}
{{- end }}
{{- $tag := default .Chart.AppVersion ($image.tag | toString) }}
{{- if hasPrefix "sha256:" $tag }}
{{- printf "%s@%s" $repository $tag }}
{{- else }}
{{- printf "%s:%s" $repository $tag }}
{{- end }}
{{- end }}

{{/* Namespaces --------------------------------------------------------------------------------------- */}}

{{/*
The operator namespace defaults to the release namespace, not to upstream's fixed `spotalis-system`:
a release installed elsewhere would otherwise look for its Lease (and get its Lease Role) in a namespace
it does not run in.
*/}}
{{- define "spotalis.operatorNamespace" -}}
{{- default .Release.Namespace .Values.config.operator.namespace }}
{{- end }}

{{- define "spotalis.leaseNamespace" -}}
{{- default (include "spotalis.operatorNamespace" .) .Values.config.operator.leaderElection.namespace }}
{{- end }}

{{/* Two replicas without an elected leader would both evict (upstream _helpers.tpl forces it on too). */}}
{{- define "spotalis.leaderElection" -}}
{{- or (gt (int .Values.replicaCount) 1) .Values.config.operator.leaderElection.enabled | toString }}
{{- end }}

{{/* Webhook certificate --------------------------------------------------------------------------------- */}}

{{/* "true" when the chart creates the serving certificate with cert-manager. */}}
{{- define "spotalis.certManagerCert" -}}
{{- and .Values.webhook.enabled .Values.webhook.certManager.enabled (empty .Values.webhook.tls.existingSecret) | toString }}
{{- end }}

{{- define "spotalis.certSecretName" -}}
{{- default (printf "%s-webhook-cert" (include "spotalis.fullname" .)) .Values.webhook.tls.existingSecret }}
{{- end }}

{{/* Provider presets (spec 3.4, 3.6) ----------------------------------------------------------------- */}}

{{/*
Per provider: the node classification rules (label selectors, checked before the built-ins) and the
placement terms and tolerations the webhook writes. `custom` has none: the user supplies them.
*/}}
{{- define "spotalis.presets" -}}
karpenter:
  spotLabels:
    - matchLabels:
        karpenter.sh/capacity-type: spot
  onDemandLabels:
    - matchExpressions:
        - key: karpenter.sh/capacity-type
          operator: In
          values: [on-demand, reserved]
  spotTolerations: []
  spotTerm:
    - key: karpenter.sh/capacity-type
      operator: In
      values: [spot]
  onDemandTerm:
    - key: karpenter.sh/capacity-type
      operator: In
      values: [on-demand, reserved]
eks:
  spotLabels:
    - matchLabels:
        eks.amazonaws.com/capacityType: SPOT
  onDemandLabels:
    - matchLabels:
        eks.amazonaws.com/capacityType: ON_DEMAND
  spotTolerations: []
  spotTerm:
    - key: eks.amazonaws.com/capacityType
      operator: In
      values: [SPOT]
  onDemandTerm:
    - key: eks.amazonaws.com/capacityType
      operator: In
      values: [ON_DEMAND]
gke:
  spotLabels:
    - matchLabels:
        cloud.google.com/gke-spot: "true"
    - matchLabels:
        cloud.google.com/gke-preemptible: "true"
  onDemandLabels:
    - matchExpressions:
        - key: cloud.google.com/gke-nodepool
          operator: Exists
        - key: cloud.google.com/gke-spot
          operator: NotIn
          values: ["true"]
        - key: cloud.google.com/gke-preemptible
          operator: NotIn
          values: ["true"]
  spotTolerations:
    - key: cloud.google.com/gke-spot
      operator: Equal
      value: "true"
      effect: NoSchedule
  spotTerm:
    - key: cloud.google.com/gke-spot
      operator: In
      values: ["true"]
  onDemandTerm:
    - key: cloud.google.com/gke-spot
      operator: NotIn
      values: ["true"]
    - key: cloud.google.com/gke-preemptible
      operator: NotIn
      values: ["true"]
aks:
  spotLabels:
    - matchLabels:
        kubernetes.azure.com/scalesetpriority: spot
  onDemandLabels:
    - matchLabels:
        kubernetes.azure.com/scalesetpriority: regular
    - matchExpressions:
        - key: kubernetes.azure.com/agentpool
          operator: Exists
        - key: kubernetes.azure.com/scalesetpriority
          operator: DoesNotExist
  spotTolerations:
    - key: kubernetes.azure.com/scalesetpriority
      operator: Equal
      value: spot
      effect: NoSchedule
  spotTerm:
    - key: kubernetes.azure.com/scalesetpriority
      operator: In
      values: [spot]
  onDemandTerm:
    - key: kubernetes.azure.com/scalesetpriority
      operator: NotIn
      values: [spot]
custom:
  spotLabels: []
  onDemandLabels: []
  spotTolerations: []
  spotTerm: []
  onDemandTerm: []
{{- end }}

{{/* The preset that fills empty classifier rules: `preset`, karpenter when unset (as upstream). */}}
{{- define "spotalis.preset" -}}
{{- default "karpenter" .Values.preset }}
{{- end }}

{{/*
"true" for an upstream values file: no preset, no placement provider, but its own spotLabels. The process
then places with the first spot label pair, as upstream's webhook did [compat pkg/webhook/mutate.go], so
the chart leaves the provider and the terms out of the config for it to derive; filling Karpenter's terms
in would pin pods to a label those nodes do not carry.
*/}}
{{- define "spotalis.derivedPlacement" -}}
{{- and (empty .Values.preset) (empty .Values.config.webhook.placement.provider) (not (empty .Values.config.controllers.nodeClassifier.spotLabels)) | toString }}
{{- end }}

{{/* The placement provider: `config.webhook.placement.provider`, else the preset (`custom` when derived). */}}
{{- define "spotalis.provider" -}}
{{- if eq (include "spotalis.derivedPlacement" .) "true" }}
{{- "custom" }}
{{- else }}
{{- default (include "spotalis.preset" .) .Values.config.webhook.placement.provider }}
{{- end }}
{{- end }}

{{/* Parsing ------------------------------------------------------------------------------------------ */}}

{{/*
Seconds (a float) of a Go duration such as `1m30s` or `1.5h`; values.schema.json admits only well-formed
durations. Sprig has no duration parser, and the guards compare durations.
*/}}
{{- define "spotalis.seconds" -}}
{{- $units := dict "ns" 0.000000001 "us" 0.000001 "µs" 0.000001 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 }}
{{- $total := 0.0 }}
{{- range regexFindAll "[0-9]*\\.?[0-9]+(ns|us|µs|ms|s|m|h)" (toString .) -1 }}
{{- $number := regexFind "^[0-9]*\\.?[0-9]+" . }}
{{- $unit := trimPrefix $number . }}
{{- $total = addf $total (mulf (float64 $number) (get $units $unit)) }}
{{- end }}
{{- $total }}
{{- end }}

{{/* The port of a listen address such as `:8080` or `0.0.0.0:8080` ("" when it has none). */}}
{{- define "spotalis.addressPort" -}}
{{- regexFind "[0-9]+$" (toString .) }}
{{- end }}

{{/* Configuration file (spec 2.3) --------------------------------------------------------------------- */}}

{{/*
config.yaml: `config.*` as given, with the namespaces resolved, leader election forced on for several
replicas, the webhook switch and the shutdown budget derived from the Deployment, and the preset filled
in wherever the user left a list empty (except the placement an upstream values file leaves to the
process, see spotalis.derivedPlacement).
*/}}
{{- define "spotalis.config" -}}
{{- $c := deepCopy .Values.config }}
{{- $presets := include "spotalis.presets" . | fromYaml }}
{{- $classifierPreset := get $presets (include "spotalis.preset" .) }}
{{- $provider := include "spotalis.provider" . }}
{{- $placementPreset := get $presets $provider }}
{{- $_ := set $c.operator "namespace" (include "spotalis.operatorNamespace" .) }}
{{- /* The kubelet kills the pod at the grace period: keep 5 s of it for the exit itself. */}}
{{- $_ = set $c.operator "gracefulShutdownTimeout" (printf "%ds" (sub (int .Values.terminationGracePeriodSeconds) 5)) }}
{{- $_ = set $c.operator.leaderElection "enabled" (eq (include "spotalis.leaderElection" .) "true") }}
{{- $_ = set $c.operator.leaderElection "namespace" (include "spotalis.leaseNamespace" .) }}
{{- $classifier := $c.controllers.nodeClassifier }}
{{- range $key := list "spotLabels" "onDemandLabels" }}
{{- if empty (get $classifier $key) }}
{{- $_ = set $classifier $key (get $classifierPreset $key) }}
{{- end }}
{{- end }}
{{- $_ = set $c.webhook "enabled" .Values.webhook.enabled }}
{{- $placement := $c.webhook.placement }}
{{- if eq (include "spotalis.derivedPlacement" .) "true" }}
{{- $_ = unset $placement "provider" }}
{{- range $key := list "spotTerm" "onDemandTerm" }}
{{- if empty (get $placement $key) }}
{{- $_ = unset $placement $key }}
{{- end }}
{{- end }}
{{- else }}
{{- $_ = set $placement "provider" $provider }}
{{- range $key := list "spotTolerations" "spotTerm" "onDemandTerm" }}
{{- if empty (get $placement $key) }}
{{- $_ = set $placement $key (get $placementPreset $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $c }}
{{- end }}

{{/*
The keys the process reads only at start (spec 3.13): the Deployment's `checksum/config` covers these
alone, so editing any other key is reloaded in place instead of restarting every replica.
*/}}
{{- define "spotalis.restartOnlyConfig" -}}
{{- $c := include "spotalis.config" . | fromYaml }}
{{- $restart := dict
  "operator" (dict "namespace" $c.operator.namespace "leaderElection" $c.operator.leaderElection)
  "controllers" (pick $c.controllers "watchNamespaces")
  "webhook" (pick $c.webhook "enabled" "port" "certDir" "certName" "keyName")
  "observability" (pick $c.observability "metrics" "health")
}}
{{- toYaml $restart }}
{{- end }}

{{/* RBAC rules on namespaced objects besides reading pods (spec 6 table); the same in both scopes. */}}
{{- define "spotalis.workloadRules" -}}
- apiGroups: [""]
  resources: [pods/eviction]
  verbs: [create]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [get, list, watch]
- apiGroups: [apps]
  resources: [deployments, statefulsets]
  verbs: [get, list, watch, patch]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch]
{{- end }}
