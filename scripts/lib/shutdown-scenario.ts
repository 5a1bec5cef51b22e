// Shutdown under load, as a hostile-but-ordinary user sees it (issue #9): clients that are behind
// (megabytes queued for them) and still sending when the server is told to stop. Each one must
// still receive every frame the server had read before the stop, then a clean end of stream.
// Shared by test/shutdown.test.ts and scripts/shutdown-loss.ts (before/after figures).
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { encodeFrame, FrameDecoder } from '../../src/protocol/frame.ts';
import { spawnServe } from './serve-process.ts';
import { native } from '../../src/native/binding.ts';

export interface ShutdownScenario {
  /** Extra `mob serve` arguments (engine, limits). */
  args: string[];
  /** Clients that are behind when the signal comes, each still sending afterwards. */
  clients: number;
  frames: number;
  frameBytes: number;
  shutdownTimeoutMs: number;
  /** Another build's dist/cli/main.js (a before/after comparison). */
  cli?: string;
  /** The signals to send, in order, the second once every client has started reading. */
  signals?: NodeJS.Signals[];
}

export interface ShutdownOutcome {
  /** Clients that got every frame, intact, then EOF. */
  complete: number;
  /** Clients that got fewer frames (or altered ones). */
  missed: number;
  /** Clients whose stream ended in a reset. */
  reset: number;
  /** Which ones, in client order. */
  wasReset: boolean[];
  /** Frames received per client, in client order. */
  received: number[];
  exitCode: number | null;
  elapsedMs: number;
  stderr: string;
}

const MAGIC = 0x6d6f6221;

/** Whether the kernel holds a reset this socket's reads never reported. libuv turns EPOLLHUP
 *  right after a short read into an EOF without reading again, so a node:net client whose
 *  stream was cut by a reset may see only 'end' (issue #9 item 6 looked like clean EOFs on the
 *  uv engine, 2-3 clients of 5, for that reason); the socket's pending error still says so. */
function resetUnreported(socket: Socket): boolean {
  const fd = (socket as unknown as { _handle: { fd: number } | null })._handle?.fd ?? -1;
  return fd >= 0 && native.socketError(fd) === native.errno.ECONNRESET;
}

function payload(i: number, size: number): Buffer {
  const body = Buffer.alloc(size, i & 0xff);
  body.writeUInt32BE(MAGIC, 0);
  body.writeUInt32BE(i, 4);
  return body;
}

export async function runShutdownScenario(scenario: ShutdownScenario): Promise<ShutdownOutcome> {
  const { clients: count, frames, frameBytes, shutdownTimeoutMs, cli } = scenario;
  const signals = scenario.signals ?? ['SIGTERM'];
  const server = await spawnServe(['--shutdown-timeout', String(shutdownTimeoutMs), ...scenario.args], {
    cli,
  });
  const received = new Array<number>(count).fill(0);
  const intact = new Array<boolean>(count).fill(true);
  const resets = new Array<boolean>(count).fill(false);
  const sockets: Socket[] = [];
  const closed: Promise<void>[] = [];
  try {
    for (let c = 0; c < count; c++) {
      // Half-open allowed, so the socket is still open at 'end' to ask for its pending error.
      const socket = connect({ port: server.port, host: '127.0.0.1', allowHalfOpen: true });
      socket.pause(); // behind: takes nothing until the signal
      const decoder = new FrameDecoder((body) => {
        if (body.length < 8 || body.readUInt32BE(0) !== MAGIC) return; // another client's
        const i = body.readUInt32BE(4);
        if (i !== received[c] || !body.equals(payload(i, frameBytes))) intact[c] = false;
        received[c]!++;
      });
      // A slow reader: a pause after every chunk, so its kernel buffers stay full and the
      // server's send buffer holds data for it when its queue runs dry.
      socket.on('data', (chunk: Buffer) => {
        decoder.push(chunk);
        socket.pause();
        setTimeout(() => socket.resume(), 1);
      });
      socket.on('error', (error: NodeJS.ErrnoException) => {
        if (error.code === 'ECONNRESET' || error.code === 'EPIPE') resets[c] = true;
      });
      socket.on('end', () => {
        if (resetUnreported(socket)) resets[c] = true;
        socket.destroy();
      });
      // Not events.once: it rejects on 'error', and a reset is an outcome here, not a failure.
      closed.push(new Promise<void>((resolve) => socket.once('close', () => resolve())));
      sockets.push(socket);
      await once(socket, 'connect');
    }
    // The sender connects last: once its own frames come back, every client before it was
    // accepted and has them queued.
    const sender = connect({ port: server.port, host: '127.0.0.1' });
    sender.on('error', () => {});
    await once(sender, 'connect');
    let echoed = 0;
    const senderDecoder = new FrameDecoder(() => echoed++);
    sender.on('data', (chunk: Buffer) => senderDecoder.push(chunk));
    for (let i = 0; i < frames; i++) sender.write(encodeFrame(payload(i, frameBytes)));
    const deadline = Date.now() + 30_000;
    while (echoed < frames) {
      if (Date.now() > deadline) throw new Error(`the sender got ${echoed} of its ${frames} frames back`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    // A reset, not a FIN: a half-closed client stays a receiver (issue #9), and with workers
    // it would stay one until the peer links end, then count among those a second signal cuts.
    sender.resetAndDestroy();
    const started = Date.now();
    server.child.kill(signals[0]!);
    while (!/no longer accepting/.test(server.stderr())) {
      // Generous: on a loaded machine (the full suite) the line can take seconds; only its
      // presence is asserted, never how soon it came.
      if (Date.now() - started > 30_000) throw new Error(`no shutdown line: ${server.stderr()}`);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    // Still sending: one frame at once, then one every 5 ms while reading, until the end.
    const chatter = encodeFrame(Buffer.from('sent after the signal'));
    const chat = (socket: Socket) => {
      // A reset may already be on its way: the error comes through 'error', not the callback.
      if (!socket.destroyed && socket.writable && !socket.writableNeedDrain) socket.write(chatter, () => {});
    };
    for (const socket of sockets) {
      chat(socket);
      socket.resume();
    }
    const ticker = setInterval(() => sockets.forEach(chat), 5);
    if (signals.length > 1) server.child.kill(signals[1]!);
    const exit = once(server.child, 'exit') as Promise<[number | null]>;
    await Promise.race([Promise.all(closed), new Promise((resolve) => setTimeout(resolve, shutdownTimeoutMs + 15_000))]);
    clearInterval(ticker);
    // The exit follows the last close, but a loaded machine (workers joining their threads) can
    // take seconds: an upper bound, not a timing the scenario asserts.
    const [exitCode] = await Promise.race([exit, new Promise<[null]>((resolve) => setTimeout(() => resolve([null]), 30_000))]);
    const complete = received.filter((n, c) => n === frames && intact[c] && !resets[c]).length;
    return {
      complete, missed: count - complete, reset: resets.filter(Boolean).length, wasReset: resets, received,
      exitCode, elapsedMs: Date.now() - started, stderr: server.stderr(),
    };
  } finally {
    sockets.forEach((socket) => socket.destroy());
    server.child.kill('SIGKILL');
  }
}
