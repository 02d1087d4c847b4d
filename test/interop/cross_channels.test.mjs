// C++ <-> Node through iii-test-engine: data channels (spec 6) across languages, in both
// directions, each with binary data of several 64 KiB frames and a text message. Each side
// takes each role once: channel creator and not, caller and callee, writer and reader.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';

import { ChannelReader, ChannelWriter } from 'iii-sdk';

import { crossSetup } from './cpp_peer.mjs';
import { pollUntil, waitForFunctions } from './engine.mjs';

const TIMEOUT = { timeout: 30_000 };
const MESSAGE = '{"note":"text frame ✓ between the binary ones"}';

/** Fresh data: more than two 64 KiB frames, and a short tail with the byte values at the edges. */
function data() {
  const head = randomBytes(150 * 1024);
  const tail = Buffer.from([0, 1, 2, 0x7f, 0x80, 0xfe, 0xff]);
  return { head, tail, all: Buffer.concat([head, tail]) };
}

function write(stream, chunk) {
  return new Promise((resolve, reject) => stream.write(chunk, (e) => (e ? reject(e) : resolve())));
}

function peerWaitsForFunctions(peer, ids) {
  return pollUntil(
    () => peer.ok('list', { what: 'functions' }),
    (fns) => ids.every((id) => fns.some((f) => f.function_id === id)),
    { what: `cpp_peer to see ${ids.join(', ')}` },
  );
}

test('channel Node -> C++: Node creates and writes, the C++ callee reads', TIMEOUT, async (t) => {
  const { cppPeer, worker } = await crossSetup(t);
  const peer = await cppPeer('cpp-reader');
  await peer.ok('register_channels');
  const node = worker('node-writer');
  await waitForFunctions(node, ['cpp::chan::consume']);

  const { head, tail, all } = data();
  const ch = await node.createChannel();
  const writerErrors = [];
  ch.writer.stream.on('error', (e) => writerErrors.push(e));
  const call = node.trigger({ function_id: 'cpp::chan::consume', payload: { label: 'up', reader: ch.readerRef }, timeoutMs: 20_000 });
  await write(ch.writer.stream, head);
  ch.writer.sendMessage(MESSAGE);
  await write(ch.writer.stream, tail);
  ch.writer.stream.end();

  const result = await call;
  assert.deepEqual(writerErrors, []);
  assert.equal(result.label, 'up');
  assert.deepEqual(result.messages, [MESSAGE]);
  assert.equal(result.length, all.length);
  assert.ok(Buffer.from(result.bytes_b64, 'base64').equals(all), 'bytes arrive unchanged and in order');
});

test('channel C++ -> Node: Node creates, the C++ callee writes, Node reads', TIMEOUT, async (t) => {
  const { cppPeer, worker } = await crossSetup(t);
  const peer = await cppPeer('cpp-writer');
  await peer.ok('register_channels');
  const node = worker('node-reader');
  await waitForFunctions(node, ['cpp::chan::produce']);

  const { head, tail, all } = data();
  const ch = await node.createChannel();
  const messages = [];
  ch.reader.onMessage((m) => messages.push(m));
  const [result, bytes] = await Promise.all([
    node.trigger({
      function_id: 'cpp::chan::produce',
      payload: { writer: ch.writerRef, head_b64: head.toString('base64'), message: MESSAGE, tail_b64: tail.toString('base64') },
      timeoutMs: 20_000,
    }),
    ch.reader.readAll(),
  ]);
  assert.deepEqual(result, { written: all.length });
  assert.ok(bytes.equals(all), `bytes arrive unchanged (got ${bytes.length} of ${all.length})`);
  assert.deepEqual(messages, [MESSAGE]);
});

test('channel C++ -> Node: C++ creates and writes, the Node callee reads', TIMEOUT, async (t) => {
  const { cppPeer, worker } = await crossSetup(t);
  const node = worker('node-reader');
  node.registerFunction('node::chan::consume', async ({ label, reader }) => {
    // iii-sdk turns the ref our SDK wrote into a live ChannelReader.
    assert.ok(reader instanceof ChannelReader, 'the read ref arrives as a ChannelReader');
    const messages = [];
    reader.onMessage((m) => messages.push(m));
    const bytes = await reader.readAll();
    return { label, messages, bytes_b64: bytes.toString('base64') };
  });
  const peer = await cppPeer('cpp-writer');
  await peerWaitsForFunctions(peer, ['node::chan::consume']);

  const { head, tail, all } = data();
  const { result } = await peer.ok('chan_send', {
    function_id: 'node::chan::consume',
    head_b64: head.toString('base64'),
    message: MESSAGE,
    tail_b64: tail.toString('base64'),
  });
  assert.equal(result.label, 'from-cpp');
  assert.deepEqual(result.messages, [MESSAGE]);
  const bytes = Buffer.from(result.bytes_b64, 'base64');
  assert.ok(bytes.equals(all), `bytes arrive unchanged (got ${bytes.length} of ${all.length})`);
});

test('channel Node -> C++: C++ creates, the Node callee writes, C++ reads', TIMEOUT, async (t) => {
  const { cppPeer, worker } = await crossSetup(t);
  const { head, tail, all } = data();
  const node = worker('node-writer');
  node.registerFunction('node::chan::produce', async ({ writer }) => {
    assert.ok(writer instanceof ChannelWriter, 'the write ref arrives as a ChannelWriter');
    // A failed channel socket surfaces as an 'error' event on the stream.
    const failed = new Promise((_, reject) => writer.stream.on('error', reject));
    failed.catch(() => {});
    await Promise.race([failed, write(writer.stream, head)]);
    writer.sendMessage(MESSAGE);
    await Promise.race([failed, write(writer.stream, tail)]);
    await Promise.race([failed, new Promise((resolve) => writer.stream.end(resolve))]);
    return { written: all.length };
  });
  const peer = await cppPeer('cpp-reader');
  await peerWaitsForFunctions(peer, ['node::chan::produce']);

  const received = await peer.ok('chan_receive', { function_id: 'node::chan::produce' });
  assert.deepEqual(received.result, { written: all.length });
  assert.deepEqual(received.messages, [MESSAGE]);
  const bytes = Buffer.from(received.bytes_b64, 'base64');
  assert.ok(bytes.equals(all), `bytes arrive unchanged (got ${bytes.length} of ${all.length})`);
});
