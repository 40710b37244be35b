# shardwise: the commands a user types. `make demo` runs the main job, `make test` runs the tests.
# Both install what they need first (npm ci; Debian packages with apt-get when run as root).

SHELL := /bin/bash
NODE_TS := node --import tsx
SHARDWISE := $(NODE_TS) cli/index.ts

.PHONY: install deb-packages test lint demo bench bench-compute proto

# Debian packages the tests start for real: the NATS server, Prometheus, protoc (generated-code check),
# and fonts so the PNG curves carry readable text.
TEST_DEB_PACKAGES := nats-server:nats-server prometheus:prometheus protoc:protobuf-compiler fc-list:fontconfig

install: node_modules/.installed

deb-packages:
	@scripts/ensure-deb.sh $(TEST_DEB_PACKAGES)

node_modules/.installed: package-lock.json
	npm ci --no-audit --no-fund
	touch $@

## test: lint, type-check, import-cycle check, then the whole mocha suite.
test: install deb-packages
	npm run --silent lint
	npm test

lint: install
	npm run --silent lint

## demo: the main job. Fine-tunes the ImageNet MobileNet on CIFAR-10 (CIFAR10_DIR or a download).
demo: install
	$(SHARDWISE) train --local --job examples/demo-local.yaml $(if $(CIFAR10_DIR),--data $(CIFAR10_DIR),)

## bench-compute: training and forward images/s of the MobileNet backbone on each backend.
bench-compute: install
	$(NODE_TS) bench/compute.ts

bench: bench-compute

## proto: regenerate the ts-proto code in proto/generated from proto/*.proto.
proto: install
	@scripts/ensure-deb.sh protoc:protobuf-compiler
	scripts/gen-proto.sh
