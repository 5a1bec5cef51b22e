import type { Token } from '../../poll/index.js';
import type { CloseReason } from '../policy.js';
import type { Slotted } from './slab.js';

/** One client of the native engine. Buffers are created only when a client needs them. */
export class Connection implements Slotted {
  slot = -1;
  generation = 0;
  token: Token = -1;
  liveIndex = -1;

  // Input: the incomplete frame left over when a read hit EAGAIN.
  /** Small partial frame (header, or a frame under ASSEMBLY_THRESHOLD). */
  stash: Buffer | null = null;
  stashLength = 0;
  /** A large frame read straight into its own buffer, then broadcast from it with no copy. */
  assembly: Buffer | null = null;
  assembled = 0;
  assemblyTotal = 0;

  // Output: views into broadcast buffers this client could not take yet, oldest first.
  queue: Buffer[] | null = null;
  queuedBytes = 0;
  /** WRITABLE is in the registration (only while output is pending). */
  writeInterest = false;
  /** Its read budget ran out before EAGAIN; it is in the server's list to read next turn. */
  unfinished = false;
  /** The peer sent FIN: deliver what is pending, then close. */
  readClosed = false;
  closing: CloseReason | null = null;

  constructor(
    readonly fd: number,
    readonly peer: string,
  ) {}

  enqueue(view: Buffer): void {
    (this.queue ??= []).push(view);
    this.queuedBytes += view.length;
  }

  /** Drops `written` bytes from the front of the queue. */
  consume(written: number): void {
    const queue = this.queue!;
    this.queuedBytes -= written;
    let done = 0;
    while (done < queue.length && written >= queue[done]!.length) {
      written -= queue[done]!.length;
      done++;
    }
    if (done > 0) queue.splice(0, done);
    if (written > 0) queue[0] = queue[0]!.subarray(written);
  }
}
