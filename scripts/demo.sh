#!/usr/bin/env bash
# `make demo`: Crowsnest against the local control plane started by `make cluster`.
# Today the runtime is what exists: the cluster, `crowsnest version`, and `crowsnest operator`
# winning its Lease, serving metrics and probes, and shutting down cleanly on SIGTERM.
set -euo pipefail
dir="${1:-.cluster}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export KUBECONFIG="$dir/kubeconfig" PATH="$dir/bin:$PATH"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "the local control plane (kwok nodes)"
kubectl get nodes -o wide

step "crowsnest version"
"$repo/bin/crowsnest" version

step "a Deployment gets scheduled and Running on the kwok nodes"
kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n demo create deployment web --image=nginx --replicas=3 --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n demo rollout status deployment/web --timeout=60s
kubectl -n demo get pods -o wide

step "crowsnest operator: leader election, metrics, probes, graceful shutdown"
kubectl create namespace crowsnest-system --dry-run=client -o yaml | kubectl apply -f - >/dev/null
log="$(mktemp)"
"$repo/bin/crowsnest" operator --log-format text --identity demo-replica \
  --metrics-bind-address 127.0.0.1:18080 --health-probe-bind-address 127.0.0.1:18081 >"$log" 2>&1 &
operator=$!
trap 'kill $operator 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 100); do
  holder="$(kubectl -n crowsnest-system get lease crowsnest-operator -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true)"
  [[ "$holder" == demo-replica ]] && break
  sleep 0.2
done
kubectl -n crowsnest-system get lease crowsnest-operator
echo "readyz: $(curl -s http://127.0.0.1:18081/readyz)"
curl -s http://127.0.0.1:18080/metrics | grep -E '^crowsnest_(leader_election_master_status|build_info)'
kill -TERM $operator
wait $operator && echo "operator exited 0 after SIGTERM"
echo "--- operator log"
cat "$log"
echo "--- lease after shutdown (released: no holder)"
kubectl -n crowsnest-system get lease crowsnest-operator -o jsonpath='{.spec}{"\n"}'

step "done: the cluster keeps running; 'make cluster-down' stops it"
