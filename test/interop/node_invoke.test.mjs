// Node workers only, against iii-test-engine: invocations (sync, void, enqueue, errors).
// Each test starts its own engine; see engine.mjs.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { TriggerAction } from 'iii-sdk';

import { deferred, pollUntil, setup, waitForFunctions, within } from './engine.mjs';

const TIMEOUT = { timeout: 30_000 };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The engine-assigned id of the worker called `name`, once its metadata arrived. */
async function workerIdOf(sdk, name) {
  const workers = await pollUntil(
    () => sdk.listWorkers(),
    (ws) => ws.some((w) => w.name === name),
    { what: `worker ${name} in listWorkers` },
  );
  return workers.find((w) => w.name === name).id;
}

test('register and call: payloads round-trip, _caller_worker_id is injected', TIMEOUT, async (t) => {
  const { worker } = await setup(t);
  const callee = worker('callee');
  const seen = [];
  callee.registerFunction('math::add', async (input) => {
    seen.push(input);
    return { sum: input.a + input.b, echo: input.nested };
  });
  callee.registerFunction('text::upper', async (input) => input.toUpperCase());
  callee.registerFunction('util::nothing', async () => null);

  const caller = worker('caller');
  await waitForFunctions(caller, ['math::add', 'text::upper', 'util::nothing']);

  const nested = { list: [1, 2.5, 'três', null, true, { deep: ['x'] }], big: 9007199254740991, empty: {} };
  const result = await caller.trigger({ function_id: 'math::add', payload: { a: 2, b: 3, nested } });
  assert.deepEqual(result, { sum: 5, echo: nested });

  // The engine adds the caller's worker id to object payloads (spec 3.8).
  const callerId = await workerIdOf(caller, 'caller');
  assert.equal(seen.length, 1);
  assert.equal(seen[0]._caller_worker_id, callerId);
  assert.match(callerId, UUID);

  // Non-object payloads are passed untouched.
  assert.equal(await caller.trigger({ function_id: 'text::upper', payload: 'héllo wörld' }), 'HÉLLO WÖRLD');

  // A null result arrives as "no result" (spec 9.10): the SDK resolves with undefined or null.
  assert.equal((await caller.trigger({ function_id: 'util::nothing', payload: {} })) ?? null, null);

  // A worker can call its own function through the engine.
  assert.deepEqual(await callee.trigger({ function_id: 'math::add', payload: { a: 1, b: 1, nested: 0 } }), {
    sum: 2,
    echo: 0,
  });
});

test('concurrent calls are matched to their results', TIMEOUT, async (t) => {
  const { worker } = await setup(t);
  const callee = worker('callee');
  callee.registerFunction('slow::echo', async ({ n, wait }) => {
    await new Promise((r) => setTimeout(r, wait));
    return n;
  });
  const caller = worker('caller');
  await waitForFunctions(caller, ['slow::echo']);
  // Later calls finish first, so results come back out of order.
  const calls = Array.from({ length: 32 }, (_, n) =>
    caller.trigger({ function_id: 'slow::echo', payload: { n, wait: (32 - n) * 3 } }),
  );
  assert.deepEqual(await Promise.all(calls), Array.from({ length: 32 }, (_, n) => n));
});

test('void: fire and forget, callee runs, caller gets no result frame', TIMEOUT, async (t) => {
  const { engine, worker } = await setup(t);
  const ran = deferred();
  const callee = worker('callee');
  callee.registerFunction('events::sink', async (input) => {
    ran.resolve(input);
    return { ignored: true };
  });
  const caller = worker('caller');
  await waitForFunctions(caller, ['events::sink']);

  const returned = await caller.trigger({
    function_id: 'events::sink',
    payload: { event: 'page_view' },
    action: TriggerAction.Void(),
  });
  assert.equal(returned, undefined);
  const input = await within(ran.promise, 10_000, 'the void call to reach the callee');
  assert.equal(input.event, 'page_view');

  // Void to an unknown function: silently nothing (no function_not_found for void, spec 3.2).
  assert.equal(
    await caller.trigger({ function_id: 'events::nobody', payload: {}, action: TriggerAction.Void() }),
    undefined,
  );

  // Wire view: the callee got a fresh non-null invocation id and replied; the engine swallowed
  // the reply. Wait until the reply reached the engine, then round-trip once more on the caller
  // so that anything the engine would have sent it for the void call has been sent.
  const forwarded = await pollUntil(
    () => engine.frames(),
    (fs) => fs.some((f) => f.dir === 'in' && f.frame?.type === 'invocationresult' && f.frame.function_id === 'events::sink'),
    { what: 'the callee to answer the void call' },
  );
  await caller.listFunctions();
  const frames = engine.frames();
  const invoke = forwarded.find((f) => f.dir === 'out' && f.frame?.type === 'invokefunction' && f.frame.function_id === 'events::sink');
  assert.ok(invoke, 'engine forwarded the void call');
  assert.match(invoke.frame.invocation_id, UUID);
  assert.equal(invoke.frame.action, undefined, 'forwarded invokefunction carries no action');
  const sent = frames.filter(
    (f) => f.dir === 'in' && f.frame?.type === 'invokefunction' && f.frame.function_id.startsWith('events::'),
  );
  assert.ok(sent.every((f) => f.frame.action?.type === 'void'));
  assert.equal(sent.length, 2);
  assert.ok(sent.every((f) => f.frame.invocation_id === undefined), 'Node omits invocation_id on void calls');
  const callerWorker = sent[0].worker;
  const leaked = frames.filter(
    (f) => f.dir === 'out' && f.worker === callerWorker && f.frame?.type === 'invocationresult' &&
      (f.frame.function_id === 'events::sink' || f.frame.function_id === 'events::nobody'),
  );
  assert.deepEqual(leaked, [], 'no invocationresult for void calls');
});

