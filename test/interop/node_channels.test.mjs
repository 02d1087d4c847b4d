// Node workers only, against iii-test-engine: data channels (spec 6), binary data and a text
// message, in both directions between caller and callee.
//
// When a scenario fails and the engine is found not to bridge channel sockets at all (it closes
// every /ws/channels end at once), the test is marked TODO ("engine channel bridging pending"):
// reported visibly as not ok # TODO, not counted as passed, not failing the run. Any other
// failure fails the test.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';

import { ChannelReader, ChannelWriter } from 'iii-sdk';
import { WebSocket } from 'ws';

import { setup, waitForFunctions } from './engine.mjs';

const TIMEOUT = { timeout: 30_000 };

/**
 * Opens the write end of a fresh channel with a raw WebSocket. Resolves with a description of
 * why the engine lacks bridging (it closed the end at once), or null when the end stays open.
 */
async function bridgingMissing(sdk, url) {
  const { writerRef } = await sdk.createChannel();
  const ws = new WebSocket(
    `${url}/ws/channels/${writerRef.channel_id}?key=${encodeURIComponent(writerRef.access_key)}&dir=write`,
  );
  const outcome = await new Promise((resolve) => {
    let timer;
    ws.on('open', () => {
      // A bridged end stays open until someone closes it.
      timer = setTimeout(() => resolve(null), 1_000);
    });
    ws.on('unexpected-response', (_req, res) => resolve(`upgrade refused with HTTP ${res.statusCode}`));
    ws.on('close', (code, reason) => {
      clearTimeout(timer);
      resolve(`the engine closed a freshly opened channel end at once (close ${code} "${reason}")`);
    });
    ws.on('error', (err) => resolve(`channel socket error: ${err.message}`));
  });
  ws.terminate();
  return outcome;
}

/** Runs `scenario`; on failure marks the test TODO if the engine lacks channel bridging. */
async function channelScenario(t, sdkForProbe, url, scenario) {
  try {
    await scenario();
  } catch (err) {
    const missing = await bridgingMissing(sdkForProbe, url).catch(() => null);
    if (missing) {
      t.diagnostic(`engine channel bridging pending: ${missing}`);
      t.todo('engine channel bridging pending');
    }
    throw err;
  }
}

test('channel: createChannel returns two refs of one channel', TIMEOUT, async (t) => {
  const { worker } = await setup(t);
  const sdk = worker('creator');
  const ch = await sdk.createChannel(8);
  assert.ok(ch.writer instanceof ChannelWriter);
  assert.ok(ch.reader instanceof ChannelReader);
  assert.equal(ch.writerRef.direction, 'write');
  assert.equal(ch.readerRef.direction, 'read');
  assert.equal(ch.writerRef.channel_id, ch.readerRef.channel_id);
  assert.equal(ch.writerRef.access_key, ch.readerRef.access_key);
  assert.deepEqual(Object.keys(ch.writerRef).sort(), ['access_key', 'channel_id', 'direction']);
});

test('channel: caller writes bytes and a text message, callee reads them', TIMEOUT, async (t) => {
  const { engine, worker } = await setup(t);
  const callee = worker('reader-side');
  callee.registerFunction('chan::consume', async ({ label, reader }) => {
    // iii-sdk turns a channel ref in the payload into a live ChannelReader.
    assert.ok(reader instanceof ChannelReader, 'the read ref arrives as a ChannelReader');
    const messages = [];
    reader.onMessage((m) => messages.push(m));
    const bytes = await reader.readAll();
    return { label, messages, bytes: bytes.toString('base64') };
  });
  const caller = worker('writer-side');
  await waitForFunctions(caller, ['chan::consume']);

  await channelScenario(t, caller, engine.url, async () => {
    const ch = await caller.createChannel();
    const writerErrors = [];
    ch.writer.stream.on('error', (e) => writerErrors.push(e));

    const call = caller.trigger({ function_id: 'chan::consume', payload: { label: 'up', reader: ch.readerRef }, timeoutMs: 20_000 });
    // More than one 64 KiB frame, then a text message, then a small tail.
    const head = randomBytes(150 * 1024);
    const tail = Buffer.from([0, 1, 2, 0xfe, 0xff]);
    await new Promise((resolve, reject) => ch.writer.stream.write(head, (e) => (e ? reject(e) : resolve())));
    ch.writer.sendMessage('hello from the writer ✓');
    await new Promise((resolve, reject) => ch.writer.stream.write(tail, (e) => (e ? reject(e) : resolve())));
    ch.writer.stream.end();

    const result = await call;
    assert.deepEqual(writerErrors, []);
    assert.equal(result.label, 'up');
    assert.deepEqual(result.messages, ['hello from the writer ✓']);
    const bytes = Buffer.from(result.bytes, 'base64');
    assert.equal(bytes.length, head.length + tail.length);
    assert.ok(bytes.equals(Buffer.concat([head, tail])), 'bytes arrive unchanged and in order');
  });
});

test('channel: callee writes bytes and a text message, caller reads them', TIMEOUT, async (t) => {
  const { engine, worker } = await setup(t);
  const callee = worker('writer-side');
  const payload = randomBytes(70 * 1024);
  callee.registerFunction('chan::produce', async ({ writer }) => {
    assert.ok(writer instanceof ChannelWriter, 'the write ref arrives as a ChannelWriter');
    // A failed channel socket surfaces as an 'error' event on the stream.
    const failed = new Promise((_, reject) => writer.stream.on('error', reject));
    failed.catch(() => {});
    await Promise.race([failed, new Promise((resolve, reject) => writer.stream.write(payload, (e) => (e ? reject(e) : resolve())))]);
    writer.sendMessage('{"done":true}');
    await Promise.race([failed, new Promise((resolve) => writer.stream.end(resolve))]);
    return { written: payload.length };
  });
  const caller = worker('reader-side');
  await waitForFunctions(caller, ['chan::produce']);

  await channelScenario(t, caller, engine.url, async () => {
    const ch = await caller.createChannel();
    const messages = [];
    ch.reader.onMessage((m) => messages.push(m));
    const readAll = ch.reader.readAll();
    const [result, bytes] = await Promise.all([
      caller.trigger({ function_id: 'chan::produce', payload: { writer: ch.writerRef }, timeoutMs: 20_000 }),
      readAll,
    ]);
    assert.deepEqual(result, { written: payload.length });
    assert.ok(bytes.equals(payload), `bytes arrive unchanged (got ${bytes.length} of ${payload.length})`);
    assert.deepEqual(messages, ['{"done":true}']);
  });
});

test('channel: an unknown channel id or wrong key is refused with HTTP 404', TIMEOUT, async (t) => {
  const { worker, engine } = await setup(t);
  const sdk = worker('prober');
  const { readerRef } = await sdk.createChannel();
  const status = (path) =>
    new Promise((resolve) => {
      const ws = new WebSocket(`${engine.url}${path}`);
      ws.on('unexpected-response', (_req, res) => {
        resolve(res.statusCode);
        ws.terminate();
      });
      ws.on('open', () => {
        resolve('upgraded');
        ws.terminate();
      });
      ws.on('error', () => {});
    });
  assert.equal(await status(`/ws/channels/00000000-0000-4000-8000-000000000000?key=${readerRef.access_key}&dir=read`), 404);
  assert.equal(await status(`/ws/channels/${readerRef.channel_id}?key=wrong&dir=read`), 404);
});
