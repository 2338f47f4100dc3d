#!/usr/bin/env bash
# Builds what an operator installs (docs/src/install.md), into dist/:
#   xmpp-lambda-connector-V-x86_64-linux-gnu     the portable binary
#   xmpp-lambda-connector-V-x86_64-linux.tar.gz  binary, systemd unit, example config
#   xmpp-lambda-connector_V-1_amd64.deb          Debian/Ubuntu package
#   xmpp-lambda-connector-V-amd64.oci.tar        OCI image archive (also tagged
#                                                localhost/xmpp-lambda-connector:V
#                                                in podman's store)
#   SHA256SUMS
#
# Usage: scripts/dist.sh [binary|tarball|deb|image]...   (none: all four;
#        no image for another architecture than this machine's)
#   DIST_BIN=FILE  package FILE (stripped) instead of building the portable
#                  binary (the quick test packages the debug build)
#   DIST_FAST=1    compress fast, not small (for tests)
#   DIST_ARCH=aarch64, DIST_GLIBC, DIST_DIR: see scripts/dist-common.sh
#
# Why zig and not a static binary: a glibc binary linked with crt-static
# aborts in getaddrinfo on any system whose /etc/nsswitch.conf names a
# module glibc does not build in (myhostname, resolve, mdns4_minimal:
# Ubuntu, Fedora, Debian with systemd's libnss-myhostname), because it
# dlopens that system's module built for another glibc. Linking against
# glibc 2.17's symbols with zig keeps the system's own resolver and runs on
# every distribution since 2014. docs/src/install.md has the measurements.
set -euo pipefail
# shellcheck source=scripts/dist-common.sh
. "$(dirname "$0")/dist-common.sh"
cd "$ROOT"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
fail() { printf 'dist: %s\n' "$*" >&2; exit 1; }

steps=("$@")
if [ ${#steps[@]} -eq 0 ]; then
  steps=(binary tarball deb image)
  # The image takes this machine's C library: only for its own architecture.
  [ "$DIST_ARCH" = "$(uname -m)" ] || steps=(binary tarball deb)
fi
for step in "${steps[@]}"; do
  case "$step" in
    binary|tarball|deb|image) ;;
    *) fail "unknown step $step (binary, tarball, deb, image)" ;;
  esac
done
wants() { [[ " ${steps[*]} " == *" $1 "* ]]; }

mkdir -p "$DIST_DIR"
STAGE="$DIST_DIR/.stage"
rm -rf "$STAGE"
mkdir -p "$STAGE"

# Every later step packages this file.
BIN=$DIST_BINARY

if [ "${DIST_FAST:-0}" = 1 ]; then
  GZIP_LEVEL=-1; DEB_COMPRESSION=(-Zgzip -z1)
else
  GZIP_LEVEL=-9; DEB_COMPRESSION=(-Zxz)
fi

build_binary() {
  if [ -n "${DIST_BIN:-}" ]; then
    [ -x "$DIST_BIN" ] || fail "DIST_BIN=$DIST_BIN is not an executable"
    say "Packaging $DIST_BIN (not built here), stripped"
    strip -o "$BIN" "$DIST_BIN"
    chmod 0755 "$BIN"
    return
  fi
  command -v cargo-zigbuild >/dev/null || fail "cargo-zigbuild is missing: run scripts/dist-setup.sh"
  rustup target list --installed 2>/dev/null | grep -qx "$RUST_TARGET" ||
    fail "the Rust target $RUST_TARGET is not installed (rustup target add $RUST_TARGET)"
  say "Building the connector for $RUST_TARGET, glibc >= $DIST_GLIBC (release, fat LTO: minutes)"
  # A profile of its own: the same settings as release, but its own folder
  # under target/, so this build and `cargo lambda build --release` (same
  # target triple, other linker) never rebuild each other's dependencies.
  # Without SOURCE_DATE_EPOCH: the cc crate rebuilds C code (aws-lc)
  # whenever it changes, which would be at every commit.
  env -u SOURCE_DATE_EPOCH cargo zigbuild --locked -p "$NAME" --bin "$NAME" \
    --target "$RUST_TARGET.$DIST_GLIBC" \
    --config 'profile.dist.inherits="release"' --profile dist
  install -m 0755 "target/$RUST_TARGET/dist/$NAME" "$BIN"
  local needed
  needed=$(glibc_needed "$BIN")
  version_le "$needed" "$DIST_GLIBC" ||
    fail "$BIN needs GLIBC_$needed, newer than the promised $DIST_GLIBC"
  say "$(basename "$BIN"): needs glibc $needed at most, $(du -h "$BIN" | cut -f1)"
}

