// Graceful shutdown with output still pending: SIGTERM stops accepting, flushes for up to
// --shutdown-timeout, then cuts off whoever is still behind, and the process exits 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { FrameDecoder } from '../src/protocol/frame.ts';
import { exitOf, spawnServer, TestClient, waitFor, type CliServer } from './helpers.ts';

const FRAMES = 24;
const FRAME_BYTES = 1024 * 1024;

function payload(i: number): Buffer {
  const body = Buffer.alloc(FRAME_BYTES, i & 0xff);
  body.writeUInt32BE(i, 0);
  return body;
}

/** A reader that has not read yet, and a sender whose FRAMES frames the server has already
 *  read and broadcast: more than the kernel buffers hold is then queued in the server for
 *  the reader. */
async function backlogged(server: CliServer): Promise<Socket> {
  const reader = connect({ port: server.port, host: '127.0.0.1' });
  reader.on('error', () => {});
  reader.pause();
  await once(reader, 'connect');
  const sender = await TestClient.connect(server.port);
  for (let i = 0; i < FRAMES; i++) sender.send(payload(i));
  await sender.waitFrames(FRAMES, 20_000);
  sender.destroy();
  return reader;
}

test('SIGTERM: a slow reader that catches up within --shutdown-timeout gets every frame, then the process exits 0', async (t) => {
  const server = await spawnServer(['--shutdown-timeout', '8000']);
  try {
    const reader = await backlogged(server);
    const frames: Buffer[] = [];
    const decoder = new FrameDecoder((body) => frames.push(Buffer.from(body)));
    const started = Date.now();
    server.child.kill('SIGTERM');
    await waitFor(() => /shutdown: flushing output to 1 client/.test(server.stderr()), 'the server to start flushing');
    // Slow: a pause after every chunk, so the server's output drains over many WRITABLE events.
    reader.on('data', (chunk: Buffer) => {
      decoder.push(chunk);
      reader.pause();
      setTimeout(() => reader.resume(), 1);
    });
    reader.resume();
    const { code } = await exitOf(server.child, 15_000);
    const elapsed = Date.now() - started;
    assert.equal(code, 0, server.stderr());
    assert.ok(elapsed < 8000, `exited after ${elapsed} ms, past the deadline`);
    if (!reader.closed) await once(reader, 'close');
    assert.equal(frames.length, FRAMES);
    frames.forEach((body, i) => assert.ok(body.equals(payload(i)), `frame ${i} altered`));
    assert.doesNotMatch(server.stderr(), /still behind/);
    t.diagnostic(`slow reader: ${FRAMES} MiB pending at SIGTERM, all delivered; exit 0 after ${elapsed} ms (deadline 8000)`);
  } finally {
    server.child.kill('SIGKILL');
  }
});

test('SIGTERM: a client that never reads is cut off at --shutdown-timeout, and the process exits 0 on time', async (t) => {
  const deadline = 1000;
  const server = await spawnServer(['--shutdown-timeout', String(deadline)]);
  try {
    const reader = await backlogged(server);
    const bystander = await TestClient.connect(server.port);
    const started = Date.now();
    server.child.kill('SIGTERM');
    const { code } = await exitOf(server.child, 10_000);
    const elapsed = Date.now() - started;
    assert.equal(code, 0, server.stderr());
    assert.ok(elapsed >= deadline - 50, `exited after ${elapsed} ms, before the deadline`);
    assert.ok(elapsed < deadline + 2000, `exited after ${elapsed} ms, long past the ${deadline} ms deadline`);
    assert.match(server.stderr(), /shutdown: 1 client\(s\) still behind after 1000 ms; reset/);
    // The bystander had nothing pending: it was closed at once, cleanly.
    await bystander.waitClosed();
    assert.equal(bystander.error, null);
    let received = 0;
    reader.on('data', (chunk: Buffer) => (received += chunk.length));
    reader.resume();
    if (!reader.closed) await once(reader, 'close');
    assert.ok(received < FRAMES * (FRAME_BYTES + 8), `received ${received} bytes: everything, so nothing was cut off`);
    t.diagnostic(`never-reader: exit 0 after ${elapsed} ms (deadline ${deadline}); it had received ${received} of ${FRAMES * (FRAME_BYTES + 8)} bytes`);
  } finally {
    server.child.kill('SIGKILL');
  }
});
