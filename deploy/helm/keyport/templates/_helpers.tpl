{{/* Names and labels. */}}
{{- define "keyport.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "keyport.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "keyport.selectorLabels" -}}
app.kubernetes.io/name: {{ include "keyport.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "keyport.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "keyport.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "keyport.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "keyport.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "keyport.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The chart-made Secret (database URL, sealing key), when values supply them. */}}
{{- define "keyport.secretName" -}}
{{- printf "%s-secrets" (include "keyport.fullname" .) -}}
{{- end -}}

{{- define "keyport.createSecret" -}}
{{- if or (and (eq .Values.database.mode "postgres") (not .Values.database.postgres.existingSecret) .Values.database.postgres.url) (and (not .Values.secondFactors.existingSecret) .Values.secondFactors.encryptionKey) -}}
true
{{- end -}}
{{- end -}}

{{- define "keyport.replicas" -}}
{{- if eq .Values.database.mode "sqlite" -}}
1
{{- else if kindIs "invalid" .Values.replicaCount -}}
2
{{- else -}}
{{- int .Values.replicaCount -}}
{{- end -}}
{{- end -}}

{{/*
Validation: every rule that would otherwise give a broken or unsafe release
stops rendering with a message that says what to change.
*/}}
{{- define "keyport.validate" -}}
{{- $mode := .Values.database.mode -}}
{{- if not (has $mode (list "sqlite" "postgres")) -}}
{{- fail (printf "database.mode must be \"sqlite\" or \"postgres\", not %q" (toString $mode)) -}}
{{- end -}}
{{- if and (eq $mode "sqlite") (not (kindIs "invalid" .Values.replicaCount)) (gt (int .Values.replicaCount) 1) -}}
{{- fail (printf "replicaCount=%v with database.mode=sqlite: an SQLite database takes exactly one Keyport process. Use database.mode=postgres to run several replicas." .Values.replicaCount) -}}
{{- end -}}
{{- if and (not (kindIs "invalid" .Values.replicaCount)) (lt (int .Values.replicaCount) 1) -}}
{{- fail "replicaCount must be at least 1" -}}
{{- end -}}
{{- if eq $mode "postgres" -}}
{{- if and (not .Values.database.postgres.existingSecret) (not .Values.database.postgres.url) -}}
{{- fail "database.mode=postgres needs the database URL: set database.postgres.existingSecret (a Secret with key database.postgres.existingSecretKey) or database.postgres.url" -}}
{{- end -}}
{{- if and (not .Values.secondFactors.existingSecret) (not .Values.secondFactors.encryptionKey) -}}
{{- fail "database.mode=postgres needs second_factors.encryption_key, the same on every replica: set secondFactors.existingSecret or secondFactors.encryptionKey (openssl rand -base64 32)" -}}
{{- end -}}
{{- end -}}
{{- if .Values.secondFactors.encryptionKey -}}
{{- $raw := b64dec .Values.secondFactors.encryptionKey -}}
{{- if ne (len $raw) 32 -}}
{{- fail "secondFactors.encryptionKey must be 32 bytes in base64 (openssl rand -base64 32)" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.podDisruptionBudget.enabled (eq $mode "postgres") (not (kindIs "invalid" .Values.podDisruptionBudget.minAvailable)) (not (kindIs "invalid" .Values.podDisruptionBudget.maxUnavailable)) -}}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both (null the other)" -}}
{{- end -}}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.enabled) -}}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled" -}}
{{- end -}}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) -}}
{{- fail "tls.enabled needs tls.secretName (a kubernetes.io/tls Secret)" -}}
{{- end -}}
{{- if and .Values.migrations.job.enabled (ne $mode "postgres") -}}
{{- fail "migrations.job.enabled is for database.mode=postgres; on SQLite the one pod migrates at start" -}}
{{- end -}}
{{- if .Values.configToml -}}
{{- if regexMatch "(?m)^\\s*(listen|data_dir|database_url|encryption_key|previous_keys|password|client_secret)\\s*=" .Values.configToml -}}
{{- fail "configToml sets a key the chart owns or a secret (listen, data_dir, database_url, encryption_key, previous_keys, password, client_secret): use the chart's values, Secrets and extraEnv instead" -}}
{{- end -}}
{{- else -}}
{{- $c := .Values.config -}}
{{- range $key := list "listen" "data_dir" "database_url" -}}
{{- if hasKey $c $key -}}
{{- fail (printf "config.%s is set by the chart (environment variables beat the file): use service.port, database.* instead" $key) -}}
{{- end -}}
{{- end -}}
{{- if and (hasKey $c "second_factors") (or (hasKey $c.second_factors "encryption_key") (hasKey $c.second_factors "previous_keys")) -}}
{{- fail "config.second_factors.encryption_key/previous_keys are secrets: use secondFactors.existingSecret or secondFactors.encryptionKey" -}}
{{- end -}}
{{- if and (hasKey $c "mail") (hasKey $c.mail "password") -}}
{{- fail "config.mail.password is a secret: put KEYPORT_MAIL__PASSWORD in extraEnv from a Secret" -}}
{{- end -}}
{{- if and (hasKey $c "oauth") (hasKey $c.oauth "providers") -}}
{{- range $p := $c.oauth.providers -}}
{{- if hasKey $p "client_secret" -}}
{{- fail "config.oauth.providers[].client_secret is a secret: use client_secret_env and extraEnv from a Secret" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and (hasKey $c "metrics") (hasKey $c.metrics "listen") -}}
{{- fail "config.metrics.listen is set by the chart: use metrics.enabled and metrics.port" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
TOML from a values map. Helm's toToml writes every YAML number as a float
(10000 becomes 10000.0), which Keyport's integer keys refuse, so the file is
written here: whole numbers as integers, strings JSON-quoted (valid TOML
basic strings), maps as [tables], lists of maps as [[arrays of tables]].
*/}}
{{- define "keyport.toml.key" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . -}}{{ . }}{{- else -}}{{ toJson . }}{{- end -}}
{{- end -}}

