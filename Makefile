# The two commands: `make demo` runs the product end to end on this machine,
# `make test` runs every check CI runs. Both install what they need.
SHELL := /bin/bash
export PATH := $(CURDIR)/.venv/bin:$(HOME)/.cargo/bin:$(PATH)
export AWS_EC2_METADATA_DISABLED := true
# CI builds once from scratch: incremental compilation would only cost.
ifdef CI
export CARGO_INCREMENTAL := 0
endif

.PHONY: setup test lint unit demo demo-sqs bench soak profile dist dist-test fuzz fuzz-capture docs

setup:
	@scripts/setup.sh

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p xmpp-lambda-shared --no-default-features --all-targets -- -D warnings

# The end-to-end tests run the workspace binaries (connector, bootstrap,
# sqs trigger) and the function's example bots from target/debug; a test
# build alone does not build the binaries of other packages, so build them
# first and never test stale ones.
test: setup lint
	scripts/check_links.py --self-test && scripts/check_links.py
	scripts/check_imports.py --self-test && \
	  scripts/check_imports.py shared/src component/src connector/src function/src
	cargo build --workspace --bins --examples
	@if cargo nextest --version >/dev/null 2>&1; then \
	  cargo nextest run --workspace --no-fail-fast; \
	else \
	  cargo test --workspace --no-fail-fast; \
	fi
	# The fuzz targets' short pass ran above, as the fuzz crate's tests: the
	# committed corpus and mutated server traffic, without libFuzzer.
	# nextest runs no doctests (the component crate's example, the Bot
	# API's); over the whole workspace they reuse the build above.
	cargo test --workspace --doc
	scripts/validate-template.sh
	scripts/dist-setup.sh quick && scripts/dist-test.sh quick

demo: setup
	@scripts/demo.sh

# The same demo through the sqs transport: moto's SQS server, the function
# under cargo lambda and the local sqs trigger stand in for AWS.
demo-sqs: setup
	@DEMO_TRANSPORT=sqs scripts/demo.sh

bench: setup
	@scripts/bench.sh

# The connector's instructions per message under callgrind (valgrind):
# what the book's benchmarks page (docs/src/benchmarks.md) quotes, independent
# of machine load.
profile: setup
	@scripts/profile.sh

# Thousands of messages through real servers while Prosody restarts and the
# connector is killed; prints a table (scripts/soak.sh). `make test` runs a
# short version.
soak: setup
	@scripts/soak.sh

# What an operator installs (docs/src/install.md), in dist/: the portable
# binary (glibc >= 2.17, linked with zig), a tarball, a .deb and an OCI
# image. A release build with fat LTO: about 5.5 minutes of CPU.
dist: setup
	@scripts/dist-setup.sh
	@scripts/dist.sh

# Each package used as an operator would against a real Prosody: the .deb
# installed, checked and purged in an older Debian (debootstrap), the
# image run under podman. `make test` runs the quick part
# (scripts/dist-test.sh quick).
dist-test: dist
	@scripts/dist-test.sh

# Coverage-guided fuzzing (libFuzzer through cargo-fuzz, on the stable
# toolchain) of the stanza reader, the HTTP answer reader, the reply rules
# and the API: FUZZ_SECONDS in all (default 600), then executions per
# target (scripts/fuzz.sh). Installs cargo-fuzz itself.
fuzz:
	@scripts/fuzz.sh

# Records what Prosody and ejabberd send on a component stream into
# fuzz/captures/, the real traffic the stream target starts from.
fuzz-capture: setup
	cargo run -p xmpp-lambda-fuzz --example capture

# The book (docs/, mdBook) into target/book. Installs mdBook into .tools/
# on first use (a few minutes of CPU, once); fails on any mdBook error or a
# broken relative link or anchor.
MDBOOK_VERSION := 0.5.4
MDBOOK := $(CURDIR)/.tools/bin/mdbook
docs:
	@scripts/check_links.py
	@if ! "$(MDBOOK)" --version 2>/dev/null | grep -qx 'mdbook v$(MDBOOK_VERSION)'; then \
	  echo "docs: cargo install mdbook $(MDBOOK_VERSION) into .tools/"; \
	  cargo install --locked --quiet --root .tools --version $(MDBOOK_VERSION) \
	    --no-default-features --features search mdbook; \
	fi
	"$(MDBOOK)" build docs
	@echo "docs: open target/book/index.html"
