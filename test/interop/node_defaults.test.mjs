// A Node worker with iii-sdk's default options (OpenTelemetry and worker gauges on), against
// iii-test-engine. Kept in its own file: the SDK's OTel state is process-global.
//
// iii-sdk 0.11.2 opens its telemetry socket on `<address>/otel` (a HEAD-era route). A 0.10
// engine, and this test engine, refuse that path with 404; the SDK then retries in the
// background, and its shutdown() waits ~30 s for a span flush that cannot happen (hence the
// longer timeout). What matters here is that the worker connection is unaffected, that no
// phantom worker appears, and that the trace context survives the engine.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { registerWorker } from 'iii-sdk';

import { connectWorker, pollUntil, startEngine } from './engine.mjs';

test('default options: calls work, trace id is continuous, no phantom worker', { timeout: 90_000 }, async (t) => {
  const engine = await startEngine();
  const workers = [];
  t.after(async () => {
    for (const w of workers.reverse()) await w.shutdown().catch(() => {});
    await engine.stop();
  });
  // One worker per process with OTel on: iii-sdk 0.11.2 keeps its OTel state in module globals,
  // and a second registerWorker() with OTel on replaces the first one's telemetry connection
  // without closing it, which then reconnects forever (an SDK limitation, not the engine's).
  const callee = connectWorker(engine.url, { name: 'defaults-callee' });
  workers.push(callee);
  callee.registerFunction('greet::hello', async ({ name }) => `Hello, ${name}!`);
  const caller = registerWorker(engine.url, { workerName: 'defaults-caller' });
  workers.push(caller);
  // Called through the engine, this handler runs in the SDK's `call chain::outer` span, so its
  // nested call carries a traceparent (a top-level trigger() has no active span and sends none).
  caller.registerFunction('chain::outer', async (input) =>
    caller.trigger({ function_id: 'greet::hello', payload: { name: input.name } }),
  );

  await pollUntil(() => caller.listFunctions(), (fns) => fns.some((f) => f.function_id === 'greet::hello'), {
    what: 'greet::hello',
  });
  assert.equal(await caller.trigger({ function_id: 'greet::hello', payload: { name: 'World' } }), 'Hello, World!');
  assert.equal(await caller.trigger({ function_id: 'chain::outer', payload: { name: 'Trace' } }), 'Hello, Trace!');

  const names = (await pollUntil(
    () => caller.listWorkers(),
    (ws) => ws.filter((w) => w.runtime === 'node').length === 2,
    { what: 'both workers with metadata' },
  )).map((w) => w.name);
  assert.deepEqual(names.sort(), ['defaults-callee', 'defaults-caller'], 'telemetry creates no worker entry');

  // Trace context: the caller sends a traceparent; the callee receives one with the same trace id.
  const frames = engine.frames();
  const isNested = (f) => f.frame?.type === 'invokefunction' && f.frame.function_id === 'greet::hello' && f.frame.data?.name === 'Trace';
  const out = frames.find((f) => f.dir === 'in' && isNested(f));
  const fwd = frames.find((f) => f.dir === 'out' && isNested(f));
  assert.ok(out && fwd, 'both legs of the call are in the frame log');
  const traceId = (tp) => /^00-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/.exec(tp ?? '')?.[1];
  assert.ok(traceId(out.frame.traceparent), `caller sent a W3C traceparent: ${out.frame.traceparent}`);
  assert.equal(traceId(fwd.frame.traceparent), traceId(out.frame.traceparent), 'trace id continuous through the engine');

  // Shutting down flushes the spans. With no /otel route they were never exported, so the flush
  // waits for the OTel span processor's 30 s timeout and rejects. Recorded, not asserted: a
  // 0.10 engine behaves the same; a HEAD engine accepts /otel.
  const t0 = Date.now();
  const outcome = await caller.shutdown().then(
    () => 'resolved',
    (err) => `rejected: ${err?.message ?? String(err)}`,
  );
  t.diagnostic(`shutdown() of the OTel-enabled worker took ${Date.now() - t0} ms and ${outcome}`);
});
