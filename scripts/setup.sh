#!/usr/bin/env bash
# Installs everything the demo, the tests and the benchmarks need on a fresh
# Debian machine: the XMPP servers, the Python XMPP client and PHP from
# Debian, and the Python tools (moto's SQS server, cargo-lambda, zig, SAM)
# in .venv.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v prosody >/dev/null || need_apt+=(prosody)
command -v ejabberdctl >/dev/null || [ -x /usr/sbin/ejabberdctl ] || need_apt+=(ejabberd)
/usr/bin/python3 -c 'import slixmpp' 2>/dev/null || need_apt+=(python3-slixmpp)
/usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
# The reference PHP echo bot with its signature verifier (examples/verifiers).
command -v php >/dev/null || need_apt+=(php-cli)
# The test CA for the HTTPS bot tests (tests/src/tls_front.rs).
command -v openssl >/dev/null || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# Tests, demo and bench start their own servers on free loopback ports, so
# a Prosody or ejabberd already running on this machine is left alone.

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
# One pip call on a fresh clone, so the resolver picks versions that fit
# together (aws-sam-cli pins boto3 and cfn-lint ranges).
want=(moto[server] cargo-lambda ziglang aws-sam-cli aws-sam-translator cfn-lint)
missing=()
for pkg in "${want[@]}"; do
  name=${pkg%%[*}
  .venv/bin/python -m pip show -q "$name" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: pip install ${missing[*]}"
  .venv/bin/python -m pip install -q --disable-pip-version-check "${missing[@]}"
fi
echo "setup: ready"
