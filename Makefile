# aegis-bench. The README's two commands are `make demo` and `make test`.
CARGO ?= cargo
export BPF_CLANG ?= clang-19
# bindgen (scx_cargo, for scx_aegis's shared header) needs libclang >= 18.
export LIBCLANG_PATH ?= /usr/lib/llvm-19/lib
BIN := target/release/aegis-bench

SCX_RUSTLAND_VERSION := 1.1.4

.PHONY: setup build tools demo test lint bench doctor clean figures paper ci-baseline

setup:
	bash scripts/setup.sh

build: setup
	$(CARGO) build --release --workspace

# sched_ext schedulers from crates.io, as binaries in tools/bin (never linked into ours).
# scx_rustland's crates need clang >= 18 for BPF and libclang for bindgen.
tools: tools/bin/scx_rustland

tools/bin/scx_rustland: | setup
	BPF_CLANG=clang-19 LIBCLANG_PATH=/usr/lib/llvm-19/lib RUST_BACKTRACE=0 \
		$(CARGO) install scx_rustland --version $(SCX_RUSTLAND_VERSION) --locked --root tools

# The built-in collector against an openat flood on this kernel's own scheduler, at three
# intensities whose loss differs visibly on a 2-core machine.
demo: build
	$(BIN) attack --flood openat --threads 1,4,8 --duration 3 --ring-size 64KiB \
		--json results/demo/trials.json --csv results/demo/trials.csv

# Everything CI checks: formatting, clippy, unit tests, and the end-to-end tests (root).
# End-to-end tests run one at a time: they load BPF, flood the CPUs and check that the
# machine is left as found. They include the guest tests (harness/tests/vm.rs, about a minute:
# six QEMU boots under TCG; the first run also downloads two Debian kernels, ~75 MB).
# A test that cannot run here is listed as skipped at the end (under CI=true, or with
# AEGIS_BENCH_NO_SKIPS as .ci/run sets, it fails instead).
test: setup tools lint
	$(CARGO) build --workspace --bins
	@rm -f target/tmp/skipped.txt
	$(CARGO) test --workspace -- --test-threads=1
	@if [ -s target/tmp/skipped.txt ]; then \
		echo "$$(wc -l < target/tmp/skipped.txt) test(s) SKIPPED (not passed: they did not run here):"; \
		sed 's/^/  /' target/tmp/skipped.txt; else echo "no test skipped"; fi

# Only the guest runner's tests: sched-ext and cfs guests, timeout, signals, offline cache.
.PHONY: vm-test
vm-test: setup tools
	$(CARGO) build --workspace --bins
	$(CARGO) test -p aegis-bench --test vm --test aegis -- --test-threads=1

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	@clang-format-19 --dry-run --Werror bpf/*.c bpf/*.h

# Figures and report.md from the checked-in results, without running anything.
figures: build
	$(BIN) figures --results results --out results/figures

# The checked-in result set, measured in sched_ext guests: the paper matrix and the Aegis
# ablations (about 45 minutes here); `--resume` continues either where it stopped.
paper: build tools
	$(BIN) run --matrix matrices/paper.toml --out results/paper/run --vm --resume --keep-going
	$(BIN) run --matrix matrices/ablations.toml --out results/ablations/run --vm --resume --keep-going

# The baseline CI gates against (matrices/ci.toml, in a guest), measured with the debug build
# that `make test` runs. Remeasure it when a change is meant to move the gated metrics, and
# commit it with the change.
ci-baseline: setup tools
	$(CARGO) build --workspace --bins
	rm -rf results/ci-baseline
	target/debug/aegis-bench run --matrix matrices/ci.toml --out results/ci-baseline --vm

bench: build
	$(CARGO) bench --workspace

doctor: build
	$(BIN) doctor

clean:
	$(CARGO) clean

# The result tables in README.md and docs/, regenerated from the result files they name.
.PHONY: report fuzz
# Every decoder of files other programs write, fed mutations of real files for FUZZ_SECONDS
# each (harness/tests/fuzz.rs); the record of the run goes to results/fuzz/fuzz.jsonl.
FUZZ_SECONDS ?= 600
FUZZ_THREADS ?= 1
fuzz: setup
	rm -f results/fuzz/fuzz.jsonl
	AEGIS_FUZZ_SECONDS=$(FUZZ_SECONDS) AEGIS_FUZZ_RECORD=$(CURDIR)/results/fuzz bash -o pipefail \
		-c "$(CARGO) test -p aegis-bench --test fuzz -- --test-threads=$(FUZZ_THREADS) 2>&1 | grep -v '^vm: '"

report: build
	$(BIN) report README.md docs/*.md
