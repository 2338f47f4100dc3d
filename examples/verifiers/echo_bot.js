// The reference echo bot, answering only requests signed with
// COMPONENT_POST_SECRET (xmpp-lambda's signed requests). Node.js, no packages.
// Run: COMPONENT_POST_SECRET=... node echo_bot.js [PORT]
const crypto = require("node:crypto");
const http = require("node:http");

// True when the request carries a valid signature of body (a Buffer) by secret.
function xmppLambdaVerified(secret, headers, body) {
  const timestamp = headers["x-xmpp-lambda-timestamp"] ?? "";
  const signature = Buffer.from(headers["x-xmpp-lambda-signature"] ?? "");
  if (!secret || !/^[0-9]+$/.test(timestamp)) return false;
  if (Math.abs(Date.now() / 1000 - Number(timestamp)) > 300) return false; // a replay
  const mac = crypto.createHmac("sha256", secret).update(`${timestamp}.`).update(body).digest("hex");
  const expected = Buffer.from(`v1=${mac}`);
  return signature.length === expected.length && crypto.timingSafeEqual(signature, expected);
}

const secret = process.env.COMPONENT_POST_SECRET ?? "";
http
  .createServer((request, response) => {
    const chunks = [];
    request.on("data", (chunk) => chunks.push(chunk));
    request.on("end", () => {
      const body = Buffer.concat(chunks);
      if (!xmppLambdaVerified(secret, request.headers, body)) {
        response.writeHead(401).end();
        return;
      }
      const received = JSON.parse(body).body ?? "";
      response.writeHead(200, { "Content-Type": "application/json" });
      response.end(JSON.stringify({ body: `Did you say ${received}?` }));
    });
  })
  .listen(Number(process.argv[2] ?? 8080), "127.0.0.1");
