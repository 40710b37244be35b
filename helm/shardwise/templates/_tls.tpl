{{/*
Mutual TLS and the join token (tls.enabled): every pod mounts the credentials it needs from one Secret,
tls.secretName, at /etc/shardwise-tls, in the layout `shardwise certs` writes, and is started with
--tls-dir. The coordinator gets the CA certificate, its own pair and the join token; each worker pod
the CA certificate, the join token and the pairs of the worker pods 0..tls.workerCertificates-1 (its
--id is its pod name, which its certificate must name). The CA's key is never mounted. Secret keys
are flat (`worker-<pod>.crt`), mapped to the paths the processes read (`workers/<pod>.crt`).
Mode 0440: readable by the pod's fsGroup (podSecurityContext), as the processes run as non-root.
*/}}

{{- define "shardwise.tls.dir" -}}/etc/shardwise-tls{{- end }}

{{- define "shardwise.tls.arg" -}}
{{- if .Values.tls.enabled }}
- --tls-dir={{ include "shardwise.tls.dir" . }}
{{- end }}
{{- end }}

{{- define "shardwise.tls.volumeMount" -}}
{{- if .Values.tls.enabled }}
- name: tls
  mountPath: {{ include "shardwise.tls.dir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{- define "shardwise.tls.secretName" -}}
{{- .Values.tls.secretName | default (printf "%s-tls" (include "shardwise.fullname" .)) -}}
{{- end }}

{{/* The coordinator's volume: CA certificate, its pair, the join token. */}}
{{- define "shardwise.tls.coordinatorVolume" -}}
{{- if .Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ include "shardwise.tls.secretName" . }}
    defaultMode: 288 # 0o440, written in decimal: YAML 1.1 and 1.2 read a leading 0 differently
    items:
      - { key: ca.crt, path: ca.crt }
      - { key: coordinator.crt, path: coordinator.crt }
      - { key: coordinator.key, path: coordinator.key }
      - { key: join-token, path: join-token }
{{- end }}
{{- end }}

{{/* A worker pod's volume: CA certificate, the join token, the worker pods' pairs. */}}
{{- define "shardwise.tls.workerVolume" -}}
{{- if .Values.tls.enabled }}
{{- $worker := include "shardwise.worker.fullname" . }}
- name: tls
  secret:
    secretName: {{ include "shardwise.tls.secretName" . }}
    defaultMode: 288 # 0o440, written in decimal: YAML 1.1 and 1.2 read a leading 0 differently
    items:
      - { key: ca.crt, path: ca.crt }
      - { key: join-token, path: join-token }
      {{- range $i := until (int .Values.tls.workerCertificates) }}
      - { key: worker-{{ $worker }}-{{ $i }}.crt, path: workers/{{ $worker }}-{{ $i }}.crt }
      - { key: worker-{{ $worker }}-{{ $i }}.key, path: workers/{{ $worker }}-{{ $i }}.key }
      {{- end }}
{{- end }}
{{- end }}
