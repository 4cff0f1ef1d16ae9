# virtform — common tasks. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
EXAMPLES ?= manifests/examples
URI ?= qemu:///system
# The demo's guests run under TCG (qemu) by default: it works on every host, and on nested hosts
# like this project's CI machines KVM guests hang at boot. DOMAIN_TYPE=auto (kvm when offered) on bare metal.
DOMAIN_TYPE ?= qemu
VIRTFORM := node dist/cli/main.js

.PHONY: help setup build demo demo-destroy test test-unit test-integration test-postgres test-fleet test-dashboard dashboard-screenshots check-protocol gen-protocol test-faults test-e2e debian-guest bench clean-test typecheck vagrant-check mutation

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

setup: ## install Debian packages, start libvirtd, npm ci, build (idempotent; root)
	bash scripts/setup-host.sh

build: ## compile TypeScript to dist/
	npm run -s build

typecheck: ## type-check sources, tests, benches and scripts
	npx tsc -p tsconfig.test.json

demo: setup ## converge the example manifests on qemu:///system and show status
	$(VIRTFORM) validate $(EXAMPLES)
	$(VIRTFORM) reconcile $(EXAMPLES) --uri $(URI) --dry-run
	$(VIRTFORM) reconcile $(EXAMPLES) --uri $(URI) --domain-type $(DOMAIN_TYPE) --wait-for tiny-1 --wait-timeout 300
	$(VIRTFORM) status --uri $(URI)

demo-destroy: setup ## delete everything the demo created (prune with an empty manifest set; consents to the data loss)
	mkdir -p /tmp/virtform-empty && $(VIRTFORM) reconcile /tmp/virtform-empty --uri $(URI) --allow-empty --allow-data-loss --max-deletions all

test: setup typecheck ## the whole suite: type-check, unit + integration against the real libvirtd
	npx vitest run

test-unit: ## unit tests only (no libvirtd needed)
	npx vitest run --project unit

test-integration: setup ## integration tests against the real libvirtd
	npx vitest run --project integration

test-postgres: setup ## the state store's contract on PostgreSQL and the reconcile integration suite with its state DB on PostgreSQL (a private cluster per run; root, libvirtd)
	npx vitest run -c vitest.postgres.config.ts

test-faults: setup ## fault suite: crash matrix, SIGKILL rounds, libvirtd kill, disk full, lock race (root; ~8-9 min)
	npx vitest run -c vitest.faults.config.ts

test-fleet: setup ## the fleet suites: several namespace libvirt hosts (placement, moves, ssh/TLS transports, host failures) and two watchers on PostgreSQL (root)
	npx vitest run -c vitest.fleet.config.ts

test-dashboard: setup build ## the web dashboard in Debian's chromium (installed here by scripts/setup-browser.sh): a real watch --git on libvirtd, live updates, filters, axe-core WCAG AA, keyboard (root)
	bash scripts/setup-browser.sh
	npx vitest run -c vitest.dashboard.config.ts

dashboard-screenshots: setup build ## docs/dashboard-overview.png and docs/dashboard-resource.png from a real watch (root; chromium)
	bash scripts/setup-browser.sh
	npx tsx scripts/dashboard-screenshots.ts --out docs

debian-guest: ## build (or find cached) the Debian bookworm cloud-init guest in /var/cache/virtform/debian-guest (root; ~4 min cold, 1 s warm)
	bash scripts/build-debian-guest.sh

test-e2e: setup debian-guest ## end-to-end suites: real guests under TCG (tiny guest by manifests, console, Debian cloud-init guest), addresses, URL imports, watch --git, safety controls (root)
	npx vitest run -c vitest.e2e.config.ts

bench: setup ## benchmarks -> bench/results/*.md with a machine index (root; ~15 min: fleet-observe starts 3 namespace hosts)
	bash bench/run-all.sh

mutation: ## mutation testing (StrykerJS, vitest runner) of the data rule and the brake -> bench/results/mutation.{md,json,html} (not in CI; ~10 min)
	npx stryker run
	node scripts/mutation-report.mjs bench/results/mutation.json > bench/results/mutation.md

gen-protocol: ## regenerate src/libvirt/generated/ from libvirt 9.0.0's sources (Debian source package, cached)
	npx tsx scripts/gen-protocol.ts

check-protocol: ## fail (exit 1) when src/libvirt/generated/ differs from what libvirt's sources generate; exit 2 when they cannot be fetched
	npx tsx scripts/gen-protocol.ts --check

vagrant-check: ## vagrant validate (libvirt + VirtualBox providers); PROVISION=1 also runs the VM's provisioning on this host
	PROVISION=$(PROVISION) bash scripts/vagrant-check.sh

clean-test: ## remove every vftest* libvirt object left by tests
	bash scripts/cleanup-test-objects.sh vftest
