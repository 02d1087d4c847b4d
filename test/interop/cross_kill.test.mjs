// C++ <-> Node through iii-test-engine: a Node worker (its own process) is SIGKILLed while a C++
// caller waits on a synchronous call to it. The caller must get invocation_stopped as soon as
// the engine sees the connection drop, long before its call timeout, and discovery must show
// the dead worker and its functions gone.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { crossSetup } from './cpp_peer.mjs';
import { pollUntil, within } from './engine.mjs';

const TIMEOUT = { timeout: 30_000 };
const CALL_TIMEOUT_MS = 20_000;
// "At once": the engine notices the closed socket immediately; allow for a loaded machine.
const PROMPT_MS = 2_000;

test('a Node worker killed mid-call: the C++ caller gets invocation_stopped at once; discovery shows the cleanup', TIMEOUT, async (t) => {
  const { cppPeer, nodeChild, worker } = await crossSetup(t);
  const victim = nodeChild('victim');
  const peer = await cppPeer('cpp-caller');
  const observer = worker('node-observer');

  // Before: the victim and its functions are visible from both languages.
  const workersBefore = await pollUntil(
    () => peer.ok('list', { what: 'workers' }),
    (ws) => ws.some((w) => w.name === 'victim' && w.functions.includes('victim::hang')),
    { what: 'the victim worker with its functions, seen from C++', timeoutMs: 10_000 },
  );
  const victimId = workersBefore.find((w) => w.name === 'victim').id;
  assert.equal(workersBefore.find((w) => w.name === 'victim').runtime, 'node');

  // A sync call the victim receives and never answers.
  const call = peer.send('call', { function_id: 'victim::hang', payload: { order: 7 }, timeout_ms: CALL_TIMEOUT_MS }, { timeoutMs: CALL_TIMEOUT_MS + 5_000 });
  const invoked = await victim.waitLine((l) => l.event === 'invoked', { timeoutMs: 10_000 });
  assert.equal(invoked.payload.order, 7);
  // The call is in flight at the engine (counted on the victim) before the kill.
  const busy = await peer.ok('list', { what: 'workers' });
  assert.equal(busy.find((w) => w.id === victimId).active_invocations, 1);

  const killedAt = Date.now();
  assert.ok(victim.kill('SIGKILL'), 'SIGKILL delivered');
  const reply = await within(call, PROMPT_MS, 'the C++ caller to learn that its callee died');
  const sinceKill = Date.now() - killedAt;
  t.diagnostic(`invocation_stopped ${sinceKill} ms after SIGKILL; the call waited ${reply.error?.elapsed_ms} ms in all`);
  assert.equal(reply.ok, false, `the call must fail, got ${JSON.stringify(reply)}`);
  assert.deepEqual([reply.error.errc, reply.error.code, reply.error.message], ['Remote', 'invocation_stopped', 'Invocation stopped']);
  assert.ok(sinceKill < PROMPT_MS, `failed ${sinceKill} ms after the kill`);
  assert.ok(reply.error.elapsed_ms < CALL_TIMEOUT_MS / 4, `the call waited ${reply.error.elapsed_ms} ms in all`);
  const { signal } = await victim.exited;
  assert.equal(signal, 'SIGKILL');

  // Discovery, from C++ and from Node: the worker and its functions are gone; the caller stays.
  const workersAfter = await pollUntil(
    () => peer.ok('list', { what: 'workers' }),
    (ws) => !ws.some((w) => w.id === victimId),
    { what: 'the victim to leave the worker list' },
  );
  assert.ok(workersAfter.some((w) => w.name === 'cpp-caller' && w.status === 'connected'));
  const functions = await peer.ok('list', { what: 'functions' });
  assert.deepEqual(functions.filter((f) => f.function_id.startsWith('victim::')), []);
  assert.ok(!(await observer.listWorkers()).some((w) => w.id === victimId));
  assert.ok(!(await observer.listFunctions()).some((f) => f.function_id.startsWith('victim::')));

  // The C++ worker's connection survived: a new call to the dead function fails cleanly.
  const again = await peer.fails('call', { function_id: 'victim::hang', payload: {} });
  assert.deepEqual([again.code, again.message], ['function_not_found', 'Function victim::hang not found']);
});
