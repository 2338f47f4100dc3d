#!/usr/bin/env bash
# Tests the packages of scripts/dist.sh the way an operator uses them.
#
#   scripts/dist-test.sh quick   (`make test`, seconds) lints the packaging
#       scripts, packages the debug build as a .deb and a tarball, checks
#       their contents and verifies the packaged unit with systemd-analyze.
#   scripts/dist-test.sh         (`make dist-test`, after `make dist`) the
#       same checks on the real packages, then: the binary's glibc needs;
#       the .deb installed, checked, removed and purged in an older Debian
#       (debootstrap) against a real Prosody and an HTTPS bot signed by a
#       test CA in that system's trust store; the OCI image run under
#       podman against the same servers.
#
# One line per check, a tally at the end; exit 1 when any check failed.
set -euo pipefail
# shellcheck source=scripts/dist-common.sh
. "$(dirname "$0")/dist-common.sh"
cd "$ROOT"

MODE=${1:-full}
case "$MODE" in quick|full) ;; *) echo "usage: $0 [quick]" >&2; exit 2 ;; esac

# The older Debian the .deb is installed into: the oldest release Debian's
# own mirrors still serve (bullseye: glibc 2.31, systemd 247; older ones
# live only on archive mirrors this project cannot reach). Cached under
# target/ because debootstrap takes a minute and 240 MB.
OLD_SUITE=${DIST_TEST_SUITE:-bullseye}
OLD_MIRROR=${DIST_TEST_MIRROR:-http://deb.debian.org/debian}
OLD_BASE=$ROOT/target/dist-roots/$OLD_SUITE

PY=/usr/bin/python3
PASSED=0
FAILED=0
ok() { PASSED=$((PASSED + 1)); printf 'ok    %s\n' "$1"; }
bad() { FAILED=$((FAILED + 1)); printf 'FAIL  %s\n' "$1"; [ -z "${2:-}" ] || printf '%s\n' "$2" | sed 's/^/      /'; }
# check NAME COMMAND...: passes when the command succeeds; shows its output
# when it does not.
check() {
  local name=$1 output
  shift
  if output=$("$@" 2>&1); then ok "$name"; else bad "$name" "$output"; fi
}
# equal NAME EXPECTED ACTUAL
equal() {
  if [ "$2" = "$3" ]; then ok "$1"; else bad "$1" "expected: $2"$'\n'"actual:   $3"; fi
}
# contains NAME NEEDLE HAYSTACK
contains() {
  if [[ "$3" == *"$2"* ]]; then ok "$1"; else bad "$1" "no \"$2\" in:"$'\n'"$3"; fi
}
die() { printf 'dist-test: %s\n' "$*" >&2; exit 1; }

WORK=$(mktemp -d /tmp/xmpp-lambda-dist-test.XXXXXX)
PIDS=()
MOUNTS=()
CONTAINERS=()
cleanup() {
  local i
  for container in "${CONTAINERS[@]}"; do podman rm -f "$container" >/dev/null 2>&1 || true; done
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  for (( i=${#MOUNTS[@]}-1; i>=0; i-- )); do umount -R "${MOUNTS[i]}" 2>/dev/null || umount -R -l "${MOUNTS[i]}" || true; done
  # Never through a mount point that failed to unmount (/sys, /proc).
  rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT
# A command that stops the script outside a check says where.
trap 'echo "dist-test: stopped at line $LINENO: $BASH_COMMAND" >&2' ERR

# --- Checks that need no build: lint ---------------------------------------

lint() {
  check "shellcheck: dist scripts and maintainer scripts" \
    shellcheck -x scripts/dist.sh scripts/dist-common.sh scripts/dist-setup.sh \
    scripts/dist-test.sh packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm
  # Maintainer scripts run under /bin/sh, which is dash on Debian.
  local script
  for script in postinst prerm postrm; do
    check "maintainer script $script parses in dash and is executable" \
      sh -c "dash -n packaging/deb/$script && test -x packaging/deb/$script"
  done
}

# --- The .deb's and the tarball's contents ----------------------------------

# The lines of the packaged unit that differ from deploy/'s unit: the
# binary's path and the fixed user. Everything else (the hardening) is
# the same.
UNIT_DIFF='< # Identity: a transient user that owns nothing.
< DynamicUser=yes
< ExecStart=/usr/local/bin/xmpp-lambda-connector
> # Identity: the system user the package made (no home, no shell, owns
> # nothing).
> ExecStart=/usr/bin/xmpp-lambda-connector
> Group=xmpp-lambda
> User=xmpp-lambda'

# verify_unit NAME UNIT BINARY: systemd-analyze verify with ExecStart
# pointed at BINARY (verify wants the command to exist); any warning, an
# unknown key for one, fails the check.
verify_unit() {
  local name=$1 unit=$2 binary=$3 copy output
  copy="$WORK/verify/$(basename "$unit")"
  mkdir -p "$WORK/verify"
  sed "s|^ExecStart=[^ ]*|ExecStart=$binary|" "$unit" > "$copy"
  if output=$(systemd-analyze verify "$copy" 2>&1) && [ -z "$output" ]; then
    ok "$name"
  else
    bad "$name" "$output"
  fi
}

check_deb() {
  local deb=$1 x="$WORK/deb-x"
  rm -rf "$x"
  mkdir -p "$x"
  equal ".deb: package, version, architecture" \
    "$NAME $DEB_VERSION $DEB_ARCH" \
    "$(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version) $(dpkg-deb -f "$deb" Architecture)"
  equal ".deb: depends on the glibc it was linked for" "libc6 (>= $DIST_GLIBC), passwd" \
    "$(dpkg-deb -f "$deb" Depends)"
  # Every file with its mode and owner: what dpkg will create.
  equal ".deb: files, modes and owners" "\
drwxr-xr-x root/root ./etc/xmpp-lambda/
-rw------- root/root ./etc/xmpp-lambda/connector.env
-rwxr-xr-x root/root ./usr/bin/xmpp-lambda-connector
-rw-r--r-- root/root ./usr/lib/systemd/system/xmpp-lambda-connector.service
-rw-r--r-- root/root ./usr/share/doc/xmpp-lambda-connector/connector.env.example
-rw-r--r-- root/root ./usr/share/doc/xmpp-lambda-connector/copyright" \
    "$(dpkg-deb -c "$deb" | awk '$6 !~ /\/$/ || $6 == "./etc/xmpp-lambda/" {print $1, $2, $6}' | sort -k3)"
  dpkg-deb -R "$deb" "$x"
  equal ".deb: conffiles" "/etc/xmpp-lambda/connector.env" "$(cat "$x/DEBIAN/conffiles")"
  check ".deb: md5sums match the files" sh -c "cd '$x' && md5sum --quiet -c DEBIAN/md5sums"
  check ".deb: example config is deploy/connector.env.example" \
    cmp "$x/etc/xmpp-lambda/connector.env" deploy/connector.env.example
  local unit="$x/usr/lib/systemd/system/$NAME.service"
  equal ".deb: unit = deploy/'s unit with the package's path and user" "$UNIT_DIFF" \
    "$(diff <(sed -n '/^\[Unit\]$/,$p' "deploy/$NAME.service") <(sed -n '/^\[Unit\]$/,$p' "$unit") |
       grep '^[<>]' | sort || true)"
  verify_unit ".deb: systemd-analyze verify ($(systemd-analyze --version | sed -n 1p | cut -d' ' -f1,2)), no warning" \
    "$unit" "$x/usr/bin/$NAME"
  verify_unit "deploy/: systemd-analyze verify, no warning" "deploy/$NAME.service" "$x/usr/bin/$NAME"
  local help
  help=$("$x/usr/bin/$NAME" --help 2>&1 || true)
  contains ".deb: the packaged binary runs (--help)" "COMPONENT_JID" "$help"
}

check_tarball() {
  local top="$NAME-$VERSION-$DIST_ARCH-linux"
  equal "tarball: files" "\
$top/
$top/COPYRIGHT
$top/connector.env.example
$top/xmpp-lambda-connector
$top/xmpp-lambda-connector.service" "$(tar -tzf "$DIST_TARBALL")"
  check "tarball: its binary is the dist binary" \
    sh -c "tar -xzOf '$DIST_TARBALL' '$top/$NAME' | cmp - '$DIST_BINARY'"
}

# --- The portable binary ------------------------------------------------------

check_binary() {
  local info needed libs
  info=$(file -b "$DIST_BINARY")
  contains "binary: x86-64 ELF, dynamically linked to the system's glibc" \
    "ELF 64-bit LSB pie executable, x86-64" "$info"
  needed=$(glibc_needed "$DIST_BINARY")
  if version_le "$needed" "$DIST_GLIBC"; then
    ok "binary: newest glibc symbol version needed is $needed (promised: <= $DIST_GLIBC)"
  else
    bad "binary: needs GLIBC_$needed, newer than $DIST_GLIBC"
  fi
  # Only glibc's own libraries and libgcc_s (unwinding): every system has
  # them; nothing like libssl whose versions differ between distributions.
  libs=$(readelf -d "$DIST_BINARY" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
  if [ -n "$libs" ] && ! tr ' ' '\n' <<<"$libs" | grep -v '^$' |
      grep -vqxE 'libc\.so\.6|libm\.so\.6|libdl\.so\.2|libpthread\.so\.0|librt\.so\.1|libgcc_s\.so\.1|ld-linux-x86-64\.so\.2'; then
    ok "binary: needs only glibc's own libraries ($libs)"
  else
    bad "binary: needs libraries beyond glibc and libgcc_s" "$libs"
  fi
  local interp
  interp=$(readelf -l "$DIST_BINARY" | sed -n 's/.*Requesting program interpreter: \(.*\)\]/\1/p')
  equal "binary: the standard loader" "/lib64/ld-linux-x86-64.so.2" "$interp"
}

# --- Servers the installed packages are checked against -----------------------

free_port() {
  $PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# Polls until 127.0.0.1:$1 accepts TCP (at most 15 s); fails early when
# process $2 has died.
wait_port() {
  local port=$1 pid=$2
  for _ in $(seq 1 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

start_servers() {
  command -v prosody >/dev/null || die "prosody is not installed: run scripts/setup.sh"
  SECRET=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  COMPONENT_PORT=$(free_port)
  C2S_PORT=$(free_port)
  BOT_PORT=$(free_port)
  mkdir -p "$WORK/prosody/data" "$WORK/prosody/certs" "$WORK/tls"
  cat > "$WORK/prosody/prosody.cfg.lua" <<EOF
run_as_root = true
data_path = "$WORK/prosody/data"
pidfile = "$WORK/prosody/prosody.pid"
log = { { levels = { min = "info" }, to = "file", filename = "$WORK/prosody/prosody.log" } }
certificates = "$WORK/prosody/certs"
interfaces = { "127.0.0.1" }
c2s_ports = { $C2S_PORT }
c2s_direct_tls_ports = {}
component_ports = { $COMPONENT_PORT }
component_interface = "127.0.0.1"
modules_enabled = { "disco", "ping" }
modules_disabled = { "s2s" }
authentication = "internal_hashed"

VirtualHost "localhost"

Component "bot.localhost"
    component_secret = "$SECRET"
EOF
  prosody -F --config "$WORK/prosody/prosody.cfg.lua" >"$WORK/prosody/console.log" 2>&1 &
  PIDS+=($!)
  wait_port "$COMPONENT_PORT" "${PIDS[-1]}" ||
    die "Prosody did not start: $(tail -n 20 "$WORK/prosody/prosody.log" "$WORK/prosody/console.log" 2>&1)"

  # A test CA and a certificate for localhost, as tests/src/tls_front.rs
  # makes them: the bot is trusted only where this CA is.
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  (
    cd "$WORK/tls"
    openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days 2 -subj "/CN=xmpp-lambda dist-test CA"
    openssl req "${ec[@]}" -keyout bot.key -out bot.csr -subj "/CN=localhost"
    printf 'basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > bot.ext
    openssl x509 -req -in bot.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out bot.pem -days 2 -extfile bot.ext
  ) >"$WORK/tls/openssl.log" 2>&1 || die "openssl failed: $(cat "$WORK/tls/openssl.log")"
  # The reference echo bot (scripts/echo_bot.py) behind TLS.
  $PY - "$BOT_PORT" "$WORK/tls/bot.pem" "$WORK/tls/bot.key" >"$WORK/bot.log" 2>&1 <<'EOF' &
import ssl, sys
sys.path.insert(0, "scripts")
from http.server import ThreadingHTTPServer
from echo_bot import EchoBot

server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), EchoBot)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[2], sys.argv[3])
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
EOF
  PIDS+=($!)
  wait_port "$BOT_PORT" "${PIDS[-1]}" || die "the HTTPS bot did not start: $(cat "$WORK/bot.log")"
}

# The options an operator writes into connector.env: the component at
# Prosody by name (resolved by the system the connector runs on) and the
# bot at an https URL by name.
test_config() {
  cat <<EOF
COMPONENT_JID=bot.localhost
COMPONENT_SECRET=$SECRET
COMPONENT_SERVER=localhost:$COMPONENT_PORT
TRANSPORT=http
COMPONENT_POST_URL=https://localhost:$BOT_PORT/
COMPONENT_POST_TIMEOUT=10
EOF
}

# expect_check NAME OUTPUT: every check passed, among them the server (name
# resolution), the handshake and the bot (TLS trust).
expect_all_pass() {
  local name=$1 output=$2
  if [[ "$output" == *"pass  server"* && "$output" == *"pass  handshake"* &&
        "$output" == *"pass  bot"* && "$output" == *"check: all "*" checks passed"* ]]; then
    ok "$name"
    # What an operator sees: worth reading in the log.
    printf '%s\n' "$output" | sed 's/^/      /'
  else
    bad "$name" "$output"
  fi
}

# --- The .deb in an older Debian ----------------------------------------------

old_root() {
  if [ ! -f "$OLD_BASE/.complete" ]; then
    command -v debootstrap >/dev/null || die "debootstrap is missing: run scripts/dist-setup.sh"
    echo "dist-test: making a $OLD_SUITE root with debootstrap (once; cached in $OLD_BASE)"
    rm -rf "$OLD_BASE"
    mkdir -p "$(dirname "$OLD_BASE")"
    # ca-certificates: the system trust store the connector uses.
    # libnss-myhostname: an NSS module glibc does not build in, as on
    # Ubuntu, Fedora or any Debian with systemd's resolver modules; it
    # answers "localhost" here (the root has no /etc/hosts).
    # systemd: its systemd-analyze verifies the unit as systemd 247 sees it.
    debootstrap --variant=minbase --include=ca-certificates,libnss-myhostname,systemd \
      "$OLD_SUITE" "$OLD_BASE" "$OLD_MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
      die "debootstrap $OLD_SUITE failed: $(tail -n 20 "$WORK/debootstrap.log")"
    touch "$OLD_BASE/.complete"
  fi
  OLD="$WORK/root"
  # A fresh copy per run: what the package leaves behind is seen, and the
  # cache stays clean.
  cp -a "$OLD_BASE" "$OLD"
  mount -t proc proc "$OLD/proc"
  MOUNTS+=("$OLD/proc")
  # systemd-analyze needs the cgroup tree to start its manager.
  mount --rbind /sys "$OLD/sys"
  mount --make-rslave "$OLD/sys"
  MOUNTS+=("$OLD/sys")
}

in_old() { chroot "$OLD" "$@"; }

test_deb_in_old_root() {
  old_root
  local glibc
  glibc=$(in_old ldd --version | sed -n '1s/.* //p')
  contains "old root: Debian $OLD_SUITE, glibc $glibc, hosts via myhostname" "myhostname" \
    "$(grep '^hosts:' "$OLD/etc/nsswitch.conf")"
  cp "$DIST_DEB" "$OLD/tmp/"
  local deb
  deb="/tmp/$(basename "$DIST_DEB")"
  check "dpkg -i in $OLD_SUITE" in_old dpkg -i "$deb"
  local user
  user=$(in_old getent passwd "$DEB_USER" || true)
  local uid shell
  uid=$(cut -d: -f3 <<<"$user")
  shell=$(cut -d: -f7 <<<"$user")
  if [ -n "$user" ] && [ "$uid" -lt 1000 ] && [ "$shell" = /usr/sbin/nologin ]; then
    ok "postinst made the system user ($user)"
  else
    bad "postinst made the system user" "getent passwd $DEB_USER: $user"
  fi
  equal "installed config is root's, mode 0600" "600 root root" \
    "$(in_old stat -c '%a %U %G' /etc/xmpp-lambda/connector.env)"
  local output
  if output=$(in_old systemd-analyze verify "/usr/lib/systemd/system/$NAME.service" 2>&1) && [ -z "$output" ]; then
    ok "unit: systemd-analyze verify ($(in_old systemd-analyze --version | sed -n 1p | cut -d' ' -f1,2)), no warning"
  else
    bad "unit: systemd-analyze verify in $OLD_SUITE" "$output"
  fi

  # As the operator: edit the config, then check, as the unit's user.
  test_config > "$OLD/etc/xmpp-lambda/connector.env"
  local run_check="set -a; . /etc/xmpp-lambda/connector.env; set +a; exec setpriv --reuid=$DEB_USER --regid=$DEB_USER --clear-groups $NAME check"
  output=$(in_old sh -c "$run_check" 2>&1 || true)
  if [[ "$output" == *"pass  handshake"* && "$output" == *"FAIL  bot"* &&
        ( "$output" == *"UnknownIssuer"* || "$output" == *"nknown issuer"* ) ]]; then
    ok "check, test CA not trusted yet: handshake passes, bot fails on the unknown issuer"
  else
    bad "check, test CA not trusted yet: expected the bot to fail on the unknown issuer" "$output"
  fi
  # The system's trust store, as update-ca-certificates writes it.
  cat "$WORK/tls/ca.pem" >> "$OLD/etc/ssl/certs/ca-certificates.crt"
  output=$(in_old sh -c "$run_check" 2>&1 || true)
  expect_all_pass "check as $DEB_USER: localhost resolved by $OLD_SUITE's NSS, handshake with Prosody, HTTPS bot trusted through the system store" "$output"

  check "dpkg -r" in_old dpkg -r "$NAME"
  check "removed: binary and unit gone" \
    sh -c "! test -e '$OLD/usr/bin/$NAME' && ! test -e '$OLD/usr/lib/systemd/system/$NAME.service'"
  check "removed: the edited config and the user stay" \
    sh -c "grep -q '^COMPONENT_SECRET=$SECRET' '$OLD/etc/xmpp-lambda/connector.env' && chroot '$OLD' getent passwd $DEB_USER >/dev/null"
  check "dpkg -i again keeps the edited config" \
    sh -c "chroot '$OLD' dpkg -i '$deb' >/dev/null && grep -q '^COMPONENT_SECRET=$SECRET' '$OLD/etc/xmpp-lambda/connector.env'"
  check "dpkg -P" in_old dpkg -P "$NAME"
  check "purged: config folder, user and group gone" \
    sh -c "! test -e '$OLD/etc/xmpp-lambda' && ! chroot '$OLD' getent passwd $DEB_USER && ! chroot '$OLD' getent group $DEB_USER"
}

# --- The OCI image ------------------------------------------------------------

# Podman's defaults raise RLIMIT_NOFILE and RLIMIT_NPROC, which a host that
# caps them refuses ("setrlimit ... Operation not permitted"); keep them
# at what this shell has. crun refuses a host with cgroup v1 and v2
# controllers mounted together; runc runs there.
podman_run_flags() {
  local flags=(--ulimit "nofile=$(ulimit -Sn):$(ulimit -Sn)" --ulimit nproc=4096:4096)
  if command -v runc >/dev/null; then flags+=(--runtime runc); fi
  printf '%s\n' "${flags[@]}"
}

test_image() {
  command -v podman >/dev/null || die "podman is missing: run scripts/dist-setup.sh"
  [ -f "$DIST_OCI" ] || die "$DIST_OCI is missing: run make dist"
  # A second tool reads the archive as an OCI image.
  local inspected
  inspected=$(skopeo inspect --format '{{.Os}}/{{.Architecture}} {{index .Labels "org.opencontainers.image.version"}}' \
    "oci-archive:$DIST_OCI" 2>&1 || true)
  equal "image: skopeo reads the OCI archive" "linux/$OCI_ARCH $VERSION" "$inspected"
  # The archive, not the store: what an operator copies to another host.
  local loaded
  loaded=$(podman load --quiet --input "$DIST_OCI" 2>&1) || true
  contains "image: podman load of the OCI archive" "Loaded image" "$loaded"
  local image_id
  image_id=$(sed -n 's/^Loaded image[^:]*: *//p' <<<"$loaded" | tail -n 1)
  [ -n "$image_id" ] || image_id=$IMAGE
  equal "image: non-root user, the connector as entrypoint" \
    '65532:65532 [/usr/bin/xmpp-lambda-connector]' \
    "$(podman image inspect --format '{{.Config.User}} {{.Config.Entrypoint}}' "$image_id")"
  # Its files: no shell, no package manager; the CA bundle is there.
  local container files
  container=$(podman create "$image_id")
  CONTAINERS+=("$container")
  files=$(podman export "$container" | tar -t | sort)
  contains "image: carries the CA bundle" "etc/ssl/certs/ca-certificates.crt" "$files"
  if grep -qE '^(bin|usr/bin)/(sh|bash|dash)$' <<<"$files"; then
    bad "image: no shell" "$(grep -E 'bin/' <<<"$files")"
  else
    ok "image: no shell ($(grep -vc '/$' <<<"$files") files)"
  fi
  podman rm -f "$container" >/dev/null

  local flags envs output
  mapfile -t flags < <(podman_run_flags)
  mapfile -t envs < <(test_config | sed 's/^/--env=/')
  output=$(podman run --rm "${flags[@]}" --network host "${envs[@]}" "$image_id" check 2>&1 || true)
  if [[ "$output" == *"pass  handshake"* && "$output" == *"FAIL  bot"* &&
        ( "$output" == *"UnknownIssuer"* || "$output" == *"nknown issuer"* ) ]]; then
    ok "image: check with the image's own CA bundle: handshake passes, bot's test CA unknown"
  else
    bad "image: check with the image's own CA bundle" "$output"
  fi
  output=$(podman run --rm "${flags[@]}" --network host "${envs[@]}" \
    --volume "$WORK/tls/ca.pem:/etc/ssl/certs/ca-certificates.crt:ro,Z" "$image_id" check 2>&1 || true)
  expect_all_pass "image: check as uid 65532 with the test CA as the bundle: server, handshake, HTTPS bot" "$output"
}

# --- The aarch64 binary, under qemu-user ---------------------------------------

# `DIST_ARCH=aarch64 make dist` into the same folder makes one; this machine
# runs it through qemu-user with Debian's aarch64 C library (glibc 2.36),
# against the same Prosody and HTTPS bot, the bot's CA given as the trust
# store.
test_aarch64() {
  local bin=$DIST_DIR/$NAME-$VERSION-aarch64-linux-gnu
  if [ ! -f "$bin" ]; then
    echo "  skip  aarch64: no $bin (DIST_ARCH=aarch64 make dist makes one)"
    return
  fi
  local envs output
  mapfile -t envs < <(test_config)
  output=$(env "${envs[@]}" SSL_CERT_FILE="$WORK/tls/ca.pem" \
    qemu-aarch64-static -L /usr/aarch64-linux-gnu "$bin" check 2>&1 || true)
  expect_all_pass "aarch64: check under qemu-user: server, handshake, HTTPS bot" "$output"
}

# --- Run ------------------------------------------------------------------------

lint
if [ "$MODE" = quick ]; then
  # The debug build `make test` made, packaged fast: the packaging is under
  # test here, not the binary.
  debug_bin=${CARGO_TARGET_DIR:-$ROOT/target}/debug/$NAME
  [ -x "$debug_bin" ] || cargo build --quiet --bin "$NAME"
  export DIST_DIR="$WORK/dist"
  DIST_BINARY=$DIST_DIR/$(basename "$DIST_BINARY")
  DIST_TARBALL=$DIST_DIR/$(basename "$DIST_TARBALL")
  DIST_DEB=$DIST_DIR/$(basename "$DIST_DEB")
  if output=$(DIST_FAST=1 DIST_BIN=$debug_bin scripts/dist.sh tarball deb 2>&1); then
    ok "dist.sh packages the debug build (tarball, deb)"
    check_deb "$DIST_DEB"
    check_tarball
  else
    bad "dist.sh packages the debug build (tarball, deb)" "$output"
  fi
else
  for f in "$DIST_BINARY" "$DIST_TARBALL" "$DIST_DEB"; do
    [ -f "$f" ] || die "$f is missing: run make dist"
  done
  check_binary
  check_deb "$DIST_DEB"
  check_tarball
  start_servers
  test_deb_in_old_root
  test_image
  test_aarch64
fi

echo "dist-test $MODE: $PASSED checks passed, $FAILED failed"
if [ "$FAILED" -ne 0 ]; then exit 1; fi
