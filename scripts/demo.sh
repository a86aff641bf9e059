#!/usr/bin/env bash
# `make demo`: Crowsnest on the local cluster started by `make cluster`, installed as a user
# installs it: the Helm chart with the image from the cluster's own registry
# (.cluster/values-testbed.yaml). Then the operator at work as pods on the real nodes: its Lease,
# a log-reader Role following an opted-in Deployment as it scales, the Role's ServiceAccount
# reading real container logs, a leader failover; then inventory snapshots (a Job from the
# chart's CronJob, and two by hand into ./reports with their diff); then this machine's port
# scan and a cluster port report from the chart's CronJob, scanned by pods on the real nodes.
set -euo pipefail
dir="${1:-.cluster}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export KUBECONFIG="$dir/kubeconfig" PATH="$dir/bin:$PATH"
# TEST_IMAGE (busybox in the testbed's registry) and friends, written by `make cluster`.
source "$dir/images.env"
ns=crowsnest-system
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# Job names must be new on every run of the demo.
stamp="$(date +%H%M%S)"
wait_job() { # <namespace> <job>: waits until it completed or failed
  kubectl -n "$1" wait --for=jsonpath='{.status.conditions[0].status}'=True "job/$2" --timeout=120s >/dev/null
}

step "the local cluster: two real nodes (kubelet + containerd) and kwok nodes for scale (tainted)"
kubectl get nodes -o wide

step "crowsnest version"
"$repo/bin/crowsnest" version

step "a Deployment runs for real on the real nodes (image from the testbed's registry)"
kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n demo create deployment web --image="$TEST_IMAGE" --replicas=2 --dry-run=client -o yaml -- sh -c 'echo "hello from $(hostname)"; exec sleep 3600' | kubectl apply -f - >/dev/null
kubectl -n demo rollout status deployment/web --timeout=60s
kubectl -n demo get pods -o wide

step "helm install: the chart, with the Crowsnest image from the cluster's registry ($dir/values-testbed.yaml)"
cat "$dir/values-testbed.yaml"
# The release namespace enforces Pod Security "restricted": the operator and the CronJobs' pods meet it.
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl label --overwrite namespace "$ns" pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/warn=restricted >/dev/null
set -x
helm upgrade --install crowsnest "$repo/deploy/helm/crowsnest" --namespace "$ns" -f "$dir/values-testbed.yaml" \
  --set logaccess.createServiceAccountAndRoleBinding=true \
  --set inventory.enabled=true --set inventory.clusterId=local \
  --set ports.enabled=true --set ports.nodeSelector='type!=kwok' \
  --set guard.enabled=true \
  --wait --timeout 3m >/dev/null
{ set +x; } 2>/dev/null
helm -n "$ns" list
kubectl -n "$ns" get pods,cronjobs,pvc -o wide

lease_holder() { kubectl -n "$ns" get lease crowsnest-operator -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true; }
step "the operator: two replicas, one holds the Lease"
for _ in $(seq 1 100); do [[ -n "$(lease_holder)" ]] && break; sleep 0.2; done
kubectl -n "$ns" get lease crowsnest-operator
leader="$(lease_holder)"
kubectl -n "$ns" logs "$leader" | grep -m1 'became leader' || true

show_role() { # <pods>: waits until the Deployment has that many pods and the Role names exactly them, then prints both
  local want have
  for _ in $(seq 1 150); do
    want="$(kubectl -n shop get pods -l app=api -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' | sort | paste -sd, -)"
    have="$(kubectl -n shop get role podlogreader-api -o jsonpath='{range .rules[?(@.resources[0]=="pods/log")].resourceNames[*]}{@}{"\n"}{end}' 2>/dev/null | sort | paste -sd, -)"
    [[ "$want" == "$have" && $(tr ',' '\n' <<<"$want" | grep -c .) -eq $1 ]] && break
    sleep 0.2
  done
  echo "pods of shop/api: ${want:-<none>}"
  kubectl -n shop get role podlogreader-api -o jsonpath='{"Role podlogreader-api rules:\n"}{range .rules[*]}{"  "}{.resources}{" "}{.verbs}{" resourceNames="}{.resourceNames}{"\n"}{end}'
}

