// The reading half, on a connection of its own (XREAD BLOCK holds it). Each turn is one atomic
// script read from the last seen ID (stream.ts); when nothing is new, a blocking XREAD waits for
// the next entry and the loop reads again through the script (a blocking read's reply alone cannot
// say whether retention dropped something before it).
//
// Loss is never silent: a gap in the stream (retention trimmed past our position) or in one
// publisher's sequence numbers drops every local client with the reason; a duplicate (an XADD
// resent after its reply was lost) is skipped.
import type { Logger } from '../../log.js';
import { FrameScan, scanFrames } from '../../protocol/frame.js';
import type { FanoutHost } from '../../server/fanout.js';
import type { BusConnection, BusSide } from './connection.js';
import { epochKey, parseEntry, parseReadReply, READ_SCRIPT, type RawEntry } from './stream.js';
import { createHash, randomUUID } from 'node:crypto';

const READ_COUNT = 256;
const BLOCK_MS = 5000;
const RETRY_DELAY_MS = 200;

export class StreamReader {
  private lastId = '$';
  private epoch = '';
  private readonly sha: string;
  private readonly sequences = new Map<string, number>();
  private readonly scan = new FrameScan();
  private closed = false;
  private loop: Promise<void> | null = null;
  /** Entries passed (delivered or skipped), anchored to XINFO's entries-added: lag = added − this. */
  private position = -1;
  received = 0;
  duplicates = 0;
  gaps = 0;

  private readonly connection: BusConnection;
  private readonly stream: string;
  private readonly nodeId: string;
  private readonly log: Logger;
  private readonly display: string;

  constructor(side: BusSide, private readonly host: FanoutHost) {
    ({ connection: this.connection, stream: this.stream, nodeId: this.nodeId, log: this.log, display: this.display } = side);
    this.sha = createHash('sha1').update(READ_SCRIPT).digest('hex');
  }

  /** The stream's entries-added as last seen; the lag probe compares it with `position`. */
  entriesBehind(added: number): number {
    return this.position < 0 || added < 0 ? 0 : Math.max(0, added - this.position);
  }

  /** Takes the current end of the stream as the starting point (entries before it are not ours). */
  async join(): Promise<void> {
    await this.connection.ready();
    await this.readOnce();
  }

  start(): void {
    this.loop ??= this.run();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      try {
        await this.connection.ready();
        if (await this.readOnce()) continue;
        await this.connection.redis.callBuffer('XREAD', 'BLOCK', BLOCK_MS, 'COUNT', 1, 'STREAMS', this.stream, this.lastId);
      } catch (error) {
        if (this.closed) return;
        if (this.connection.redis.status === 'ready') {
          this.log.warn(`bus ${this.display}: read failed: ${(error as Error).message}; retrying`);
          await new Promise((resolve) => setTimeout(resolve, RETRY_DELAY_MS));
        }
      }
    }
  }

  /** One script read; true if it returned entries (there may be more). */
  private async readOnce(): Promise<boolean> {
    const args = [2, this.stream, epochKey(this.stream), this.lastId, READ_COUNT, this.epoch, randomUUID(), this.position < 0 ? '1' : '0'];
    let raw: unknown;
    try {
      raw = await this.connection.redis.callBuffer('EVALSHA', this.sha, ...args);
    } catch (error) {
      if (!(error as Error).message.startsWith('NOSCRIPT')) throw error;
      raw = await this.connection.redis.callBuffer('EVAL', READ_SCRIPT, ...args);
    }
    if (this.closed) return false;
    const reply = parseReadReply(raw);
    const joining = this.epoch === '';
    this.epoch = reply.epoch;
    if (reply.reset) {
      this.log.warn(`bus ${this.display}: the stream was replaced (Redis restarted without persistence, or the key was deleted); reading the new one from its start, with per-sender sequence numbers guarding against loss`);
    }
    if (reply.gap) {
      this.gaps++;
      this.sequences.clear();
      this.host.dropAllClients(`bus ${this.display}: retention (--bus-retention) no longer holds entries this node had not read (its last ID ${this.lastId} was trimmed); frames were lost`);
    }
    if (reply.added >= 0 && (joining || reply.gap || reply.reset || this.position < 0)) {
      // Entries before the stream's first one were trimmed or lost; the reader stands before
      // the first one it read in this reply (at the end of the stream when joining).
      this.position = joining ? reply.added : reply.added - reply.length;
    }
    this.lastId = reply.lastId;
    if (joining) return false;
    this.take(reply.entries);
    return reply.entries.length > 0;
  }

  private take(entries: RawEntry[]): void {
    for (const [id, fields] of entries) {
      this.lastId = id.toString('latin1');
      if (this.position >= 0) this.position++;
      const entry = parseEntry(fields);
      if (entry === null) {
        this.log.warn(`bus ${this.display}: entry ${this.lastId} is not mob's; skipped`);
        continue;
      }
      if (entry.node === this.nodeId) continue;
      const last = this.sequences.get(entry.publisher);
      if (last !== undefined && entry.sequence <= last) {
        this.duplicates++;
        continue;
      }
      if (last !== undefined && entry.sequence !== last + 1) {
        this.gaps++;
        this.host.dropAllClients(`bus ${this.display}: entries ${last + 1}…${entry.sequence - 1} of publisher ${entry.publisher} never arrived (lost by Redis); frames were lost`);
      }
      this.sequences.set(entry.publisher, entry.sequence);
      const frames = entry.frames;
      if (scanFrames(frames, 0, frames.length, Number.MAX_SAFE_INTEGER, this.scan).end !== frames.length) {
        this.log.error(`bus ${this.display}: entry ${this.lastId} holds a broken frame sequence; skipped`);
        continue;
      }
      this.received++;
      this.host.deliver(frames, 0, frames.length);
    }
  }
}
