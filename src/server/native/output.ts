// A connection's output that the kernel did not take yet: regions of broadcast buffers, oldest
// first, as (buffer, start, end) in three parallel arrays read from a head index (issue #12).
//
// - No view object per receiver: lagging receivers of one broadcast all hold the same buffer
//   reference, each with its own offsets (numbers), so a broadcast to 1,000 slow readers makes
//   no subarray at all.
// - A region that starts where the last one ended in the same buffer (consecutive batches of
//   one arena) extends it instead of adding an entry.
// - Consuming moves the head; the arrays are compacted only once the consumed part is most of
//   them, so draining N entries costs O(N), not the O(N^2) of splice (1M 64-byte entries:
//   1.9 s with splice).

/** What one entry costs beyond its bytes (three array slots and their share of the arrays'
 *  growth), counted against --max-output so a flood of tiny regions cannot hide memory. */
export const ENTRY_OVERHEAD = 32;

/** Entries handed to one writev; the kernel's IOV_MAX is 1024 on Linux and macOS. */
const IOV_MAX = 1024;
/** Compact once at least this many consumed entries sit in front of the head. */
const COMPACT_AT = 1024;

export class OutputQueue {
  private bufs: Buffer[] = [];
  private starts: number[] = [];
  private ends: number[] = [];
  private head = 0;
  /** Bytes queued. */
  bytes = 0;

  get entries(): number {
    return this.bufs.length - this.head;
  }

  /** Bytes plus the per-entry overhead: what --max-output is checked against. */
  get cost(): number {
    return this.bytes + (this.bufs.length - this.head) * ENTRY_OVERHEAD;
  }

  push(buf: Buffer, start: number, end: number): void {
    const last = this.ends.length - 1;
    if (last >= this.head && this.bufs[last] === buf && this.ends[last] === start) {
      this.ends[last] = end;
    } else {
      this.bufs.push(buf);
      this.starts.push(start);
      this.ends.push(end);
    }
    this.bytes += end - start;
  }

  /** The head entry, for a single write. */
  headBuffer(): Buffer { return this.bufs[this.head]!; }
  headStart(): number { return this.starts[this.head]!; }
  headEnd(): number { return this.ends[this.head]!; }

  /** Fills `iov` with views of up to IOV_MAX entries from the head (views made here, once per
   *  flush, not per broadcast) and returns how many. */
  gather(iov: Buffer[]): number {
    const count = Math.min(this.bufs.length - this.head, IOV_MAX);
    for (let i = 0; i < count; i++) {
      const at = this.head + i;
      const buf = this.bufs[at]!;
      const start = this.starts[at]!;
      const end = this.ends[at]!;
      iov[i] = start === 0 && end === buf.length ? buf : buf.subarray(start, end);
    }
    iov.length = count;
    return count;
  }

  /** Drops `written` bytes from the front. */
  consume(written: number): void {
    this.bytes -= written;
    const bufs = this.bufs;
    let head = this.head;
    while (written > 0) {
      const left = this.ends[head]! - this.starts[head]!;
      if (written < left) {
        this.starts[head] = this.starts[head]! + written;
        break;
      }
      written -= left;
      bufs[head] = EMPTY; // let the buffer go now, not at compaction
      head++;
    }
    this.head = head;
    if (head === bufs.length) {
      this.clear();
    } else if (head >= COMPACT_AT && head * 2 >= bufs.length) {
      bufs.splice(0, head);
      this.starts.splice(0, head);
      this.ends.splice(0, head);
      this.head = 0;
    }
  }

  clear(): void {
    this.bufs.length = 0;
    this.starts.length = 0;
    this.ends.length = 0;
    this.head = 0;
    this.bytes = 0;
  }
}

const EMPTY = Buffer.alloc(0);
