{{- /* Fragments of the guard capability in the operator's Deployment. */ -}}

{{- define "crowsnest.guard.operatorArgs" -}}
{{- if .Values.guard.enabled }}
- --guard-port={{ .Values.guard.port }}
- --guard-log-agent-service-account={{ .Values.guard.logAgentServiceAccount | default (printf "%s-logs-agent" (include "crowsnest.fullname" .)) | trunc 63 | trimSuffix "-" }}
- --guard-report-interval={{ .Values.guard.reportInterval }}
- --guard-sidecar-injection={{ .Values.guard.sidecar.injection }}
{{- if .Values.guard.sidecar.injection }}
- --guard-sidecar-webhook-configuration={{ include "crowsnest.guard.webhookConfigurationName" . }}
- --guard-sidecar-image={{ include "crowsnest.image" . }}
- --guard-sidecar-resources={{ toJson .Values.guard.sidecar.resources }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "crowsnest.guard.operatorPorts" -}}
{{- if .Values.guard.enabled }}
- { name: guard, containerPort: {{ .Values.guard.port }}, protocol: TCP }
{{- end }}
{{- end -}}
