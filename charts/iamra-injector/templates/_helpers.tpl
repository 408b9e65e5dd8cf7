{{/* Names ------------------------------------------------------------------------------------------- */}}

{{- define "iamra-injector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "iamra-injector.fullname" -}}
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

{{/*
The namespace everything namespaced goes to: the release's, `namespace` only when the release has none.
*/}}
{{- define "iamra-injector.namespace" -}}
{{- default .Values.namespace .Release.Namespace }}
{{- end }}

{{/* Service `iamra-webhook` is a fixed name: the serving certificate and the MWC name it. */}}
{{- define "iamra-injector.serviceName" -}}
iamra-webhook
{{- end }}

{{- define "iamra-injector.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "iamra-injector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "iamra-injector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end }}

{{- define "iamra-injector.labels" -}}
helm.sh/chart: {{ include "iamra-injector.chart" . }}
{{ include "iamra-injector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubewright
{{- end }}

{{/* Decisions ---------------------------------------------------------------------------------------- */}}

{{/* The namespace gate label; the upstream annotation aliases win when set. */}}
{{- define "iamra-injector.gateKey" -}}
{{- default .Values.namespaceOptIn.labelKey (get .Values.namespaceOptIn "annotationKey") }}
{{- end }}

{{- define "iamra-injector.gateValue" -}}
{{- default .Values.namespaceOptIn.labelValue (get .Values.namespaceOptIn "annotationValue") | toString }}
{{- end }}

{{/*
`auto`: Fail while the gate is on (an annotated pod is never admitted without credentials), Ignore when the
webhook sees every namespace (it must not block the cluster).
*/}}
{{- define "iamra-injector.failurePolicy" -}}
{{- $policy := .Values.webhook.failurePolicy | toString }}
{{- if eq $policy "auto" }}
{{- ternary "Fail" "Ignore" .Values.namespaceOptIn.enabled }}
{{- else }}
{{- $policy }}
{{- end }}
{{- end }}

{{/* "true" when the MWC gets matchConditions; `auto` = the cluster serves them (GA path from 1.28 on). */}}
{{- define "iamra-injector.matchConditionsOn" -}}
{{- $setting := .Values.webhook.matchConditions | toString }}
{{- if eq $setting "auto" }}
{{- semverCompare ">=1.28.0-0" .Capabilities.KubeVersion.Version | toString }}
{{- else }}
{{- eq $setting "true" | toString }}
{{- end }}
{{- end }}

{{/* The issuer that signs pod certificates: the chart's CA ClusterIssuer, or an existing one. */}}
{{- define "iamra-injector.workloadIssuerName" -}}
{{- if .Values.workloadIssuer.create }}
{{- .Values.workloadIssuer.caIssuerName }}
{{- else }}
{{- .Values.workloadIssuer.name }}
{{- end }}
{{- end }}

{{- define "iamra-injector.workloadIssuerKind" -}}
{{- if .Values.workloadIssuer.create }}ClusterIssuer{{ else }}{{ .Values.workloadIssuer.type }}{{ end }}
{{- end }}

{{- define "iamra-injector.image" -}}
{{- $tag := .tag | toString }}
{{- if hasPrefix "sha256:" $tag }}
{{- printf "%s@%s" .repository $tag }}
{{- else }}
{{- printf "%s:%s" .repository $tag }}
{{- end }}
{{- end }}

{{- define "iamra-injector.webhookImage" -}}
{{- include "iamra-injector.image" (dict "repository" .Values.webhook.image.repository "tag" (default .Chart.AppVersion .Values.webhook.image.tag)) }}
{{- end }}

{{/*
config.yaml of ConfigMap `<fullname>-config`: the chart->webhook contract (spec 2.5). The webhook rejects
unknown keys, so only the contract's keys go in; values are already checked by values.schema.json.
*/}}
{{- define "iamra-injector.config" -}}
{{- $sidecar := .Values.sidecar }}
{{- $config := dict
  "trustAnchorArn" (.Values.trustAnchorArn | toString)
  "region" (.Values.region | toString)
  "failurePolicy" (include "iamra-injector.failurePolicy" .)
  "sidecar" (dict
    "image" (include "iamra-injector.image" $sidecar.image)
    "pullPolicy" $sidecar.image.pullPolicy
    "port" (int $sidecar.port)
    "logLevel" $sidecar.logLevel
    "tokenDurationSeconds" (int $sidecar.tokenDurationSeconds)
    "native" ($sidecar.native | toString)
    "nativeRefreshSeconds" (int $sidecar.nativeRefreshSeconds)
    "resources" $sidecar.resources
    "securityContext" $sidecar.securityContext)
  "workloadCertificate" (dict
    "mode" .Values.workloadCertificate.mode
    "mountPath" .Values.workloadCertificate.mountPath
    "issuerName" (include "iamra-injector.workloadIssuerName" .)
    "issuerKind" (include "iamra-injector.workloadIssuerKind" .)
    "commonName" .Values.workloadCertificate.commonName
    "keyUsages" .Values.workloadCertificate.keyUsages
    "duration" .Values.workloadIssuer.duration
    "renewBefore" .Values.workloadIssuer.renewBefore
    "fsGroup" 65532)
  "server" (dict
    "port" (int .Values.webhook.service.targetPort)
    "certFile" "/etc/iamra/tls/tls.crt"
    "keyFile" "/etc/iamra/tls/tls.key"
    "reloadIntervalSeconds" 10
    "maxBodyBytes" 4194304
    "shutdownDelaySeconds" 5)
  "metrics" (dict
    "enabled" .Values.webhook.metrics.enabled
    "port" (int .Values.webhook.metrics.port)
    "path" .Values.webhook.metrics.path)
  "logging" (dict
    "format" .Values.webhook.logging.format
    "level" .Values.webhook.logging.level)
}}
{{- toYaml $config }}
{{- end }}
