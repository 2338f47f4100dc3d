#!/usr/bin/env bash
# `make demo`: the product end to end on this machine, all on 127.0.0.1.
#
#   XMPP client ── Prosody ──XEP-0114── xmpp-lambda-connector ──HTTP── echo bot
#
# `make demo-sqs` (DEMO_TRANSPORT=sqs) runs the serverless path instead,
# with local stand-ins for AWS:
#
#   … connector ──▶ request queue (moto) ──▶ sqs trigger ──▶ function (cargo
#   lambda) ──HTTP── echo bot;  function ──▶ reply queue (moto) ──▶ connector
#
# Starts Prosody from a generated config in a temp folder, the reference
# echo bot (scripts/echo_bot.py), and the connector; registers a user, sends
# "hello" with a real XMPP client and prints the reply. Then it keeps
# running and says how to connect your own XMPP client. Ctrl-C stops
# everything it started (by PID) and removes the temp folder.
#
# Options (environment):
#   DEMO_TRANSPORT=sqs    the sqs path (moto, the function, the sqs trigger)
#   DEMO_ONCE=1           exit after the "hello" round trip (for CI)
#   DEMO_C2S_PORT=N       client port (default 5222 when free, else random)
#   CONNECTOR_BIN=PATH    use this connector binary instead of building one
#   BOOTSTRAP_BIN=PATH, SQS_TRIGGER_BIN=PATH   the same for the function and
#                         the sqs trigger (sqs path)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=/usr/bin/python3   # Debian's Python: it has python3-slixmpp

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
fail() { printf 'demo: %s\n' "$*" >&2; exit 1; }

command -v prosody >/dev/null || fail "prosody is not installed: run scripts/setup.sh"
$PY -c 'import slixmpp' 2>/dev/null || fail "python3-slixmpp is not installed: run scripts/setup.sh"

