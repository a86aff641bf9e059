{{- /* The operator's admission webhook server, shared by every capability with a webhook (the
prober's injection, guard's sidecar injection): its Service, certificate and operator flags. */ -}}

{{- /* "true" when some enabled capability has a webhook or serves pods with its certificate
(the prober; guard: its sidecar injection and its report endpoint). */ -}}
{{- define "crowsnest.webhook.enabled" -}}
{{- if or .Values.prober.enabled .Values.guard.enabled -}}true{{- end -}}
{{- end -}}

{{- define "crowsnest.webhook.serviceName" -}}
{{- printf "%s-webhook" (include "crowsnest.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "crowsnest.webhook.secretName" -}}
{{- printf "%s-webhook-cert" (include "crowsnest.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "crowsnest.guard.webhookConfigurationName" -}}
{{- printf "%s-guard-sidecar" (include "crowsnest.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "crowsnest.webhook.validate" -}}
{{- if not (has .Values.webhook.certMode (list "self" "cert-manager")) -}}
{{- fail (printf "webhook.certMode must be self or cert-manager, not %q" .Values.webhook.certMode) -}}
{{- end -}}
{{- if or (lt (int .Values.webhook.timeoutSeconds) 1) (gt (int .Values.webhook.timeoutSeconds) 3) -}}
{{- fail "webhook.timeoutSeconds must be 1, 2 or 3: a webhook that is down delays every pod create by it" -}}
{{- end -}}
{{- end -}}

{{- /* The webhook configurations whose caBundle the operator keeps (self-managed certificates). */ -}}
{{- define "crowsnest.webhook.configurationNames" -}}
{{- $names := list -}}
{{- if .Values.prober.enabled }}{{ $names = append $names (include "crowsnest.prober.webhookConfigurationName" .) }}{{ end -}}
{{- if and .Values.guard.enabled .Values.guard.sidecar.injection }}{{ $names = append $names (include "crowsnest.guard.webhookConfigurationName" .) }}{{ end -}}
{{- toJson $names -}}
{{- end -}}

{{- /* The operator container's arguments for the webhook server. */ -}}
{{- define "crowsnest.webhook.operatorArgs" -}}
{{- if include "crowsnest.webhook.enabled" . }}
- --webhook-port={{ .Values.webhook.port }}
- --webhook-cert-dir=/var/run/crowsnest/webhook-certs
- --webhook-cert-mode={{ .Values.webhook.certMode }}
- --webhook-cert-secret={{ include "crowsnest.webhook.secretName" . }}
- --webhook-service={{ include "crowsnest.webhook.serviceName" . }}
{{- with .Values.webhook.url }}
- --webhook-cert-hosts={{ (urlParse .).hostname }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "crowsnest.webhook.operatorPorts" -}}
{{- if include "crowsnest.webhook.enabled" . }}
- { name: webhook, containerPort: {{ .Values.webhook.port }}, protocol: TCP }
{{- end }}
{{- end -}}

{{- /* self: an in-memory directory the operator writes the Secret's files into (faster than the
kubelet's Secret volume sync); cert-manager: the Secret cert-manager keeps, mounted. */ -}}
{{- define "crowsnest.webhook.operatorVolumes" -}}
- name: webhook-certs
  {{- if eq .Values.webhook.certMode "cert-manager" }}
  secret: { secretName: {{ include "crowsnest.webhook.secretName" . }} }
  {{- else }}
  emptyDir: { medium: Memory, sizeLimit: 1Mi }
  {{- end }}
{{- end -}}

{{- define "crowsnest.webhook.operatorVolumeMounts" -}}
- { name: webhook-certs, mountPath: /var/run/crowsnest/webhook-certs, readOnly: {{ eq .Values.webhook.certMode "cert-manager" }} }
{{- end -}}
