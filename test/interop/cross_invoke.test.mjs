// C++ <-> Node through iii-test-engine: invocations in both directions (sync, void, enqueue),
// errors with their codes and messages, and typed payloads. The C++ side is cpp_peer (our SDK),
// the Node side the official iii-sdk in this process.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { TriggerAction } from 'iii-sdk';

import { crossSetup } from './cpp_peer.mjs';
import { deferred, pollUntil, waitForFunctions, within } from './engine.mjs';

const TIMEOUT = { timeout: 30_000 };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The engine-assigned id of the worker called `name`, once its metadata arrived. */
async function workerIdOf(sdk, name) {
  const workers = await pollUntil(
    () => sdk.listWorkers(),
    (ws) => ws.some((w) => w.name === name),
    { what: `worker ${name} in listWorkers` },
  );
  return workers.find((w) => w.name === name);
}

/** Resolves when the C++ peer's list_functions shows every id in `ids`. */
function peerWaitsForFunctions(peer, ids) {
  return pollUntil(
    () => peer.ok('list', { what: 'functions' }),
    (fns) => ids.every((id) => fns.some((f) => f.function_id === id)),
    { what: `cpp_peer to see ${ids.join(', ')}` },
  );
}

const NESTED = { list: [1, 2.5, 'três', null, true, { deep: ['x'] }], big: 9007199254740991, neg: -42, empty: {}, none: null };

test('Node calls C++ (sync): payloads round-trip, _caller_worker_id is the Node worker', TIMEOUT, async (t) => {
  const { cppPeer, worker } = await crossSetup(t);
  const peer = await cppPeer('cpp-callee');
  await peer.ok('register', { function_id: 'cpp::echo', behaviour: 'echo' });
  const node = worker('node-caller');
  await waitForFunctions(node, ['cpp::echo']);

  const result = await node.trigger({ function_id: 'cpp::echo', payload: { a: 'é ✓ 😀', nested: NESTED } });
  const caller = await workerIdOf(node, 'node-caller');
  assert.match(caller.id, UUID);
  assert.deepEqual(result, { echo: { a: 'é ✓ 😀', nested: NESTED, _caller_worker_id: caller.id }, from: 'cpp' });
  const invoked = await peer.waitEvent((e) => e.event === 'invoked' && e.payload?.a === 'é ✓ 😀');
  assert.deepEqual(invoked.payload, { a: 'é ✓ 😀', nested: NESTED, _caller_worker_id: caller.id });

  // Non-object payloads pass untouched (no _caller_worker_id), both ways.
  assert.deepEqual(await node.trigger({ function_id: 'cpp::echo', payload: 'plain text' }), { echo: 'plain text', from: 'cpp' });
  assert.deepEqual(await node.trigger({ function_id: 'cpp::echo', payload: [1, 'two', null] }), {
    echo: [1, 'two', null],
    from: 'cpp',
  });
});

test('C++ calls Node (sync): payloads round-trip, _caller_worker_id is the C++ worker', TIMEOUT, async (t) => {
  const { cppPeer, worker } = await crossSetup(t);
  const node = worker('node-callee');
  const seen = [];
  node.registerFunction('node::echo', async (input) => {
    seen.push(input);
    return { echo: input, from: 'node' };
  });
  node.registerFunction('node::nothing', async () => undefined);
  const peer = await cppPeer('cpp-caller');
  await peerWaitsForFunctions(peer, ['node::echo', 'node::nothing']);

  const { value } = await peer.ok('call', { function_id: 'node::echo', payload: { a: 'é ✓ 😀', nested: NESTED } });
  // The C++ worker announced itself with runtime "cpp" under the name it was given.
  const caller = await workerIdOf(node, 'cpp-caller');
  assert.equal(caller.runtime, 'cpp');
  assert.deepEqual(seen, [{ a: 'é ✓ 😀', nested: NESTED, _caller_worker_id: caller.id }]);
  assert.deepEqual(value, { echo: seen[0], from: 'node' });

  assert.deepEqual((await peer.ok('call', { function_id: 'node::echo', payload: ['x', 2] })).value, { echo: ['x', 2], from: 'node' });
  // A Node handler that returns nothing: the C++ caller gets null.
  assert.equal((await peer.ok('call', { function_id: 'node::nothing', payload: {} })).value, null);
});