{{- define "keyport.toml.value" -}}
{{- $k := kindOf . -}}
{{- if eq $k "string" -}}{{ toJson . }}
{{- else if eq $k "bool" -}}{{ . }}
{{- else if or (eq $k "float64") (eq $k "float32") -}}
{{- if eq (float64 (int64 .)) (float64 .) -}}{{ int64 . }}{{- else -}}{{ . }}{{- end -}}
{{- else if or (hasPrefix "int" $k) (hasPrefix "uint" $k) -}}{{ . }}
{{- else if eq $k "slice" -}}[{{- range $i, $e := . -}}{{- if $i -}}, {{ end -}}{{- include "keyport.toml.value" $e -}}{{- end -}}]
{{- else -}}{{- fail (printf "config: cannot write a %s as a TOML value" $k) -}}
{{- end -}}
{{- end -}}

{{- define "keyport.toml.isTableArray" -}}
{{- if and (kindIs "slice" .) (gt (len .) 0) (kindIs "map" (first .)) -}}true{{- end -}}
{{- end -}}

{{- define "keyport.toml.table" -}}
{{- $path := .path -}}
{{- $table := .table -}}
{{- range $key := keys $table | sortAlpha -}}
{{- $v := index $table $key -}}
{{- if not (or (kindIs "map" $v) (kindIs "invalid" $v) (include "keyport.toml.isTableArray" $v)) }}
{{ include "keyport.toml.key" $key }} = {{ include "keyport.toml.value" $v }}
{{- end -}}
{{- end -}}
{{- range $key := keys $table | sortAlpha -}}
{{- $v := index $table $key -}}
{{- $sub := ternary (include "keyport.toml.key" $key) (printf "%s.%s" $path (include "keyport.toml.key" $key)) (eq $path "") -}}
{{- if kindIs "map" $v }}

[{{ $sub }}]
{{- include "keyport.toml.table" (dict "path" $sub "table" $v) -}}
{{- else if include "keyport.toml.isTableArray" $v -}}
{{- range $e := $v }}

[[{{ $sub }}]]
{{- include "keyport.toml.table" (dict "path" $sub "table" $e) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "keyport.configToml" -}}
{{- if .Values.configToml -}}
{{- .Values.configToml -}}
{{- else -}}
# Rendered by the keyport Helm chart from .Values.config.
{{- include "keyport.toml.table" (dict "path" "" "table" .Values.config) }}
{{- end -}}
{{- end -}}

{{/* Environment shared by the server and the migration Job. */}}
{{- define "keyport.secretEnv" -}}
{{- if eq .Values.database.mode "postgres" }}
- name: KEYPORT_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ default (include "keyport.secretName" .) .Values.database.postgres.existingSecret }}
      key: {{ ternary .Values.database.postgres.existingSecretKey "database-url" (ne .Values.database.postgres.existingSecret "") }}
{{- end }}
{{- if or .Values.secondFactors.existingSecret .Values.secondFactors.encryptionKey }}
- name: KEYPORT_SECOND_FACTORS__ENCRYPTION_KEY
  valueFrom:
    secretKeyRef:
      name: {{ default (include "keyport.secretName" .) .Values.secondFactors.existingSecret }}
      key: {{ ternary .Values.secondFactors.existingSecretKey "encryption-key" (ne .Values.secondFactors.existingSecret "") }}
{{- if and .Values.secondFactors.existingSecret .Values.secondFactors.previousKeysSecretKey }}
- name: KEYPORT_SECOND_FACTORS__PREVIOUS_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secondFactors.existingSecret }}
      key: {{ .Values.secondFactors.previousKeysSecretKey }}
      optional: true
{{- end }}
{{- end }}
{{- end -}}

