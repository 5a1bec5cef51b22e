// The native loop's own hazards, on real sockets: the seeds' stale-token race, a registration
// that cannot be changed, and the read budget's continuation. A tracer records what the loop
// did (the same hook `mob serve --trace` uses), so each test can show the path it exercised.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { once } from 'node:events';
import { encodeFrame } from '../src/protocol/frame.ts';
import { native } from '../src/native/binding.ts';
import { DEFAULT_LIMITS, type ServerOptions } from '../src/server/policy.ts';
import { NativeServer, READ_BUDGET } from '../src/server/native/server.ts';
import { ARENA_BYTES } from '../src/server/native/arena.ts';
import type { LoopTracer, TracedCall } from '../src/server/tracer.ts';
import { quietLog, TestClient, waitFor } from './helpers.ts';

const TWO_POW_32 = 2 ** 32;
const { SOL_SOCKET, SO_RCVBUF, SO_SNDBUF } = native.sockopt;

/** Records the connections the loop opened and the stale events it ignored. */
class Recorder implements LoopTracer {
  readonly opened: { fd: number; token: number }[] = [];
  readonly staleTokens: number[] = [];
  /** Reads of each fd: [batch number, bytes]; batch 0 is before the first. */
  readonly reads = new Map<number, [number, number][]>();
  batches = 0;
  batch(): void { this.batches++; }
  event(): void {}
  registration(): void {}
  nameToken(): void {}
  readBudget(): void {}
  call(call: TracedCall, fd: number, _token: number, result: number): void {
    if (call === 'read' && result > 0) {
      const list = this.reads.get(fd) ?? [];
      list.push([this.batches, result]);
      this.reads.set(fd, list);
    }
  }
  connection(op: 'open' | 'half-closed' | 'close', fd: number, token: number): void {
    if (op === 'open') this.opened.push({ fd, token });
  }
  stale(token: number): void { this.staleTokens.push(token); }

  /** The server side of a client connected from local port `port`. */
  serverSide(port: number): { fd: number; token: number } {
    const found = this.opened.find((each) => {
      try {
        return native.peerAddress(each.fd).port === port;
      } catch {
        return false;
      }
    });
    assert.ok(found, `no server-side connection for client port ${port}`);
    return found;
  }
}

function startTraced(extra: Partial<ServerOptions> = {}): { server: NativeServer; recorder: Recorder } {
  const server = new NativeServer({ host: '127.0.0.1', port: 0, limits: { ...DEFAULT_LIMITS }, shutdownTimeoutMs: 1000, ...extra }, quietLog);
  const recorder = new Recorder();
  server.setTracer(recorder);
  return { server, recorder };
}

/** A connected native socket (non-blocking), for tests that need syscalls at a moment of their choosing. */
async function nativeClient(port: number): Promise<number> {
  const fd = native.connect('127.0.0.1', port);
  await waitFor(() => native.socketError(fd) === 0 && peerPort(fd) === port, 'the connection to complete');
  return fd;
}

function peerPort(fd: number): number {
  try {
    return native.peerAddress(fd).port;
  } catch {
    return -1;
  }
}

async function writeAll(fd: number, bytes: Buffer): Promise<void> {
  for (let at = 0; at < bytes.length; ) {
    const n = native.write(fd, bytes, at, bytes.length - at);
    if (n > 0) at += n;
    else if (n === -native.errno.EAGAIN) await new Promise((resolve) => setTimeout(resolve, 1));
    else throw new Error(`write: ${native.errnoName(-n)}`);
  }
}

function distinctFrames(count: number, size: number): Buffer[] {
  return Array.from({ length: count }, (_, i) => {
    const body = Buffer.alloc(size);
    for (let j = 0; j < size; j++) body[j] = (i * 131 + j * 7) & 0xff;
    body.writeUInt32BE(i, 0);
    return body;
  });
}

test('[native] the seeds\' race on real sockets: an event for a connection removed earlier in the batch is ignored, even after its slot is reused', async () => {
  const { server, recorder } = startTraced();
  const port = server.address.port;
  const fds: number[] = [];
  try {
    const x = await nativeClient(port);
    const y = await nativeClient(port);
    fds.push(x, y);
    await waitFor(() => server.connections === 2, 'two connections');
    const xSide = recorder.serverSide(native.localAddress(x).port);
    // Y sends all of a large frame but its last byte: the server holds it in an assembly.
    const frame = encodeFrame(Buffer.alloc(100 * 1024, 1));
    await writeAll(y, frame.subarray(0, frame.length - 1));
    await waitFor(() => server.stats.bytesIn === frame.length - 1, 'the server to read all but the last byte');
    // In one synchronous run (the server cannot run in between), three things become ready,
    // in this order, so the kernel hands them to the server in one batch:
    //   1. Y's last byte: the frame completes and is broadcast; the write to X fails (2.), so X
    //      is removed while the batch is still being walked, and its slot is freed;
    //   2. a new connection Z: accepted into X's slot, with the next generation;
    //   3. X's reset: an event for X's old token, now in a later position of the same batch.
    native.write(y, frame, frame.length - 1, 1);
    const z = native.connect('127.0.0.1', port);
    fds.push(z);
    native.setLinger(x, true, 0);
    native.close(x);
    fds.splice(fds.indexOf(x), 1);
    await waitFor(() => recorder.staleTokens.length > 0, 'the stale event');
    assert.deepEqual(recorder.staleTokens, [xSide.token], 'the ignored event is X\'s');
    const zSide = recorder.opened[2]!;
    assert.equal(zSide.token % TWO_POW_32, xSide.token % TWO_POW_32, 'Z took X\'s slot');
    assert.notEqual(zSide.token, xSide.token, 'with a new generation');
    // Nothing was done to Z on X's behalf: it is served.
    assert.equal(server.connections, 2);
    await writeAll(y, encodeFrame(Buffer.from('to z')));
    await waitFor(() => native.bytesReadable(z) >= 12, 'Z to receive a frame');
    assert.equal(server.stats.closedByReason.error, 1, 'X alone was removed');
  } finally {
    fds.forEach((fd) => native.close(fd));
    await server.close();
  }
});

