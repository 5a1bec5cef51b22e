// The fan-out seam (src/server/fanout.ts), both engines, on real sockets: local batches go out
// to relays, batches from elsewhere come in through deliver(), a relay that refuses a batch
// costs its senders their connection, and a server can accept on a listener it did not open.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fstatSync, readdirSync, readlinkSync } from 'node:fs';
import { encodeFrame, FrameDecoder, FrameScan, scanFrames } from '../src/protocol/frame.ts';
import { native } from '../src/native/binding.ts';
import { DEFAULT_LIMITS, type MobServer, type ServerOptions } from '../src/server/policy.ts';
import type { FanoutHost, Relay } from '../src/server/fanout.ts';
import { NativeServer } from '../src/server/native/server.ts';
import type { LoopTracer } from '../src/server/tracer.ts';
import { Interest, Ready } from '../src/poll/index.ts';
import { UvServer, type UvMode } from '../src/server/uv/server.ts';
import { connectAll, ENGINES, quietLog, waitFor, type EngineName } from './helpers.ts';

type Host = MobServer & FanoutHost;

async function start(engine: EngineName, extra: Partial<ServerOptions> = {}): Promise<Host> {
  const options: ServerOptions = { host: '127.0.0.1', port: 0, limits: { ...DEFAULT_LIMITS }, shutdownTimeoutMs: 1000, ...extra };
  if (engine === 'native') return new NativeServer(options, quietLog);
  return UvServer.listen(options, quietLog, engine.slice('uv-'.length) as UvMode);
}

/** A relay that keeps a copy of everything published to it, as the seam asks. */
class RecordingRelay implements Relay {
  readonly frames: Buffer[] = [];
  calls = 0;
  private readonly decoder = new FrameDecoder((body) => this.frames.push(Buffer.from(body)));
  constructor(readonly name: string, private readonly accept = () => true) {}
  publish(frames: Buffer, start: number, end: number): boolean {
    this.calls++;
    if (!this.accept()) return false;
    this.decoder.push(Buffer.from(frames.subarray(start, end)));
    return true;
  }
}