test('void both ways: the callee runs, the caller gets no result', TIMEOUT, async (t) => {
  const { engine, cppPeer, worker } = await crossSetup(t);
  const peer = await cppPeer('cpp-side');
  await peer.ok('register', { function_id: 'cpp::sink', behaviour: 'echo' });
  const node = worker('node-side');
  const ran = deferred();
  node.registerFunction('node::sink', async (input) => {
    ran.resolve(input);
    return { ignored: true };
  });
  await waitForFunctions(node, ['cpp::sink', 'node::sink']);

  // Node -> C++.
  assert.equal(await node.trigger({ function_id: 'cpp::sink', payload: { event: 'from-node' }, action: TriggerAction.Void() }), undefined);
  const invoked = await peer.waitEvent((e) => e.event === 'invoked' && e.function_id === 'cpp::sink');
  assert.equal(invoked.payload.event, 'from-node');

  // C++ -> Node.
  const { value } = await peer.ok('call', { function_id: 'node::sink', payload: { event: 'from-cpp' }, action: 'void' });
  assert.equal(value, null);
  const input = await within(ran.promise, 10_000, 'the void call from C++ to reach Node');
  assert.equal(input.event, 'from-cpp');

  // Wire view: each side's void frame carried action void; once both callees answered and one
  // more round trip went through each caller, no invocationresult went to either caller.
  await pollUntil(
    () => engine.frames(),
    (fs) => ['cpp::sink', 'node::sink'].every((id) =>
      fs.some((f) => f.dir === 'in' && f.frame?.type === 'invocationresult' && f.frame.function_id === id)),
    { what: 'both callees to answer their void calls' },
  );
  await node.listFunctions();
  await peer.ok('list', { what: 'functions' });
  const frames = engine.frames();
  const sent = frames.filter((f) => f.dir === 'in' && f.frame?.type === 'invokefunction' && f.frame.function_id.endsWith('::sink'));
  assert.equal(sent.length, 2);
  assert.ok(sent.every((f) => f.frame.action?.type === 'void'), 'both void frames carry action void');
  const callers = new Set(sent.map((f) => f.worker));
  assert.equal(callers.size, 2);
  const leaked = frames.filter(
    (f) => f.dir === 'out' && callers.has(f.worker) && f.frame?.type === 'invocationresult' && f.frame.function_id.endsWith('::sink'),
  );
  assert.deepEqual(leaked, [], 'no invocationresult for void calls');
});

test('enqueue both ways: receipt, then delivery without _caller_worker_id', TIMEOUT, async (t) => {
  const { cppPeer, worker } = await crossSetup(t);
  const peer = await cppPeer('cpp-side');
  await peer.ok('register', { function_id: 'cpp::jobs', behaviour: 'echo' });
  const node = worker('node-side');
  const delivered = deferred();
  node.registerFunction('node::jobs', async (input) => {
    delivered.resolve(input);
    return null;
  });
  await waitForFunctions(node, ['cpp::jobs', 'node::jobs']);

  // C++ -> Node.
  const { value: receipt } = await peer.ok('call', {
    function_id: 'node::jobs',
    payload: { job: 7, tags: ['a', 'b'] },
    action: { enqueue: 'default' },
  });
  assert.deepEqual(Object.keys(receipt), ['messageReceiptId']);
  assert.match(receipt.messageReceiptId, UUID);
  assert.deepEqual(await within(delivered.promise, 10_000, 'the job from C++ to be delivered'), { job: 7, tags: ['a', 'b'] });

  // Node -> C++.
  const receipt2 = await node.trigger({ function_id: 'cpp::jobs', payload: { job: 8 }, action: TriggerAction.Enqueue({ queue: 'default' }) });
  assert.match(receipt2.messageReceiptId, UUID);
  const invoked = await peer.waitEvent((e) => e.event === 'invoked' && e.function_id === 'cpp::jobs');
  assert.deepEqual(invoked.payload, { job: 8 });

  // Queue errors reach the C++ caller with the engine's code and message.
  const err = await peer.fails('call', { function_id: 'node::jobs', payload: { job: 9 }, action: { enqueue: 'x' } });
  assert.deepEqual([err.errc, err.code, err.message], ['Remote', 'enqueue_error', "Queue 'x' not found"]);
});

