// An official Node SDK worker in its own process, for tests that kill a worker mid-call.
//
//   node node_child_worker.mjs <engine url> <worker name>
//
// Registers `<name>::hang` (reports {"event":"invoked","payload":...} on stdout and never
// answers) and `<name>::echo` (returns its payload). End of stdin: shuts down and exits.

import { createInterface } from 'node:readline';

import { connectWorker } from './engine.mjs';

const [url, name] = process.argv.slice(2);
if (!url || !name) {
  console.error('usage: node node_child_worker.mjs <engine url> <worker name>');
  process.exit(2);
}

const report = (msg) => process.stdout.write(`${JSON.stringify(msg)}\n`);

const worker = connectWorker(url, { name });
worker.registerFunction(`${name}::hang`, (payload) => {
  report({ event: 'invoked', function_id: `${name}::hang`, payload });
  return new Promise(() => {});
});
worker.registerFunction(`${name}::echo`, async (payload) => payload);
report({ event: 'started', pid: process.pid });

createInterface({ input: process.stdin }).on('close', async () => {
  await worker.shutdown().catch(() => {});
  process.exit(0);
});
