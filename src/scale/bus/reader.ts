// The reading half, on a connection of its own (XREAD BLOCK holds it). Each turn is one atomic
// script read from the last seen ID (stream.ts), behind a blocking XREAD on the doorbell that
// waits for the next entry (a blocking read of the stream itself could not say whether retention
// dropped something before what it returns, nor leave out this node's own entries).
//
// Loss is never silent: a gap in the stream (retention trimmed past our position) or in one
// publisher's sequence numbers drops every local client with the reason; a duplicate (an XADD
// resent after its reply was lost) is skipped.
import { FrameScan, scanFrames } from '../../protocol/frame.js';
import type { FanoutHost } from '../../server/fanout.js';
import type { BusSide } from './connection.js';
import { ThrottledLine } from './throttle.js';
import { bellKey, epochKey, parseEntry, parseReadReply, READ_SCRIPT, type RawEntry } from './stream.js';
import { createHash, randomUUID } from 'node:crypto';

const READ_COUNT = 256;
/** A read stops after the entry that takes its frames past this (entries hold up to 1 MiB). */
const READ_BYTES = 4 << 20;
const BLOCK_MS = 5000;
const RETRY_DELAY_MS = 200;

export class StreamReader {
  private lastId = '$';
  private epoch = '';
  private bellId = '0-0';
  private readonly sha: string;
  private readonly sequences = new Map<string, number>();
  private readonly scan = new FrameScan();
  private closed = false;
  private loop: Promise<void> | null = null;
  /** Entries passed (delivered or skipped), anchored to XINFO's entries-added: lag = added − this. */
  private position = -1;
  /** Frames of one read, delivered in one broadcast (one write per receiver per read, not per
   *  entry: one copy of the read's frames costs less than a write per entry per receiver). */
  private readonly ready: Buffer[] = [];
  private readyBytes = 0;
  private readyFrames = 0;
  private readonly readFailures = new ThrottledLine();
  private readonly foreignEntries = new ThrottledLine();
  private readonly brokenEntries = new ThrottledLine();
  received = 0;
  duplicates = 0;
  gaps = 0;

  constructor(private readonly side: BusSide, private readonly host: FanoutHost) {
    this.sha = createHash('sha1').update(READ_SCRIPT).digest('hex');
  }

  /** The stream's entries-added as last seen; the lag probe compares it with `position`. */
  entriesBehind(added: number): number {
    return this.position < 0 || added < 0 ? 0 : Math.max(0, added - this.position);
  }

  /** Takes the current end of the stream as the starting point (entries before it are not ours). */
  async join(): Promise<void> {
    await this.side.connection.ready();
    await this.readOnce(false);
  }

  start(): void {
    this.loop ??= this.run();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.loop;
  }

  private async run(): Promise<void> {
    let wait = false;
    while (!this.closed) {
      try {
        if (this.side.connection.redis.status !== 'ready') {
          await this.side.connection.ready();
          wait = false;
        }
        wait = !(await this.readOnce(wait));
      } catch (error) {
        if (this.closed) return;
        if (this.side.connection.redis.status === 'ready') {
          this.readFailures.emit((line) => this.side.log.warn(line), `bus ${this.side.display}: read failed: ${(error as Error).message}; retrying`);
          await new Promise((resolve) => setTimeout(resolve, RETRY_DELAY_MS));
        }
      }
    }
  }