// epoll keys a registration by descriptor number AND open file, so a number reused for another
// socket makes EPOLL_CTL_MOD fail; kqueue keys it by number alone, so there is no failure to
// provoke this way.
const epollOnly = native.backend !== 'epoll' && 'needs epoll: kqueue keys registrations by descriptor number alone';

test('[native] a registration that cannot be changed dooms its connection alone; the server goes on', { skip: epollOnly }, async () => {
  const { server, recorder } = startTraced();
  // A peer that accepts and never reads: writes to it soon stop short.
  const sink = createServer((socket: Socket) => socket.pause());
  sink.listen(0, '127.0.0.1');
  await once(sink, 'listening');
  const sinkPort = (sink.address() as { port: number }).port;
  let kept = -1;
  try {
    const [victim, sender, reader] = [await TestClient.connect(server.address.port), await TestClient.connect(server.address.port), await TestClient.connect(server.address.port)];
    await waitFor(() => server.connections === 3, 'three connections');
    const fd = recorder.serverSide(victim.socket.localPort!).fd;
    // Put another socket at the victim's descriptor number while the victim's own open file
    // stays registered (a duplicate holds it): epoll's registration for that number now names
    // a file the number no longer refers to, so changing it fails (ENOENT). Lower numbers are
    // filled first so that the new socket gets exactly this one.
    const holes: number[] = [];
    for (;;) {
      const hole = openSync('/dev/null', 'r');
      if (hole < fd) {
        holes.push(hole);
        continue;
      }
      closeSync(hole);
      break;
    }
    kept = native.dup(fd);
    native.close(fd);
    const stranger = native.connect('127.0.0.1', sinkPort);
    holes.forEach((hole) => closeSync(hole));
    assert.equal(stranger, fd, 'the stranger did not get the victim\'s number');
    await once(sink, 'connection');
    // More than the kernel takes at once: the write to the stranger stops short, and the
    // server asks for WRITABLE on a registration that is not there.
    const big = Buffer.alloc(8 * 1024 * 1024, 5);
    sender.send(big);
    await reader.waitFrames(1, 20_000);
    await sender.waitFrames(1, 20_000);
    await waitFor(() => server.stats.closedByReason.error === 1, 'the victim to be removed');
    assert.equal(server.connections, 2);
    sender.send('still serving');
    const got = await reader.waitFrames(2);
    assert.ok(got[0]!.equals(big));
    assert.equal(got[1]!.toString(), 'still serving');
    [victim, sender, reader].forEach((c) => c.destroy());
  } finally {
    if (kept >= 0) native.close(kept);
    sink.close();
    await server.close();
  }
});

test('[native] read budget: a client with far more than READ_BUDGET waiting is read on later turns, and nothing is lost', async (t) => {
  // The listener's receive buffer is inherited by accepted sockets: large, so that several MiB
  // can wait in the kernel for one client.
  const listenFd = native.listen('127.0.0.1', 0, 0, false);
  native.setsockopt(listenFd, SOL_SOCKET, SO_RCVBUF, 4 * 1024 * 1024);
  const { server, recorder } = startTraced({ listenFd });
  let sender = -1;
  try {
    const reader = await TestClient.connect(server.address.port);
    sender = native.connect('127.0.0.1', server.address.port);
    native.setsockopt(sender, SOL_SOCKET, SO_SNDBUF, 4 * 1024 * 1024);
    await waitFor(() => server.connections === 2 && peerPort(sender) === server.address.port, 'two connections');
    const serverFd = recorder.serverSide(native.localAddress(sender).port).fd;
    const bodies = distinctFrames(2000, 1000);
    const bytes = Buffer.concat(bodies.map(encodeFrame));
    // All of it written while the server cannot run (this is synchronous), and all of it in the
    // server's receive buffer before it reads: no more data will arrive, so no new edge will
    // come to say there is something left to read.
    let written = 0;
    while (written < bytes.length) {
      const n = native.write(sender, bytes, written, bytes.length - written);
      if (n <= 0) break;
      written += n;
    }
    const waiting = native.bytesReadable(serverFd);
    assert.equal(written, bytes.length, 'the kernel did not take the whole burst at once');
    assert.equal(waiting, bytes.length, 'the burst is not all in the server\'s receive buffer');
    const got = await reader.waitFrames(bodies.length, 20_000);
    got.forEach((body, i) => assert.ok(body.equals(bodies[i]!), `frame ${i} altered`));
    // One turn reads while its budget lasts, each read at most an arena: less than
    // READ_BUDGET + ARENA_BYTES. More than that after one poll batch took more than one turn.
    const reads = recorder.reads.get(serverFd)!;
    const first = reads[0]![0];
    const afterFirstBatch = reads.filter(([batch]) => batch === first).reduce((sum, [, n]) => sum + n, 0);
    t.diagnostic(`${waiting} bytes waiting at once; ${reads.length} reads, ${afterFirstBatch} bytes of them with no new poll event`);
    assert.ok(afterFirstBatch > READ_BUDGET + ARENA_BYTES, `${afterFirstBatch} bytes read after one event: the budget's continuation did not run`);
  } finally {
    if (sender >= 0) native.close(sender);
    await server.close();
  }
});
