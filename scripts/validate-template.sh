#!/usr/bin/env bash
# Offline checks of template.yaml, the starter's template (starter/), and the
# connector's systemd unit, run by `make test`; needs no AWS account.
#  1. the SAM transform, then cfn-lint on the CloudFormation it expands to
#     (cfn-lint or `sam validate` alone miss most errors inside
#     AWS::Serverless::* resources), the derived timeouts for every allowed
#     bot timeout, the product's guardrails (scripts/lint_template.py), each
#     samconfig.toml's parameter overrides, and that the starter's template
#     is the main one for a bot of its own;
#  2. a self-test: broken copies of the templates must each be rejected;
#  3. `sam validate --lint` of the main template, and `systemd-analyze
#     verify` of the unit;
#  4. `sam build` of both templates for x86_64, the architecture they name
#     (this machine cannot build arm64), checking that each artifact is an
#     x86-64 `bootstrap`.
# --no-build skips step 4 (a release build: minutes the first time).
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    *) echo "usage: $0 [--no-build]" >&2; exit 2 ;;
  esac
done

# Tools from scripts/setup.sh: sam, cfn-lint, cargo-lambda and zig in .venv.
export PATH="$PWD/.venv/bin:$HOME/.cargo/bin:$PATH"
export SAM_CLI_TELEMETRY=0 AWS_EC2_METADATA_DISABLED=true
# Any region: nothing is called, but the SAM CLI insists on one.
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1

work=.tmp/validate-template
mkdir -p "$work"

echo "validate-template: SAM transform + cfn-lint + guardrails"
python scripts/lint_template.py template.yaml --expanded "$work/expanded.json" \
  --samconfig samconfig.toml --starter starter/template.yaml
python scripts/lint_template.py starter/template.yaml --samconfig starter/samconfig.toml

echo "validate-template: self-test (broken templates must be rejected)"
python scripts/lint_template.py template.yaml --self-test --starter starter/template.yaml

echo "validate-template: sam validate --lint"
# The starter's template is linted the stricter way above only: this step
# costs seconds and would add nothing.
sam validate --lint --template template.yaml

# The connector's systemd unit, with its binary and env file pointed at
# files that exist here (verify checks that they do).
if command -v systemd-analyze >/dev/null; then
  echo "validate-template: systemd-analyze verify deploy/xmpp-lambda-connector.service"
  unit_dir="$work/unit"
  rm -rf "$unit_dir" && mkdir -p "$unit_dir"
  : > "$unit_dir/connector.env"
  sed -e "s#^ExecStart=.*#ExecStart=/bin/true#" \
    -e "s#^EnvironmentFile=.*#EnvironmentFile=$PWD/$unit_dir/connector.env#" \
    deploy/xmpp-lambda-connector.service > "$unit_dir/xmpp-lambda-connector.service"
  # verify prints problems but exits 0 for some of them: any output fails.
  verify_out=$(systemd-analyze verify "$unit_dir/xmpp-lambda-connector.service" 2>&1) || {
    echo "$verify_out" >&2; exit 1; }
  if [ -n "$verify_out" ]; then echo "$verify_out" >&2; exit 1; fi
fi

if [ "$build" -eq 0 ]; then
  echo "validate-template: ok (sam build skipped)"
  exit 0
fi

# Both functions in one release build first, the way sam build compiles
# each (same flags, and the same features: naming the two packages keeps
# the rest of the workspace's out), so their link steps share the
# machine's cores; each `sam build` then finds its binary up to date.
# What is checked is that the templates build and what they build; the
# release profile's fat LTO and single codegen unit make the binaries a
# deploy ships small and fast and would only add minutes here
# (VALIDATE_RELEASE=1 keeps them).
if [ "${VALIDATE_RELEASE:-0}" != 1 ]; then
  export CARGO_PROFILE_RELEASE_LTO=false
  export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=256
  export CARGO_PROFILE_RELEASE_OPT_LEVEL=0
fi
echo "validate-template: cargo lambda build (bootstrap and the starter, x86_64)"
cargo lambda build --release --x86-64 -p xmpp-lambda-function -p my-xmpp-bot \
  --bin bootstrap --bin my-xmpp-bot

# sam_build TEMPLATE NAME: builds TEMPLATE into $work/NAME and checks that
# the function's artifact is an x86-64 bootstrap the built template uses.
sam_build() {
  local template=$1 name=$2
  local build_dir="$work/$name"
  echo "validate-template: sam build $template (x86_64)"
  rm -rf "$build_dir"
  sam build --template "$template" --build-dir "$build_dir"
  local artifact="$build_dir/BotFunction/bootstrap"
  if [ ! -x "$artifact" ]; then
    echo "validate-template: sam build left no executable $artifact" >&2
    exit 1
  fi
  # ELF e_machine (2 bytes, little-endian, at offset 18): 0x3e is x86-64.
  local machine
  machine=$(od -An -tx1 -j18 -N2 "$artifact" | tr -d ' \n')
  if [ "$machine" != "3e00" ]; then
    echo "validate-template: $artifact is not an x86-64 ELF (e_machine $machine)" >&2
    exit 1
  fi
  if ! grep -q "CodeUri: BotFunction" "$build_dir/template.yaml"; then
    echo "validate-template: the built $template does not point at the built function" >&2
    exit 1
  fi
  echo "validate-template: ok ($artifact, $(du -k "$artifact" | cut -f1) KiB)"
}
sam_build template.yaml sam-build
sam_build starter/template.yaml sam-build-starter