free_port() {
  $PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port_is_free() {
  $PY -c 'import socket, sys; s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}
# Polls (not a guess) until 127.0.0.1:$1 accepts TCP or $2 tenths of a
# second pass; fails early when process $3 has died.
wait_port() {
  local port=$1 tenths=$2 pid=$3
  for _ in $(seq 1 "$tenths"); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

TRANSPORT=${DEMO_TRANSPORT:-http}
case "$TRANSPORT" in
  http|sqs) ;;
  *) fail "DEMO_TRANSPORT must be http or sqs, not $TRANSPORT" ;;
esac
VENV="$ROOT/.venv/bin"
if [ "$TRANSPORT" = sqs ]; then
  [ -x "$VENV/moto_server" ] || fail "moto is not installed: run scripts/setup.sh"
  [ -x "$VENV/cargo-lambda" ] || fail "cargo-lambda is not installed: run scripts/setup.sh"
fi

if [ -z "${CONNECTOR_BIN:-}" ]; then
  say "Building the connector"
  cargo build --quiet --bin xmpp-lambda-connector
  CONNECTOR_BIN="$ROOT/target/debug/xmpp-lambda-connector"
fi
if [ "$TRANSPORT" = sqs ] && { [ -z "${BOOTSTRAP_BIN:-}" ] || [ -z "${SQS_TRIGGER_BIN:-}" ]; }; then
  say "Building the function and the sqs trigger"
  cargo build --quiet --bin bootstrap --bin xmpp-lambda-sqs-trigger
  BOOTSTRAP_BIN=${BOOTSTRAP_BIN:-$ROOT/target/debug/bootstrap}
  SQS_TRIGGER_BIN=${SQS_TRIGGER_BIN:-$ROOT/target/debug/xmpp-lambda-sqs-trigger}
fi

WORK=$(mktemp -d /tmp/xmpp-lambda-demo.XXXXXX)
PIDS=()
cleanup() {
  trap - INT TERM EXIT
  # Newest first: the connector lets its in-flight requests finish on SIGTERM.
  for (( i=${#PIDS[@]}-1; i>=0; i-- )); do
    kill -TERM "${PIDS[i]}" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo; say "Stopping"; exit 0' INT TERM

C2S_PORT=${DEMO_C2S_PORT:-5222}
port_is_free "$C2S_PORT" || C2S_PORT=$(free_port)
COMPONENT_PORT=$(free_port)
BOT_PORT=$(free_port)
API_PORT=8780
port_is_free "$API_PORT" || API_PORT=$(free_port)
SECRET=$($PY -c 'import secrets; print(secrets.token_hex(16))')
API_TOKEN=$($PY -c 'import secrets; print(secrets.token_hex(24))')
DOMAIN=localhost
COMPONENT=bot.localhost
BOT_JID="echo@$COMPONENT"
MUC="conference.$DOMAIN"
ROOM="demo@$MUC"
USER_JID="alice@$DOMAIN"
PASSWORD=alice-demo

# A self-signed certificate lets ordinary XMPP clients use STARTTLS; the
# demo's own client and plain-text logins work without it.
mkdir -p "$WORK/data" "$WORK/certs"
TLS_MODULE=""
if command -v openssl >/dev/null && openssl req -x509 -newkey rsa:2048 -nodes -days 2 \
    -subj "/CN=$DOMAIN" -keyout "$WORK/certs/$DOMAIN.key" -out "$WORK/certs/$DOMAIN.crt" \
    >/dev/null 2>&1; then
  TLS_MODULE='"tls", '
fi
cat > "$WORK/prosody.cfg.lua" <<EOF
run_as_root = true
data_path = "$WORK/data"
pidfile = "$WORK/prosody.pid"
log = { { levels = { min = "info" }, to = "file", filename = "$WORK/prosody.log" } }
certificates = "$WORK/certs"
interfaces = { "127.0.0.1" }
c2s_ports = { $C2S_PORT }
c2s_direct_tls_ports = {}
component_ports = { $COMPONENT_PORT }
component_interface = "127.0.0.1"
modules_enabled = { ${TLS_MODULE}"roster", "saslauth", "disco", "ping", "private", "time", "version", "offline" }
modules_disabled = { "s2s" }
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_hashed"

VirtualHost "$DOMAIN"

Component "$COMPONENT"
    component_secret = "$SECRET"

Component "$MUC" "muc"
EOF

say "Starting Prosody on 127.0.0.1:$C2S_PORT (component port $COMPONENT_PORT)"
prosody -F --config "$WORK/prosody.cfg.lua" >"$WORK/prosody.out" 2>&1 &
PIDS+=($!)
wait_port "$C2S_PORT" 100 "${PIDS[-1]}" || { tail -n 20 "$WORK/prosody.log" "$WORK/prosody.out" >&2 || true; fail "Prosody did not start"; }
prosodyctl --config "$WORK/prosody.cfg.lua" register alice "$DOMAIN" "$PASSWORD" >/dev/null

say "Starting the echo bot on http://127.0.0.1:$BOT_PORT/"
$PY scripts/echo_bot.py "$BOT_PORT" 2>"$WORK/bot.log" &
PIDS+=($!)
wait_port "$BOT_PORT" 50 "${PIDS[-1]}" || { cat "$WORK/bot.log" >&2; fail "the echo bot did not start"; }

if [ "$TRANSPORT" = sqs ]; then
  # AWS settings for every AWS client below: the SDK's own variables only.
  MOTO_PORT=$(free_port)
  export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT" AWS_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_EC2_METADATA_DISABLED=true
  say "Starting moto's SQS server on $AWS_ENDPOINT_URL"
  "$VENV/python" "$ROOT/scripts/moto_server.py" -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
  PIDS+=($!)
  wait_port "$MOTO_PORT" 100 "${PIDS[-1]}" || { cat "$WORK/moto.log" >&2; fail "moto did not start"; }
  # Queues as template.yaml makes them: FIFO, each with a dead-letter queue.
  read -r REQUEST_QUEUE_URL REPLY_QUEUE_URL < <("$VENV/python" - <<'PY'
import json
import os
import boto3
sqs = boto3.client("sqs", region_name=os.environ["AWS_REGION"])
def queue(name, **attributes):
    attributes["FifoQueue"] = "true"
    return sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
def redrive(dlq_url):
    arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "3"})
requests = queue("requests.fifo", VisibilityTimeout="30", RedrivePolicy=redrive(queue("requests-dlq.fifo")))
replies = queue("replies.fifo", VisibilityTimeout="30", RedrivePolicy=redrive(queue("replies-dlq.fifo")))
print(requests, replies)
PY
  ) || fail "cannot create the queues"
  export REQUEST_QUEUE_URL REPLY_QUEUE_URL

  LAMBDA_PORT=$(free_port)
  say "Starting the function (bootstrap) under cargo lambda on 127.0.0.1:$LAMBDA_PORT"
  (cd "$ROOT" && exec "$VENV/cargo-lambda" lambda watch --only-lambda-apis -A 127.0.0.1 -P "$LAMBDA_PORT") \
    >"$WORK/cargo-lambda.log" 2>&1 &
  PIDS+=($!)
  wait_port "$LAMBDA_PORT" 300 "${PIDS[-1]}" || { cat "$WORK/cargo-lambda.log" >&2; fail "cargo lambda watch did not start"; }
  AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$LAMBDA_PORT/.rt" AWS_LAMBDA_FUNCTION_NAME=_ \
  AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128 \
  BOT=proxy COMPONENT_POST_URL="http://127.0.0.1:$BOT_PORT/" RUST_LOG=${RUST_LOG:-info} \
    "$BOOTSTRAP_BIN" >"$WORK/function.log" 2>&1 &
  PIDS+=($!)

  say "Starting the sqs trigger (Lambda's event source mapping) on the request queue"
  RUST_LOG=${RUST_LOG:-info} "$SQS_TRIGGER_BIN" --queue-url "$REQUEST_QUEUE_URL" \
    --endpoint "http://127.0.0.1:$LAMBDA_PORT" --function _ >"$WORK/sqs-trigger.log" 2>&1 &
  PIDS+=($!)
fi

say "Starting the connector for $COMPONENT (transport $TRANSPORT)"
COMPONENT_JID=$COMPONENT \
COMPONENT_SECRET=$SECRET \
COMPONENT_SERVER="127.0.0.1:$COMPONENT_PORT" \
TRANSPORT=$TRANSPORT \
COMPONENT_POST_URL="http://127.0.0.1:$BOT_PORT/" \
COMPONENT_API_LISTEN="127.0.0.1:$API_PORT" \
COMPONENT_API_TOKEN="$API_TOKEN" \
COMPONENT_ROOMS="$ROOM" \
RUST_LOG=${RUST_LOG:-info} NO_COLOR=1 \
  "$CONNECTOR_BIN" >"$WORK/connector.log" 2>&1 &
CONNECTOR_PID=$!
PIDS+=("$CONNECTOR_PID")
linked=""
for _ in $(seq 1 200); do
  grep -q "component link established" "$WORK/connector.log" && { linked=1; break; }
  kill -0 "$CONNECTOR_PID" 2>/dev/null || break
  sleep 0.1
done
[ -n "$linked" ] || { cat "$WORK/connector.log" >&2; fail "the connector did not link to Prosody"; }

say "Saying hello as $USER_JID"
$PY scripts/xmpp_say.py 127.0.0.1 "$C2S_PORT" "$USER_JID" "$PASSWORD" "$BOT_JID" hello 15 \
  || { tail -n 30 "$WORK"/*.log >&2; fail "no reply from the bot"; }

# The bot is in a group chat too: it answers when its nick is mentioned.
for _ in $(seq 1 100); do
  grep -q "joined room" "$WORK/connector.log" && break
  sleep 0.1
done
say "Mentioning the bot in the group chat $ROOM"
$PY scripts/xmpp_room_say.py 127.0.0.1 "$C2S_PORT" "$USER_JID" "$PASSWORD" "$ROOM" alice bot "bot: hello room" 15 \
  || { tail -n 30 "$WORK"/*.log >&2; fail "no answer from the bot in the room"; }

# The bot speaks first: one push through the connector's API. Prosody keeps
# it (mod_offline) until alice is back online.
PUSH_BODY='{"to":"'"$USER_JID"'","body":"deploy finished"}'
PUSH_COMMAND="curl -sS -H 'Authorization: Bearer $API_TOKEN' -H 'Content-Type: application/json' -d '$PUSH_BODY' http://127.0.0.1:$API_PORT/v1/send"
say "Pushing \"deploy finished\" to $USER_JID through the connector's API"
echo "  $PUSH_COMMAND"
pushed=$(curl -sS -w ' %{http_code}' -H "Authorization: Bearer $API_TOKEN" -H 'Content-Type: application/json' \
  -d "$PUSH_BODY" "http://127.0.0.1:$API_PORT/v1/send") || fail "the push did not reach the connector"
case "$pushed" in
  *" 202") echo "  -> 202 Accepted ${pushed% 202}" ;;
  *) fail "the push was refused: $pushed" ;;
esac

if [ "${DEMO_ONCE:-}" = 1 ]; then
  say "Round trip done"
  exit 0
fi

if [ "$TRANSPORT" = sqs ]; then
  cat <<EOF

The sqs path: requests on $REQUEST_QUEUE_URL,
replies on $REPLY_QUEUE_URL (moto at $AWS_ENDPOINT_URL);
the function's and the sqs trigger's logs are in $WORK.
EOF
fi
cat <<EOF

The demo keeps running. Connect your own XMPP client:
  server    127.0.0.1   port $C2S_PORT
  user      $USER_JID
  password  $PASSWORD
  chat with $BOT_JID   (any name @$COMPONENT is the same bot)
  or join the room $ROOM and write "bot: hi" (the bot answers mentions)
  TLS       ${TLS_MODULE:+STARTTLS with a self-signed certificate; }plain-text login is allowed on this loopback-only server
Or from this shell:
  $PY scripts/xmpp_say.py 127.0.0.1 $C2S_PORT $USER_JID $PASSWORD $BOT_JID "how are you"
Push a message to $USER_JID (the bot speaks first; it waits offline until she logs in):
  $PUSH_COMMAND
Health and readiness: curl http://127.0.0.1:$API_PORT/healthz  and  /readyz

Connector log follows. Ctrl-C stops everything.
EOF
tail -n +1 -f --pid="$CONNECTOR_PID" "$WORK/connector.log" &
PIDS+=($!)
wait "$CONNECTOR_PID" || true
fail "the connector stopped; its log is above"
