// The batch buffer. Reads land here directly; complete frames stay in place and are
// broadcast from here in one write per receiver, so a frame is never copied per receiver.
// Receivers that cannot take a region at once keep a view of it: the arena is then
// "pinned" and the next rotation allocates a fresh one instead of overwriting it.

export const ARENA_BYTES = 1024 * 1024;

export class Arena {
  buf: Buffer = Buffer.allocUnsafeSlow(ARENA_BYTES);
  /** Start of the committed frames not yet broadcast. */
  batchStart = 0;
  /** End of the committed frames; an incomplete frame being read may follow it. */
  committed = 0;
  /** Complete frames in [batchStart, committed). */
  frames = 0;
  /** A receiver's queue holds a region of `buf`: the next rotation must not overwrite it. */
  pinned = false;

  get pending(): number {
    return this.committed - this.batchStart;
  }

  /** Room after the committed frames and `tail` bytes of an incomplete frame. */
  room(tail: number): number {
    return this.buf.length - this.committed - tail;
  }

  markBroadcast(): void {
    this.batchStart = this.committed;
  }

  /**
   * Starts over at offset 0 (or in a fresh buffer if pinned or too small), carrying the
   * `tail` bytes of an incomplete frame along. Everything committed must be broadcast first.
   */
  rotate(tail: number, need: number): void {
    const from = this.committed;
    if (this.pinned || need > this.buf.length) {
      const fresh = Buffer.allocUnsafeSlow(Math.max(ARENA_BYTES, need));
      this.buf.copy(fresh, 0, from, from + tail);
      this.buf = fresh;
      this.pinned = false;
    } else if (tail > 0) {
      this.buf.copyWithin(0, from, from + tail);
    }
    this.batchStart = 0;
    this.committed = 0;
  }
}
