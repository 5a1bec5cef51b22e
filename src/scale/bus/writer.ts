// The publishing half: local batches, copied out of the arena (the seam's rule), wait in a
// bounded backlog until an XADD has them in Redis. One XADD is in flight at a time and carries
// everything that queued meanwhile (up to MAX_ENTRY_BYTES), so entries grow with load instead of
// one per batch. While Redis is down the backlog keeps filling; past its bound publish() says no
// and the host disconnects those senders.
import type { BusSide } from './connection.js';
import { bellKey, FIELD } from './stream.js';
import { ThrottledLine } from './throttle.js';

/** An entry this large is sent on its own; more waiting batches go in the next one. */
const MAX_ENTRY_BYTES = 1 << 20;
const RETRY_DELAY_MS = 200;

interface PendingEntry {
  sequence: number;
  data: Buffer;
  /** Backlog batches it carries (removed once Redis has the entry). */
  batches: number;
}

export class StreamWriter {
  private readonly backlog: Buffer[] = [];
  private bytes = 0;
  private pending: PendingEntry | null = null;
  private sequence = 0;
  private flushing = false;
  private closed = false;
  private readonly refusals = new ThrottledLine(10_000);
  private readonly failures = new ThrottledLine();
  published = 0;
  refused = 0;

  private readonly bell: string;

  constructor(
    private readonly side: BusSide,
    readonly publisherId: string,
    private readonly maxLen: number,
    private readonly backlogLimit: number,
  ) {
    this.bell = bellKey(side.stream);
  }

  /** Bytes taken from local senders and not yet in Redis. */
  get backlogBytes(): number {
    return this.bytes;
  }

  publish(frames: Buffer, start: number, end: number): boolean {
    const length = end - start;
    if (length <= 0) return true;
    if (this.bytes + length > this.backlogLimit) {
      this.refused++;
      this.refusals.emit((line) => this.side.log.warn(line), `bus ${this.side.display}: ${this.bytes} B not yet published (bound ${this.backlogLimit} B, --bus-backlog): refusing new frames; their senders are disconnected`);
      return false;
    }
    const copy = Buffer.allocUnsafe(length);
    frames.copy(copy, 0, start, end);
    this.backlog.push(copy);
    this.bytes += length;
    if (!this.flushing) void this.flush();
    return true;
  }

  /** Resolves once the backlog is empty or `deadline` (ms epoch) passes. */
  async drain(deadline: number): Promise<void> {
    while (this.bytes > 0 && Date.now() < deadline && !this.closed) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  close(): void {
    this.closed = true;
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (!this.closed && (this.pending !== null || this.backlog.length > 0)) {
        const entry = this.pending ?? (this.pending = this.nextEntry());
        try {
          await this.side.connection.ready();
          // The doorbell rings after the entry is in (same connection, in order): a reader it
          // wakes finds the entry. Lost between the two, it only delays readers to their timeout.
          const [added] = (await this.side.connection.redis.pipeline()
            .callBuffer(
              'XADD', this.side.stream, 'MAXLEN', '~', this.maxLen, '*',
              FIELD.node, this.side.nodeId, FIELD.publisher, this.publisherId,
              FIELD.sequence, entry.sequence, FIELD.frames, entry.data,
            )
            .callBuffer('XADD', this.bell, 'MAXLEN', 1, '*', FIELD.node, this.side.nodeId)
            .exec()) ?? [];
          if (!added || added[0]) throw added?.[0] ?? new Error('no reply');
        } catch (error) {
          if (this.closed) return;
          // Connection errors: ready() waits for the client's reconnect. Anything else (OOM,
          // WRONGTYPE) is retried after a pause; the backlog's bound still protects memory.
          if (this.side.connection.redis.status === 'ready') {
            this.failures.emit((line) => this.side.log.warn(line), `bus ${this.side.display}: XADD failed: ${(error as Error).message}; retrying`);
            await new Promise((resolve) => setTimeout(resolve, RETRY_DELAY_MS));
          }
          continue;
        }
        this.backlog.splice(0, entry.batches);
        this.bytes -= entry.data.length;
        this.pending = null;
        this.published++;
      }
    } catch {
      // ready() rejects once closed: nothing left to do.
    } finally {
      this.flushing = false;
    }
  }

  private nextEntry(): PendingEntry {
    let batches = 1;
    let size = this.backlog[0]!.length;
    while (batches < this.backlog.length && size + this.backlog[batches]!.length <= MAX_ENTRY_BYTES) {
      size += this.backlog[batches]!.length;
      batches++;
    }
    const data = batches === 1 ? this.backlog[0]! : Buffer.concat(this.backlog.slice(0, batches), size);
    return { sequence: ++this.sequence, data, batches };
  }
}
