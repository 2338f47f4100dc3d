#!/usr/bin/python3
"""A person chatting with a bot through slixmpp's own chat-state, receipt
and marker plugins (XEP-0085, XEP-0184, XEP-0333), as an IM client does:
for each message, composing while it is typed, paused, composing again,
then the message itself (with <active/>, a receipt request and <markable/>),
and a displayed marker for each markable message it gets back.

    chatty_client.py --host H --port P --jid J --password PW --to BOT --messages N

Prints one JSON line at the end: {"sent": stanzas sent, "messages": N,
"replies": messages with a body received}. Run with Debian's
/usr/bin/python3 (python3-slixmpp).
"""

import argparse
import asyncio
import json
import logging
import os
import sys

import slixmpp

# How long a typed message takes: the chat states go out meanwhile.
TYPING = 0.05
REPLY_TIMEOUT = 10.0


class Chatty(slixmpp.ClientXMPP):
    def __init__(self, jid, password, to, count):
        super().__init__(jid, password)
        self["feature_mechanisms"].unencrypted_plain = True
        self.register_plugin("xep_0085")  # chat states
        self.register_plugin("xep_0184")  # receipts: asked for, and sent back
        self.register_plugin("xep_0333")  # chat markers
        self["xep_0184"].auto_request = True
        self["xep_0184"].auto_ack = True
        self.to = to
        self.count = count
        self.sent = 0
        self.replies = 0
        self.reply = asyncio.Event()
        self.add_event_handler("session_start", self.on_session_start)
        self.add_event_handler("message", self.on_message)
        self.add_filter("out", self.count_out)
        self.auto_reconnect = False

    def count_out(self, stanza):
        if stanza.xml.tag.rsplit("}", 1)[-1] == "message":
            self.sent += 1
        return stanza

    def chat_state(self, state):
        message = self.make_message(mto=self.to, mtype="chat")
        message["chat_state"] = state
        message.send()

    async def on_session_start(self, _event):
        self.send_presence()
        await self.get_roster()
        for n in range(self.count):
            self.chat_state("composing")
            await asyncio.sleep(TYPING)
            self.chat_state("paused")
            await asyncio.sleep(TYPING)
            self.chat_state("composing")
            await asyncio.sleep(TYPING)
            message = self.make_message(mto=self.to, mbody=f"message {n}", mtype="chat")
            message["chat_state"] = "active"
            message["markable"] = True
            self.reply.clear()
            message.send()
            await asyncio.wait_for(self.reply.wait(), REPLY_TIMEOUT)
        sys.stdout.write(
            json.dumps({"sent": self.sent, "messages": self.count, "replies": self.replies}) + "\n"
        )
        sys.stdout.flush()
        os._exit(0)

    def on_message(self, message):
        if message["body"]:
            self.replies += 1
            # Asking the plugin's interface would add the element: look.
            markable = message.xml.find("{urn:xmpp:chat-markers:0}markable")
            if markable is not None:
                self["xep_0333"].send_marker(message["from"], message["id"], "displayed")
            self.reply.set()


def main():
    logging.basicConfig(level=logging.ERROR)
    parser = argparse.ArgumentParser()
    for name in ("host", "jid", "password", "to"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--messages", type=int, default=5)
    args = parser.parse_args()
    client = Chatty(args.jid, args.password, args.to, args.messages)
    client.connect(address=(args.host, args.port), force_starttls=False, disable_starttls=True)
    asyncio.get_event_loop().run_forever()


if __name__ == "__main__":
    main()
