{{- define "crowsnest.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "crowsnest.labels" -}}
app.kubernetes.io/name: crowsnest
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: crowsnest
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "crowsnest.operator.selectorLabels" -}}
app.kubernetes.io/name: crowsnest
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "crowsnest.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}{{ with .Values.image.digest }}@{{ . }}{{ end }}
{{- end -}}

{{- /* Whether the operator runs at all: it has a capability to run. */ -}}
{{- define "crowsnest.operator.enabled" -}}
{{- if or .Values.logaccess.enabled .Values.prober.enabled -}}true{{- end -}}
{{- end -}}

{{- /* --controllers: "*" means the capabilities this chart enables (and holds RBAC for), no others. */ -}}
{{- define "crowsnest.operator.controllers" -}}
{{- if eq (toString .Values.operator.controllers) "*" -}}
{{- $enabled := list -}}
{{- if .Values.logaccess.enabled }}{{ $enabled = append $enabled "logaccess" }}{{ end -}}
{{- if .Values.prober.enabled }}{{ $enabled = append $enabled "prober" }}{{ end -}}
{{- if .Values.guard.enabled }}{{ $enabled = append $enabled "guard" }}{{ end -}}
{{- join "," $enabled -}}
{{- else -}}
{{- .Values.operator.controllers -}}
{{- end -}}
{{- end -}}
