import type { Token } from '../../poll/index.js';
import type { CloseReason } from '../policy.js';
import { OutputQueue } from './output.js';
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
  /** Memory held for its partial frame (stash bytes + the assembly buffer): --max-input-total. */
  inputHeld = 0;

  // Output: regions of broadcast buffers this client could not take yet.
  output: OutputQueue | null = null;
  /** Bytes in `output` (0 when there is none): the broadcast loop tests it per receiver. */
  queuedBytes = 0;
  /** WRITABLE is in the registration (only while output is pending). */
  writeInterest = false;
  /** Its read budget ran out before EAGAIN; it is in the server's list to read next turn. */
  unfinished = false;
  /** The peer sent FIN: it stays a receiver (half-close) until it closes, errors or lags. */
  readClosed = false;
  /** We sent FIN (shutdown): only its input is drained now, until EOF. */
  writeClosed = false;
  /** The batch (NativeServer.batchSeq) whose senders list holds it, while relays exist. */
  senderMark = -1;
  closing: CloseReason | null = null;

  constructor(
    readonly fd: number,
    readonly peer: string,
  ) {}

  enqueue(buf: Buffer, start: number, end: number): void {
    (this.output ??= new OutputQueue()).push(buf, start, end);
    this.queuedBytes += end - start;
  }

  /** Drops `written` bytes from the front of the queue. */
  consume(written: number): void {
    this.output!.consume(written);
    this.queuedBytes -= written;
  }

  /** Output cost against --max-output: bytes plus per-entry overhead. */
  get outputCost(): number {
    return this.output === null ? 0 : this.output.cost;
  }
}