for (const engine of ENGINES) {
  test(`[${engine}] local frames go to the relays whole and in order, one call per batch`, async () => {
    const server = await start(engine);
    const relay = new RecordingRelay('test relay');
    server.addRelay(relay);
    try {
      const [a, b] = await connectAll(server, 2);
      const sent = Array.from({ length: 500 }, (_, i) => Buffer.from(`frame ${i} `.repeat(1 + (i % 7))));
      await a!.writeRaw(Buffer.concat(sent.map(encodeFrame)));
      await b!.waitFrames(500);
      await waitFor(() => relay.frames.length === 500, 'the relay to get every frame');
      relay.frames.forEach((body, i) => assert.ok(body.equals(sent[i]!), `frame ${i} altered on the way to the relay`));
      assert.ok(relay.calls < 500, `${relay.calls} publish calls for 500 frames sent in one write: not per frame`);
      server.removeRelay(relay);
      a!.send('after removal');
      await b!.waitFrames(501);
      assert.equal(relay.frames.length, 500);
      [a, b].forEach((c) => c!.destroy());
    } finally {
      await server.close();
    }
  });

  test(`[${engine}] deliver(): frames from elsewhere reach every local client and no relay`, async () => {
    const server = await start(engine);
    const relay = new RecordingRelay('test relay');
    server.addRelay(relay);
    try {
      const clients = await connectAll(server, 3);
      const remote = Buffer.concat([encodeFrame(Buffer.from('from another node')), encodeFrame(Buffer.alloc(70_000, 9))]);
      // A buffer with bytes around the frames: only [start, end) is delivered.
      const wrapped = Buffer.concat([Buffer.from('xx'), remote, Buffer.from('yy')]);
      const deliveredBefore = server.stats.framesDelivered;
      server.deliver(wrapped, 2, 2 + remote.length, 2);
      for (const client of clients) {
        const got = await client.waitFrames(2);
        assert.equal(got[0]!.toString(), 'from another node');
        assert.ok(got[1]!.equals(Buffer.alloc(70_000, 9)));
      }
      assert.equal(server.stats.framesDelivered - deliveredBefore, 2 * 3, 'frames × receivers');
      assert.equal(relay.calls, 0, 'a delivered batch was published back to a relay');
      clients.forEach((c) => c.destroy());
    } finally {
      await server.close();
    }
  });

  test(`[${engine}] a relay that refuses a batch disconnects the clients whose frames were in it, and only them`, async () => {
    const server = await start(engine);
    let refuse = false;
    const relay = new RecordingRelay('full relay', () => !refuse);
    server.addRelay(relay);
    try {
      const [sender, bystander] = await connectAll(server, 2);
      sender!.send('accepted');
      await bystander!.waitFrames(1);
      refuse = true;
      sender!.send('refused upstream');
      await sender!.waitClosed();
      assert.equal(server.stats.closedByReason['relay-refused'], 1);
      // The batch still reached the local clients: it was read, and they are not at fault.
      await bystander!.waitFrames(2);
      refuse = false;
      const [late] = await connectAll(server, 1);
      late!.send('still serving');
      await bystander!.waitFrames(3);
      assert.equal(bystander!.closed, false);
      [bystander, late].forEach((c) => c!.destroy());
    } finally {
      await server.close();
    }
  });

  test(`[${engine}] dropAllClients() disconnects every client and counts the reason`, async () => {
    const server = await start(engine);
    try {
      const clients = await connectAll(server, 4);
      server.dropAllClients('bus retention no longer holds what this node missed');
      await Promise.all(clients.map((c) => c.waitClosed()));
      assert.equal(server.stats.closedByReason['upstream-lost'], 4);
      assert.equal(server.connections, 0);
      const [next] = await connectAll(server, 1);
      next!.send('new clients are served');
      await next!.waitFrames(1);
      next!.destroy();
    } finally {
      await server.close();
    }
  });

  test(`[${engine}] listenFd: accepts on a listener it did not open; closes it unless keepListenFd`, async () => {
    for (const keep of [true, false]) {
      const fd = native.listen('127.0.0.1', 0, 0, false);
      const { port } = native.localAddress(fd);
      const server = await start(engine, { listenFd: fd, keepListenFd: keep });
      assert.equal(server.address.port, port);
      const [a, b] = await connectAll(server, 2);
      a!.send('through an inherited listener');
      await b!.waitFrames(1);
      [a, b].forEach((c) => c!.destroy());
      await server.close();
      if (keep) {
        assert.equal(native.localAddress(fd).port, port, 'the kept listener is still open and bound');
        native.close(fd);
      } else {
        assert.throws(() => fstatSync(fd), /EBADF/);
      }
    }
  });

  test(`[${engine}] stats: bytesQueued and inputBuffered are gauges that go back to 0`, async () => {
    const server = await start(engine, { limits: { ...DEFAULT_LIMITS, maxOutput: 256 * 1024 * 1024 } });
    try {
      const [sender, idle] = await connectAll(server, 2);
      idle!.socket.pause();
      const frame = encodeFrame(Buffer.alloc(1024 * 1024, 3));
      // A partial frame is held as input.
      await sender!.writeRaw(frame.subarray(0, 300_000));
      await waitFor(() => server.stats.inputBuffered >= 300_000 - 8, 'the partial frame to be counted');
      await sender!.writeRaw(frame.subarray(300_000));
      await waitFor(() => server.stats.inputBuffered === 0, 'the completed frame to leave the input gauge');
      for (let i = 0; i < 16; i++) await sender!.writeRaw(frame);
      await sender!.waitFrames(17, 20_000);
      await waitFor(() => server.stats.bytesQueued > 0, 'output queued for the idle reader');
      idle!.destroy();
      await waitFor(() => server.connections === 1 && server.stats.bytesQueued === 0, 'the queue to go with its reader', 10_000);
      sender!.destroy();
    } finally {
      await server.close();
    }
  });
}

/** The frames in a read that the test knows holds whole ones (small frames, written whole). */
function wholeFrames(frames: Buffer): number {
  const scan = scanFrames(frames, 0, frames.length, Number.MAX_SAFE_INTEGER, new FrameScan());
  assert.equal(scan.end, frames.length, 'a read split a frame');
  return scan.frames;
}

