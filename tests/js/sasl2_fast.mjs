// xmpp.js (@xmpp/client) logging in to Stockade with SASL2 (XEP-0388), Bind 2 (XEP-0386) and
// FAST (XEP-0484) over TCP + STARTTLS: run by tests/e2e/test_sasl2_node.py.
//
// Usage: NODE_EXTRA_CA_CERTS=ca.pem node sasl2_fast.mjs SERVICE DOMAIN USERNAME PASSWORD PEER
// 1. logs in with the password (SCRAM over SASL2), which also asks for a FAST token;
// 2. logs in again on a new connection with the token and no password, and sends "fast hello"
//    to PEER.
// Prints one JSON line: {"first": <JID>, "second": <JID>, "mechanism": <token mechanism>,
// "rotated": <a new token came with the second login>}. Exit status 1 on any error or after
// 15 s.
import { client, xml } from "@xmpp/client";

const [service, domain, username, password, peer] = process.argv.slice(2);
// XEP-0484 §5.1: tokens belong to a client, named by a stable SASL2 user-agent id.
const userAgent = () =>
  xml("user-agent", { id: "0b7f3c55-6a0e-4c3a-9a4e-6f6e6f64656a73" },
    xml("software", {}, "xmpp.js"), xml("device", {}, "test runner"));

function fail(message) {
  console.error(`sasl2_fast: ${message}`);
  process.exit(1);
}

setTimeout(() => fail("not done within 15 s"), 15000);

async function login(credentials, token, onOnline) {
  const xmpp = client({ service, domain, ...credentials, resource: "node",
                        userAgent: userAgent() });
  let saved = null;
  xmpp.fast.fetchToken = async () => token;
  xmpp.fast.saveToken = async (t) => { saved = t; };
  xmpp.on("error", (err) => fail(`error: ${err.condition || err.message || err}`));
  const online = new Promise((resolve) => xmpp.on("online", resolve));
  await xmpp.start();
  const address = await online;
  await onOnline(xmpp);
  await xmpp.stop();
  return { jid: address.toString(), token: saved };
}

try {
  const first = await login({ username, password }, null, async () => {});
  if (!first.token) fail("no FAST token after the password login");
  // No password at all: only the token can get this client in.
  const second = await login({ username }, first.token, async (xmpp) => {
    await xmpp.send(xml("message", { to: peer, type: "chat", id: "fast-1" },
      xml("body", {}, "fast hello")));
  });
  console.log(JSON.stringify({
    first: first.jid, second: second.jid, mechanism: first.token.mechanism,
    rotated: second.token !== null && second.token.token !== first.token.token,
  }));
  process.exit(0);
} catch (err) {
  fail(`${err.condition || err.message || err}`);
}