# The unit the package installs: deploy/'s unit (the hardening reviewed
# there) with the package's binary path and its fixed system user instead
# of a dynamic one. Each substitution must match exactly once, so a change
# to deploy/'s unit that breaks this fails here, not on an operator's host.
packaged_unit() {
  local source=deploy/$NAME.service
  local count
  for pattern in "^ExecStart=/usr/local/bin/$NAME\$" '^DynamicUser=yes$' '^# Identity: a transient user that owns nothing\.$' '^\[Unit\]$'; do
    count=$(grep -c "$pattern" "$source" || true)
    [ "$count" = 1 ] || fail "$source: expected one line matching $pattern, found $count"
  done
  cat <<EOF
# systemd unit for the xmpp-lambda connector, from the package
# $NAME. Configure, check, then start:
#   editor /etc/xmpp-lambda/connector.env
#   sh -c 'set -a; . /etc/xmpp-lambda/connector.env; exec $NAME check'
#   systemctl enable --now $NAME
#   journalctl -u $NAME -f
# Local changes: \`systemctl edit $NAME\` (a drop-in survives upgrades).
# The connector keeps no state on disk: replies waiting in SQS survive a
# restart, so the unit runs with a read-only system.

EOF
  # From [Unit] on: deploy/'s header is its own install notes.
  sed -n '/^\[Unit\]$/,$p' "$source" |
    sed -e "s|^ExecStart=/usr/local/bin/$NAME\$|ExecStart=/usr/bin/$NAME|" \
        -e 's|^# Identity: a transient user that owns nothing\.$|# Identity: the system user the package made (no home, no shell, owns\n# nothing).|' \
        -e "s|^DynamicUser=yes\$|User=$DEB_USER\nGroup=$DEB_USER|"
}

build_tarball() {
  say "Tarball $(basename "$DIST_TARBALL")"
  local top="$NAME-$VERSION-$DIST_ARCH-linux"
  local dir="$STAGE/tarball/$top"
  mkdir -p "$dir"
  install -m 0755 "$BIN" "$dir/$NAME"
  install -m 0644 "deploy/$NAME.service" "$dir/$NAME.service"
  install -m 0644 deploy/connector.env.example "$dir/connector.env.example"
  install -m 0644 packaging/deb/copyright "$dir/COPYRIGHT"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
    -C "$STAGE/tarball" -cf - "$top" | gzip -n "$GZIP_LEVEL" > "$DIST_TARBALL"
}