test('enqueue to the "default" queue: receipt, then delivery without _caller_worker_id', TIMEOUT, async (t) => {
  const { worker } = await setup(t);
  const delivered = deferred();
  const consumer = worker('consumer');
  consumer.registerFunction('jobs::process', async (input) => {
    delivered.resolve(input);
    return null;
  });
  const producer = worker('producer');
  await waitForFunctions(producer, ['jobs::process']);

  const receipt = await producer.trigger({
    function_id: 'jobs::process',
    payload: { job: 42, tags: ['a', 'b'] },
    action: TriggerAction.Enqueue({ queue: 'default' }),
  });
  assert.deepEqual(Object.keys(receipt), ['messageReceiptId']);
  assert.match(receipt.messageReceiptId, UUID);

  const input = await within(delivered.promise, 10_000, 'the queued job to be delivered');
  assert.deepEqual(input, { job: 42, tags: ['a', 'b'] }, 'queue delivery passes data unchanged');
});

test('enqueue: the ack does not depend on the function existing', TIMEOUT, async (t) => {
  const { worker } = await setup(t);
  const producer = worker('producer');
  const receipt = await producer.trigger({
    function_id: 'jobs::nobody',
    payload: {},
    action: TriggerAction.Enqueue({ queue: 'default' }),
  });
  assert.match(receipt.messageReceiptId, UUID);
});

test('enqueue to an unknown queue: enqueue_error "Queue \'x\' not found"', TIMEOUT, async (t) => {
  const { worker } = await setup(t);
  const producer = worker('producer');
  await assert.rejects(
    producer.trigger({ function_id: 'jobs::process', payload: { job: 1 }, action: TriggerAction.Enqueue({ queue: 'x' }) }),
    { code: 'enqueue_error', message: "Queue 'x' not found" },
  );
});

test('enqueue to the fifo "payment" queue: group field required and non-null', TIMEOUT, async (t) => {
  const { worker } = await setup(t);
  const delivered = deferred();
  const consumer = worker('consumer');
  consumer.registerFunction('payments::settle', async (input) => delivered.resolve(input));
  const producer = worker('producer');
  await waitForFunctions(producer, ['payments::settle']);
  const enqueue = (payload) =>
    producer.trigger({ function_id: 'payments::settle', payload, action: TriggerAction.Enqueue({ queue: 'payment' }) });

  await assert.rejects(enqueue({ amount: 1 }), {
    code: 'enqueue_error',
    message: "FIFO queue 'payment' requires field 'transaction_id' in data, but it was not found",
  });
  await assert.rejects(enqueue({ amount: 1, transaction_id: null }), {
    code: 'enqueue_error',
    message: "FIFO queue 'payment': field 'transaction_id' must not be null",
  });
  const receipt = await enqueue({ amount: 1, transaction_id: 'tx-1' });
  assert.match(receipt.messageReceiptId, UUID);
  assert.deepEqual(await within(delivered.promise, 10_000, 'the payment to be delivered'), { amount: 1, transaction_id: 'tx-1' });
});

test('unknown function: function_not_found "Function <id> not found"', TIMEOUT, async (t) => {
  const { worker } = await setup(t);
  const caller = worker('caller');
  await assert.rejects(caller.trigger({ function_id: 'nope::missing', payload: { a: 1 } }), {
    code: 'function_not_found',
    message: 'Function nope::missing not found',
  });
});

test('handler error: invocation_failed with the message and stack preserved', TIMEOUT, async (t) => {
  const { worker } = await setup(t);
  const callee = worker('callee');
  callee.registerFunction('orders::validate', async (input) => {
    throw new Error(`invalid order: ${input.id}`);
  });
  callee.registerFunction('orders::throw_string', async () => {
    throw 'plain string'; // eslint-disable-line no-throw-literal
  });
  const caller = worker('caller');
  await waitForFunctions(caller, ['orders::validate', 'orders::throw_string']);

  const err = await caller.trigger({ function_id: 'orders::validate', payload: { id: 'ord_7' } }).then(
    () => assert.fail('expected a rejection'),
    (e) => e,
  );
  assert.equal(err.code, 'invocation_failed');
  assert.equal(err.message, 'invalid order: ord_7');
  assert.match(err.stacktrace, /invalid order: ord_7/);

  await assert.rejects(caller.trigger({ function_id: 'orders::throw_string', payload: {} }), {
    code: 'invocation_failed',
    message: 'plain string',
  });
});
