// Round-trip benchmark with the official Node SDK (iii-sdk, pinned in package-lock.json): the
// twin of samples/bench_roundtrip.cpp, for the comparison run by samples/bench_compare.py.
//
//   npm ci && node bench_roundtrip.mjs --url ws://HOST:PORT [--calls N] [--inflight N]
//       [--payload-bytes N] [--warmup N] [--engine-pid PID] [--json]
//
// Same work as the C++ bench's SDK part: an `echo` function on one worker, called from another
// worker through the engine. This process is the caller; the echo worker is this same script
// re-run in a child process with the hidden `--role echo --url URL`, so that each worker's CPU
// time is measured on its own (process.cpuUsage(), which like getrusage(RUSAGE_SELF) counts
// every thread of the process). The child answers "cpu" on its stdin with "cpu <µs>" on its
// stdout. With --engine-pid, the engine's CPU time is read from /proc/<pid>/task/*/schedstat.
//
// Phases, each after the same warm-up as the C++ bench (default calls/10, clamped to 100..2000):
// sequential (one call at a time) and pipelined (--inflight lanes, default 64, each awaiting its
// own calls one after the other). Per phase: calls/s, p50/p99/p99.9 latency (nearest rank, per
// call with process.hrtime) and CPU µs per call of caller, echo worker and engine. --json prints
// the field names bench_roundtrip --json prints for its SDK phases.
//
// No raw baseline here: the comparison is SDK against SDK through the same engine.

import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, machine, release, type } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';

import { registerWorker } from 'iii-sdk';

const SDK_NAME = 'iii-sdk 0.11.2';
const HERE = fileURLToPath(new URL('.', import.meta.url));
const FUNCTION_ID = 'echo';

// ---- options ---------------------------------------------------------------------------------

const USAGE = `usage: node bench_roundtrip.mjs --url ws://HOST:PORT [options]
  --url URL          the engine to use (required; e.g. iii-test-engine --port 0)
  --calls N          measured calls per phase (default 20000)
  --inflight N       calls in flight in the pipelined phase (default 64)
  --payload-bytes N  size of the JSON payload {"data":"..."} (default 100)
  --warmup N         warm-up calls before each phase (default calls/10, 100..2000)
  --engine-pid PID   the engine's process, to measure its CPU time (Linux /proc)
  --json             print one JSON object instead of the table
`;

function parseCount(name, text, min) {
  if (text === undefined || !/^[0-9]+$/.test(text) || Number(text) < min || !Number.isSafeInteger(Number(text)))
    throw new Error(`${name} needs a number >= ${min}, got '${text ?? ''}'`);
  return Number(text);
}

function parseOptions(argv) {
  const o = { calls: 20000, inflight: 64, payloadBytes: 100, warmup: undefined, json: false, url: '', enginePid: 0, role: '' };
  for (let i = 0; i < argv.length; ++i) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') {
      process.stdout.write(USAGE);
      process.exit(0);
    }
    if (arg === '--json') {
      o.json = true;
      continue;
    }
    if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
    const value = argv[++i];
    if (arg === '--calls') o.calls = parseCount(arg, value, 1);
    else if (arg === '--inflight') o.inflight = parseCount(arg, value, 1);
    else if (arg === '--payload-bytes') o.payloadBytes = parseCount(arg, value, 0);
    else if (arg === '--warmup') o.warmup = parseCount(arg, value, 0);
    else if (arg === '--engine-pid') o.enginePid = parseCount(arg, value, 1);
    else if (arg === '--url') o.url = value;
    else if (arg === '--role') o.role = value;
    else throw new Error(`unknown option '${arg}'`);
  }
  if (!o.url) throw new Error('--url is required');
  if (o.warmup === undefined) o.warmup = Math.min(Math.max(Math.floor(o.calls / 10), 100), 2000);
  return o;
}

