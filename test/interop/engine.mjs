// Helpers for the interop tests: start one iii-test-engine per test, connect official Node SDK
// workers to it, and poll observable state with a deadline.
//
// The engine binary comes from $III_TEST_ENGINE (meson passes it; see run.sh).

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';

import { registerWorker } from 'iii-sdk';

const STARTUP_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;

export function engineBinary() {
  const path = process.env.III_TEST_ENGINE;
  if (!path) throw new Error('III_TEST_ENGINE is not set (path of the iii-test-engine binary)');
  return path;
}

/**
 * Spawns `iii-test-engine --port 0 [--functions-available-ms N] [--generation G] [--queue-worker]
 * [--tls-cert F --tls-key F] --log <tmp>` and resolves once it printed its listening line.
 *
 * Returns { url, port, frames(), stop() }. frames() parses the engine's frame log (one JSON
 * object per frame in and out); stop() ends the process (SIGTERM, then SIGKILL) and removes the
 * log. Register stop() with t.after() so that it runs even when the test fails.
 */
export async function startEngine({ functionsAvailableMs, generation, queueWorker, tls } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'iii-interop-'));
  const logFile = join(dir, 'frames.jsonl');
  const args = ['--port', '0', '--log', logFile];
  if (functionsAvailableMs !== undefined) args.push('--functions-available-ms', String(functionsAvailableMs));
  // The engine release to reproduce ('0.10' when absent: iii-test-engine --generation).
  if (generation !== undefined) args.push('--generation', generation);
  if (queueWorker) args.push('--queue-worker');
  // tls: {cert, key} PEM files: the engine then serves wss:// only.
  if (tls) args.push('--tls-cert', tls.cert, '--tls-key', tls.key);

  const child = spawn(engineBinary(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));

  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`iii-test-engine did not report its port within ${STARTUP_TIMEOUT_MS} ms; stderr:\n${stderr}`));
    }, STARTUP_TIMEOUT_MS);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`iii-test-engine exited early (code ${code}, signal ${signal}); stderr:\n${stderr}`));
    });
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      const m = /^iii-test-engine listening on (wss?:\/\/\S+)$/.exec(line.trim());
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
  });

  let stopped = false;
  return {
    url,
    port: Number(new URL(url).port),
    get stderr() {
      return stderr;
    },
    /** Every frame the engine saw or sent so far: {t, worker, dir: 'in'|'out', binary, frame}. */
    frames() {
      let text = '';
      try {
        text = readFileSync(logFile, 'utf8');
      } catch {
        return [];
      }
      return text
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map((line) => JSON.parse(line));
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * An official Node SDK worker connected to `url`. OpenTelemetry and the worker gauges are off,
 * so that the only connection is the worker connection (defaults.test.mjs covers the defaults).
 * Register `() => worker.shutdown()` with t.after().
 */
export function connectWorker(url, { name, ...options } = {}) {
  return registerWorker(url, {
    workerName: name,
    otel: { enabled: false },
    enableMetricsReporting: false,
    invocationTimeoutMs: 10_000,
    ...options,
  });
}

/**
 * Polls `probe` (sync or async) until `accept(value)` is true; returns that value. Throws with
 * the last value seen when `timeoutMs` passes. For state the engine does not acknowledge
 * (registrations), polling observable state is the only synchronisation available.
 */
export async function pollUntil(probe, accept, { timeoutMs = 5_000, intervalMs = 20, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  let lastError;
  for (;;) {
    try {
      last = await probe();
      lastError = undefined;
      if (accept(last)) return last;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const detail = lastError ? `last error: ${lastError.stack ?? lastError}` : `last value: ${JSON.stringify(last)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ${detail}`);
    }
    await delay(intervalMs);
  }
}

/** Resolves when the listFunctions() of `worker` contains every id in `ids`. */
export function waitForFunctions(worker, ids, options = {}) {
  return pollUntil(
    () => worker.listFunctions(),
    (fns) => ids.every((id) => fns.some((f) => f.function_id === id)),
    { what: `functions ${ids.join(', ')} to be listed`, ...options },
  );
}

/** A promise with its resolve/reject exposed (an event the test waits for). */
export function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Rejects with a clear message when `promise` does not settle within `ms`. */
export async function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Standard per-test setup: an engine and a factory of workers, all torn down by t.after() in
 * reverse order (workers first, then the engine).
 */
export async function setup(t, engineOptions = {}) {
  const engine = await startEngine(engineOptions);
  const workers = [];
  t.after(async () => {
    for (const w of workers.reverse()) {
      try {
        await w.shutdown();
      } catch {
        // already shut down by the test
      }
    }
    await engine.stop();
  });
  const worker = (name, options = {}) => {
    const w = connectWorker(engine.url, { name, ...options });
    workers.push(w);
    return w;
  };
  return { engine, worker };
}
