#!/usr/bin/python3
"""A real XMPP client for the end-to-end tests, driven over stdin/stdout.

Run with Debian's /usr/bin/python3 (it has python3-slixmpp):

    xmpp_client.py --host 127.0.0.1 --port 5222 --jid alice@localhost --password pw

It connects without TLS (loopback test servers only), requests the roster
(so the server delivers subscription answers and roster pushes), sends
initial presence and prints one JSON object per line on stdout:

    {"event": "ready", "jid": "alice@localhost/abc"}
    {"event": "stanza", "xml": "<message xmlns=\"jabber:client\" ...>"}
    {"event": "auth_failed", "reason": "..."}
    {"event": "connection_failed", "reason": "..."}
    {"event": "disconnected", "reason": "..."}

Every stanza the server sends (message, presence, iq) is printed as XML in
the jabber:client namespace. Each stdin line is a JSON object
{"send": "<xml/>"} whose XML is written to the stream as is. Closing stdin
disconnects and exits.
"""

import argparse
import asyncio
import json
import logging
import os
import sys

import slixmpp
from slixmpp.xmlstream import tostring

STANZA_NAMES = {"message", "presence", "iq"}
PRESENCE_TIMEOUT = 10.0


def emit(event, **fields):
    """One event per line; flushed so the test sees it at once."""
    fields["event"] = event
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def finish(code):
    """Leave at once: stopping the loop with slixmpp tasks pending can
    crash the interpreter at exit, and nothing is left to clean up."""
    sys.stdout.flush()
    os._exit(code)


class ScriptedClient(slixmpp.ClientXMPP):
    def __init__(self, jid, password):
        super().__init__(jid, password)
        # Loopback test servers run without certificates: plain SASL over an
        # unencrypted stream is acceptable here and nowhere else.
        self["feature_mechanisms"].unencrypted_plain = True
        self.ready = False
        # Set when the server echoes our initial presence back: only then is
        # this session available, so messages to the bare JID reach it.
        self.presence_seen = asyncio.Event()
        # Bytes read from stdin that do not end a line yet.
        self.stdin_pending = b""
        self.add_filter("in", self.print_incoming)
        self.add_event_handler("session_start", self.on_session_start)
        self.add_event_handler("failed_auth", self.on_failed_auth)
        self.add_event_handler("connection_failed", self.on_connection_failed)
        self.add_event_handler("disconnected", self.on_disconnected)
        # slixmpp answers unknown IQs itself; it would also try to reconnect.
        self.auto_reconnect = False

    def print_incoming(self, stanza):
        name = stanza.xml.tag.rsplit("}", 1)[-1]
        if name == "presence" and stanza.xml.get("from") == str(self.boundjid):
            self.presence_seen.set()
        if name in STANZA_NAMES:
            emit("stanza", xml=tostring(stanza.xml, xmlns="", top_level=True))
        return stanza

    async def on_session_start(self, _event):
        await self.get_roster()
        self.send_presence()
        try:
            await asyncio.wait_for(self.presence_seen.wait(), PRESENCE_TIMEOUT)
        except asyncio.TimeoutError:
            emit("warning", reason="the server did not echo the initial presence")
        self.ready = True
        emit("ready", jid=str(self.boundjid))

    def on_failed_auth(self, _event):
        emit("auth_failed", reason="the server refused the credentials")
        finish(2)

    def on_connection_failed(self, error):
        emit("connection_failed", reason=str(error))
        finish(2)

    def on_disconnected(self, reason):
        emit("disconnected", reason=str(reason))
        finish(0)

    def on_stdin(self):
        # Read what is there without Python's line buffering: a buffered
        # readline() would keep later lines of one burst in its buffer, where
        # the fd watcher never sees them.
        chunk = os.read(sys.stdin.fileno(), 65536)
        if not chunk:
            # The test dropped its handle: leave quietly.
            self.loop.remove_reader(sys.stdin.fileno())
            self.disconnect(wait=0.5)
            self.loop.call_later(1.0, finish, 0)
            return
        self.stdin_pending += chunk
        while b"\n" in self.stdin_pending:
            raw, self.stdin_pending = self.stdin_pending.split(b"\n", 1)
            self.run_command(raw.decode("utf-8").strip())

    def run_command(self, line):
        if not line:
            return
        try:
            command = json.loads(line)
            self.send_raw(command["send"])
        except (ValueError, KeyError, TypeError) as error:
            emit("bad_command", reason=str(error), line=line)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--jid", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.ERROR,
        stream=sys.stderr,
        format="%(levelname)s %(name)s %(message)s",
    )

    client = ScriptedClient(args.jid, args.password)
    loop = asyncio.get_event_loop()
    client.loop = loop
    loop.add_reader(sys.stdin.fileno(), client.on_stdin)
    client.connect((args.host, args.port), force_starttls=False, disable_starttls=True)
    loop.run_forever()


if __name__ == "__main__":
    main()
