#!/usr/bin/python3
"""Join a group chat as a real XMPP client, say one thing, print the answer.

Usage: xmpp_room_say.py HOST PORT JID PASSWORD ROOM NICK BOT_NICK TEXT [TIMEOUT_SECONDS]

Logs in without TLS (loopback demo server), joins ROOM as NICK, says TEXT,
prints both lines and exits 0 when BOT_NICK answers in the room, 1 on
timeout or error. Needs Debian's python3-slixmpp (run with /usr/bin/python3).
"""

import asyncio
import os
import sys

import slixmpp


def main():
    host, port, jid, password, room, nick, bot_nick, text = sys.argv[1:9]
    timeout = float(sys.argv[9]) if len(sys.argv) > 9 else 15.0
    client = slixmpp.ClientXMPP(jid, password)
    client["feature_mechanisms"].unencrypted_plain = True
    client.register_plugin("xep_0045")
    loop = asyncio.get_event_loop()

    def finish(code, line):
        print(line, flush=True)
        os._exit(code)

    async def on_start(_event):
        await client.get_roster()
        client.send_presence()
        await client.plugin["xep_0045"].join_muc_wait(room, nick, maxstanzas=0, timeout=timeout)
        print(f"{nick} in {room}: {text}", flush=True)
        client.send_message(mto=room, mbody=text, mtype="groupchat")
        loop.call_later(timeout, finish, 1, f"no answer from {bot_nick} within {timeout:.0f} s")

    def on_groupchat(message):
        if message["mucnick"] == bot_nick and message["body"]:
            finish(0, f"{bot_nick} in {room}: {message['body']}")

    client.add_event_handler("session_start", on_start)
    client.add_event_handler("groupchat_message", on_groupchat)
    client.add_event_handler("failed_auth", lambda _e: finish(1, "login refused"))
    client.add_event_handler("connection_failed", lambda e: finish(1, f"cannot connect: {e}"))
    client.connect((host, int(port)), force_starttls=False, disable_starttls=True)
    loop.run_forever()


if __name__ == "__main__":
    main()
