// Helpers for the cross-language tests: spawn the C++ peer (cpp_peer.cpp, a worker of our SDK
// driven by JSON lines) and Node workers in child processes (node_child_worker.mjs), and tear
// everything down in one t.after hook, in order: peers and children, Node workers, engine.
//
// The peer binary comes from $III_CPP_PEER (meson passes it; see run.sh).

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

import { connectWorker, startEngine } from './engine.mjs';

const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
const COMMAND_TIMEOUT_MS = 15_000;

export function cppPeerBinary() {
  const path = process.env.III_CPP_PEER;
  if (!path) throw new Error('III_CPP_PEER is not set (path of the cpp_peer binary)');
  return path;
}

/**
 * Line-oriented JSON over a child's stdout: every parsed line goes to `onLine`; waitLine()
 * resolves with the first line (seen so far or later) that `accept` matches.
 */
function jsonLines(child, onLine = () => {}) {
  const lines = [];
  const waiters = new Set();
  createInterface({ input: child.stdout }).on('line', (text) => {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      msg = { event: 'unparsed', text };
    }
    lines.push(msg);
    onLine(msg);
    for (const w of [...waiters]) {
      if (w.accept(msg)) {
        waiters.delete(w);
        clearTimeout(w.timer);
        w.resolve(msg);
      }
    }
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  exited.then(({ code, signal }) => {
    for (const w of waiters) {
      clearTimeout(w.timer);
      w.reject(new Error(`${w.what}: the process exited (code ${code}, signal ${signal}) first`));
    }
    waiters.clear();
  });
  const waitLine = (accept, { timeoutMs = 5_000, what = 'a line' } = {}) => {
    const seen = lines.find(accept);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const w = { accept, resolve, reject, what };
      w.timer = setTimeout(() => {
        waiters.delete(w);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      waiters.add(w);
    });
  };
  return { lines, waitLine, exited };
}

/** Ends a child: stdin closed (a graceful exit), then SIGKILL after `graceMs`. */
async function endChild(child, exited, graceMs = STOP_TIMEOUT_MS) {
  if (child.exitCode !== null || child.signalCode !== null) return exited;
  child.stdin?.end();
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  const result = await exited;
  clearTimeout(timer);
  return result;
}

/**
 * Spawns `cpp_peer <url> <name>` (with `env` added to this process's environment) and resolves
 * once it reported "ready" (connected).
 *
 * Returns { name, events, send(cmd, args), ok(cmd, args), fails(cmd, args), waitEvent(accept,
 * options), stop(), stderr }. send() resolves with the raw reply {req, ok, result | error};
 * ok() with the result (throws when the command failed); fails() with the error (throws when it
 * succeeded).
 */
export async function startCppPeer(url, name, { env } = {}) {
  const child = spawn(cppPeerBinary(), [url, name], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  let nextId = 1;
  const pending = new Map();
  const { lines, waitLine, exited } = jsonLines(child, (msg) => {
    if (msg.req !== undefined && pending.has(msg.req)) {
      pending.get(msg.req).resolve(msg);
      pending.delete(msg.req);
    }
  });
  exited.then(({ code, signal }) => {
    for (const p of pending.values()) p.reject(new Error(`cpp_peer exited (code ${code}, signal ${signal}); stderr:\n${stderr}`));
    pending.clear();
  });

  // Every command answers well within the test timeout; a silent peer fails with its name.
  const send = (cmd, args = {}, { timeoutMs = COMMAND_TIMEOUT_MS } = {}) => {
    const req = nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(req);
        reject(new Error(`cpp_peer did not answer ${cmd} within ${timeoutMs} ms; stderr:\n${stderr}`));
      }, timeoutMs);
      const settle = (fn) => (v) => {
        clearTimeout(timer);
        fn(v);
      };
      pending.set(req, { resolve: settle(resolve), reject: settle(reject) });
      child.stdin.write(`${JSON.stringify({ ...args, req, cmd })}\n`);
    });
  };
  const peer = {
    name,
    get stderr() {
      return stderr;
    },
    /** Every event line so far ({event, ...}). */
    get events() {
      return lines.filter((l) => l.event !== undefined);
    },
    send,
    async ok(cmd, args, options) {
      const reply = await send(cmd, args, options);
      if (!reply.ok) throw new Error(`cpp_peer ${cmd} failed: ${JSON.stringify(reply.error)}`);
      return reply.result;
    },
    async fails(cmd, args, options) {
      const reply = await send(cmd, args, options);
      if (reply.ok) throw new Error(`cpp_peer ${cmd} succeeded with ${JSON.stringify(reply.result)}, expected a failure`);
      return reply.error;
    },
    /** The first event (already seen or later) that `accept` matches. */
    waitEvent(accept, options = {}) {
      return waitLine((l) => l.event !== undefined && accept(l), { what: 'a cpp_peer event', ...options });
    },
    async stop() {
      const { code, signal } = await endChild(child, exited);
      if (code !== 0) throw new Error(`cpp_peer ended with code ${code}, signal ${signal}; stderr:\n${stderr}`);
    },
  };
  const ready = await waitLine((l) => l.event === 'ready' || l.event === 'fatal', {
    timeoutMs: READY_TIMEOUT_MS,
    what: 'cpp_peer to connect',
  }).catch(async (err) => {
    child.kill('SIGKILL');
    throw new Error(`${err.message}; stderr:\n${stderr}`);
  });
  if (ready.event !== 'ready') {
    child.kill('SIGKILL');
    throw new Error(`cpp_peer: ${ready.message}; stderr:\n${stderr}`);
  }
  return peer;
}

/**
 * Spawns node_child_worker.mjs (an official Node SDK worker in its own process, so that a test
 * can SIGKILL it). Returns { child, lines, waitLine(accept, options), kill(signal), stop() }.
 */
export function startNodeChild(url, name) {
  const script = fileURLToPath(new URL('./node_child_worker.mjs', import.meta.url));
  const child = spawn(process.execPath, [script, url, name], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const { lines, waitLine, exited } = jsonLines(child);
  return {
    child,
    lines,
    exited,
    get stderr() {
      return stderr;
    },
    waitLine: (accept, options = {}) => waitLine(accept, { what: `a line from ${name}`, ...options }),
    kill: (signal = 'SIGKILL') => child.kill(signal),
    stop: () => endChild(child, exited),
  };
}

/**
 * Per-test setup of the cross-language tests: an engine plus factories of C++ peers, Node
 * workers (in this process) and Node child workers, all torn down by one t.after hook.
 */
export async function crossSetup(t, engineOptions = {}) {
  const engine = await startEngine(engineOptions);
  const peers = [];
  const children = [];
  const workers = [];
  t.after(async () => {
    const errors = [];
    for (const c of children) await c.stop().catch((e) => errors.push(e));
    for (const p of peers) await p.stop().catch((e) => errors.push(e));
    for (const w of workers.reverse()) await w.shutdown().catch(() => {});
    await engine.stop();
    // A peer that did not exit cleanly (crash, hang on shutdown) fails the test.
    if (errors.length > 0) throw errors[0];
  });
  return {
    engine,
    async cppPeer(name, options = {}) {
      const p = await startCppPeer(engine.url, name, options);
      peers.push(p);
      return p;
    },
    worker(name, options = {}) {
      const w = connectWorker(engine.url, { name, ...options });
      workers.push(w);
      return w;
    },
    nodeChild(name) {
      const c = startNodeChild(engine.url, name);
      children.push(c);
      return c;
    },
  };
}
