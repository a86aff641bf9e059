{{- /* Names and fragments of the prober capability and the webhook server it needs. */ -}}

{{- define "crowsnest.webhook.serviceName" -}}
{{- printf "%s-webhook" (include "crowsnest.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "crowsnest.webhook.secretName" -}}
{{- printf "%s-webhook-cert" (include "crowsnest.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "crowsnest.prober.webhookConfigurationName" -}}
{{- printf "%s-prober" (include "crowsnest.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "crowsnest.prober.agentImage" -}}
{{- .Values.prober.agentImage | default (include "crowsnest.image" .) -}}
{{- end -}}

{{- define "crowsnest.webhook.validate" -}}
{{- if not (has .Values.webhook.certMode (list "self" "cert-manager")) -}}
{{- fail (printf "webhook.certMode must be self or cert-manager, not %q" .Values.webhook.certMode) -}}
{{- end -}}
{{- if or (lt (int .Values.webhook.timeoutSeconds) 1) (gt (int .Values.webhook.timeoutSeconds) 3) -}}
{{- fail "webhook.timeoutSeconds must be 1, 2 or 3: a webhook that is down delays every pod create by it" -}}
{{- end -}}
{{- end -}}

{{- /* The operator container's arguments for the webhook server and the prober. */ -}}
{{- define "crowsnest.prober.operatorArgs" -}}
{{- if .Values.prober.enabled }}
- --webhook-port={{ .Values.webhook.port }}
- --webhook-cert-dir=/var/run/crowsnest/webhook-certs
- --webhook-cert-mode={{ .Values.webhook.certMode }}
- --webhook-cert-secret={{ include "crowsnest.webhook.secretName" . }}
- --webhook-service={{ include "crowsnest.webhook.serviceName" . }}
{{- with .Values.webhook.url }}
- --webhook-cert-hosts={{ (urlParse .).hostname }}
{{- end }}
- --prober-webhook-configuration={{ include "crowsnest.prober.webhookConfigurationName" . }}
- --prober-peer-port={{ .Values.prober.peerPort }}
- --prober-agent-image={{ include "crowsnest.prober.agentImage" . }}
- --prober-agent-resources={{ toJson .Values.prober.agentResources }}
{{- end }}
{{- end -}}

{{- define "crowsnest.prober.operatorPorts" -}}
{{- if .Values.prober.enabled }}
- { name: webhook, containerPort: {{ .Values.webhook.port }}, protocol: TCP }
- { name: peers, containerPort: {{ .Values.prober.peerPort }}, protocol: TCP }
{{- end }}
{{- end -}}

{{- /* self: an in-memory directory the operator writes the Secret's files into (faster than the
kubelet's Secret volume sync); cert-manager: the Secret cert-manager keeps, mounted. */ -}}
{{- define "crowsnest.prober.operatorVolumes" -}}
{{- if .Values.prober.enabled }}
- name: webhook-certs
  {{- if eq .Values.webhook.certMode "cert-manager" }}
  secret: { secretName: {{ include "crowsnest.webhook.secretName" . }} }
  {{- else }}
  emptyDir: { medium: Memory, sizeLimit: 1Mi }
  {{- end }}
{{- end }}
{{- end -}}

{{- define "crowsnest.prober.operatorVolumeMounts" -}}
{{- if .Values.prober.enabled }}
- { name: webhook-certs, mountPath: /var/run/crowsnest/webhook-certs, readOnly: {{ eq .Values.webhook.certMode "cert-manager" }} }
{{- end }}
{{- end -}}

{{- define "crowsnest.guard.webhookConfigurationName" -}}
{{- printf "%s-guard-sidecar" (include "crowsnest.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
