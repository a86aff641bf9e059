#!/usr/bin/env bash
# `make demo`: Crowsnest against the local control plane started by `make cluster`.
# The cluster, `crowsnest version`, then `crowsnest operator` winning its Lease and keeping a
# log-reader Role for an opted-in Deployment as it scales; then a clean shutdown on SIGTERM;
# then inventory snapshots into ./reports and a diff between two of them; then this machine's
# port scan and a cluster port report.
set -euo pipefail
dir="${1:-.cluster}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export KUBECONFIG="$dir/kubeconfig" PATH="$dir/bin:$PATH"
# TEST_IMAGE (busybox in the testbed's registry) and friends, written by `make cluster`.
source "$dir/images.env"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "the local cluster: two real nodes (kubelet + containerd) and kwok nodes for scale (tainted)"
kubectl get nodes -o wide

step "crowsnest version"
"$repo/bin/crowsnest" version

step "a Deployment runs for real on the real nodes (image from the testbed's registry)"
kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n demo create deployment web --image="$TEST_IMAGE" --replicas=2 --dry-run=client -o yaml -- sh -c 'echo "hello from $(hostname)"; exec sleep 3600' | kubectl apply -f - >/dev/null
kubectl -n demo rollout status deployment/web --timeout=60s
kubectl -n demo get pods -o wide
kubectl -n demo logs deployment/web

step "crowsnest operator: leader election, logaccess, metrics, probes"
kubectl create namespace crowsnest-system --dry-run=client -o yaml | kubectl apply -f - >/dev/null
log="$(mktemp)"
"$repo/bin/crowsnest" operator --log-format text --identity demo-replica --create-sa-and-rolebinding \
  --metrics-bind-address 127.0.0.1:18080 --health-probe-bind-address 127.0.0.1:18081 >"$log" 2>&1 &
operator=$!
trap 'kill $operator 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 100); do
  holder="$(kubectl -n crowsnest-system get lease crowsnest-operator -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true)"
  [[ "$holder" == demo-replica ]] && break
  sleep 0.2
done
kubectl -n crowsnest-system get lease crowsnest-operator

show_role() { # waits until the Role names exactly the Deployment's pods, then prints both
  local want
  for _ in $(seq 1 100); do
    want="$(kubectl -n shop get pods -l app=api -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' | sort | paste -sd, -)"
    have="$(kubectl -n shop get role podlogreader-api -o jsonpath='{range .rules[?(@.resources[0]=="pods/log")].resourceNames[*]}{@}{"\n"}{end}' 2>/dev/null | sort | paste -sd, -)"
    [[ "$want" == "$have" ]] && break
    sleep 0.2
  done
  echo "pods of shop/api: ${want:-<none>}"
  kubectl -n shop get role podlogreader-api -o jsonpath='{"Role podlogreader-api rules:\n"}{range .rules[*]}{"  "}{.resources}{" "}{.verbs}{" resourceNames="}{.resourceNames}{"\n"}{end}'
}

step "logaccess: an opted-in Deployment (pod template label podlogreader-affiliate: enable)"
kubectl create namespace shop --dry-run=client -o yaml | kubectl apply -f - >/dev/null
cat <<'YAML' | kubectl apply -f - >/dev/null
apiVersion: apps/v1
kind: Deployment
metadata: { name: api, namespace: shop }
spec:
  replicas: 2
  selector: { matchLabels: { app: api } }
  template:
    metadata: { labels: { app: api, podlogreader-affiliate: enable } }
    # On kwok nodes (scale without processes): tolerate their taint and select them.
    spec:
      tolerations: [ { key: kwok.x-k8s.io/node, operator: Equal, value: fake, effect: NoSchedule } ]
      nodeSelector: { type: kwok }
      containers: [ { name: api, image: nginx } ]
YAML
kubectl -n shop rollout status deployment/api --timeout=60s >/dev/null
show_role
kubectl -n shop get serviceaccount,rolebinding podlogreader-api

step "logaccess: scale to 4 — the Role follows"
kubectl -n shop scale deployment/api --replicas=4 >/dev/null
kubectl -n shop rollout status deployment/api --timeout=60s >/dev/null
show_role

step "logaccess: scale to 0 — no pods/log rule at all (an empty resourceNames would mean every pod)"
kubectl -n shop scale deployment/api --replicas=0 >/dev/null
sleep 2
show_role

step "metrics, probes, and a graceful shutdown"
echo "readyz: $(curl -s http://127.0.0.1:18081/readyz)"
curl -s http://127.0.0.1:18080/metrics | grep -E '^crowsnest_(leader_election_master_status|logaccess_managed_roles|logaccess_writes_total)'
kill -TERM $operator
wait $operator && echo "operator exited 0 after SIGTERM"
echo "--- operator log"
cat "$log"
echo "--- lease after shutdown (released: no holder)"
kubectl -n crowsnest-system get lease crowsnest-operator -o jsonpath='{.spec}{"\n"}'

step "inventory: one snapshot of the cluster into ./reports (Secrets included, values redacted)"
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
sleep 1 # snapshot names have one-second resolution
kubectl -n shop scale deployment/api --replicas=1 >/dev/null
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

step "ports: a report of the kwok nodes (a scan pod per node; kwok nodes run nothing, so this script runs each scan locally)"
node "$repo/scripts/demo-ports.ts" "$dir" "$reports" crowsnest-system
latest="$(ls -t "$reports"/ports-*.txt | head -1)"
echo "--- $latest (first lines)"
head -25 "$latest"

step "done: the cluster keeps running; 'make cluster-down' stops it"
