{{/* Names, labels and shared snippets. */}}

{{- define "rerank-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rerank-operator.fullname" -}}
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

{{- define "rerank-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rerank-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rerank-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "rerank-operator.labels" -}}
helm.sh/chart: {{ include "rerank-operator.chart" . }}
{{ include "rerank-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: rerank-operator
{{- end -}}

{{- define "rerank-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "rerank-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "rerank-operator.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Whether the operator watches all namespaces (-A, ClusterRole) or a list (-n, Roles). */}}
{{- define "rerank-operator.clusterwide" -}}
{{- if not .Values.watchNamespaces -}}true{{- end -}}
{{- end -}}

{{/*
RBAC rules for a namespace whose RerankPipelines the operator reconciles. Only verbs the code uses:
see the chart README ("RBAC") for one line of justification per rule.
*/}}
{{- define "rerank-operator.pipelineRules" -}}
# kopf: list+watch to follow pipelines, patch for its finalizer and annotations. get adds nothing that
# list does not already allow (kept for tooling that reads single objects as this identity).
- apiGroups: ["rerank.dev"]
  resources: ["rerankpipelines"]
  verbs: ["get", "list", "watch", "patch"]
# The operator writes status through the status subresource (merge patch); get for the same reason as above.
- apiGroups: ["rerank.dev"]
  resources: ["rerankpipelines/status"]
  verbs: ["get", "patch"]
# Children carry ownerReferences with blockOwnerDeletion, which the OwnerReferencesPermissionEnforcement
# admission plugin (e.g. OpenShift) only allows with update on the owner's finalizers.
- apiGroups: ["rerank.dev"]
  resources: ["rerankpipelines/finalizers"]
  verbs: ["update"]
# Children: list+watch to keep them in memory (selected by the operator's managed-by label; a pass reads
# that memory, not the API), get to judge an object that appeared under a child's name, create when
# missing, patch (server-side apply) only when ours and different. Children are removed by the garbage
# collector, except what a BlueGreen rollout retires while the pipeline lives on.
# Deployments and Services: delete too, for the revisions a BlueGreen switch retires (each its own
# Deployment and Service), by UID precondition and only when they provably are the pipeline's.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# The model-cache PVC: never deleted by the operator (it holds the downloaded weights).
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "list", "watch", "create", "patch"]
# The reranker pods' PodDisruptionBudget, likewise.
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch"]
# spec.autoscaling (provider hpa): the HorizontalPodAutoscaler, likewise; get also reads the one KEDA
# manages (its desired count); delete removes the pipeline's own when autoscaling is removed (a
# left-over HPA would fight the operator over the replica count).
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- if .Values.rbac.keda }}
# spec.autoscaling.provider keda: the KEDA ScaledObject, same verbs and reasons as the HPA.
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects"]
  verbs: ["get", "create", "patch", "delete"]
{{- end }}
{{- if .Values.rbac.podMonitors }}
# spec.monitoring.podMonitor: the prometheus-operator PodMonitor, likewise; delete when switched off.
- apiGroups: ["monitoring.coreos.com"]
  resources: ["podmonitors"]
  verbs: ["get", "create", "patch", "delete"]
{{- end }}
{{ include "rerank-operator.publishRules" . }}
# The reranker pods, watched by label selector: readiness, and why they wait or fail (Unschedulable,
# CrashLoopBackOff).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
# ConfigMaps (chat templates, published configs) and grants in watched namespaces are kept in memory
# too; in publish-only namespaces the operator reads them one by one (the rules below).
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["list", "watch"]
- apiGroups: ["rerank.dev"]
  resources: ["rerankpublishgrants"]
  verbs: ["watch"]
# The reranker's API key (spec.apiKeySecretRef), read by name only: no list/watch.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
# Events on the pipeline (the operator's and kopf's own); always new objects, never patched.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{/* RBAC rules for a namespace that (also) receives published ranker ConfigMaps. */}}
{{- define "rerank-operator.publishRules" -}}
# Chat-template and published ranker ConfigMaps: get to check ownership, create when missing, patch
# when ours, delete (UID precondition) to withdraw a copy of ours that is no longer wanted.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "create", "patch", "delete"]
# The namespace's consent to receive copies from other namespaces (read only: granting is for the
# namespace's own admins, see the aggregated rerank-operator-admin role).
- apiGroups: ["rerank.dev"]
  resources: ["rerankpublishgrants"]
  verbs: ["list"]
{{- end -}}
