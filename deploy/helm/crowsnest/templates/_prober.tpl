{{- /* Names and fragments of the prober capability (the webhook server it needs: _webhook.tpl). */ -}}

{{- define "crowsnest.prober.webhookConfigurationName" -}}
{{- printf "%s-prober" (include "crowsnest.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "crowsnest.prober.agentImage" -}}
{{- .Values.prober.agentImage | default (include "crowsnest.image" .) -}}
{{- end -}}

{{- /* The operator container's arguments for the prober. */ -}}
{{- define "crowsnest.prober.operatorArgs" -}}
{{- if .Values.prober.enabled }}
- --prober-webhook-configuration={{ include "crowsnest.prober.webhookConfigurationName" . }}
- --prober-peer-port={{ .Values.prober.peerPort }}
- --prober-agent-image={{ include "crowsnest.prober.agentImage" . }}
- --prober-agent-resources={{ toJson .Values.prober.agentResources }}
{{- end }}
{{- end -}}

{{- define "crowsnest.prober.operatorPorts" -}}
{{- if .Values.prober.enabled }}
- { name: peers, containerPort: {{ .Values.prober.peerPort }}, protocol: TCP }
{{- end }}
{{- end -}}
