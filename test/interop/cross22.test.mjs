// C++ <-> the newest Node SDK (iii-sdk 0.22.1, the `iii-sdk-22` alias) through iii-test-engine
// in its 0.22 and 0.23 generations: calls and errors both ways, metadata, discovery, triggers,
// channels, and a socket cut followed by reattach (of the Node worker and of the C++ one).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, connect } from 'node:net';
import { test } from 'node:test';

import { registerWorker } from 'iii-sdk-22';
import { createChannel } from 'iii-sdk-22/helpers';

import { startCppPeer } from './cpp_peer.mjs';
import { deferred, pollUntil, startEngine, within } from './engine.mjs';

const TIMEOUT = { timeout: 30_000 };

/** A Node 0.22.1 worker; OTel and metrics off so that its only socket is the worker socket. */
function node22(url, name, options = {}) {
  return registerWorker(url, {
    workerName: name,
    otel: { enabled: false },
    enableMetricsReporting: false,
    invocationTimeoutMs: 10_000,
    ...options,
  });
}

/** Engine, C++ peers and Node 0.22.1 workers of one test, torn down by t.after(). */
async function setup22(t, generation, engineOptions = {}) {
  const engine = await startEngine({ generation, ...engineOptions });
  const peers = [];
  const workers = [];
  const closers = [];
  t.after(async () => {
    const errors = [];
    for (const p of peers) await p.stop().catch((e) => errors.push(e));
    for (const w of workers.reverse()) await w.shutdown().catch(() => {});
    for (const c of closers) await c();
    await engine.stop();
    if (errors.length > 0) throw errors[0];
  });
  return {
    engine,
    async cppPeer(name, url = engine.url) {
      const p = await startCppPeer(url, name);
      peers.push(p);
      return p;
    },
    worker(name, options = {}, url = engine.url) {
      const w = node22(url, name, options);
      workers.push(w);
      return w;
    },
    onClose(fn) {
      closers.push(fn);
    },
  };
}

/** Frames the engine logged for one direction and type. */
function framesOf(engine, dir, type) {
  return engine.frames().filter((f) => f.dir === dir && f.frame && f.frame.type === type);
}

function peerSees(peer, what, accept, label) {
  return pollUntil(() => peer.ok('list', { what }), accept, { what: label });
}

function nodeCall(worker, function_id, payload, extra = {}) {
  return worker.trigger({ function_id, payload, timeoutMs: 10_000, ...extra });
}

/** Waits until `function_id` answers a Node call (registrations are not acknowledged). */
function nodeWaitsFor(worker, function_id, payload = {}) {
  return pollUntil(
    () => nodeCall(worker, function_id, payload).then(() => true),
    (ok) => ok,
    { what: `${function_id} to answer` },
  );
}

/**
 * A TCP proxy in front of the engine, so that a test can cut every connection through it
 * (a network failure between worker and engine) while the engine lives on.
 */
async function proxyTo(port) {
  const sockets = new Set();
  const server = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', drop);
    upstream.on('close', drop);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `ws://127.0.0.1:${server.address().port}`,
    cut() {
      for (const s of [...sockets]) s.destroy();
    },
    close: () =>
      new Promise((resolve) => {
        for (const s of [...sockets]) s.destroy();
        server.close(() => resolve());
      }),
  };
}

