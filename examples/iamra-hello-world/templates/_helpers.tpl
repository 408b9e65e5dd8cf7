{{- define "iamra-hello-world.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubewright
{{- end }}

{{- /* Where the Job runs: namespace.name, else the release namespace. */ -}}
{{- define "iamra-hello-world.namespace" -}}
{{- if .Values.namespace.create }}
{{- required "namespace.name is required when namespace.create=true" .Values.namespace.name }}
{{- else }}
{{- default .Release.Namespace .Values.namespace.name }}
{{- end }}
{{- end }}
