// Node workers only, against iii-test-engine: discovery (listFunctions / listWorkers /
// listTriggers / listTriggerTypes), functions-available, and cleanup after a disconnect.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { deferred, pollUntil, setup, waitForFunctions, within } from './engine.mjs';

const TIMEOUT = { timeout: 30_000 };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const SDK_VERSION = '0.11.2';

test('listFunctions / listWorkers / listTriggers / listTriggerTypes', TIMEOUT, async (t) => {
  const { worker } = await setup(t);
  const a = worker('lister-a');
  a.registerFunction('orders::create', async () => ({}), {
    description: 'Create an order',
    metadata: { team: 'orders', tier: 1 },
    request_format: { type: 'object', properties: { item: { type: 'string' } }, required: ['item'] },
  });
  a.registerFunction('orders::list', async () => []);
  a.registerTrigger({ type: 'cron', function_id: 'orders::list', config: { expression: '0 0 2 * * *' } });
  const b = worker('lister-b');

  // Functions: worker functions with all five keys, no engine:: built-ins.
  const fns = await waitForFunctions(b, ['orders::create', 'orders::list']);
  assert.deepEqual(fns.map((f) => f.function_id).sort(), ['orders::create', 'orders::list']);
  const create = fns.find((f) => f.function_id === 'orders::create');
  assert.deepEqual(create, {
    function_id: 'orders::create',
    description: 'Create an order',
    request_format: { type: 'object', properties: { item: { type: 'string' } }, required: ['item'] },
    response_format: null,
    metadata: { team: 'orders', tier: 1 },
  });
  const list = fns.find((f) => f.function_id === 'orders::list');
  assert.deepEqual(list, { function_id: 'orders::list', description: null, request_format: null, response_format: null, metadata: null });

  // Workers: both Node workers with the metadata the SDK registered (void call, so poll).
  const workers = await pollUntil(
    () => b.listWorkers(),
    (ws) => ['lister-a', 'lister-b'].every((n) => ws.some((w) => w.name === n && w.runtime === 'node')),
    { what: 'both workers with their metadata' },
  );
  assert.equal(workers.length, 2, `exactly the two worker connections: ${JSON.stringify(workers)}`);
  const wa = workers.find((w) => w.name === 'lister-a');
  assert.match(wa.id, UUID);
  assert.equal(wa.runtime, 'node');
  assert.equal(wa.version, SDK_VERSION);
  assert.equal(wa.status, 'connected');
  assert.equal(wa.pid, process.pid);
  assert.equal(typeof wa.os, 'string');
  assert.equal(wa.ip_address, '127.0.0.1');
  assert.equal(typeof wa.connected_at_ms, 'number');
  assert.ok(Math.abs(wa.connected_at_ms - Date.now()) < 60_000, 'connected_at_ms is epoch milliseconds');
  assert.equal(wa.function_count, 2);
  assert.deepEqual([...wa.functions].sort(), ['orders::create', 'orders::list']);
  assert.equal(typeof wa.active_invocations, 'number');
  const wb = workers.find((w) => w.name === 'lister-b');
  assert.equal(wb.function_count, 0);
  assert.deepEqual(wb.functions, []);

  // Triggers: the cron binding, stored as registered.
  const triggers = await pollUntil(() => b.listTriggers(), (ts) => ts.length > 0, { what: 'the cron trigger' });
  assert.equal(triggers.length, 1);
  assert.match(triggers[0].id, UUID);
  assert.equal(triggers[0].trigger_type, 'cron');
  assert.equal(triggers[0].function_id, 'orders::list');
  assert.deepEqual(triggers[0].config, { expression: '0 0 2 * * *' });

  // Trigger types: the engine's built-ins; engine:: ones only with includeInternal.
  const types = await b.listTriggerTypes();
  const ids = types.map((tt) => tt.id);
  for (const id of ['http', 'cron', 'durable:subscriber']) assert.ok(ids.includes(id), `${id} in ${ids}`);
  assert.ok(!ids.some((id) => id.startsWith('engine::')), `no engine:: types without includeInternal: ${ids}`);
  assert.ok(types.every((tt) => typeof tt.description === 'string'));
  const internal = (await b.listTriggerTypes(true)).map((tt) => tt.id);
  assert.ok(internal.includes('engine::functions-available'), `${internal}`);
  assert.ok(internal.includes('engine::workers-available'), `${internal}`);
});

