// Node workers only, against iii-test-engine: a custom trigger type provided by one worker and
// bound from another (spec 4.2).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { deferred, pollUntil, setup, waitForFunctions, within } from './engine.mjs';

const TIMEOUT = { timeout: 30_000 };

test('custom trigger type: provider registers, consumer binds, provider fires', TIMEOUT, async (t) => {
  const { engine, worker } = await setup(t);

  const provider = worker('provider');
  const registered = deferred();
  const unregisterCalls = [];
  provider.registerTriggerType(
    { id: 'webhook', description: 'Inbound webhooks' },
    {
      async registerTrigger(config) {
        registered.resolve(config);
      },
      async unregisterTrigger(config) {
        unregisterCalls.push(config);
      },
    },
  );

  const consumer = worker('consumer');
  const received = [];
  consumer.registerFunction('hooks::on_github', async (payload) => {
    received.push(payload);
    return { handled: payload.event };
  });
  // A trigger for a type the engine does not know yet is dropped for good (spec 4.1), so wait
  // until the type is visible before binding.
  await pollUntil(() => consumer.listTriggerTypes(), (types) => types.some((tt) => tt.id === 'webhook'), {
    what: 'trigger type webhook',
  });
  const types = await consumer.listTriggerTypes();
  assert.deepEqual(types.find((tt) => tt.id === 'webhook'), { id: 'webhook', description: 'Inbound webhooks' });
  await waitForFunctions(provider, ['hooks::on_github']);

  const trigger = consumer.registerTrigger({
    type: 'webhook',
    function_id: 'hooks::on_github',
    config: { path: '/github', secret: 's3', events: ['push', 'pull_request'] },
    metadata: { owner: 'consumer' },
  });

  // The engine forwards the registration to the provider's handler.
  const config = await within(registered.promise, 10_000, 'the provider to receive registerTrigger');
  assert.equal(config.function_id, 'hooks::on_github');
  assert.deepEqual(config.config, { path: '/github', secret: 's3', events: ['push', 'pull_request'] });
  assert.deepEqual(config.metadata, { owner: 'consumer' });
  assert.equal(typeof config.id, 'string');

  // The binding is listed, with the consumer's trigger id.
  const listed = await pollUntil(() => consumer.listTriggers(), (ts) => ts.some((tr) => tr.trigger_type === 'webhook'), {
    what: 'the webhook trigger in listTriggers',
  });
  const binding = listed.find((tr) => tr.trigger_type === 'webhook');
  assert.equal(binding.id, config.id, 'the forwarded registertrigger keeps the trigger id');
  assert.equal(binding.function_id, 'hooks::on_github');
  assert.deepEqual(binding.metadata, { owner: 'consumer' });

  // The provider fires the bound function with an ordinary call.
  const result = await provider.trigger({ function_id: config.function_id, payload: { event: 'push', ref: 'main' } });
  assert.deepEqual(result, { handled: 'push' });
  assert.equal(received.length, 1);
  assert.equal(received[0].event, 'push');
  assert.equal(received[0].ref, 'main');

  // Wire view: the provider answered with triggerregistrationresult (no error); the engine only
  // logs it and does not forward it to the consumer (spec 4.2 step 5).
  const frames = await pollUntil(
    () => engine.frames(),
    (fs) => fs.some((f) => f.dir === 'in' && f.frame?.type === 'triggerregistrationresult'),
    { what: 'the provider\'s triggerregistrationresult' },
  );
  const result_ = frames.find((f) => f.dir === 'in' && f.frame?.type === 'triggerregistrationresult');
  assert.deepEqual(
    { id: result_.frame.id, trigger_type: result_.frame.trigger_type, function_id: result_.frame.function_id, error: result_.frame.error },
    { id: config.id, trigger_type: 'webhook', function_id: 'hooks::on_github', error: undefined },
  );
  assert.ok(!frames.some((f) => f.dir === 'out' && f.frame?.type === 'triggerregistrationresult'), 'not forwarded');

  // Unregister: the engine tells the provider and forgets the binding.
  trigger.unregister();
  await pollUntil(() => consumer.listTriggers(), (ts) => !ts.some((tr) => tr.trigger_type === 'webhook'), {
    what: 'the webhook trigger to be removed',
  });
  const providerId = result_.worker;
  const told = engine
    .frames()
    .filter((f) => f.dir === 'out' && f.worker === providerId && f.frame?.type === 'unregistertrigger');
  assert.deepEqual(told.map((f) => f.frame), [{ type: 'unregistertrigger', id: config.id, trigger_type: 'webhook' }]);
  // iii-sdk 0.11.2 ignores an incoming unregistertrigger (spec 4.2 step 7): its handler is not called.
  assert.deepEqual(unregisterCalls, []);
});

test('custom trigger type: consumer disconnect unregisters its triggers at the provider', TIMEOUT, async (t) => {
  const { engine, worker } = await setup(t);
  const provider = worker('provider');
  const registered = deferred();
  provider.registerTriggerType(
    { id: 'ticker', description: 'Ticks' },
    { registerTrigger: async (c) => registered.resolve(c), unregisterTrigger: async () => {} },
  );
  const consumer = worker('consumer');
  consumer.registerFunction('tick::on', async () => null);
  await pollUntil(() => consumer.listTriggerTypes(), (types) => types.some((tt) => tt.id === 'ticker'), {
    what: 'trigger type ticker',
  });
  consumer.registerTrigger({ type: 'ticker', function_id: 'tick::on', config: { every_ms: 10 } });
  const config = await within(registered.promise, 10_000, 'registerTrigger at the provider');

  await consumer.shutdown();
  await pollUntil(
    () => engine.frames(),
    (fs) => fs.some((f) => f.dir === 'out' && f.frame?.type === 'unregistertrigger' && f.frame.id === config.id),
    { what: 'unregistertrigger sent to the provider' },
  );
  assert.deepEqual(await provider.listTriggers(), []);
});