{{- define "keyport.podSecurity" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{/* The pod template of the StatefulSet (SQLite) and the Deployment (PostgreSQL). */}}
{{- define "keyport.podTemplate" -}}
metadata:
  labels:
    {{- include "keyport.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    # Rolls the pods when the rendered keyport.toml or the chart-made Secret changes.
    checksum/config: {{ include "keyport.configToml" . | sha256sum }}
    {{- if include "keyport.createSecret" . }}
    checksum/secret: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "keyport.serviceAccountName" . }}
  automountServiceAccountToken: false
  enableServiceLinks: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  {{- include "keyport.podSecurity" . | nindent 2 }}
  containers:
    - name: keyport
      image: {{ include "keyport.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args: ["serve"]
      env:
        - name: KEYPORT_CONFIG
          value: /etc/keyport/keyport.toml
        - name: KEYPORT_LISTEN
          value: "0.0.0.0:{{ .Values.service.port }}"
        - name: KEYPORT_DATA_DIR
          # A directory Keyport creates itself (mode 0700) on the volume.
          value: /var/lib/keyport/data
        {{- if .Values.metrics.enabled }}
        - name: KEYPORT_METRICS__LISTEN
          value: "0.0.0.0:{{ .Values.metrics.port }}"
        {{- end }}
        {{- if .Values.tracing.otlpEndpoint }}
        - name: KEYPORT_TRACING__OTLP_ENDPOINT
          value: {{ .Values.tracing.otlpEndpoint | quote }}
        - name: KEYPORT_TRACING__SERVICE_NAME
          value: {{ .Values.tracing.serviceName | quote }}
        {{- end }}
        {{- if .Values.tls.enabled }}
        - name: KEYPORT_SERVER__TLS_CERT_FILE
          value: /etc/keyport/tls/tls.crt
        - name: KEYPORT_SERVER__TLS_KEY_FILE
          value: /etc/keyport/tls/tls.key
        {{- if .Values.tls.clientCaKey }}
        - name: KEYPORT_SERVER__TLS_CLIENT_CA_FILE
          value: /etc/keyport/tls/{{ .Values.tls.clientCaKey }}
        {{- end }}
        {{- end }}
        {{- with (include "keyport.secretEnv" . | trim) }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with .Values.extraEnvFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      ports:
        - name: grpc
          containerPort: {{ .Values.service.port }}
          protocol: TCP
        {{- if .Values.metrics.enabled }}
        - name: metrics
          containerPort: {{ .Values.metrics.port }}
          protocol: TCP
        {{- end }}
      {{- $tcp := dict "tcpSocket" (dict "port" "grpc") }}
      {{- $probe := ternary $tcp (dict "grpc" (dict "port" (int .Values.service.port))) .Values.tls.enabled }}
      {{- /* "liveness" stays SERVING through database outages: restarting does not fix those. */}}
      {{- $liveness := ternary $tcp (dict "grpc" (dict "port" (int .Values.service.port) "service" "liveness")) .Values.tls.enabled }}
      startupProbe:
        {{- toYaml (merge (dict) $probe .Values.probes.startup) | nindent 8 }}
      readinessProbe:
        {{- toYaml (merge (dict) $probe .Values.probes.readiness) | nindent 8 }}
      livenessProbe:
        {{- toYaml (merge (dict) $liveness .Values.probes.liveness) | nindent 8 }}
      {{- if gt (int .Values.preStopSleepSeconds) 0 }}
      lifecycle:
        preStop:
          exec:
            command: ["sleep", "{{ .Values.preStopSleepSeconds }}"]
      {{- end }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/keyport/keyport.toml
          subPath: keyport.toml
          readOnly: true
        - name: tmp
          mountPath: /tmp
        {{- if eq .Values.database.mode "sqlite" }}
        - name: data
          mountPath: /var/lib/keyport
        {{- end }}
        {{- if .Values.tls.enabled }}
        - name: tls
          mountPath: /etc/keyport/tls
          readOnly: true
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "keyport.fullname" . }}
    # The root filesystem is read-only; /tmp is the only scratch space.
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
    {{- if .Values.tls.enabled }}
    - name: tls
      secret:
        secretName: {{ .Values.tls.secretName }}
        defaultMode: 0440
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
