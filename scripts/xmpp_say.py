#!/usr/bin/python3
"""Send one chat message as a real XMPP client and print the reply.

Usage: xmpp_say.py HOST PORT JID PASSWORD TO TEXT [TIMEOUT_SECONDS]

Logs in without TLS (loopback demo server), sends TEXT to TO, prints both
lines of the exchange and exits 0 when TO answers, 1 on timeout or error.
Needs Debian's python3-slixmpp (run with /usr/bin/python3).
"""

import asyncio
import os
import sys

import slixmpp


def main():
    host, port, jid, password, to, text = sys.argv[1:7]
    timeout = float(sys.argv[7]) if len(sys.argv) > 7 else 15.0
    client = slixmpp.ClientXMPP(jid, password)
    client["feature_mechanisms"].unencrypted_plain = True
    loop = asyncio.get_event_loop()

    def finish(code, line):
        print(line, flush=True)
        os._exit(code)

    async def on_start(_event):
        await client.get_roster()
        client.send_presence()
        print(f"{jid} -> {to}: {text}", flush=True)
        client.send_message(mto=to, mbody=text, mtype="chat")
        loop.call_later(timeout, finish, 1, f"no reply from {to} within {timeout:.0f} s")

    def on_message(message):
        if message["from"].bare == to:
            kind = "error" if message["type"] == "error" else "reply"
            body = message["body"] or str(message["error"]["condition"])
            finish(0 if kind == "reply" else 1, f"{to} -> {jid}: {body}")

    client.add_event_handler("session_start", on_start)
    client.add_event_handler("message", on_message)
    client.add_event_handler("failed_auth", lambda _e: finish(1, "login refused"))
    client.add_event_handler("connection_failed", lambda e: finish(1, f"cannot connect: {e}"))
    client.connect((host, int(port)), force_starttls=False, disable_starttls=True)
    loop.run_forever()


if __name__ == "__main__":
    main()