test('errors Node -> C++: codes, messages and stacktraces preserved', TIMEOUT, async (t) => {
  const { cppPeer, worker } = await crossSetup(t);
  const peer = await cppPeer('cpp-callee');
  await peer.ok('register', { function_id: 'cpp::fail', behaviour: 'fail' });
  await peer.ok('register', { function_id: 'cpp::fail_code', behaviour: 'fail_code' });
  await peer.ok('register', { function_id: 'cpp::relay', behaviour: 'relay' });
  const node = worker('node-caller');
  node.registerFunction('node::boom', async ({ what }) => {
    throw new Error(`boom from node: ${what}`);
  });
  await waitForFunctions(node, ['cpp::fail', 'cpp::fail_code', 'cpp::relay', 'node::boom']);

  // A C++ handler's exception: invocation_failed with its what().
  await assert.rejects(node.trigger({ function_id: 'cpp::fail', payload: { message: 'invalid order: ord_7 ✗' } }), {
    code: 'invocation_failed',
    message: 'invalid order: ord_7 ✗',
  });
  // A thrown remote error keeps its own code, message and stacktrace.
  const coded = await node
    .trigger({ function_id: 'cpp::fail_code', payload: { code: 'payment_declined', message: 'card expired', stacktrace: 'at charge (pay.cpp:42)' } })
    .then(() => assert.fail('expected a rejection'), (e) => e);
  assert.deepEqual(coded, { code: 'payment_declined', message: 'card expired', stacktrace: 'at charge (pay.cpp:42)' });

  // Through C++ and back: a Node error and an engine error pass through the C++ function.
  const relayed = await node
    .trigger({ function_id: 'cpp::relay', payload: { target: 'node::boom', payload: { what: 'deep' } } })
    .then(() => assert.fail('expected a rejection'), (e) => e);
  assert.equal(relayed.code, 'invocation_failed');
  assert.equal(relayed.message, 'boom from node: deep');
  assert.match(relayed.stacktrace, /boom from node: deep/);
  await assert.rejects(node.trigger({ function_id: 'cpp::relay', payload: { target: 'nope::missing', payload: {} } }), {
    code: 'function_not_found',
    message: 'Function nope::missing not found',
  });

  // An unregistered C++ function is gone for Node callers.
  await peer.ok('unregister', { function_id: 'cpp::fail' });
  await pollUntil(
    () => node.trigger({ function_id: 'cpp::fail', payload: { message: 'x' } }).catch((e) => e),
    (e) => e?.code === 'function_not_found',
    { what: 'cpp::fail to be unregistered' },
  );
});

test('errors C++ -> Node: codes, messages and stacktraces preserved; local timeout', TIMEOUT, async (t) => {
  const { cppPeer, worker } = await crossSetup(t);
  const node = worker('node-callee');
  node.registerFunction('node::validate', async (input) => {
    throw new Error(`invalid order: ${input.id}`);
  });
  node.registerFunction('node::throw_string', async () => {
    throw 'plain string'; // eslint-disable-line no-throw-literal
  });
  node.registerFunction('node::hang', () => new Promise(() => {}));
  const peer = await cppPeer('cpp-caller');
  await peerWaitsForFunctions(peer, ['node::validate', 'node::throw_string', 'node::hang']);

  const err = await peer.fails('call', { function_id: 'node::validate', payload: { id: 'ord_7 ✗' } });
  assert.equal(err.errc, 'Remote');
  assert.equal(err.code, 'invocation_failed');
  assert.equal(err.message, 'invalid order: ord_7 ✗');
  assert.match(err.stacktrace, /^Error: invalid order: ord_7 ✗\n\s+at /);

  const str = await peer.fails('call', { function_id: 'node::throw_string', payload: {} });
  assert.deepEqual([str.errc, str.code, str.message, str.stacktrace], ['Remote', 'invocation_failed', 'plain string', undefined]);

  const missing = await peer.fails('call', { function_id: 'nope::missing', payload: {} });
  assert.deepEqual([missing.errc, missing.code, missing.message], ['Remote', 'function_not_found', 'Function nope::missing not found']);

  // A Node function that never answers: the C++ call's own timeout, not sooner.
  const timedOut = await peer.fails('call', { function_id: 'node::hang', payload: {}, timeout_ms: 300 });
  assert.equal(timedOut.errc, 'Timeout');
  assert.ok(timedOut.elapsed_ms >= 300 && timedOut.elapsed_ms < 3_000, `timed out after ${timedOut.elapsed_ms} ms`);
});

