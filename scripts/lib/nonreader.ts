// One client that never reads, against a `mob serve` child, with the server's RSS sampled from
// /proc: shared by scripts/nonreader-rss.ts and test/uv-bounds.test.ts.
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { encodeFrame } from '../../src/protocol/frame.ts';
import { spawnServe, stopServe } from './serve-process.ts';
import { rssKiB } from './proc.ts';

export interface NonReaderOptions {
  engine: string;
  maxOutput: number;
  frameBytes: number;
  /** Send the same traffic with everyone reading before taking the baseline. */
  warmUp?: boolean;
  /** Give up after this long (the non-reader was never cut off). */
  timeoutMs?: number;
}

export interface NonReaderResult {
  /** Server RSS just after startup, before any traffic. */
  coldKiB: number;
  /** Server RSS before the non-reader connects: idle with the sender connected, or after the
   *  warm-up. */
  baselineKiB: number;
  /** Highest RSS sampled while the non-reader was connected. */
  peakKiB: number;
  /** 1 s and 5 s after the server cut it off (the sender stops then). */
  afterKiB: number;
  settledKiB: number;
  sentBytes: number;
  /** The server's warning about the cut. */
  warning: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function open(port: number): Promise<Socket> {
  const socket = connect({ port, host: '127.0.0.1', noDelay: true });
  await once(socket, 'connect');
  return socket;
}

/** Sends frames, reading its echo, until `stop()` or `bytes` are sent; resolves with the bytes sent. */
async function send(socket: Socket, frame: Buffer, until: () => boolean): Promise<number> {
  let sent = 0;
  while (!until()) {
    if (!socket.write(frame)) await once(socket, 'drain');
    sent += frame.length;
  }
  return sent;
}

export async function measureNonReader(options: NonReaderOptions): Promise<NonReaderResult> {
  const { engine, maxOutput, frameBytes, warmUp = false, timeoutMs = 60_000 } = options;
  const server = await spawnServe(['--engine', engine, '--max-output', String(maxOutput), '--max-frame', String(Math.max(frameBytes, 1024))], {
    env: { MOB_LOG: 'warn' },
  });
  const pid = server.child.pid!;
  const coldKiB = rssKiB(pid).total;
  const frame = encodeFrame(Buffer.alloc(frameBytes, 0x6d));
  const sender = await open(server.port);
  sender.resume();
  try {
    if (warmUp) {
      // The same traffic with everyone reading first, so the JIT and the heap's steady size are
      // in the baseline.
      const warm = await open(server.port);
      warm.resume();
      let warmed = 0;
      await send(sender, frame, () => (warmed += frame.length) > maxOutput);
      warm.destroy();
    }
    await sleep(1000);
    const baselineKiB = rssKiB(pid).total;

    const nonReader = await open(server.port);
    nonReader.pause();
    nonReader.on('error', () => {});
    let peakKiB = baselineKiB;
    const sampler = setInterval(() => (peakKiB = Math.max(peakKiB, rssKiB(pid).total)), 10);
    const cut = () => /slow reader/.test(server.stderr());
    const deadline = Date.now() + timeoutMs;
    const sentBytes = await send(sender, frame, () => cut() || Date.now() > deadline);
    await sleep(100);
    clearInterval(sampler);
    peakKiB = Math.max(peakKiB, rssKiB(pid).total);
    nonReader.destroy();
    if (!cut()) throw new Error(`the server never cut the non-reader off: ${server.stderr()}`);
    await sleep(1000);
    const afterKiB = rssKiB(pid).total;
    await sleep(4000);
    const settledKiB = rssKiB(pid).total;
    const warning = server.stderr().split('\n').find((line) => line.includes('slow reader')) ?? '';
    return { coldKiB, baselineKiB, peakKiB, afterKiB, settledKiB, sentBytes, warning };
  } finally {
    sender.destroy();
    await stopServe(server.child);
  }
}