step "logaccess: an opted-in Deployment of real pods (pod template label podlogreader-affiliate: enable)"
kubectl create namespace shop --dry-run=client -o yaml | kubectl apply -f - >/dev/null
cat <<YAML | kubectl apply -f - >/dev/null
apiVersion: apps/v1
kind: Deployment
metadata: { name: api, namespace: shop }
spec:
  replicas: 2
  selector: { matchLabels: { app: api } }
  template:
    metadata: { labels: { app: api, podlogreader-affiliate: enable } }
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: api
          image: $TEST_IMAGE
          command: [sh, -c, 'echo "api started on \$(hostname)"; exec sleep 3600']
YAML
kubectl -n shop rollout status deployment/api --timeout=60s >/dev/null
kubectl -n shop get pods -o wide
show_role 2
kubectl -n shop get serviceaccount,rolebinding podlogreader-api

step "logaccess: the Role's ServiceAccount reads its pods' logs, and no one else's"
# A kubeconfig holding only that ServiceAccount's token (the admin one's client certificate
# would otherwise be what the API server authenticates).
as_reader="$(mktemp)"
trap 'rm -f "$as_reader"' EXIT
ca="$(mktemp)"
kubectl config view --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d >"$ca"
kubectl --kubeconfig="$as_reader" config set-cluster testbed --server="$(kubectl config view -o jsonpath='{.clusters[0].cluster.server}')" --certificate-authority="$ca" --embed-certs >/dev/null
rm -f "$ca"
kubectl --kubeconfig="$as_reader" config set-credentials podlogreader-api --token="$(kubectl -n shop create token podlogreader-api --duration=10m)" >/dev/null
kubectl --kubeconfig="$as_reader" config set-context reader --cluster=testbed --user=podlogreader-api >/dev/null
kubectl --kubeconfig="$as_reader" config use-context reader >/dev/null
# The Role grants pods/log (and pods list), as podlogreader's did: the log subresource is read
# directly (`kubectl logs` would first GET the pod, which it does not grant).
pod="$(kubectl -n shop get pods -l app=api -o jsonpath='{.items[0].metadata.name}')"
echo "\$ kubectl get --raw /api/v1/namespaces/shop/pods/$pod/log   # as ServiceAccount shop/podlogreader-api"
kubectl --kubeconfig="$as_reader" get --raw "/api/v1/namespaces/shop/pods/$pod/log"
web="$(kubectl -n demo get pods -l app=web -o jsonpath='{.items[0].metadata.name}')"
echo "\$ kubectl get --raw /api/v1/namespaces/demo/pods/$web/log   # the same, another namespace's pod"
kubectl --kubeconfig="$as_reader" get --raw "/api/v1/namespaces/demo/pods/$web/log" 2>&1 || true

step "logaccess: scale to 4 — the Role follows"
kubectl -n shop scale deployment/api --replicas=4 >/dev/null
kubectl -n shop rollout status deployment/api --timeout=60s >/dev/null
show_role 4

step "logaccess: scale to 0 — no pods/log rule at all (an empty resourceNames would mean every pod)"
kubectl -n shop scale deployment/api --replicas=0 >/dev/null
show_role 0

step "metrics of the leader ($leader), straight from its pod IP"
ip="$(kubectl -n "$ns" get pod "$leader" -o jsonpath='{.status.podIP}')"
curl -s "http://$ip:8080/metrics" | grep -E '^crowsnest_(leader_election_master_status|logaccess_managed_roles|logaccess_writes_total)'

step "failover: delete the leader pod; it releases the Lease on SIGTERM and the standby takes over"
kubectl -n "$ns" delete pod "$leader" --wait=false
for _ in $(seq 1 150); do
  holder="$(lease_holder)"
  [[ -n "$holder" && "$holder" != "$leader" ]] && break
  sleep 0.2
done
kubectl -n "$ns" get lease crowsnest-operator
kubectl -n shop scale deployment/api --replicas=1 >/dev/null
kubectl -n shop rollout status deployment/api --timeout=60s >/dev/null
echo "the new leader still follows:"
show_role 1
kubectl -n "$ns" rollout status deployment/crowsnest-operator --timeout=90s >/dev/null
kubectl -n "$ns" get pods -l app.kubernetes.io/component=operator -o wide

