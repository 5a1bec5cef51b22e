// One client that never reads, against a `mob serve` child, with the server's RSS sampled from
// /proc: shared by scripts/nonreader-rss.ts and test/uv-bounds.test.ts.
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { encodeFrame } from '../../src/protocol/frame.ts';
import { spawnServe, stopServe } from './serve-process.ts';
import { rssKiB } from './proc.ts';
import { setTimeout as sleep } from 'node:timers/promises';

export interface NonReaderOptions {
  engine: string;
  maxOutput: number;
  frameBytes: number;
  /** Bytes of the same traffic, everyone reading, before the baseline is taken (default 8 MiB:
   *  enough for the JIT and the heap to settle, little enough to leave no garbage behind). */
  warmUpBytes?: number;
  /** Give up after this long (the non-reader was never cut off). */
  timeoutMs?: number;
  /** Non-readers to come and go, unmeasured, before the baseline (default 0). After one, the
   *  baseline is a server that has already grown its heaps and compiled its code for this
   *  traffic and then given memory back: without it, a baseline taken before any of that
   *  happened put the same peak at 1.03x or 1.55x --max-output (at 32 MiB), by whether the
   *  warm-up's garbage had been returned yet. */
  warmUpRounds?: number;
}

export interface NonReaderResult {
  /** Server RSS just after startup, before any traffic. */
  coldKiB: number;
  /** Server RSS before the non-reader connects, after the warm-up. */
  baselineKiB: number;
  /** Highest RSS sampled while the non-reader was connected. */
  peakKiB: number;
  /** 1 s after the server cut it off (the sender stops then), and the lowest in the 7 s after. */
  afterKiB: number;
  settledKiB: number;
  /** The anonymous part (RssAnon) of the baseline and of the lowest reading in the 7 s after.
   *  What the non-reader held is anonymous memory; the file-backed rest grows by the node code
   *  pages the hot path faults in when TurboFan first compiles it (about 4.5 MiB), once. */
  baselineAnonKiB: number;
  settledAnonKiB: number;
  /** Peak RSS while a second non-reader came and went. */
  secondPeakKiB: number;
  sentBytes: number;
  /** The server's warning about the cut. */
  warning: string;
}

/** A loopback client with Nagle off, once connected (also test/uv-bounds.test.ts's). */
export async function openClient(port: number): Promise<Socket> {
  const socket = connect({ port, host: '127.0.0.1', noDelay: true });
  await once(socket, 'connect');
  return socket;
}

/** What the sender may have sent and not yet read back: it must not become a slow reader itself
 *  (its echo is the whole stream too), so the server holds next to nothing for it. */
const SENDER_WINDOW = 4 * 1024 * 1024;

/** A sender reading its own echo. */
class Sender {
  sent = 0;
  echoed = 0;
  error: Error | null = null;

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => (this.echoed += chunk.length));
    socket.on('error', (error) => (this.error = error));
  }

  /** Sends `frame` until `until()` holds, never more than SENDER_WINDOW ahead of its echo. */
  async send(frame: Buffer, until: () => boolean): Promise<void> {
    while (!until() && this.error === null) {
      if (this.sent - this.echoed > SENDER_WINDOW) {
        await sleep(1);
        continue;
      }
      const more = this.socket.write(frame);
      this.sent += frame.length;
      if (!more) await once(this.socket, 'drain').catch(() => {});
    }
  }
}

export async function measureNonReader(options: NonReaderOptions): Promise<NonReaderResult> {
  const { engine, maxOutput, frameBytes, warmUpBytes = 8 * 1024 * 1024, timeoutMs = 60_000, warmUpRounds = 0 } = options;
  const server = await spawnServe(['--engine', engine, '--max-output', String(maxOutput), '--max-frame', String(Math.max(frameBytes, 1024))], {
    env: { MOB_LOG: 'warn' },
  });
  const pid = server.child.pid!;
  const coldKiB = rssKiB(pid).total;
  const frame = encodeFrame(Buffer.alloc(frameBytes, 0x6d));
  const sender = new Sender(await openClient(server.port));
  try {
    if (warmUpBytes > 0) {
      const warm = await openClient(server.port);
      warm.resume();
      await sender.send(frame, () => sender.sent > warmUpBytes);
      warm.destroy();
    }

    // One non-reader until it is cut off; the peak RSS meanwhile.
    const round = async (): Promise<{ peakKiB: number; sentBytes: number }> => {
      const cuts = (server.stderr().match(/slow reader/g) ?? []).length;
      const cut = () => (server.stderr().match(/slow reader/g) ?? []).length > cuts;
      const nonReader = await openClient(server.port);
      nonReader.pause();
      nonReader.on('error', () => {});
      let peakKiB = rssKiB(pid).total;
      const sampler = setInterval(() => (peakKiB = Math.max(peakKiB, rssKiB(pid).total)), 10);
      const deadline = Date.now() + timeoutMs;
      const before = sender.sent;
      await sender.send(frame, () => cut() || Date.now() > deadline);
      await sleep(100);
      clearInterval(sampler);
      peakKiB = Math.max(peakKiB, rssKiB(pid).total);
      nonReader.destroy();
      if (sender.error !== null) throw new Error(`the sender failed (${sender.error.message}): ${server.stderr()}`);
      if (!cut()) throw new Error(`the server never cut the non-reader off: ${server.stderr()}`);
      return { peakKiB, sentBytes: sender.sent - before };
    };
    // The lowest readings over a window: the libuv engine's release waits on V8's collection
    // and the trim after it, which a loaded machine can push past any one fixed instant.
    const lowest = async (ms: number): Promise<{ total: number; anon: number }> => {
      const low = rssKiB(pid);
      for (let waited = 0; waited < ms; waited += 250) {
        await sleep(250);
        const now = rssKiB(pid);
        low.total = Math.min(low.total, now.total);
        low.anon = Math.min(low.anon, now.anon);
      }
      return low;
    };

    for (let i = 0; i < warmUpRounds; i++) await round();
    await sleep(1000);
    const { total: baselineKiB, anon: baselineAnonKiB } = warmUpRounds > 0 ? await lowest(3000) : rssKiB(pid);

    const { peakKiB, sentBytes } = await round();
    await sleep(1000);
    const afterKiB = rssKiB(pid).total;
    const { total: settledKiB, anon: settledAnonKiB } = await lowest(7000);
    // A second one: the memory the first left behind is used again, not added to.
    const second = await round();
    const warning = server.stderr().split('\n').find((line) => line.includes('slow reader')) ?? '';
    return { coldKiB, baselineKiB, peakKiB, afterKiB, settledKiB, baselineAnonKiB, settledAnonKiB, secondPeakKiB: second.peakKiB, sentBytes, warning };
  } finally {
    sender.socket.destroy();
    await stopServe(server.child);
  }
}