test('typed: Node calls C++ functions registered with RegisterFunction / III_DESCRIBE', TIMEOUT, async (t) => {
  const { cppPeer, worker } = await crossSetup(t);
  const peer = await cppPeer('cpp-typed');
  await peer.ok('register_typed');
  const node = worker('node-caller');
  await waitForFunctions(node, ['cpp::typed::quote', 'cpp::typed::add']);

  // The generated schemas reach Node through discovery.
  const fns = await node.listFunctions();
  const quote = fns.find((f) => f.function_id === 'cpp::typed::quote');
  assert.equal(quote.description, 'Prices a quote request');
  assert.equal(quote.request_format.title, 'QuoteRequest');
  assert.deepEqual(quote.request_format.required, ['customer', 'tier', 'items']);
  assert.deepEqual(quote.request_format.properties.items, { type: 'array', items: { $ref: '#/definitions/LineItem' } });
  assert.deepEqual(quote.request_format.definitions.Tier, { type: 'string', enum: ['basic', 'gold'] });
  assert.equal(quote.response_format.title, 'Quote');
  const add = fns.find((f) => f.function_id === 'cpp::typed::add');
  assert.equal(add.request_format.title, 'Tuple_of_int32_and_int32');

  const order = {
    customer: 'ada',
    tier: 'gold',
    items: [
      { sku: 'A-1', qty: 2, unit_price: 2.5 },
      { sku: 'B-2', qty: 1, unit_price: 10 },
    ],
    coupon: null,
  };
  // The engine adds _caller_worker_id; unknown keys are ignored by the typed decode.
  assert.deepEqual(await node.trigger({ function_id: 'cpp::typed::quote', payload: order }), {
    customer: 'ada',
    units: 3,
    total: 7.5,
    skus: ['A-1', 'B-2'],
    coupon: null,
    max_safe: 9007199254740991,
  });
  assert.equal(await node.trigger({ function_id: 'cpp::typed::add', payload: [3, 4] }), 7);

  // Payloads that do not decode: invocation_failed naming the JSON path.
  const failure = (payload, id = 'cpp::typed::quote') =>
    node.trigger({ function_id: id, payload }).then(() => assert.fail('expected a rejection'), (e) => e);
  const cases = [
    [{ ...order, tier: 'platinum' }, '$.tier: expected one of "basic", "gold"'],
    [{ ...order, items: [{ sku: 'A', qty: -1, unit_price: 1 }] }, '$.items[0].qty: -1 is out of range for uint32'],
    [{ tier: 'basic', items: [] }, '$.customer: missing field'],
    [{ ...order, items: [] }, 'a quote needs at least one item'],
  ];
  for (const [payload, message] of cases) {
    const e = await failure(payload);
    assert.equal(e.code, 'invocation_failed');
    assert.equal(e.message, message);
  }
  const arity = await failure([1], 'cpp::typed::add');
  assert.equal(arity.code, 'invocation_failed');
  assert.equal(arity.message, '$: expected array of length 2');
});

test('typed: C++ trigger<R> of a Node function decodes into the C++ struct', TIMEOUT, async (t) => {
  const { cppPeer, worker } = await crossSetup(t);
  const node = worker('node-typed');
  const seen = [];
  node.registerFunction('node::typed::invoice', async (input) => {
    seen.push(input);
    const lines = input.items.map((i) => ({ sku: i.sku, amount: i.qty * i.unit_price }));
    return {
      customer: input.customer,
      lines,
      total: lines.reduce((s, l) => s + l.amount, 0),
      paid: input.tier === 'gold',
      note: input.coupon,
      tier: input.tier,
      extra: 'ignored by the C++ decode',
    };
  });
  node.registerFunction('node::typed::wrong', async () => ({ customer: 42, lines: [], total: 0, paid: false, note: null, tier: 'basic' }));
  node.registerFunction('node::typed::bad_enum', async () => ({ customer: 'x', lines: [], total: 0, paid: false, note: null, tier: 'silver' }));
  const peer = await cppPeer('cpp-typed-caller');
  await peerWaitsForFunctions(peer, ['node::typed::invoice', 'node::typed::wrong', 'node::typed::bad_enum']);

  const input = { customer: 'grace', tier: 'gold', items: [{ sku: 'Z-9', qty: 3, unit_price: 1.25 }], coupon: 'SPRING' };
  const invoice = await peer.ok('typed_invoice', { function_id: 'node::typed::invoice', input });
  assert.deepEqual(invoice, {
    customer: 'grace',
    lines: [{ sku: 'Z-9', amount: 3.75 }],
    total: 3.75,
    paid: true,
    note: 'SPRING',
    tier: 'gold',
  });
  // The C++ encoding of QuoteRequest as Node received it (plus the engine's caller id).
  const cpp = await workerIdOf(node, 'cpp-typed-caller');
  assert.deepEqual(seen, [{ ...input, _caller_worker_id: cpp.id }]);

  // An optional left unset is encoded as null and decodes back to nullopt.
  const noCoupon = await peer.ok('typed_invoice', { function_id: 'node::typed::invoice', input: { ...input, tier: 'basic', coupon: null } });
  assert.equal(noCoupon.note, null);
  assert.equal(noCoupon.paid, false);
  assert.equal(seen[1].coupon, null);

  // A result that does not decode into Invoice: Serde naming the path.
  const wrong = await peer.fails('typed_invoice', { function_id: 'node::typed::wrong', input });
  assert.deepEqual([wrong.errc, wrong.message], ['Serde', '$.customer: expected string']);
  const badEnum = await peer.fails('typed_invoice', { function_id: 'node::typed::bad_enum', input });
  assert.deepEqual([badEnum.errc, badEnum.message], ['Serde', '$.tier: expected one of "basic", "gold"']);
});
