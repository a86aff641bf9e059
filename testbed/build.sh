#!/usr/bin/env bash
# Builds the testbed's binaries from Go modules into a cache outside the repo, keyed by version,
# so a machine builds them once: the control plane, kubectl, kwok, helm, and for the real nodes
# kubelet, kube-proxy (same Kubernetes module as the control plane), CoreDNS and the NetworkPolicy
# enforcer (kube-network-policies). Installs the Debian packages the real nodes run (containerd,
# runc, CNI plugins, iptables) when missing.
# Prints what it does and how long it took.
#
#   testbed/build.sh            build what is missing, print the bin dir on the last line
#   testbed/build.sh --print    only print the bin dir (no build)
#   testbed/build.sh --image-tools  build only the registry, crane and pause (see "images" below)
#
# Env: CROWSNEST_CACHE (default ~/.cache/crowsnest), GO (default /usr/local/go/bin/go or `go`).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
K8S_VERSION="$(sed -n 's/^require k8s.io\/kubernetes \(v[0-9.]*\)$/\1/p' "$here/k8s/go.mod")"
ETCD_VERSION="$(sed -n 's/^require go.etcd.io\/etcd\/server\/v3 \(v[0-9.]*\)$/\1/p' "$here/etcd/go.mod")"
KWOK_VERSION="$(sed -n 's/^require sigs.k8s.io\/kwok \(v[0-9.]*\)$/\1/p' "$here/kwok/go.mod")"
HELM_VERSION="$(sed -n 's/^require helm.sh\/helm\/v3 \(v[0-9.]*\)$/\1/p' "$here/helm/go.mod")"
COREDNS_VERSION="$(sed -n 's/^require github.com\/coredns\/coredns \(v[0-9.]*\)$/\1/p' "$here/coredns/go.mod")"
cache="${CROWSNEST_CACHE:-$HOME/.cache/crowsnest}"
bindir="$cache/testbed-k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION/bin"

if [[ "${1:-}" == "--print" ]]; then echo "$bindir"; exit 0; fi

