{{/*
Names, labels and the few derived values every template shares. Kubernetes names are capped at 63
characters, so every name is cut there.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "shardwise.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every resource name: <release>-<chart>, or just <release> when it already holds the chart name. */}}
{{- define "shardwise.fullname" -}}
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

{{/* chart-version, for the helm.sh/chart label. */}}
{{- define "shardwise.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels a selector uses: they must never change across upgrades. */}}
{{- define "shardwise.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shardwise.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "shardwise.labels" -}}
helm.sh/chart: {{ include "shardwise.chart" . }}
{{ include "shardwise.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: shardwise
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Labels of one role's resources; call with (dict "context" $ "component" "worker").
The component label is what tells the coordinator's, the workers' and NATS' pods apart in selectors.
*/}}
{{- define "shardwise.componentLabels" -}}
{{ include "shardwise.labels" .context }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Selector labels of one role; same arguments as shardwise.componentLabels. */}}
{{- define "shardwise.componentSelectorLabels" -}}
{{ include "shardwise.selectorLabels" .context }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Resource names, one per role. */}}
{{- define "shardwise.coordinator.fullname" -}}
{{- printf "%s-coordinator" (include "shardwise.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "shardwise.worker.fullname" -}}
{{- printf "%s-worker" (include "shardwise.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "shardwise.worker.headlessName" -}}
{{- printf "%s-worker-headless" (include "shardwise.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "shardwise.nats.fullname" -}}
{{- printf "%s-nats" (include "shardwise.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "shardwise.jobConfigMapName" -}}
{{- printf "%s-job" (include "shardwise.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The PVC holding the run directory: the existing claim, or the one pvc-coordinator.yaml creates. */}}
{{- define "shardwise.coordinator.claimName" -}}
{{- .Values.coordinator.persistence.existingClaim | default (include "shardwise.coordinator.fullname" .) }}
{{- end }}

{{/*
The claim holding CIFAR-10 for the coordinator: coordinator.dataset.existingClaim, else the one the
download Job fills (pvc-dataset.yaml), else empty (the coordinator downloads into its run volume).
*/}}
{{- define "shardwise.dataset.claimName" -}}
{{- $d := .Values.coordinator.dataset }}
{{- if $d.existingClaim }}
{{- $d.existingClaim }}
{{- else if $d.download.enabled }}
{{- printf "%s-dataset" (include "shardwise.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Folder inside that claim holding data_batch_*.bin: the archive's own folder when the Job downloaded it. */}}
{{- define "shardwise.dataset.subPath" -}}
{{- if .Values.coordinator.dataset.existingClaim }}
{{- .Values.coordinator.dataset.subPath }}
{{- else }}
{{- "cifar-10-batches-bin" }}
{{- end }}
{{- end }}

{{/* The file the download Job writes last; the coordinator's init container waits for it. */}}
{{- define "shardwise.dataset.doneMarker" -}}
.shardwise-download-complete
{{- end }}

{{/* Labels of the monitoring objects: the chart's, `release` for the Prometheus selectors, and extras. */}}
{{- define "shardwise.monitoringLabels" -}}
{{ include "shardwise.labels" .context }}
{{- with .context.Values.metrics.release }}
release: {{ . | quote }}
{{- end }}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The shardwise image reference. */}}
{{- define "shardwise.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* The workers' image: workers.imageTag (a GPU build) or the shared one. */}}
{{- define "shardwise.worker.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.workers.imageTag | default .Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* host:port workers dial: the coordinator Service's name and gRPC port (pods share the namespace). */}}
{{- define "shardwise.coordinator.address" -}}
{{- printf "%s:%d" (include "shardwise.coordinator.fullname" .) (int .Values.coordinator.grpcPort) }}
{{- end }}

{{/* The NATS URL the coordinator publishes on (it hands it to workers at registration); empty: no bus. */}}
{{- define "shardwise.natsUrl" -}}
{{- if .Values.nats.url }}
{{- .Values.nats.url }}
{{- else if .Values.nats.enabled }}
{{- printf "nats://%s:%d" (include "shardwise.nats.fullname" .) (int .Values.nats.port) }}
{{- end }}
{{- end }}

{{/* Whether the bundled NATS server is deployed. */}}
{{- define "shardwise.nats.bundled" -}}
{{- if and .Values.nats.enabled (not .Values.nats.url) }}true{{- end }}
{{- end }}

{{/*
The job spec as rendered into the ConfigMap: values' `job`, with distributed.desiredWorkers defaulting
to workers.replicas so the coordinator's shardwise_desired_workers matches the StatefulSet.
*/}}
{{- define "shardwise.jobSpec" -}}
{{- $job := deepCopy .Values.job }}
{{- $distributed := get $job "distributed" | default dict }}
{{- if not (hasKey $distributed "desiredWorkers") }}
{{- $_ := set $distributed "desiredWorkers" (int .Values.workers.replicas) }}
{{- end }}
{{- $_ := set $job "distributed" $distributed }}
{{- toYaml $job }}
{{- end }}

{{/*
The coordinator's old-generation cap in MiB: coordinator.maxOldSpaceMb, or the rule of
launcher/coordinator-heap.ts, max(128, 2 x ceil(80 + 0.25 x maxWorkers)), from job.distributed.maxWorkers
(the job spec's default, 16, when unset).
*/}}
{{- define "shardwise.coordinator.maxOldSpaceMb" -}}
{{- if .Values.coordinator.maxOldSpaceMb }}
{{- .Values.coordinator.maxOldSpaceMb }}
{{- else }}
{{- $distributed := .Values.job.distributed | default dict }}
{{- $workers := int (get $distributed "maxWorkers" | default 16) }}
{{- max 128 (mul 2 (add 80 (div (add $workers 3) 4))) }}
{{- end }}
{{- end }}

{{/* Run directory of the job on the coordinator's volume: one folder per job name, so a renamed job starts fresh. */}}
{{- define "shardwise.coordinator.runDir" -}}
{{- .Values.coordinator.runDir | default (printf "/var/lib/shardwise/runs/%s" (.Values.job.name | default "job")) }}
{{- end }}

{{/*
An httpGet probe on a named port's /healthz; call with (dict "probe" .Values.x.livenessProbe "port" "metrics").
Renders nothing when the probe is disabled.
*/}}
{{- define "shardwise.healthzProbe" -}}
httpGet:
  path: /healthz
  port: {{ .port }}
periodSeconds: {{ .probe.periodSeconds }}
timeoutSeconds: {{ .probe.timeoutSeconds }}
failureThreshold: {{ .probe.failureThreshold }}
{{- end }}

{{/* Checks between values that the schema cannot express; fails the render with the keys to fix. */}}
{{- define "shardwise.validate" -}}
{{- if and .Values.nats.url .Values.nats.enabled }}
{{- fail "nats.url and nats.enabled are both set: set nats.enabled=false to use the external server at nats.url, or clear nats.url to deploy the bundled one" }}
{{- end }}
{{- if le (int .Values.coordinator.terminationGracePeriodSeconds) (int .Values.coordinator.drainGraceSeconds) }}
{{- fail (printf "coordinator.terminationGracePeriodSeconds (%d) must exceed coordinator.drainGraceSeconds (%d), or Kubernetes kills the coordinator before its drain checkpoint is written" (int .Values.coordinator.terminationGracePeriodSeconds) (int .Values.coordinator.drainGraceSeconds)) }}
{{- end }}
{{- if le (int .Values.workers.terminationGracePeriodSeconds) (int .Values.workers.shutdownGraceSeconds) }}
{{- fail (printf "workers.terminationGracePeriodSeconds (%d) must exceed workers.shutdownGraceSeconds (%d), or Kubernetes kills a draining worker before it pushes its share" (int .Values.workers.terminationGracePeriodSeconds) (int .Values.workers.shutdownGraceSeconds)) }}
{{- end }}
{{- end }}

{{/* The sweep controller's ServiceAccount, Role and shared claim. */}}
{{- define "shardwise.sweep.fullname" -}}
{{- printf "%s-sweep" (include "shardwise.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The sweep's ReadWriteMany claim: the existing one, or the one pvc-sweep.yaml creates. */}}
{{- define "shardwise.sweep.claimName" -}}
{{- .Values.sweep.persistence.existingClaim | default (include "shardwise.sweep.fullname" .) }}
{{- end }}
