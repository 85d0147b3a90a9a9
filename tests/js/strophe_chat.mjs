// Strophe.js (the XMPP library under Converse.js) logging in to Stockade over WebSocket
// (RFC 7395) and chatting: run by tests/e2e/test_websocket_strophe.py.
//
// Usage: node strophe_chat.mjs SERVICE_URL JID PASSWORD PEER_JID
// Logs in as JID (a full JID: Strophe asks to bind its resource), sends "hello from
// strophe.js" to PEER_JID, waits for one chat message back, closes the stream and prints one
// JSON line: {"jid": <bound JID>, "mechanism": <SASL mechanism>, "from": <sender>,
// "body": <text>}. Exit status 1 on any error or after 15 s.
//
// Strophe's Node entry point installs `ws` as the global WebSocket and @xmldom/xmldom as the
// DOM itself (both are optional peer dependencies, listed in package.json).
import { Strophe, $msg, $pres } from "strophe.js";

const [service, jid, password, peer] = process.argv.slice(2);
const conn = new Strophe.Connection(service);
let result = null;

function fail(message) {
  console.error(`strophe_chat: ${message}`);
  process.exit(1);
}

setTimeout(() => fail("no answer within 15 s"), 15000);

function onMessage(stanza) {
  if (stanza.getAttribute("type") === "error") fail(`message error: ${Strophe.serialize(stanza)}`);
  const body = stanza.getElementsByTagName("body")[0];
  if (body === undefined) return true; // e.g. a chat state: keep waiting
  result = {
    jid: conn.jid,
    mechanism: conn._sasl_mechanism?.mechname ?? null,
    from: stanza.getAttribute("from"),
    body: body.textContent,
  };
  conn.disconnect(); // unavailable presence, then <close/> (RFC 7395 §3.6)
  return false;
}

const failures = {
  [Strophe.Status.CONNFAIL]: "connection failed",
  [Strophe.Status.AUTHFAIL]: "authentication failed",
  [Strophe.Status.ERROR]: "stream error",
  [Strophe.Status.CONNTIMEOUT]: "connection timed out",
};

conn.connect(jid, password, (status, condition) => {
  if (status in failures) fail(`${failures[status]}: ${condition}`);
  if (status === Strophe.Status.CONNECTED) {
    conn.addHandler(onMessage, null, "message", "chat");
    conn.addHandler(onMessage, null, "message", "error");
    conn.send($pres());
    conn.send($msg({ to: peer, type: "chat", id: "strophe-1" }).c("body").t("hello from strophe.js"));
  }
  if (status === Strophe.Status.DISCONNECTED) {
    if (result === null) fail(`disconnected before the answer: ${condition}`);
    console.log(JSON.stringify(result));
    process.exit(0);
  }
});