// FanoutHost.watch (native engine): descriptors of the scale-out layer on the server's own poller
// (#8). A socketpair stands in for a peer link; the test reads it and delivers what it reads.
function watchPair(server: NativeServer, onRead: (frames: Buffer) => void = (frames) => server.deliver(frames, 0, frames.length, wholeFrames(frames))) {
  const [near, far] = native.socketpair();
  server.watch(near, 7, Interest.READABLE, (id, flags) => {
    assert.equal(id, 7);
    if ((flags & Ready.READABLE) === 0) return;
    for (;;) {
      const buf = Buffer.allocUnsafe(64 * 1024);
      const n = native.read(near, buf, 0, buf.length);
      if (n <= 0) return;
      onRead(buf.subarray(0, n));
    }
  });
  return { near, far };
}

test('[native] watch(): frames a watched descriptor delivers leave with the batch\'s local frames, in one write per receiver, and reach no relay', async () => {
  const server = await start('native') as NativeServer;
  const relay = new RecordingRelay('test relay');
  server.addRelay(relay);
  const writes = new Map<number, number[]>();
  const tracer: LoopTracer = {
    batch() {}, event() {}, nameToken() {}, connection() {}, stale() {}, readBudget() {}, registration() {},
    call(call, fd, _token, result) {
      if (call === 'write') writes.set(fd, [...(writes.get(fd) ?? []), result]);
    },
  };
  const { near, far } = watchPair(server);
  try {
    const [a, b] = await connectAll(server, 2);
    for (let round = 0; round < 20; round++) {
      // In one tick, so that both are waiting when the server's next batch is taken: a frame
      // from "a peer" on the watched descriptor and one from local client a.
      server.setTracer(tracer);
      writes.clear();
      const remote = encodeFrame(Buffer.from(`remote ${round}`));
      assert.equal(native.write(far, remote, 0, remote.length), remote.length);
      a!.send(`local ${round}`);
      const got = await b!.waitFrames(2 * (round + 1));
      server.setTracer(null);
      assert.deepEqual(got.slice(-2).map(String).sort(), [`local ${round}`, `remote ${round}`]);
      // Two frames of 16-17 bytes each: one write of both, to each of a and b.
      const perReceiver = [...writes.values()];
      assert.equal(perReceiver.length, 2, `writes went to ${perReceiver.length} descriptors`);
      for (const results of perReceiver) assert.equal(results.length, 1, `writes of ${results.join(', ')} bytes: the peer's frame and the local one went out apart`);
    }
    await waitFor(() => relay.frames.length === 20, 'the relay to get the local frames');
    assert.deepEqual(relay.frames.map(String), Array.from({ length: 20 }, (_, i) => `local ${i}`), 'the relay got a delivered frame, or lost a local one');
    a!.destroy();
    b!.destroy();
  } finally {
    server.unwatch(near);
    native.close(near);
    native.close(far);
    await server.close();
  }
});

test('[native] watch(): a watched descriptor keeps the poller after the server has shut down, until it is unwatched', async () => {
  const server = await start('native') as NativeServer;
  const seen: Buffer[] = [];
  const { near, far } = watchPair(server, (frames) => seen.push(Buffer.from(frames)));
  const pollers = () => readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return /eventpoll|kqueue/.test(readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      return false; // the directory's own descriptor, gone once listed
    }
  }).length;
  try {
    const [a] = await connectAll(server, 1);
    a!.destroy();
    await server.close();
    // The server is gone; the link is not (a worker's links end after its clients, docs/scaling.md).
    native.write(far, Buffer.from('still heard'), 0, 11);
    await waitFor(() => seen.length > 0, 'an event on the watched descriptor after close()');
    assert.equal(Buffer.concat(seen).toString(), 'still heard');
    const before = pollers();
    server.unwatch(near);
    await waitFor(() => pollers() === before - 1, 'the poller closed with the last unwatch()');
  } finally {
    native.close(near);
    native.close(far);
  }
});