for (const generation of ['0.22', '0.23']) {
  test(`${generation}: Node 0.22.1 calls C++ functions and gets their errors`, TIMEOUT, async (t) => {
    const { cppPeer, worker } = await setup22(t, generation);
    const peer = await cppPeer('cpp-callee');
    await peer.ok('register', { function_id: 'cpp::echo', behaviour: 'echo' });
    await peer.ok('register', { function_id: 'cpp::refuse', behaviour: 'fail_code' });
    const node = worker('node22-caller');
    await nodeWaitsFor(node, 'cpp::echo');
    const out = await nodeCall(node, 'cpp::echo', { x: 1 });
    assert.equal(out.from, 'cpp');
    assert.equal(out.echo.x, 1); // the engine adds _caller_worker_id beside it
    await assert.rejects(nodeCall(node, 'cpp::refuse', { code: 'FORBIDDEN', message: 'nope' }), (e) => {
      assert.equal(e.code, 'FORBIDDEN');
      assert.match(e.message, /nope/);
      return true;
    });
  });

  test(`${generation}: C++ calls Node 0.22.1 functions and gets their errors`, TIMEOUT, async (t) => {
    const { cppPeer, worker } = await setup22(t, generation);
    const node = worker('node22-callee');
    node.registerFunction('node22::add', async (data) => ({ sum: data.a + data.b }));
    node.registerFunction('node22::boom', async () => {
      throw new Error('kaput');
    });
    const peer = await cppPeer('cpp-caller');
    await peerSees(peer, 'functions', (fns) => fns.some((f) => f.function_id === 'node22::boom'), 'the Node functions');
    const { value } = await peer.ok('call', { function_id: 'node22::add', payload: { a: 2, b: 3 } });
    assert.deepEqual(value, { sum: 5 });
    const error = await peer.fails('call', { function_id: 'node22::boom', payload: {} });
    assert.equal(error.errc, 'Remote');
    assert.equal(typeof error.code, 'string');
    assert.match(error.message, /kaput/);
  });

  test(`${generation}: a C++ trigger binding's metadata reaches the Node 0.22.1 handler`, TIMEOUT, async (t) => {
    const { cppPeer, worker } = await setup22(t, generation);
    const got = deferred();
    const node = worker('node22-watcher');
    node.registerFunction('node22::on_worker', async (data, metadata) => {
      if (data.event === 'worker_connected') got.resolve(metadata);
      return null;
    });
    const peer = await cppPeer('cpp-binder');
    await peerSees(peer, 'functions', (fns) => fns.some((f) => f.function_id === 'node22::on_worker'), 'node22::on_worker');
    await peer.ok('bind', {
      trigger_type: 'engine::workers-available',
      function_id: 'node22::on_worker',
      config: {},
      metadata: { bound_by: 'cpp' },
    });
    await peerSees(peer, 'triggers', (ts) => ts.some((x) => x.function_id === 'node22::on_worker'), 'the binding');
    worker('node22-newcomer'); // fires worker_connected
    assert.deepEqual(await within(got.promise, 10_000, 'the binding to fire'), { bound_by: 'cpp' });
  });

  test(`${generation}: a Node 0.22.1 caller's metadata reaches the C++ handler`, TIMEOUT, async (t) => {
    const { cppPeer, worker } = await setup22(t, generation);
    const peer = await cppPeer('cpp-context');
    await peer.ok('register', { function_id: 'cpp::context', behaviour: 'context' });
    const node = worker('node22-meta-caller');
    await nodeWaitsFor(node, 'cpp::context');
    const out = await nodeCall(node, 'cpp::context', {}, { metadata: { tenant: 'acme' } });
    assert.deepEqual(out.metadata, { tenant: 'acme' });
  });

  test(`${generation}: a C++ caller's metadata reaches the Node 0.22.1 handler`, TIMEOUT, async (t) => {
    const { cppPeer, worker } = await setup22(t, generation);
    const seen = deferred();
    const node = worker('node22-meta-callee');
    node.registerFunction('node22::meta', async (_data, metadata) => {
      seen.resolve(metadata);
      return null;
    });
    const peer = await cppPeer('cpp-meta-caller');
    await peerSees(peer, 'functions', (fns) => fns.some((f) => f.function_id === 'node22::meta'), 'node22::meta');
    await peer.ok('call', { function_id: 'node22::meta', payload: {}, metadata: { tenant: 'acme' } });
    assert.deepEqual(await within(seen.promise, 5_000, 'the handler'), { tenant: 'acme' });
  });

  test(`${generation}: C++ discovery sees Node 0.22.1 functions, trigger types and triggers`, TIMEOUT, async (t) => {
    const { engine, cppPeer, worker } = await setup22(t, generation);
    const node = worker('node22-listed');
    node.registerFunction('node22::listed', async () => null, { description: 'listed by C++' });
    node.registerTriggerType({ id: 'node22::tick', description: 'Node ticks' }, {
      async registerTrigger() {},
      async unregisterTrigger() {},
    });
    const peer = await cppPeer('cpp-lister');
    const fns = await peerSees(peer, 'functions', (f) => f.some((x) => x.function_id === 'node22::listed'), 'node22::listed');
    assert.equal(fns.find((x) => x.function_id === 'node22::listed').description, 'listed by C++');
    const types = await peerSees(peer, 'trigger_types', (ts) => ts.some((x) => x.id === 'node22::tick'), 'node22::tick');
    assert.equal(types.find((x) => x.id === 'node22::tick').description, 'Node ticks');
    const { id } = await peer.ok('bind', { trigger_type: 'node22::tick', function_id: 'node22::listed', config: { every: 1 } });
    const triggers = await peerSees(peer, 'triggers', (ts) => ts.some((x) => x.id === id), 'the C++ binding');
    assert.equal(triggers.find((x) => x.id === id).trigger_type, 'node22::tick');
    const workers = await peer.ok('list', { what: 'workers' });
    assert.ok(workers.some((w) => w.name === 'node22-listed'));
    // The engine was asked with the 0.13+ names, never the removed one.
    const removed = framesOf(engine, 'in', 'invokefunction').filter((f) => f.frame.function_id === 'engine::trigger-types::list');
    assert.equal(removed.length, 0);
  });

  test(`${generation}: triggers between C++ and Node 0.22.1 in both roles`, TIMEOUT, async (t) => {
    const { cppPeer, worker } = await setup22(t, generation);
    // Node provides, C++ binds.
    const bound = deferred();
    const unbound = deferred();
    const node = worker('node22-provider');
    node.registerFunction('node22::target', async () => null);
    node.registerTriggerType({ id: 'node22::kind', description: 'Node kind' }, {
      async registerTrigger(config) {
        bound.resolve(config);
      },
      async unregisterTrigger(config) {
        unbound.resolve(config);
      },
    });
    const peer = await cppPeer('cpp-consumer');
    await peerSees(peer, 'trigger_types', (ts) => ts.some((x) => x.id === 'node22::kind'), 'node22::kind');
    const { id } = await peer.ok('bind', { trigger_type: 'node22::kind', function_id: 'node22::target', config: { n: 3 } });
    const config = await within(bound.promise, 10_000, 'Node registerTrigger');
    assert.equal(config.id, id);
    assert.deepEqual(config.config, { n: 3 });
    await peer.ok('unbind', { id });
    assert.equal((await within(unbound.promise, 10_000, 'Node unregisterTrigger')).id, id);

    // C++ provides, Node binds.
    await peer.ok('register_trigger_type', { id: 'cpp::kind', description: 'C++ kind' });
    await pollUntil(() => peer.ok('list', { what: 'trigger_types' }), (ts) => ts.some((x) => x.id === 'cpp::kind'), {
      what: 'cpp::kind',
    });
    const trigger = node.registerTrigger({ type: 'cpp::kind', function_id: 'node22::target', config: { m: 4 } });
    const event = await peer.waitEvent((e) => e.event === 'trigger_registered' && e.trigger_type === 'cpp::kind', {
      timeoutMs: 10_000,
    });
    assert.deepEqual(event.config, { m: 4 });
    trigger.unregister();
    await peer.waitEvent((e) => e.event === 'trigger_unregistered' && e.trigger_type === 'cpp::kind', { timeoutMs: 10_000 });
  });

  test(`${generation}: a channel from Node 0.22.1 to a C++ reader`, TIMEOUT, async (t) => {
    const { cppPeer, worker } = await setup22(t, generation);
    const peer = await cppPeer('cpp-chan');
    await peer.ok('register_channels');
    const node = worker('node22-chan');
    await pollUntil(
      () => nodeCall(node, 'engine::functions::list', {}),
      (r) => r.functions.some((f) => f.function_id === 'cpp::chan::consume'),
      { what: 'cpp::chan::consume to be listed' },
    );
    const head = randomBytes(100 * 1024);
    const ch = await createChannel(node);
    const call = nodeCall(node, 'cpp::chan::consume', { label: 'up', reader: ch.readerRef }, { timeoutMs: 20_000 });
    await new Promise((resolve, reject) => ch.writer.stream.write(head, (e) => (e ? reject(e) : resolve())));
    ch.writer.stream.end();
    const result = await call;
    assert.equal(result.label, 'up');
    assert.ok(Buffer.from(result.bytes_b64, 'base64').equals(head));
  });

  test(`${generation}: Node 0.22.1 reattaches after a socket cut and registers once`, TIMEOUT, async (t) => {
    const { engine, worker, onClose } = await setup22(t, generation);
    const proxy = await proxyTo(engine.port);
    onClose(() => proxy.close());
    const node = worker('node22-cut', { reconnectionConfig: { initialDelayMs: 50, maxDelayMs: 200 } }, proxy.url);
    node.registerFunction('node22::survivor', async () => 'alive');
    await pollUntil(() => framesOf(engine, 'in', 'registerfunction').length, (n) => n === 1, { what: 'the registration' });
    const first = framesOf(engine, 'out', 'workerregistered')[0].frame;
    proxy.cut();
    const reattach = await pollUntil(() => framesOf(engine, 'in', 'reattach'), (r) => r.length === 1, {
      what: 'the reattach frame',
      timeoutMs: 10_000,
    });
    assert.equal(reattach[0].frame.previous_worker_id, first.worker_id);
    assert.equal(reattach[0].frame.reattach_token, first.reattach_token);
    const second = reattach[0].worker;
    // reattach is the first frame of the new connection, then the function once.
    const inbound = engine.frames().filter((f) => f.worker === second && f.dir === 'in');
    assert.equal(inbound[0].frame.type, 'reattach');
    await pollUntil(
      () => engine.frames().filter((f) => f.worker === second && f.dir === 'in' && f.frame.type === 'registerfunction').length,
      (n) => n === 1,
      { what: 'the replayed registration' },
    );
    const caller = worker('node22-after-cut');
    assert.equal(await nodeCall(caller, 'node22::survivor', {}), 'alive');
  });

  test(`${generation}: the C++ worker reattaches after a socket cut and registers once`, TIMEOUT, async (t) => {
    const { engine, cppPeer, onClose } = await setup22(t, generation);
    const proxy = await proxyTo(engine.port);
    onClose(() => proxy.close());
    const peer = await cppPeer('cpp-cut', proxy.url);
    await peer.ok('register', { function_id: 'cpp::survivor', behaviour: 'echo' });
    await pollUntil(() => framesOf(engine, 'in', 'registerfunction').length, (n) => n === 1, { what: 'the registration' });
    const first = framesOf(engine, 'out', 'workerregistered')[0].frame;
    proxy.cut();
    const reattach = await pollUntil(() => framesOf(engine, 'in', 'reattach'), (r) => r.length === 1, {
      what: 'the C++ reattach frame',
      timeoutMs: 10_000,
    });
    assert.equal(reattach[0].frame.previous_worker_id, first.worker_id);
    const second = reattach[0].worker;
    const inbound = engine.frames().filter((f) => f.worker === second && f.dir === 'in');
    assert.equal(inbound[0].frame.type, 'reattach');
    assert.equal(inbound.filter((f) => f.frame.type === 'registerfunction').length, 1);
  });
}
