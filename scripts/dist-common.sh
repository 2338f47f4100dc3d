# Names and paths shared by scripts/dist.sh (builds the packages) and
# scripts/dist-test.sh (tests them), so both agree on what a package is
# called and where it is. Sourced, not run.
# shellcheck shell=bash disable=SC2034 # the variables are for the scripts that source it

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIST_DIR=${DIST_DIR:-$ROOT/dist}
# x86_64 is the one Rust target this project's machines have; aarch64 is
# the documented recipe (docs/src/install.md): `rustup target add
# aarch64-unknown-linux-gnu`, then `DIST_ARCH=aarch64 make dist`.
DIST_ARCH=${DIST_ARCH:-x86_64}
# The oldest glibc the binary may need. 2.17 (2012) is the oldest Rust's
# x86_64 and aarch64 gnu targets support: RHEL/CentOS 7, Debian 8,
# Ubuntu 14.04 and everything since.
DIST_GLIBC=${DIST_GLIBC:-2.17}

case "$DIST_ARCH" in
  x86_64) DEB_ARCH=amd64; OCI_ARCH=amd64 ;;
  aarch64) DEB_ARCH=arm64; OCI_ARCH=arm64 ;;
  *) echo "dist: DIST_ARCH must be x86_64 or aarch64, not $DIST_ARCH" >&2; exit 2 ;;
esac
RUST_TARGET=$DIST_ARCH-unknown-linux-gnu

# The connector's version, from its Cargo.toml (the workspace's).
VERSION=$(cargo metadata --no-deps --format-version 1 --manifest-path "$ROOT/Cargo.toml" |
  python3 -c 'import json, sys
print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "xmpp-lambda-connector"))')
# Debian revision 1: the first package of this upstream version.
DEB_VERSION=$VERSION-1

NAME=xmpp-lambda-connector
DIST_BINARY=$DIST_DIR/$NAME-$VERSION-$DIST_ARCH-linux-gnu
DIST_TARBALL=$DIST_DIR/$NAME-$VERSION-$DIST_ARCH-linux.tar.gz
DIST_DEB=$DIST_DIR/${NAME}_${DEB_VERSION}_$DEB_ARCH.deb
DIST_OCI=$DIST_DIR/$NAME-$VERSION-$OCI_ARCH.oci.tar
IMAGE=localhost/$NAME:$VERSION
# The system user the .deb creates and its unit runs as.
DEB_USER=xmpp-lambda

# Every file in a package gets the last commit's time, so the same commit
# gives the same package bytes (tar, dpkg-deb and podman honour it).
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)}
export SOURCE_DATE_EPOCH

# Highest GLIBC_x.y symbol version a dynamic ELF file asks for (its
# version needs; readelf reads an ELF file of any architecture).
glibc_needed() {
  readelf -V -W "$1" | grep -o 'Name: GLIBC_[0-9][0-9.]*' | sed 's/.*GLIBC_//' | sort -uV | tail -n 1
}

# Whether version $1 <= version $2.
version_le() {
  [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | sed -n 1p)" = "$1" ]
}
