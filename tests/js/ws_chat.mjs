// A browser-side XMPP library (xmpp.js, @xmpp/client) logging in to Stockade over WebSocket
// (RFC 7395) and chatting: run by tests/e2e/test_websocket_node.py.
//
// Usage: node ws_chat.mjs SERVICE_URL DOMAIN USERNAME PASSWORD PEER_JID
// Sends "hello from xmpp.js" to PEER_JID, waits for one chat message back and prints one JSON
// line: {"jid": <bound JID>, "from": <sender>, "body": <text>}. Exit status 1 on any error or
// after 15 s without an answer.
import { client, xml } from "@xmpp/client";
import WebSocket from "ws";

// Node 20 has no global WebSocket (browsers do); xmpp.js's websocket transport uses the
// global, so give it the `ws` package's implementation of the same interface.
globalThis.WebSocket ??= WebSocket;

const [service, domain, username, password, peer] = process.argv.slice(2);
const xmpp = client({ service, domain, username, password, resource: "xmppjs" });

function fail(message) {
  console.error(`ws_chat: ${message}`);
  process.exit(1);
}

const timer = setTimeout(() => fail("no answer within 15 s"), 15000);

xmpp.on("error", (err) => fail(`error: ${err.condition || err.message || err}`));

xmpp.on("online", async (address) => {
  await xmpp.send(xml("presence"));
  await xmpp.send(
    xml("message", { to: peer, type: "chat", id: "node-1" }, xml("body", {}, "hello from xmpp.js")),
  );
  xmpp.boundJid = address.toString();
});

xmpp.on("stanza", async (stanza) => {
  if (!stanza.is("message") || stanza.attrs.type === "error") {
    if (stanza.is("message")) fail(`message error: ${stanza.toString()}`);
    return;
  }
  const body = stanza.getChildText("body");
  if (body === null) return;
  clearTimeout(timer);
  console.log(JSON.stringify({ jid: xmpp.boundJid, from: stanza.attrs.from, body }));
  await xmpp.stop(); // sends <close/> and closes the WebSocket
  process.exit(0);
});

xmpp.start().catch((err) => fail(`start: ${err.condition || err.message || err}`));
