{{/*
Pieces the NetworkPolicies share. Each policy selects one role's pods and lists, per port, who may talk to
whom; anything not listed is denied once a policy selects the pod (both directions are declared).
*/}}

{{/* A peer: the pods of one shardwise role in this release; call with (dict "context" $ "component" "worker"). */}}
{{- define "shardwise.netpol.peer" -}}
- podSelector:
    matchLabels:
      {{- include "shardwise.componentSelectorLabels" . | nindent 6 }}
{{- end }}

{{/* Ingress to the metrics port from the monitoring namespace (Prometheus); call with (dict "context" $ "port" N). */}}
{{- define "shardwise.netpol.metricsIngress" -}}
{{- $np := .context.Values.networkPolicy -}}
- from:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ $np.metricsNamespace | quote }}
      {{- with $np.metricsPodLabels }}
      podSelector:
        matchLabels:
          {{- toYaml . | nindent 10 }}
      {{- end }}
  ports:
    - port: {{ .port }}
      protocol: TCP
{{- end }}

{{/* Egress every role needs: the cluster DNS, and HTTPS downloads (model weights, CIFAR-10) when allowed. */}}
{{- define "shardwise.netpol.baseEgress" -}}
{{- $np := .Values.networkPolicy -}}
- to:
    - namespaceSelector: {}
  ports:
    - port: {{ $np.dnsPort }}
      protocol: UDP
    - port: {{ $np.dnsPort }}
      protocol: TCP
{{- with $np.downloadCIDRs }}
- to:
    {{- range . }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    - port: 443
      protocol: TCP
{{- end }}
{{- end }}

{{/* Egress to the job's NATS server: the bundled pod, or nats.url's port on externalNatsCIDRs. */}}
{{- define "shardwise.netpol.natsEgress" -}}
{{- if include "shardwise.nats.bundled" . -}}
- to:
    {{- include "shardwise.netpol.peer" (dict "context" $ "component" "nats") | nindent 4 }}
  ports:
    - port: {{ .Values.nats.port }}
      protocol: TCP
{{- else if .Values.nats.url }}
{{- $hostPort := splitList ":" (urlParse .Values.nats.url).host -}}
- to:
    {{- range .Values.networkPolicy.externalNatsCIDRs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    - port: {{ if gt (len $hostPort) 1 }}{{ last $hostPort }}{{ else }}4222{{ end }}
      protocol: TCP
{{- end }}
{{- end }}