build_deb() {
  say "Debian package $(basename "$DIST_DEB")"
  local root="$STAGE/deb"
  local doc="$root/usr/share/doc/$NAME"
  mkdir -p "$root/DEBIAN"
  install -D -m 0755 "$BIN" "$root/usr/bin/$NAME"
  # /usr/lib/systemd/system: systemd's search path on every release, and
  # the place Debian packages use since the /usr merge.
  mkdir -p "$root/usr/lib/systemd/system"
  packaged_unit > "$root/usr/lib/systemd/system/$NAME.service"
  chmod 0644 "$root/usr/lib/systemd/system/$NAME.service"
  # The example configuration as a conffile: dpkg keeps the admin's edits
  # on upgrade. Mode 0600: it holds the component secret.
  install -D -m 0600 deploy/connector.env.example "$root/etc/xmpp-lambda/connector.env"
  install -D -m 0644 packaging/deb/copyright "$doc/copyright"
  install -m 0644 deploy/connector.env.example "$doc/connector.env.example"
  install -m 0644 packaging/deb/conffiles "$root/DEBIAN/conffiles"
  for script in postinst prerm postrm; do
    install -m 0755 "packaging/deb/$script" "$root/DEBIAN/$script"
  done
  local size
  size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
  # libc6: the oldest glibc the binary was linked for (DIST_GLIBC).
  sed -e "s/@VERSION@/$DEB_VERSION/" -e "s/@ARCH@/$DEB_ARCH/" -e "s/@INSTALLED_SIZE@/$size/" \
    -e "s/@GLIBC@/$DIST_GLIBC/" \
    packaging/deb/control.in > "$root/DEBIAN/control"
  # dpkg tracks conffiles by their own sums: md5sums lists the rest.
  (cd "$root" && find . \( -path ./DEBIAN -o -path ./etc \) -prune -o -type f -printf '%P\0' |
    sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
  chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"
  find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  # Files belong to root in the package whoever builds it.
  dpkg-deb --root-owner-group "${DEB_COMPRESSION[@]}" --build "$root" "$DIST_DEB" >/dev/null
}

build_image() {
  say "OCI image $IMAGE"
  command -v podman >/dev/null || fail "podman is missing: run scripts/dist-setup.sh"
  [ "$DIST_ARCH" = "$(uname -m)" ] ||
    fail "the image takes the C library of this machine: build it on a $DIST_ARCH host"
  local context="$STAGE/image"
  local rootfs="$context/rootfs"
  mkdir -p "$rootfs/usr/bin" "$rootfs/etc/ssl/certs"
  install -m 0755 "$BIN" "$rootfs/usr/bin/$NAME"
  # The loader and each library the binary needs, at the path where this
  # machine's loader finds it (Debian's multiarch folders, in the loader's
  # built-in search path), with the license notice of the package that
  # ships it.
  local lib real owner
  while read -r lib; do
    real=$(readlink -f "$lib")
    install -D -m 0755 "$real" "$rootfs$lib"
    # dpkg knows a file by the path its package ships it at: /lib/... on
    # a merged /usr, where readlink -f says /usr/lib/...
    owner=$( { dpkg-query -S "$lib" 2>/dev/null || dpkg-query -S "$real" 2>/dev/null; } |
      sed -n 1p | cut -d: -f1 || true)
    if [ -n "$owner" ] && [ -f "/usr/share/doc/$owner/copyright" ]; then
      install -D -m 0644 "/usr/share/doc/$owner/copyright" "$rootfs/usr/share/doc/$owner/copyright"
    fi
  done < <(ldd "$BIN" | grep -o '/[^ ]*' | sort -u)
  [ -f /etc/ssl/certs/ca-certificates.crt ] ||
    fail "/etc/ssl/certs/ca-certificates.crt is missing: apt-get install ca-certificates"
  install -m 0644 /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  install -D -m 0644 /usr/share/doc/ca-certificates/copyright \
    "$rootfs/usr/share/doc/ca-certificates/copyright"
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' > "$rootfs/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nonroot:x:65532:' > "$rootfs/etc/group"
  # Only the resolvers glibc has built in: a lookup never loads a module.
  printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' > "$rootfs/etc/nsswitch.conf"
  chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group" "$rootfs/etc/nsswitch.conf"
  find "$rootfs" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  podman build --quiet --file Containerfile --build-arg "VERSION=$VERSION" \
    --timestamp "$SOURCE_DATE_EPOCH" --tag "$IMAGE" "$context" >/dev/null
  rm -f "$DIST_OCI"
  podman save --quiet --format oci-archive --output "$DIST_OCI" "$IMAGE"
}

if wants binary || [ ! -x "$BIN" ] || [ -n "${DIST_BIN:-}" ]; then
  build_binary
fi
outputs=("$BIN")
if wants tarball; then build_tarball; outputs+=("$DIST_TARBALL"); fi
if wants deb; then build_deb; outputs+=("$DIST_DEB"); fi
if wants image; then build_image; outputs+=("$DIST_OCI"); fi
rm -rf "$STAGE"

# Checksums of what this run made, for a release page.
names=()
for output in "${outputs[@]}"; do names+=("$(basename "$output")"); done
(cd "$DIST_DIR" && sha256sum -- "${names[@]}" > SHA256SUMS && ls -l -- "${names[@]}")
