// Property tests against a real server over loopback: what a client writes, in whatever
// pieces, arrives whole; what a hostile client writes costs nobody else a frame.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeFrame } from '../src/protocol/frame.ts';
import { connectAll, startServer, waitFor } from './helpers.ts';
import { cut, hostileStream, referenceParse } from './reference.ts';

/** Lets the server's loop run between writes, so pieces arrive as separate reads. */
const tick = () => new Promise((resolve) => setImmediate(resolve));

test('property (server): random frames written in random pieces arrive unchanged and in order', async () => {
  const server = await startServer();
  try {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ maxLength: 3000 }), { minLength: 1, maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        async (bodies, points) => {
          const [sender, receiver] = await connectAll(server, 2);
          try {
            const stream = Buffer.concat(bodies.map((b) => encodeFrame(b)));
            for (const piece of cut(stream, points)) {
              if (piece.length > 0) await sender!.writeRaw(piece);
              await tick();
            }
            const got = await receiver!.waitFrames(bodies.length);
            assert.deepEqual(got, bodies.map((b) => Buffer.from(b)));
            assert.equal(sender!.closed, false);
          } finally {
            // A reset, not a FIN: after a FIN a client stays a receiver (half-close).
            sender!.socket.resetAndDestroy();
            receiver!.socket.resetAndDestroy();
            await waitFor(() => server.connections === 0, 'the pair to be gone');
          }
        },
      ),
      { numRuns: 100 },
    );
  } finally {
    await server.close();
  }
});

// Some runs relay everything, some close the client mid-way, some leave a frame pending.
const hostileBytes = hostileStream({ maxPayload: 400, maxPlausibleLength: 3000, minParts: 1, maxParts: 10 });

test('property (server): any bytes from a hostile client are relayed as frames or close that client alone; a bystander misses nothing', async () => {
  const maxFrame = 2048;
  const server = await startServer({ maxFrame });
  try {
    await fc.assert(
      fc.asyncProperty(hostileBytes, fc.array(fc.nat(), { maxLength: 12 }), async (bytes, points) => {
        const [hostile, bystander] = await connectAll(server, 2);
        try {
          const expected = referenceParse(bytes, maxFrame);
          const breachesBefore = server.stats.limitBreaches;
          bystander!.send('before');
          await bystander!.waitFrames(1);
          for (const piece of cut(bytes, points)) {
            // Once the server has closed this client, further writes fail: that is the point.
            if (piece.length > 0 && !hostile!.closed) await hostile!.writeRaw(piece).catch(() => {});
            await tick();
          }
          const relayed = await bystander!.waitFrames(1 + expected.frames.length);
          assert.deepEqual(relayed.slice(1), expected.frames);
          if (expected.oversized) {
            await hostile!.waitClosed();
            await waitFor(() => server.stats.limitBreaches === breachesBefore + 1, 'the breach to be counted');
          } else {
            // Its incomplete tail, if any, waits; the client stays.
            await new Promise((resolve) => setTimeout(resolve, 5));
            assert.equal(hostile!.closed, false, 'a client that broke no rule was closed');
          }
          bystander!.send('after');
          const all = await bystander!.waitFrames(2 + expected.frames.length);
          assert.equal(all.at(-1)!.toString(), 'after');
          assert.equal(bystander!.closed, false);
        } finally {
          // A reset, not a FIN: after a FIN a client stays a receiver (half-close).
          hostile!.socket.resetAndDestroy();
          bystander!.socket.resetAndDestroy();
          await waitFor(() => server.connections === 0, 'the pair to be gone');
        }
      }),
      { numRuns: 150 },
    );
    assert.ok(server.stats.limitBreaches > 0, 'no run exercised the close path');
  } finally {
    await server.close();
  }
});
