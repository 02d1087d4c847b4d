// A Node worker with iii-sdk's default options (OpenTelemetry and worker gauges on), against
// iii-test-engine. Kept in its own file: the SDK's OTel state is process-global.
//
// iii-sdk 0.11.2 opens its telemetry socket on `<address>/otel`, the HEAD engine's
// telemetry-only route, which the test engine serves too: the spans arrive there as `OTLP`
// binary frames, and the telemetry socket is not a worker.

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

  // Shutting down flushes the spans to /otel; the caller's spans carry the call's trace id.
  const t0 = Date.now();
  await caller.shutdown();
  t.diagnostic(`shutdown() of the OTel-enabled worker took ${Date.now() - t0} ms`);
  const spanTraceIds = () => {
    const ids = new Set();
    for (const f of engine.frames()) {
      if (!f.binary || typeof f.frame !== 'string' || !f.frame.startsWith('OTLP')) continue;
      for (const rs of JSON.parse(f.frame.slice(4)).resourceSpans ?? [])
        for (const ss of rs.scopeSpans ?? []) for (const span of ss.spans ?? []) ids.add(span.traceId);
    }
    return [...ids];
  };
  await pollUntil(async () => spanTraceIds(), (ids) => ids.includes(traceId(out.frame.traceparent)), {
    what: 'an OTLP export on /otel with the call\'s trace id',
  });
});