test('functions-available: fires after a registration and after a disconnect', TIMEOUT, async (t) => {
  const { worker } = await setup(t, { functionsAvailableMs: 200 });
  const watcher = worker('watcher');
  const notifications = [];
  let waiter = null;
  const waitForNotification = (predicate, what) => {
    const found = notifications.find(predicate);
    if (found) return Promise.resolve(found);
    const d = deferred();
    waiter = { predicate, resolve: d.resolve };
    return within(d.promise, 10_000, what);
  };
  const unsubscribe = watcher.onFunctionsAvailable((functions) => {
    notifications.push(functions);
    if (waiter && waiter.predicate(functions)) {
      waiter.resolve(functions);
      waiter = null;
    }
  });
  const ids = (fns) => fns.map((f) => f.function_id);

  // Subscribing registers the watcher's own callback function, which changes the set.
  const first = await waitForNotification(
    (fns) => ids(fns).some((id) => id.startsWith('engine.on_functions_available.')),
    'the first notification (the watcher\'s own callback function)',
  );
  // The list is unfiltered: engine:: built-ins are included (spec 5.7).
  assert.ok(ids(first).includes('engine::functions::list'), `engine:: functions listed: ${ids(first)}`);
  assert.ok(first.every((f) => 'description' in f && 'metadata' in f), 'FunctionInfo items');

  const other = worker('late');
  other.registerFunction('late::fn', async () => 1, { description: 'registered late' });
  const added = await waitForNotification((fns) => ids(fns).includes('late::fn'), 'a notification listing late::fn');
  assert.equal(added.find((f) => f.function_id === 'late::fn').description, 'registered late');

  await other.shutdown();
  const removed = await waitForNotification(
    (fns) => notifications.indexOf(fns) > notifications.indexOf(added) && !ids(fns).includes('late::fn'),
    'a notification without late::fn after its worker left',
  );
  assert.ok(ids(removed).some((id) => id.startsWith('engine.on_functions_available.')));

  unsubscribe();
});

test('disconnect cleanup: functions, worker and triggers disappear', TIMEOUT, async (t) => {
  const { worker } = await setup(t);
  const temp = worker('temporary');
  temp.registerFunction('temp::fn', async () => 'here');
  temp.registerTrigger({ type: 'cron', function_id: 'temp::fn', config: { expression: '* * * * * *' } });
  const observer = worker('observer');
  await waitForFunctions(observer, ['temp::fn']);
  assert.equal(await observer.trigger({ function_id: 'temp::fn', payload: {} }), 'here');
  await pollUntil(() => observer.listTriggers(), (ts) => ts.some((tr) => tr.function_id === 'temp::fn'), {
    what: 'the trigger of temp::fn',
  });
  await pollUntil(() => observer.listWorkers(), (ws) => ws.some((w) => w.name === 'temporary'), {
    what: 'the temporary worker in listWorkers',
  });

  await temp.shutdown();

  await pollUntil(() => observer.listFunctions(), (fns) => !fns.some((f) => f.function_id === 'temp::fn'), {
    what: 'temp::fn to disappear',
  });
  const workers = await pollUntil(() => observer.listWorkers(), (ws) => !ws.some((w) => w.name === 'temporary'), {
    what: 'the temporary worker to disappear',
  });
  assert.deepEqual(workers.map((w) => w.name), ['observer']);
  assert.deepEqual(await observer.listTriggers(), []);
  await assert.rejects(observer.trigger({ function_id: 'temp::fn', payload: {} }), {
    code: 'function_not_found',
    message: 'Function temp::fn not found',
  });
});

test('disconnect mid-call: the caller gets invocation_stopped at once', TIMEOUT, async (t) => {
  const { worker } = await setup(t);
  const started = deferred();
  const stuck = worker('stuck');
  stuck.registerFunction('stuck::forever', async () => {
    started.resolve();
    return new Promise(() => {}); // never answers
  });
  const caller = worker('caller');
  await waitForFunctions(caller, ['stuck::forever']);

  const call = caller.trigger({ function_id: 'stuck::forever', payload: {}, timeoutMs: 20_000 });
  call.catch(() => {}); // handled below; avoid an unhandled rejection meanwhile
  await within(started.promise, 10_000, 'the handler to start');
  const active = await caller.listWorkers();
  assert.equal(active.find((w) => w.name === 'stuck').active_invocations, 1);
  assert.ok(active.find((w) => w.name === 'caller').active_invocations >= 1, 'the pending call counts for the caller');

  const t0 = Date.now();
  await stuck.shutdown();
  await assert.rejects(call, { code: 'invocation_stopped', message: 'Invocation stopped' });
  assert.ok(Date.now() - t0 < 5_000, 'not a local timeout');
});
