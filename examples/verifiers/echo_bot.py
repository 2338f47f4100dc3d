#!/usr/bin/env python3
"""The reference echo bot, answering only requests signed with
COMPONENT_POST_SECRET (xmpp-lambda's signed requests). Standard library only.

Run: COMPONENT_POST_SECRET=... python3 echo_bot.py [PORT]
"""
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def xmpp_lambda_verified(secret: bytes, headers, body: bytes) -> bool:
    """True when the request carries a valid signature of body by secret."""
    timestamp = headers.get("X-XMPP-Lambda-Timestamp", "")
    signature = headers.get("X-XMPP-Lambda-Signature", "")
    if not secret or not (timestamp.isascii() and timestamp.isdigit()):
        return False
    if abs(time.time() - int(timestamp)) > 300:
        return False  # a replay: more than 5 minutes away
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest(b"v1=" + mac.hexdigest().encode(), signature.encode())


SECRET = os.environ.get("COMPONENT_POST_SECRET", "").encode()


class EchoBot(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if not xmpp_lambda_verified(SECRET, self.headers, body):
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        received = json.loads(body).get("body", "")
        answer = json.dumps({"body": f"Did you say {received}?"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    ThreadingHTTPServer(("127.0.0.1", port), EchoBot).serve_forever()