step "inventory: a Job from the chart's CronJob snapshots the cluster from a pod"
kubectl -n "$ns" create job "inventory-$stamp" --from=cronjob/crowsnest-inventory >/dev/null
wait_job "$ns" "inventory-$stamp"
kubectl -n "$ns" get pods -l job-name="inventory-$stamp" -o wide
kubectl -n "$ns" logs "job/inventory-$stamp" | grep -v '^{' | sed -n '1,12p'

step "inventory by hand: one snapshot of the cluster into ./reports (Secrets included, values redacted)"
kubectl -n shop create secret generic db --from-literal=password=demo-password-123 --dry-run=client -o yaml | kubectl apply -f - >/dev/null
reports="$repo/reports"
"$repo/bin/crowsnest" inventory collect local --add-types secrets --report-dir "$reports" --log-level warn
first="$(ls -t "$reports"/inventory-local-*.ndjson.gz | head -1)"
# Decompressed to a file first: with pipefail, `zcat | grep -q` would fail when grep stops early.
snapshot_text="$(mktemp)"
zcat "$first" >"$snapshot_text"
echo "the Secret as collected:"
grep '"kind":"Secret","metadata":{"name":"db","namespace":"shop"' "$snapshot_text" || true
if grep -q demo-password-123 "$snapshot_text"; then echo "LEAK: the secret value is in the snapshot" >&2; exit 1; fi
rm -f "$snapshot_text"

step "inventory: change something, snapshot again, diff"
kubectl -n shop scale deployment/api --replicas=2 >/dev/null
kubectl -n shop create configmap settings --from-literal=mode=fast --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n shop rollout status deployment/api --timeout=60s >/dev/null
"$repo/bin/crowsnest" inventory collect local --add-types secrets --report-dir "$reports" --log-level warn >/dev/null
second="$(ls -t "$reports"/inventory-local-*.ndjson.gz | head -1)"
"$repo/bin/crowsnest" inventory diff "$first" "$second" || true

step "ports: this machine's listening sockets (what ss -ltnup lists), from /proc"
scan="$(mktemp)"
"$repo/bin/crowsnest" ports scan >"$scan"
head -20 "$scan"
[[ $(wc -l <"$scan") -le 20 ]] || echo "… $(($(wc -l <"$scan") - 20)) more"
rm -f "$scan"

step "ports: a Job from the chart's CronJob — a hostPID scan pod on each real node, one cluster report"
kubectl -n "$ns" create job "ports-$stamp" --from=cronjob/crowsnest-ports >/dev/null
# The scan pods live for a few seconds: show them while they do.
for _ in $(seq 1 50); do
  [[ -n "$(kubectl -n "$ns-ports-scan" get pods -o name 2>/dev/null)" ]] && { kubectl -n "$ns-ports-scan" get pods -o wide; break; }
  sleep 0.2
done
wait_job "$ns" "ports-$stamp"
kubectl -n "$ns" logs "job/ports-$stamp" | grep -v '^{'
# The report volume is a local PersistentVolume of the testbed: its directory is on this machine.
volume="$(kubectl -n "$ns" get pvc crowsnest-ports-reports -o jsonpath='{.spec.volumeName}')"
path="$(kubectl get pv "$volume" -o jsonpath='{.spec.local.path}')"
latest="$(ls -t "$path"/ports-*.txt | head -1)"
echo "--- $latest (first lines)"
head -25 "$latest"

step "prober: a NetworkProber first, then the pods it selects: the webhook injects the RTT agent (a native sidecar)"
kubectl create namespace mesh --dry-run=client -o yaml | kubectl apply -f - >/dev/null
cat <<YAML | kubectl apply -f -
apiVersion: crowsnest.dev/v1alpha1
kind: NetworkProber
metadata: { name: mesh, namespace: mesh }
spec:
  podSelector: { matchLabels: { app: echo } }
  pollingPeriod: 2s
