// The mob server on real loopback sockets: the protocol, ordering, limits and hostile input.
import { test as nodeTest, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { once } from 'node:events';
import { encodeFrame, writeLength, HEADER_BYTES } from '../src/protocol/frame.ts';
import { connectAll, ENGINES, startServer as startEngine, TestClient, waitFor, type EngineName } from './helpers.ts';

// Every test but the native-only ones runs once per engine: native and each uv mode.
let engine: EngineName = 'native';
const startServer = (limits?: Parameters<typeof startEngine>[0], host?: string) => startEngine(limits, host, engine);
function test(name: string, fn: (t: TestContext) => Promise<void>): void {
  for (const each of ENGINES) {
    nodeTest(`[${each}] ${name}`, (t) => {
      engine = each;
      return fn(t);
    });
  }
}

test('a frame goes to every client, the sender included, unchanged', async () => {
  const server = await startServer();
  try {
    const clients = await connectAll(server, 3);
    clients[1]!.send('hello, mob');
    for (const client of clients) {
      const [frame] = await client.waitFrames(1);
      assert.equal(frame!.toString(), 'hello, mob');
    }
    clients.forEach((c) => c.destroy());
  } finally {
    await server.close();
  }
});

test('10,000 frames from several senders arrive in order at every receiver', async () => {
  const server = await startServer();
  try {
    const senders = 4;
    const perSender = 2500;
    const clients = await connectAll(server, 5);
    for (let s = 0; s < senders; s++) {
      const frames: Buffer[] = [];
      for (let seq = 0; seq < perSender; seq++) {
        const payload = Buffer.alloc(12);
        payload.writeUInt32BE(s, 0);
        payload.writeUInt32BE(seq, 4);
        payload.writeUInt32BE(s ^ seq, 8);
        frames.push(encodeFrame(payload));
      }
      // Several writes of many frames each, so frames straddle the server's reads.
      for (let i = 0; i < frames.length; i += 97) clients[s]!.socket.write(Buffer.concat(frames.slice(i, i + 97)));
    }
    for (const client of clients) {
      const frames = await client.waitFrames(senders * perSender, 20_000);
      const next = new Array<number>(senders).fill(0);
      for (const frame of frames) {
        const s = frame.readUInt32BE(0);
        const seq = frame.readUInt32BE(4);
        assert.equal(seq, next[s], `sender ${s}: frame ${seq} arrived where ${next[s]} was due`);
        assert.equal(frame.readUInt32BE(8), s ^ seq);
        next[s]!++;
      }
      assert.deepEqual(next, new Array(senders).fill(perSender));
    }
    clients.forEach((c) => c.destroy());
  } finally {
    await server.close();
  }
});

test('a frame split at every byte boundary arrives whole', async () => {
  const server = await startServer();
  try {
    const [sender, receiver] = await connectAll(server, 2);
    const frame = encodeFrame(Buffer.from('split me anywhere'));
    let expected = server.stats.bytesIn;
    for (let cut = 1; cut < frame.length; cut++) {
      // Each part is read by the server on its own before the next is sent.
      await sender!.writeRaw(frame.subarray(0, cut));
      expected += cut;
      await waitFor(() => server.stats.bytesIn === expected, `the server to read the first ${cut} bytes`);
      await sender!.writeRaw(frame.subarray(cut));
      expected += frame.length - cut;
      await waitFor(() => server.stats.bytesIn === expected, `the server to read the rest after ${cut}`);
    }
    const frames = await receiver!.waitFrames(frame.length - 1);
    for (const body of frames) assert.equal(body.toString(), 'split me anywhere');
    assert.equal(sender!.closed, false, 'a split frame must not drop the connection');
    [sender, receiver].forEach((c) => c!.destroy());
  } finally {
    await server.close();
  }
});

test('1,000 frames in one write are all delivered, in order', async () => {
  const server = await startServer();
  try {
    const [sender, receiver] = await connectAll(server, 2);
    const frames = Array.from({ length: 1000 }, (_, i) => encodeFrame(Buffer.from(`frame ${i}`)));
    await sender!.writeRaw(Buffer.concat(frames));
    const got = await receiver!.waitFrames(1000);
    got.forEach((body, i) => assert.equal(body.toString(), `frame ${i}`));
    [sender, receiver].forEach((c) => c!.destroy());
  } finally {
    await server.close();
  }
});

test('a zero-length frame is a frame, and is broadcast', async () => {
  const server = await startServer();
  try {
    const [sender, receiver] = await connectAll(server, 2);
    sender!.send(Buffer.alloc(0));
    sender!.send('after');
    const got = await receiver!.waitFrames(2);
    assert.equal(got[0]!.length, 0);
    assert.equal(got[1]!.toString(), 'after');
    [sender, receiver].forEach((c) => c!.destroy());
  } finally {
    await server.close();
  }
});

test('large frames (1 MiB and 16 MiB, the default limit) are relayed intact', async () => {
  const server = await startServer();
  try {
    const [sender, receiver] = await connectAll(server, 2);
    const big = Buffer.alloc(16 * 1024 * 1024, 7);
    big.writeUInt32BE(0xdeadbeef, big.length - 4);
    const medium = Buffer.alloc(1024 * 1024, 3);
    sender!.send(medium);
    sender!.send(big);
    sender!.send('tail');
    const got = await receiver!.waitFrames(3, 30_000);
    assert.ok(got[0]!.equals(medium));
    assert.ok(got[1]!.equals(big));
    assert.equal(got[2]!.toString(), 'tail');
    [sender, receiver].forEach((c) => c!.destroy());
  } finally {
    await server.close();
  }
});

test('hang-up with data pending: what was sent before FIN still reaches everyone', async () => {
  const server = await startServer();
  try {
    const [sender, receiver] = await connectAll(server, 2);
    const frames = Array.from({ length: 200 }, (_, i) => encodeFrame(Buffer.from(`last words ${i}`)));
    sender!.socket.end(Buffer.concat(frames)); // data and FIN together
    const got = await receiver!.waitFrames(200);
    assert.equal(got[199]!.toString(), 'last words 199');
    // The half-closed sender gets its own frames too.
    await sender!.waitFrames(200);
    receiver!.destroy();
    sender!.destroy();
  } finally {
    await server.close();
  }
});

test('half-close: a client that sent FIN stays a receiver until it closes', async () => {
  const server = await startServer();
  try {
    const [quiet, talker] = await connectAll(server, 2);
    quiet!.send('my last frame');
    quiet!.socket.end(); // FIN: done sending, not done receiving
    await talker!.waitFrames(1);
    await waitFor(() => server.stats.bytesIn === 8 + 'my last frame'.length, 'the frame to be read');
    await new Promise((resolve) => setTimeout(resolve, 50)); // time for the server to see the FIN
    for (let i = 0; i < 100; i++) talker!.send(`after your FIN ${i}`);
    const got = await quiet!.waitFrames(101);
    assert.equal(got[0]!.toString(), 'my last frame');
    assert.equal(got[100]!.toString(), 'after your FIN 99');
    assert.equal(server.connections, 2);
    // Gone for good: noticed when a write to it fails (the kernel answers the first with a
    // reset; node:net sees it at the next write).
    quiet!.destroy();
    await waitFor(() => quiet!.closed, 'the client to close');
    let sent = 101;
    for (let i = 0; i < 100 && server.connections > 1; i++) {
      talker!.send('to whoever is left');
      await talker!.waitFrames(++sent);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(server.connections, 1, 'the closed client was never removed');
    assert.equal(server.stats.closedByReason.error, 0, 'closing after a FIN is not an error');
    talker!.destroy();
  } finally {
    await server.close();
  }
});

test('half-close: a half-closed client that stops reading is cut off at --max-output like any other', async () => {
  const maxOutput = 512 * 1024;
  const server = await startServer({ maxOutput });
  try {
    const [quiet, talker] = await connectAll(server, 2);
    quiet!.socket.end();
    quiet!.socket.pause();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const payload = Buffer.alloc(64 * 1024, 2);
    for (let sent = 0; server.stats.limitBreaches === 0 && sent < 512; sent += 8) {
      for (let i = 0; i < 8; i++) talker!.send(payload);
      await talker!.waitFrames(sent + 8, 20_000);
    }
    await waitFor(() => server.stats.closedByReason['slow-reader'] === 1, 'the half-closed slow reader to be cut off');
    assert.equal(talker!.closed, false);
    quiet!.destroy();
    talker!.destroy();
  } finally {
    await server.close();
  }
});

test('half-close: at --max-conns the oldest idle half-closed client makes room for a new one', async () => {
  const server = await startServer({ maxConns: 2 });
  try {
    const [done, staying] = await connectAll(server, 2);
    done!.socket.end();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const next = await TestClient.connect(server.address.port);
    await waitFor(() => server.stats.accepted === 3, 'the third connection accepted');
    next.send('room was made');
    await staying!.waitFrames(1);
    assert.equal(server.stats.rejected, 0);
    assert.equal(server.connections, 2);
    [done, staying, next].forEach((c) => c!.destroy());
  } finally {
    await server.close();
  }
});

test('an oversized length prefix drops that client alone; the others go on', async () => {
  const server = await startServer({ maxFrame: 1024 });
  try {
    const [hostile, a, b] = await connectAll(server, 3);
    hostile!.send('before the bad header');
    const header = Buffer.alloc(HEADER_BYTES, 0xff); // 2**64 - 1: what aborted the original
    await hostile!.writeRaw(header);
    await hostile!.waitClosed();
    assert.equal(server.stats.limitBreaches, 1);
    a!.send('still here');
    for (const client of [a!, b!]) {
      const got = await client.waitFrames(2);
      assert.deepEqual(got.map(String), ['before the bad header', 'still here']);
    }
    // Just over the limit is refused too; exactly the limit is fine.
    const exact = Buffer.alloc(HEADER_BYTES);
    writeLength(exact, 0, 1025);
    await b!.writeRaw(exact);
    await b!.waitClosed();
    a!.send(Buffer.alloc(1024));
    await a!.waitFrames(3);
    assert.equal(a!.closed, false);
    a!.destroy();
  } finally {
    await server.close();
  }
});

test('a reader that never reads is cut off at --max-output; the others get everything', async () => {
  const maxOutput = 1024 * 1024;
  const server = await startServer({ maxOutput });
  try {
    const [idle, sender, reader] = await connectAll(server, 3);
    idle!.socket.pause(); // takes nothing: kernel buffers fill, then the server's queue grows
    const payload = Buffer.alloc(16 * 1024, 1);
    // Rounds of 512 KiB, each sent once the readers have the last: a reader that reads is never
    // more than a round behind (under the cap), while the idle one falls further behind every
    // round until it crosses the cap plus whatever the kernel buffers hold for it.
    const perRound = 32;
    let sent = 0;
    for (let round = 0; round < 128 && server.stats.limitBreaches === 0; round++) {
      for (let i = 0; i < perRound; i++) sender!.send(payload);
      sent += perRound;
      await reader!.waitFrames(sent, 30_000);
      await sender!.waitFrames(sent, 30_000);
    }
    await waitFor(() => server.stats.limitBreaches === 1, 'the idle reader to be cut off');
    // (A paused node:net socket does not notice the FIN: count on the server side.)
    await waitFor(() => server.connections === 2, 'the idle reader to be removed');
    // The others lost nothing, before or after the cut.
    for (let i = 0; i < perRound; i++) sender!.send(payload);
    sent += perRound;
    await reader!.waitFrames(sent, 30_000);
    await sender!.waitFrames(sent, 30_000);
    assert.ok(reader!.frames.every((f) => f.length === payload.length));
    assert.equal(server.connections, 2);
    idle!.destroy();
    [sender, reader].forEach((c) => c!.destroy());
  } finally {
    await server.close();
  }
});

test('a lagging receiver gets ~30 MB of distinct frames byte for byte: what it holds is never overwritten', async (t) => {
  const server = await startServer();
  try {
    const [sender, lagging] = await connectAll(server, 2);
    lagging!.socket.pause(); // its kernel buffers fill, then the server holds the rest for it
    const count = 30_000;
    const bodies = Array.from({ length: count }, (_, i) => {
      const body = Buffer.alloc(1000);
      for (let j = 0; j < body.length; j++) body[j] = (i * 131 + j * 7 + (i >> 8)) & 0xff;
      body.writeUInt32BE(i, 0);
      return body;
    });
    // In writes of 300 frames, each once the sender (a reader that keeps up) has the last:
    // many batches, so the server reuses its buffers many times while the lagging reader
    // still holds regions of them.
    for (let i = 0; i < count; i += 300) {
      await sender!.writeRaw(Buffer.concat(bodies.slice(i, i + 300).map(encodeFrame)));
      await sender!.waitFrames(i + 300, 30_000);
    }
    lagging!.socket.resume();
    const got = await lagging!.waitFrames(count, 60_000);
    let altered = 0;
    let firstAltered = -1;
    got.forEach((body, i) => {
      if (!body.equals(bodies[i]!)) {
        altered++;
        if (firstAltered < 0) firstAltered = i;
      }
    });
    t.diagnostic(`${count} frames of 1,000 B to a reader that lagged by up to ~${count} KB: ${altered} altered`);
    assert.equal(altered, 0, `${altered} of ${count} frames altered, the first at ${firstAltered}`);
    [sender, lagging].forEach((c) => c!.destroy());
  } finally {
    await server.close();
  }
});

test('--max-input-total: past it, the clients holding the largest partial frames are dropped; the others go on', async () => {
  const MiB = 1024 * 1024;
  const limit = 6 * MiB;
  const server = await startServer({ maxInputTotal: limit });
  try {
    const [modest, bystander, ...hoarders] = await connectAll(server, 5);
    // A modest partial frame (100 KiB of a 200 KiB one), and three that promise 16 MiB and
    // send 3 MiB each: 9 MiB held in all, over the 6 MiB limit.
    const small = encodeFrame(Buffer.alloc(200 * 1024, 4));
    await modest!.writeRaw(small.subarray(0, 100 * 1024));
    const header = Buffer.alloc(HEADER_BYTES);
    writeLength(header, 0, 16 * MiB);
    for (const hoarder of hoarders) {
      await hoarder!.writeRaw(header);
      await hoarder!.writeRaw(Buffer.alloc(3 * MiB, 1));
    }
    await waitFor(() => server.stats.closedByReason['input-total'] >= 1, 'a hoarder to be dropped');
    await waitFor(() => server.stats.inputBuffered <= limit, 'input back under the limit');
    await waitFor(
      () => hoarders.filter((h) => h!.closed).length === server.stats.closedByReason['input-total'],
      'the dropped hoarders to see it',
    );
    const dropped = server.stats.closedByReason['input-total'];
    assert.ok(dropped >= 1 && dropped <= 3, `${dropped} dropped`);
    // The modest client was never the largest: it finishes its frame, and everyone left gets it.
    await modest!.writeRaw(small.subarray(100 * 1024));
    const [got] = await bystander!.waitFrames(1);
    assert.ok(got!.equals(small.subarray(HEADER_BYTES)));
    assert.equal(modest!.closed, false);
    assert.equal(bystander!.closed, false);
    [modest, bystander, ...hoarders].forEach((c) => c!.destroy());
  } finally {
    await server.close();
  }
});

test('a receiver whose connection was reset is removed alone; the sender and others go on', async () => {
  const server = await startServer();
  try {
    const [dead, sender, reader] = await connectAll(server, 3);
    dead!.socket.resetAndDestroy();
    await waitFor(() => server.connections === 2 || server.stats.closed === 1, 'the reset to be noticed', 2000).catch(() => {});
    for (let i = 0; i < 100; i++) sender!.send(`after reset ${i}`);
    await reader!.waitFrames(100);
    await sender!.waitFrames(100);
    assert.equal(sender!.closed, false);
    await waitFor(() => server.connections === 2, 'the reset client to be removed');
    [sender, reader].forEach((c) => c!.destroy());
  } finally {
    await server.close();
  }
});

test('--max-conns: extra clients are accepted and closed at once, never left queued', async () => {
  const server = await startServer({ maxConns: 2 });
  try {
    const [a, b] = await connectAll(server, 2);
    const extra = await TestClient.connect(server.address.port);
    await extra.waitClosed(2000);
    assert.equal(server.stats.rejected, 1);
    a!.send('two is company');
    await b!.waitFrames(1);
    [a, b].forEach((c) => c!.destroy());
  } finally {
    await server.close();
  }
});

test('1,000 clients all receive a broadcast', async () => {
  const server = await startServer();
  const clients: TestClient[] = [];
  try {
    const sockets = Array.from({ length: 1000 }, () => connect({ port: server.address.port, host: '127.0.0.1' }));
    await Promise.all(sockets.map((s) => once(s, 'connect')));
    sockets.forEach((s) => s.resetAndDestroy()); // a FIN would leave them half-closed receivers
    await waitFor(() => server.connections === 0, 'the first wave to leave');
    for (let i = 0; i < 1000; i++) clients.push(await TestClient.connect(server.address.port));
    await waitFor(() => server.connections === 1000, '1,000 connections accepted');
    clients[500]!.send('to all thousand');
    await waitFor(() => clients.every((c) => c.frames.length === 1), 'every client to receive the frame', 20_000);
    assert.ok(clients.every((c) => c.frames[0]!.toString() === 'to all thousand'));
  } finally {
    clients.forEach((c) => c.destroy());
    await server.close();
  }
});

test('IPv6: the server listens and relays on ::1', async (t) => {
  let server;
  try {
    server = await startServer({}, '::1');
  } catch (error) {
    t.skip(`::1 unavailable here: ${(error as Error).message}`);
    return;
  }
  try {
    const a = await TestClient.connect(server.address.port, '::1');
    const b = await TestClient.connect(server.address.port, '::1');
    await waitFor(() => server.connections === 2, 'two v6 connections');
    a.send('over v6');
    assert.equal((await b.waitFrames(1))[0]!.toString(), 'over v6');
    [a, b].forEach((c) => c.destroy());
  } finally {
    await server.close();
  }
});