  /**
   * One script read, after a blocking XREAD when `wait`: both go in one pipeline, so Redis runs
   * the script as soon as the XREAD wakes (a blocked client's next command waits behind it),
   * one round trip per wake-up. The XREAD waits on the doorbell (stream.ts), from the ring the
   * last read saw: any entry added since rang it after. Returns true if there is more to read at once.
   */
  private async readOnce(wait: boolean): Promise<boolean> {
    const redis = this.side.connection.redis;
    const args = [3, this.side.stream, epochKey(this.side.stream), bellKey(this.side.stream), this.lastId, READ_COUNT, this.epoch, randomUUID(), this.position < 0 ? '1' : '0', this.side.nodeId, READ_BYTES];
    let raw: unknown;
    if (wait) {
      const results = await redis.pipeline()
        .callBuffer('XREAD', 'BLOCK', BLOCK_MS, 'STREAMS', bellKey(this.side.stream), this.bellId)
        .callBuffer('EVALSHA', this.sha, ...args)
        .exec();
      const [woken, read] = results ?? [];
      if (woken?.[0]) throw woken[0];
      if (read?.[0]) {
        if (!read[0].message.startsWith('NOSCRIPT')) throw read[0];
        await redis.callBuffer('SCRIPT', 'LOAD', READ_SCRIPT);
        return true;
      }
      raw = read?.[1];
    } else {
      try {
        raw = await redis.callBuffer('EVALSHA', this.sha, ...args);
      } catch (error) {
        if (!(error as Error).message.startsWith('NOSCRIPT')) throw error;
        raw = await redis.callBuffer('EVAL', READ_SCRIPT, ...args);
      }
    }
    if (this.closed) return false;
    const reply = parseReadReply(raw);
    const joining = this.epoch === '';
    this.epoch = reply.epoch;
    if (reply.reset) {
      this.side.log.warn(`bus ${this.side.display}: the stream was replaced (Redis restarted without persistence, or the key was deleted); reading the new one from its start, with per-sender sequence numbers guarding against loss`);
    }
    if (reply.gap) {
      this.gaps++;
      this.sequences.clear();
      this.host.dropAllClients(`bus ${this.side.display}: retention (--bus-retention) no longer holds entries this node had not read (its last ID ${this.lastId} was trimmed); frames were lost`);
    }
    if (reply.added >= 0 && (joining || reply.gap || reply.reset || this.position < 0)) {
      // Entries before the stream's first one were trimmed or lost; the reader stands before
      // the first one it read in this reply (at the end of the stream when joining).
      this.position = joining ? reply.added : reply.added - reply.length;
    }
    this.lastId = reply.lastId;
    this.bellId = reply.bellId;
    if (joining) return false;
    this.take(reply.entries);
    return reply.more;
  }

  private take(entries: RawEntry[]): void {
    for (const [id, fields] of entries) {
      this.lastId = id.toString('latin1');
      if (this.position >= 0) this.position++;
      if (fields.length === 0) continue; // this node's own, stripped by the script
      const entry = parseEntry(fields);
      if (entry === null) {
        this.foreignEntries.emit((line) => this.side.log.warn(line), `bus ${this.side.display}: entry ${this.lastId} is not mob's; skipped`);
        continue;
      }
      if (entry.node === this.side.nodeId) continue;
      const last = this.sequences.get(entry.publisher);
      if (last !== undefined && entry.sequence <= last) {
        this.duplicates++;
        continue;
      }
      if (last !== undefined && entry.sequence !== last + 1) {
        this.gaps++;
        this.flush();
        this.host.dropAllClients(`bus ${this.side.display}: entries ${last + 1}…${entry.sequence - 1} of publisher ${entry.publisher} never arrived (lost by Redis); frames were lost`);
      }
      this.sequences.set(entry.publisher, entry.sequence);
      const frames = entry.frames;
      const scan = scanFrames(frames, 0, frames.length, Number.MAX_SAFE_INTEGER, this.scan);
      if (scan.end !== frames.length) {
        this.brokenEntries.emit((line) => this.side.log.error(line), `bus ${this.side.display}: entry ${this.lastId} holds a broken frame sequence; skipped`);
        continue;
      }
      this.received++;
      this.ready.push(frames);
      this.readyBytes += frames.length;
      this.readyFrames += scan.frames;
    }
    this.flush();
  }

  private flush(): void {
    if (this.ready.length === 0) return;
    const frames = this.ready.length === 1 ? this.ready[0]! : Buffer.concat(this.ready, this.readyBytes);
    const count = this.readyFrames;
    this.ready.length = 0;
    this.readyBytes = 0;
    this.readyFrames = 0;
    this.host.deliver(frames, 0, frames.length, count);
  }
}
