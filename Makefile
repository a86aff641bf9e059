# Crowsnest — every target installs what it needs on a fresh machine (Node 24 from the npm
# registry when the machine's Node is older, npm packages, the Kubernetes binaries built from Go
# modules into ~/.cache/crowsnest). The first run builds Kubernetes: ~7 minutes on 2 cores.

SHELL := /bin/bash
.DEFAULT_GOAL := help
.SUFFIXES:

# Resolved once per make run, installing Node 24 if needed.
NODE := $(shell scripts/node.sh)
ifeq ($(NODE),)
$(error could not find or install Node.js 24: see the messages of scripts/node.sh above)
endif
# npm and npx run under the same Node.
RUN := PATH="$(dir $(NODE)):$$PATH"

INTEGRATION := --test-isolation=none --test-global-setup=test/integration/setup.ts

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

node_modules/.installed: package.json package-lock.json
	@echo "[deps] installing npm packages with Node $$($(NODE) --version)"
	@$(RUN) npm ci --no-audit --no-fund --loglevel=error
	@touch $@

.PHONY: deps
deps: node_modules/.installed ## install npm packages

.PHONY: build
build: deps ## type-check the project (Node 24 runs the .ts sources directly)
	@$(RUN) npx tsc --noEmit -p .
	@$(RUN) node scripts/crds.ts --check
	@echo "[build] type check passed; run ./bin/crowsnest --help"

.PHONY: crds
crds: deps ## write the chart's CRDs (deploy/helm/crowsnest/crds) from the API definitions
	@$(RUN) node scripts/crds.ts

.PHONY: lint
lint: build ## type check (strict), Biome's lint rules (biome.jsonc), and layers import downward only with no cycles (scripts/lint-layers.ts)
	@$(RUN) npx biome lint --error-on-warnings
	@$(RUN) node scripts/lint-layers.ts

IMAGE_OUT ?= .image

.PHONY: image
image: build ## build the Crowsnest image, no daemon: .image/crowsnest/ (OCI layout), .image/crowsnest.tar, SBOM
	@$(RUN) node image/build.ts crowsnest --out $(IMAGE_OUT)

.PHONY: image-push
image-push: image ## push it with crane: make image-push REGISTRY=host[:port]/path (→ path/crowsnest:<version>)
	@$(RUN) node image/build.ts push --registry "$(REGISTRY)" --out $(IMAGE_OUT)

.PHONY: testbed
testbed: ## build the control-plane binaries into the cache (once per machine)
	@testbed/build.sh >/dev/null

.PHONY: test
test: lint test-unit test-image test-integration ## all tests: lint, unit, image, then integration on a real local control plane

.PHONY: test-unit
# Two files at a time (node's default on 2 cores is one): most of a unit file's time is Node
# starting and loading it, or a real process waiting. test/host compares this host's sockets with
# ss, so its files run alone and one at a time, after the rest: listeners come and go meanwhile,
# and ports-scan-escape gives one a process name that ss prints across two lines.
test-unit: deps ## unit tests (pure logic, fake clocks), and the host port scan compared with ss
	@$(RUN) node --test --test-concurrency=2 'src/**/*.test.ts' 'scripts/**/*.test.ts' 'image/**/*.test.ts' 'testbed/**/*.test.ts'
	@$(RUN) node --test --test-concurrency=1 'test/host/**/*.test.ts'

.PHONY: test-image
test-image: deps ## image tests: loopback registry + crane, the images built twice (same digest), run read-only
	@$(RUN) node --test 'test/image/**/*.test.ts'

.PHONY: test-integration
test-integration: deps testbed image ## integration tests against one shared local control plane (real nodes run the image just built)
	@$(RUN) node --test $(INTEGRATION) 'test/integration/**/*.test.ts'

.PHONY: cluster
cluster: deps testbed image ## start a local cluster in the background: control plane, 2 real nodes, 3 kwok nodes, registry with our images (.cluster/kubeconfig, .cluster/images.env)
	@$(RUN) node testbed/cli.ts up --dir .cluster

.PHONY: cluster-down
cluster-down: deps ## stop the local cluster and remove everything it made (processes, namespaces, bridge, cgroups, .cluster)
	@$(RUN) node testbed/cli.ts down --dir .cluster

.PHONY: demo
demo: cluster ## run crowsnest against the local control plane
	@$(RUN) scripts/demo.sh .cluster

.PHONY: bench
bench: deps testbed ## benchmarks, printed as tables beside their anchors
	@$(RUN) node test/bench/run.ts