// OTel and the worker gauges off, as in the C++ bench (OtelConfig::enabled = false): nothing but
// the calls on the wire, and no second (telemetry) connection per worker.
function workerOptions(name) {
  return { workerName: name, otel: { enabled: false }, enableMetricsReporting: false };
}

// The SDK logs with console.debug, .info and .log, which Node writes to stdout: that is the JSON
// output here and the command channel in the echo worker. Its debug chatter ("OTel disabled",
// "worker registered") is dropped; anything else goes to stderr.
function quietStdout() {
  console.debug = () => {};
  console.log = (...args) => console.error(...args);
  console.info = (...args) => console.error(...args);
}

// `{"data":"abc..."}` of `bytes` bytes of JSON text (at least the 11 of the empty object).
function makePayload(bytes) {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const overhead = '{"data":""}'.length;
  let data = '';
  for (let i = 0; i + overhead < bytes; ++i) data += alphabet[i % alphabet.length];
  return { data };
}

// ---- CPU time --------------------------------------------------------------------------------

function selfCpuUs() {
  const { user, system } = process.cpuUsage();
  return user + system;
}

// The sum over the process's threads of /proc/<pid>/task/<tid>/schedstat (ns on CPU).
function processCpuUs(pid) {
  const dir = `/proc/${pid}/task`;
  try {
    let ns = 0;
    for (const tid of readdirSync(dir)) {
      try {
        ns += Number(readFileSync(`${dir}/${tid}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        // the thread ended between readdir and read
      }
    }
    return ns / 1000;
  } catch {
    return undefined;
  }
}

// ---- echo worker (the hidden --role echo) ----------------------------------------------------

async function runEchoWorker(o) {
  quietStdout();
  const worker = registerWorker(o.url, workerOptions('bench-echo'));
  worker.registerFunction(FUNCTION_ID, async (payload) => payload);
  // Commands from the parent, one a line: "cpu" (answer with the cumulative CPU µs of this
  // process), "quit" (or EOF).
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (line === 'cpu') process.stdout.write(`cpu ${selfCpuUs()}\n`);
    else if (line === 'quit') break;
  }
  lines.close();
  await worker.shutdown();
  process.exit(0);
}

class EchoChild {
  constructor(url) {
    this.child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--role', 'echo', '--url', url], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
    this.waiting = [];
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      if (line.startsWith('cpu ') && this.waiting.length > 0) this.waiting.shift()(Number(line.slice(4)));
    });
  }

  /** Cumulative CPU µs of the echo worker. */
  async cpuUs() {
    const answer = new Promise((resolve) => this.waiting.push(resolve));
    this.child.stdin.write('cpu\n');
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error('the echo worker did not report its CPU time')), 5000);
    });
    try {
      return await Promise.race([answer, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** "quit", then SIGKILL after 5 s. Resolves true when it exited by itself with status 0. */
  async stop() {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.stdin.end('quit\n');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    const { code } = await this.exited;
    clearTimeout(timer);
    return code === 0;
  }
}

// ---- statistics ------------------------------------------------------------------------------

function summarize(mode, inflight, latencyNs, elapsedNs) {
  const calls = latencyNs.length;
  const seconds = elapsedNs / 1e9;
  const sorted = Float64Array.from(latencyNs).sort();
  const percentile = (q) => {
    // nearest rank, as the C++ bench
    const rank = Math.min(Math.max(Math.ceil(q * calls), 1), calls);
    return sorted[rank - 1] / 1000;
  };
  let sum = 0;
  for (const ns of sorted) sum += ns;
  return {
    mode,
    calls,
    inflight,
    seconds,
    callsPerS: seconds > 0 ? calls / seconds : 0,
    p50: percentile(0.5),
    p99: percentile(0.99),
    p999: percentile(0.999),
    mean: sum / calls / 1000,
    max: sorted[calls - 1] / 1000,
    // The distribution for bench_plot.py: the quantiles the C++ bench writes.
    cdf: [...Array.from({ length: 101 }, (_, i) => i / 100), 0.995, 0.999, 0.9995, 0.9999]
      .sort((a, b) => a - b)
      .map((q) => [q, percentile(q)]),
    cpu: {},
  };
}

// ---- provenance ------------------------------------------------------------------------------

// The fields samples/bench_support.hpp (bench::Provenance) records for the C++ benches.
function provenance(loadBefore, startedUtc) {
  let revision = 'unknown';
  try {
    revision = execFileSync('git', ['-C', HERE, 'describe', '--always', '--dirty', '--abbrev=12'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    // not a git checkout
  }
  let sdkVersion = 'unknown';
  try {
    sdkVersion = JSON.parse(readFileSync(new URL('./node_modules/iii-sdk/package.json', import.meta.url), 'utf8')).version;
  } catch {
    // node_modules not installed the usual way
  }
  return {
    sdk: 'iii-sdk (Node)',
    sdk_version: sdkVersion,
    git_revision: revision,
    compiler: `node ${process.version} (V8 ${process.versions.v8})`,
    build_type: 'JavaScript',
    cpu_count: availableParallelism(),
    cpu_model: cpus()[0]?.model ?? 'unknown',
    os: `${type()} ${release()} ${machine()}`,
    load_before: loadBefore,
    load_after: loadavg(),
    started_utc: startedUtc,
    finished_utc: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
  };
}

// ---- caller ----------------------------------------------------------------------------------

// The engine does not acknowledge registrations: retry while `echo` is on its way there.
async function waitForEcho(caller, payload) {
  for (let attempt = 0; ; ++attempt) {
    try {
      const result = await caller.trigger({ function_id: FUNCTION_ID, payload });
      // (The engine adds `_caller_worker_id` to the payload, as the real one does.)
      if (result?.data !== payload.data) throw new Error(`echo returned a different payload: ${JSON.stringify(result)}`);
      return;
    } catch (err) {
      if (err?.code !== 'function_not_found' || attempt >= 500) throw err;
    }
    await delay(20);
  }
}

// `window` lanes share one cursor over `latency`, each awaiting its calls one after the other
// (window 1 is the sequential phase).
async function callAll(caller, payload, latency, window) {
  let next = 0;
  const lane = async () => {
    for (let i; (i = next++) < latency.length; ) {
      const t0 = process.hrtime.bigint();
      await caller.trigger({ function_id: FUNCTION_ID, payload });
      latency[i] = Number(process.hrtime.bigint() - t0);
    }
  };
  const lanes = [];
  for (let k = 0; k < Math.min(window, latency.length); ++k) lanes.push(lane());
  await Promise.all(lanes);
}

async function cpuSnapshot(echo, enginePid) {
  const s = { echo: await echo.cpuUs() };
  if (enginePid) s.engine = processCpuUs(enginePid);
  s.caller = selfCpuUs();
  return s;
}

async function runBench(o) {
  const loadBefore = loadavg();
  const startedUtc = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  quietStdout();
  const payload = makePayload(o.payloadBytes);
  const payloadSize = JSON.stringify(payload).length;
  const echo = new EchoChild(o.url);
  const caller = registerWorker(o.url, workerOptions('bench-caller'));
  const phases = [];
  try {
    await waitForEcho(caller, payload);
    for (const pipelined of [false, true]) {
      const window = pipelined ? o.inflight : 1;
      await callAll(caller, payload, new Float64Array(o.warmup), window);

      const latency = new Float64Array(o.calls);
      const before = await cpuSnapshot(echo, o.enginePid);
      const t0 = process.hrtime.bigint();
      await callAll(caller, payload, latency, window);
      const elapsed = Number(process.hrtime.bigint() - t0);
      const after = await cpuSnapshot(echo, o.enginePid);

      const p = summarize(pipelined ? 'pipelined' : 'sequential', window, latency, elapsed);
      p.cpu.caller = (after.caller - before.caller) / o.calls;
      p.cpu.echo = (after.echo - before.echo) / o.calls;
      if (before.engine !== undefined && after.engine !== undefined) p.cpu.engine = (after.engine - before.engine) / o.calls;
      phases.push(p);
    }
  } finally {
    await caller.shutdown();
    if (!(await echo.stop())) console.error('bench_roundtrip.mjs: the echo worker did not exit cleanly');
  }
  const prov = provenance(loadBefore, startedUtc);
  if (o.json) printJson(o, payloadSize, phases, prov);
  else printTable(o, payloadSize, phases, prov);
}

// ---- output ----------------------------------------------------------------------------------

const round2 = (x) => Math.round(x * 100) / 100;

function printJson(o, payloadSize, phases, prov) {
  const sdk = {};
  for (const p of phases) {
    const cpu = {};
    for (const [who, us] of Object.entries(p.cpu)) cpu[who] = round2(us);
    sdk[p.mode] = {
      calls: p.calls,
      inflight: p.inflight,
      seconds: round2(p.seconds),
      calls_per_s: Math.round(p.callsPerS),
      latency_us: { p50: round2(p.p50), p99: round2(p.p99), p999: round2(p.p999), mean: round2(p.mean), max: round2(p.max) },
      cpu_us_per_call: cpu,
      latency_cdf_us: { q: p.cdf.map(([q]) => q), us: p.cdf.map(([, us]) => round2(us)) },
    };
  }
  const config = {
    calls: o.calls,
    warmup: o.warmup,
    inflight: o.inflight,
    payload_bytes: payloadSize,
    engine_url: o.url,
    engine_spawned: false,
    hardware_threads: availableParallelism(),
    sdk: `${SDK_NAME}, node ${process.version}`,
  };
  process.stdout.write(`${JSON.stringify({ config, sdk, provenance: prov })}\n`);
}

function printTable(o, payloadSize, phases, prov) {
  const out = [];
  out.push(`bench_roundtrip.mjs (${SDK_NAME}, node ${process.version}): \`echo\` round trips, ${o.calls} calls per phase ` +
    `(after ${o.warmup} warm-up), payload ${payloadSize} B of JSON`);
  out.push(`engine: ${o.url} (external), ${availableParallelism()} hardware threads`);
  out.push(`${prov.sdk} ${prov.sdk_version} (${prov.git_revision}), ${prov.compiler}, ` +
    `load average ${prov.load_before[0].toFixed(2)} before, ${prov.load_after[0].toFixed(2)} after`, '');
  out.push(`${''.padEnd(22)} ${'calls/s'.padStart(10)} ${'p50 µs'.padStart(8)} ${'p99 µs'.padStart(8)} ${'p99.9 µs'.padStart(9)}    CPU µs per call`);
  for (const p of phases) {
    const label = `SDK ${p.mode}${p.inflight > 1 ? ` (${p.inflight})` : ''}`;
    const cpu = Object.entries(p.cpu).map(([who, us]) => `${who} ${us.toFixed(1)}`).join('  ');
    out.push(`${label.padEnd(22)} ${p.callsPerS.toFixed(0).padStart(10)} ${p.p50.toFixed(1).padStart(8)} ` +
      `${p.p99.toFixed(1).padStart(8)} ${p.p999.toFixed(1).padStart(9)}    ${cpu}`);
  }
  process.stdout.write(`${out.join('\n')}\n`);
}

// ---- main ------------------------------------------------------------------------------------

let options;
try {
  options = parseOptions(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`bench_roundtrip.mjs: ${err.message}\n${USAGE}`);
  process.exit(2);
}
try {
  if (options.role === 'echo') await runEchoWorker(options);
  else if (options.role) throw new Error(`unknown role '${options.role}'`);
  else await runBench(options);
  process.exit(0);
} catch (err) {
  process.stderr.write(`bench_roundtrip.mjs: ${err?.stack ?? JSON.stringify(err)}\n`);
  process.exit(1);
}
