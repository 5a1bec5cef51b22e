// Graceful shutdown with output still pending: SIGTERM stops accepting, flushes for up to
// --shutdown-timeout, then cuts off whoever is still behind, and the process exits 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { FrameDecoder } from '../src/protocol/frame.ts';
import { exitOf, spawnServer, TestClient, waitFor, type CliServer } from './helpers.ts';
import { runShutdownScenario } from '../scripts/lib/shutdown-scenario.ts';

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

// Issue #9: clients that are behind AND still sending when the signal comes. Before, the server
// stopped reading, then close()d sockets with unread input: a reset, and the kernel threw away
// what it still held for them (100 of 100 such clients missed the end, both engines). Now it
// keeps reading (and discards), sends FIN once their output is flushed, and closes after their EOF.
for (const engine of ['native', 'uv'] as const) {
  test(`[${engine}] SIGTERM: a client behind that sends one more frame after the signal still gets all 64 × 64 KiB frames, then EOF`, async (t) => {
    const outcome = await runShutdownScenario({ args: ['--engine', engine], clients: 1, frames: 64, frameBytes: 64 * 1024, shutdownTimeoutMs: 10_000 });
    t.diagnostic(`received ${outcome.received.join(', ')} of 64; exit ${outcome.exitCode} after ${outcome.elapsedMs} ms`);
    assert.equal(outcome.exitCode, 0, outcome.stderr);
    assert.deepEqual(outcome.received, [64]);
    assert.equal(outcome.complete, 1, 'altered frames, or a reset instead of EOF');
    assert.doesNotMatch(outcome.stderr, /still behind/);
  });

  test(`[${engine}] SIGTERM: 30 clients behind and still sending all get every frame, then EOF`, async (t) => {
    const outcome = await runShutdownScenario({ args: ['--engine', engine], clients: 30, frames: 64, frameBytes: 64 * 1024, shutdownTimeoutMs: 20_000 });
    t.diagnostic(`${outcome.complete} of 30 complete, ${outcome.reset} reset; exit ${outcome.exitCode} after ${outcome.elapsedMs} ms`);
    assert.equal(outcome.exitCode, 0, outcome.stderr);
    assert.equal(outcome.missed, 0, `received: ${outcome.received.join(' ')}`);
  });

  test(`[${engine}] a second signal resets whoever is still behind (not a clean EOF), logs how many, and exits 1`, async (t) => {
    const outcome = await runShutdownScenario({
      args: ['--engine', engine], clients: 5, frames: 64, frameBytes: 64 * 1024, shutdownTimeoutMs: 20_000, signals: ['SIGTERM', 'SIGINT'],
    });
    t.diagnostic(`${outcome.reset} of 5 reset, received ${outcome.received.join(', ')}; exit ${outcome.exitCode}`);
    assert.equal(outcome.exitCode, 1, outcome.stderr);
    assert.match(outcome.stderr, /SIGINT again/);
    const cut = Number(/shutdown: (\d+) client\(s\) still behind at a second signal; reset/.exec(outcome.stderr)?.[1] ?? 0);
    assert.ok(cut > 0, outcome.stderr);
    // Everyone who did not get everything learned it from a reset, not from an ordinary EOF.
    outcome.received.forEach((n, c) => assert.ok(n === 64 || outcome.wasReset[c], `client ${c}: ${n} of 64 and a clean EOF`));
    assert.equal(outcome.reset, cut, 'every client cut was reset');
  });
}

test('SIGHUP stops the server like SIGTERM: output flushed, exit 0 (not killed with 129)', async () => {
  const outcome = await runShutdownScenario({ args: [], clients: 2, frames: 64, frameBytes: 64 * 1024, shutdownTimeoutMs: 10_000, signals: ['SIGHUP'] });
  assert.equal(outcome.exitCode, 0, outcome.stderr);
  assert.equal(outcome.complete, 2, `received: ${outcome.received.join(' ')}`);
  assert.match(outcome.stderr, /SIGHUP: no longer accepting/);
});
