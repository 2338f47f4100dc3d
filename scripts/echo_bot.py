#!/usr/bin/python3
"""The reference echo bot (mod_component_http's PHP example) as a tiny HTTP
server: every POSTed request JSON gets {"body": "Did you say <body>?"}.

Usage: echo_bot.py PORT   (listens on 127.0.0.1)
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class EchoBot(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        try:
            received = json.loads(self.rfile.read(length) or b"{}").get("body")
        except (ValueError, AttributeError):
            received = None
        # PHP prints a missing body as an empty string.
        text = "" if received is None else str(received)
        answer = json.dumps({"body": f"Did you say {text}?"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format, *args):
        sys.stderr.write("echo bot: " + (format % args) + "\n")


def main():
    port = int(sys.argv[1])
    ThreadingHTTPServer(("127.0.0.1", port), EchoBot).serve_forever()


if __name__ == "__main__":
    main()