YAML
cat <<YAML | kubectl apply -f - >/dev/null
apiVersion: apps/v1
kind: Deployment
metadata: { name: echo, namespace: mesh }
spec:
  replicas: 2
  selector: { matchLabels: { app: echo } }
  template:
    metadata: { labels: { app: echo } }
    spec:
      terminationGracePeriodSeconds: 1
      # One pod on each real node, so the agents measure the path between the nodes.
      topologySpreadConstraints:
        - { maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: { matchLabels: { app: echo } } }
      containers:
        - name: app
          image: $TEST_IMAGE
          command: [sh, -c, 'exec sleep 3600']
YAML
kubectl -n mesh rollout status deployment/echo --timeout=90s >/dev/null
kubectl -n mesh get pods -o wide
echo "containers of one pod (init containers first; net-prober has restartPolicy Always):"
kubectl -n mesh get pods -l app=echo -o jsonpath='{.items[0].spec.initContainers[*].name} {.items[0].spec.containers[*].name}{"\n"}'
kubectl -n mesh wait --for=condition=Ready networkprober/mesh --timeout=90s >/dev/null
# Both directions between the two pods measured: the agents got their peers from the operator.
kubectl -n mesh wait --for=jsonpath='{.status.reachablePairs}'=2 networkprober/mesh --timeout=90s >/dev/null
kubectl -n mesh get networkprobers
echo_ip="$(kubectl -n mesh get pods -l app=echo -o jsonpath='{.items[0].status.podIP}')"
echo "\$ curl http://$echo_ip:19090/metrics   # the agent's histograms, scraped from the pod"
curl -sf "http://$echo_ip:19090/metrics" | grep -E '^crowsnest_prober_rtt_seconds_(count|sum)'

step "guard: a GuardPolicy over a Deployment whose 3 pods really crash; one is quarantined (the rail allows 1), isolated and replaced"
kubectl create namespace guarded --dry-run=client -o yaml | kubectl apply -f - >/dev/null
cat <<YAML | kubectl apply -f -
apiVersion: crowsnest.dev/v1alpha1
kind: GuardPolicy
metadata: { name: flaky, namespace: guarded }
spec:
  targets: { podSelector: { matchLabels: { app: flaky } } }
  detectors: { crashLoop: { restarts: 2, window: 10m } }
  actions: [Event, Quarantine, Isolate]
  quarantine: { ttl: 1h, maxQuarantined: 1 }
YAML
cat <<YAML | kubectl apply -f - >/dev/null
apiVersion: apps/v1
kind: Deployment
metadata: { name: flaky, namespace: guarded }
spec:
  replicas: 3
  selector: { matchLabels: { app: flaky } }
  template:
    metadata: { labels: { app: flaky } }
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: app
          image: $TEST_IMAGE
          command: [sh, -c, 'echo "started"; sleep 2; echo "fatal: lost the database" >&2; exit 1']
YAML
quarantined=""
for _ in $(seq 1 600); do
  quarantined="$(kubectl -n guarded get pods -l guard.crowsnest.dev/quarantined -o jsonpath='{.items[*].metadata.name}')"
  [[ -n "$quarantined" ]] && break
  sleep 0.2
done
[[ -n "$quarantined" ]] || { echo "no pod was quarantined within 2 minutes" >&2; kubectl -n guarded describe guardpolicy flaky >&2; exit 1; }
sleep 2 # the ReplicaSet's replacement appears
kubectl -n guarded get pods -o wide -L guard.crowsnest.dev/quarantined
kubectl -n guarded get deployment flaky
kubectl -n guarded get networkpolicies
kubectl -n guarded get guardpolicies
kubectl -n guarded get events --field-selector involvedObject.name="$quarantined" -o custom-columns=REASON:.reason,FROM:.reportingComponent,MESSAGE:.message | grep -v -E '^(Pulled|Created|Started|BackOff|Scheduled) ' || true

step "guard: release the quarantined pod from a terminal; its ReplicaSet adopts it again"
echo "\$ crowsnest guard release -n guarded $quarantined"
"$repo/bin/crowsnest" guard release -n guarded "$quarantined" --log-level warn
kubectl -n guarded get pods -o wide -L guard.crowsnest.dev/quarantined
kubectl -n guarded delete guardpolicy flaky --wait=false >/dev/null
kubectl -n guarded scale deployment/flaky --replicas=0 >/dev/null

step "done: the cluster keeps running; 'helm -n $ns uninstall crowsnest' removes Crowsnest, 'make cluster-down' the cluster"
