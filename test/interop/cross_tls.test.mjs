// C++ <-> Node over wss://: the TLS test engine with a CA made by run.sh. The Node worker trusts
// it through NODE_EXTRA_CA_CERTS (set by run.sh for every test process), the C++ worker through
// SSL_CERT_FILE (OpenSSL's default trust store, which the SDK honours); they call each other.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';

import { crossSetup, startCppPeer } from './cpp_peer.mjs';
import { pollUntil, waitForFunctions } from './engine.mjs';

const TIMEOUT = { timeout: 30_000 };
const dir = process.env.III_INTEROP_TLS_DIR;
const skip = dir ? false : 'no PKI: run.sh makes one with openssl';

function tlsEngine() {
  return { tls: { cert: join(dir, 'server.pem'), key: join(dir, 'server.key') } };
}

test('over wss://, a Node worker and a C++ worker exchange calls through the TLS engine', { ...TIMEOUT, skip }, async (t) => {
  const { cppPeer, worker, engine } = await crossSetup(t, tlsEngine());
  assert.match(engine.url, /^wss:\/\/127\.0\.0\.1:\d+$/);
  const peer = await cppPeer('cpp-tls', { env: { SSL_CERT_FILE: join(dir, 'ca.pem') } });
  await peer.ok('register', { function_id: 'cpp::tls::echo', behaviour: 'echo' });
  const node = worker('node-tls');
  node.registerFunction('node::tls::echo', async (payload) => ({ node: payload.text }));
  await waitForFunctions(node, ['cpp::tls::echo']);

  const there = await node.trigger({ function_id: 'cpp::tls::echo', payload: { text: 'from Node' } });
  assert.equal(there.from, 'cpp');
  assert.equal(there.echo.text, 'from Node');

  await pollUntil(
    () => peer.ok('list', { what: 'functions' }),
    (fns) => fns.some((f) => f.function_id === 'node::tls::echo'),
    { what: 'cpp_peer to see node::tls::echo' },
  );
  const back = await peer.ok('call', { function_id: 'node::tls::echo', payload: { text: 'from C++' } });
  assert.deepEqual(back.value, { node: 'from C++' });
});

test('over wss://, a C++ worker that does not trust the CA is refused with OpenSSL\'s reason', { ...TIMEOUT, skip }, async (t) => {
  const { engine } = await crossSetup(t, tlsEngine());
  // A trust store without the test CA: SSL_CERT_FILE and SSL_CERT_DIR name nothing.
  const env = { SSL_CERT_FILE: join(dir, 'nowhere.pem'), SSL_CERT_DIR: join(dir, 'nowhere') };
  await assert.rejects(startCppPeer(engine.url, 'cpp-untrusting', { env }), (err) => {
    // The peer never reports "ready" (whether its own 10 s or the helper's runs out first).
    assert.match(err.message, /not connected within 10 s|waiting for cpp_peer to connect/);
    assert.match(err.message, /TLS handshake failed: certificate verify failed/);
    return true;
  });
});