GO="${GO:-}"
if [[ -z "$GO" ]]; then
  if [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go; else GO="$(command -v go)"; fi
fi
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly
mkdir -p "$bindir"

log() { printf '[testbed %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# One build at a time per cache dir: two test processes on a fresh machine must not race.
exec 9>"$bindir/.build.lock"
flock 9

build() { # name module-dir package [ldflags] [output-dir]
  local name="$1" dir="$2" pkg="$3" ldflags="${4:-}" out="${5:-$bindir}"
  if [[ -x "$out/$name" ]]; then return 0; fi
  mkdir -p "$out"
  log "building $name ($pkg) — the first build on a machine takes several minutes"
  local start=$SECONDS
  (cd "$here/$dir" && "$GO" build -trimpath -tags selinux,notest,grpcnotrace \
      -ldflags "-s -w $ldflags" -o "$out/$name.tmp" "$pkg")
  mv "$out/$name.tmp" "$out/$name"
  log "built $name in $((SECONDS - start)) s"
}

# --- images: the loopback registry, crane (the registry client) and the pause binary ---------
# Each cached on its own (a version bump rebuilds only that tool) and linked into the bin dir.
# `testbed/build.sh --image-tools` builds only these (what `make image-push` needs).
module_version() { # module-dir module-path: the version the dir's go.mod requires
  sed -n "s#^[[:space:]]*\(require \)\{0,1\}$2 \(v[^[:space:]]*\).*#\2#p" "$here/$1/go.mod" | head -n 1
}
build_image_tools() {
  local registry_version crane_version registry_dir crane_dir pause_key pause_dir
  registry_version="$(module_version registry github.com/distribution/distribution/v3)"
  crane_version="$(module_version crane github.com/google/go-containerregistry)"
  registry_dir="$cache/registry-$registry_version/bin"
  build registry registry . "-X github.com/distribution/distribution/v3/version.version=$registry_version" "$registry_dir"
  ln -sfn "$registry_dir/registry" "$bindir/registry"
  crane_dir="$cache/crane-$crane_version/bin"
  build crane crane github.com/google/go-containerregistry/cmd/crane \
    "-X github.com/google/go-containerregistry/cmd/crane/cmd.Version=$crane_version" "$crane_dir"
  ln -sfn "$crane_dir/crane" "$bindir/crane"
  # pause has no module version of its own: keyed by its source and the Go version, which together
  # fix its bytes (-trimpath), and so the digest of the pause image built from it.
  pause_key="$(cat "$here/pause/go.mod" "$here/pause/main.go" <("$GO" env GOVERSION) | sha256sum | cut -c1-16)"
  pause_dir="$cache/pause-$pause_key/bin"
  build pause pause . "-X main.version=$pause_key" "$pause_dir"
  ln -sfn "$pause_dir/pause" "$bindir/pause"
}
if [[ "${1:-}" == "--image-tools" ]]; then build_image_tools; echo "$bindir"; exit 0; fi

# --- end of images ---------------------------------------------------------------------------

# The real nodes' runtime comes from Debian: containerd 1.6 with runc, the CNI plugins (bridge,
# host-local, portmap, loopback in /usr/lib/cni) and iptables (kube-proxy, portmap, the
# NetworkPolicy divert rules); nftables for `nft`, with which the cleanup test lists every table
# (iptables-save shows only iptables' own; kube-network-policies would make an inet one).
# Not for --image-tools (make image-push needs none of them).
debian_packages=(containerd runc containernetworking-plugins iptables nftables)
missing=()
for pkg in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if (( ${#missing[@]} > 0 )); then
  if [[ "$(id -u)" != 0 ]]; then
    log "the real nodes need the Debian packages ${missing[*]}, and installing them needs root:"
    log "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}"
    exit 1
  fi
  log "installing Debian packages for the real nodes: ${missing[*]}"
  apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

total_start=$SECONDS
minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
build_date="$(date -u -d @"${SOURCE_DATE_EPOCH:-0}" +%Y-%m-%dT%H:%M:%SZ)"
k8s_ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

build etcd etcd . "-X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION"
build kwok kwok sigs.k8s.io/kwok/cmd/kwok "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy; do
  build "$cmd" k8s "k8s.io/kubernetes/cmd/$cmd" "$k8s_ldflags"
done
# kwok's CRDs from the same module version as the binary, as JSON (kubectl converts them
# offline), so the control plane can create the ones it enables (Logs, ClusterLogs) with plain
# API requests. Also fills in a cache whose binaries predate this step: the key stays the same.
if [[ ! -f "$bindir/kwok-crds/kwok.x-k8s.io_logs.json" ]]; then
  # `go mod download` (unlike `go list -m`) fetches the module when the Go module cache was
  # emptied after the binaries were built, and prints where it is.
  kwok_src="$(cd "$here/kwok" && "$GO" mod download -json sigs.k8s.io/kwok | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -d "$kwok_src/kustomize/crd/bases" ]] || { log "cannot find kwok's CRDs (module dir: '${kwok_src}')"; exit 1; }
  rm -rf "$bindir/kwok-crds.tmp"
  mkdir -p "$bindir/kwok-crds.tmp"
  for yaml in "$kwok_src"/kustomize/crd/bases/*.yaml; do
    KUBECONFIG=/dev/null "$bindir/kubectl" label --local -o json -f "$yaml" app.kubernetes.io/managed-by=crowsnest-testbed \
      >"$bindir/kwok-crds.tmp/$(basename "$yaml" .yaml).json"
  done
  rm -rf "$bindir/kwok-crds"
  mv "$bindir/kwok-crds.tmp" "$bindir/kwok-crds"
  log "converted kwok's CRDs into $bindir/kwok-crds"
fi
# CoreDNS with only the plugins the testbed's Corefile uses (testbed/coredns/main.go); cached on
# its own like helm.
coredns_dir="$cache/coredns-$COREDNS_VERSION/bin"
build coredns coredns . "-X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" "$coredns_dir"
ln -sfn "$coredns_dir/coredns" "$bindir/coredns"
# The real nodes' NetworkPolicy enforcer: kube-network-policies' controller with our main
# (testbed/netpol/main.go, see testbed/netpol.ts); cached on its own like CoreDNS.
netpol_version="$(module_version netpol sigs.k8s.io/kube-network-policies)"
# Keyed by the module version and our sources too: a change to main.go or divert.go rebuilds it.
netpol_key="$(cat "$here/netpol/go.mod" "$here/netpol/go.sum" "$here/netpol/"*.go | sha256sum | cut -c1-12)"
netpol_dir="$cache/netpol-kube-network-policies-$netpol_version-$netpol_key/bin"
build netpol netpol . "" "$netpol_dir"
ln -sfn "$netpol_dir/netpol" "$bindir/netpol"
# helm renders the chart in tests; cached on its own so a helm bump does not rebuild Kubernetes.
helm_dir="$cache/helm-$HELM_VERSION/bin"
build helm helm helm.sh/helm/v3/cmd/helm "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" "$helm_dir"
ln -sfn "$helm_dir/helm" "$bindir/helm"
build_image_tools
log "all binaries present in $bindir ($((SECONDS - total_start)) s this run)"
echo "$bindir"
