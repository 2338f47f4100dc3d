#!/usr/bin/env bash
# Installs what `make dist` and `make dist-test` need beyond scripts/setup.sh.
# Safe to run again: it only installs what is missing.
#   scripts/dist-setup.sh quick   only what `make test`'s package check needs
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# Lints the packages' shell scripts (quick check and dist-test).
command -v shellcheck >/dev/null || need_apt+=(shellcheck)
# systemd-analyze verifies the packaged unit; Debian's `systemd` has it.
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
if [ "${1:-}" != quick ]; then
  # The image: podman builds and runs it without a daemon; runc runs it
  # where crun cannot (a host with cgroup v1 and v2 mounted at once).
  command -v podman >/dev/null || need_apt+=(podman)
  command -v runc >/dev/null || need_apt+=(runc)
  # dist-test reads the image archive with a second tool.
  command -v skopeo >/dev/null || need_apt+=(skopeo)
  # dist-test installs the .deb into an older Debian made by debootstrap.
  command -v debootstrap >/dev/null || need_apt+=(debootstrap)
  # The image's trust store comes from the build machine's.
  [ -f /etc/ssl/certs/ca-certificates.crt ] || need_apt+=(ca-certificates)
  command -v readelf >/dev/null || need_apt+=(binutils)
  # An aarch64 binary, when `DIST_ARCH=aarch64 make dist` made one, runs
  # under qemu-user with Debian's aarch64 C library for cross builds.
  command -v qemu-aarch64-static >/dev/null || need_apt+=(qemu-user-static)
  [ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || need_apt+=(libc6-arm64-cross)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "dist-setup: apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ "${1:-}" != quick ]; then
  # Links the binary against an old glibc with zig (PyPI's ziglang, which
  # scripts/setup.sh installs for cargo-lambda).
  [ -x .venv/bin/python ] || scripts/setup.sh
  if ! .venv/bin/python -m pip show -q cargo-zigbuild >/dev/null 2>&1; then
    echo "dist-setup: pip install cargo-zigbuild"
    .venv/bin/python -m pip install -q --disable-pip-version-check cargo-zigbuild
  fi
fi
