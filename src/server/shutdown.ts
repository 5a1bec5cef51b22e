// Shutdown, the same for both engines (issue #9): nothing that was promised is lost.
//
// 1. Stop accepting, and stop taking input: what was read before the stop still goes out (to
//    local clients and relays); from now on input is read and thrown away (step 2 says why).
// 1b. Workers only (docs/scaling.md, "Shutdown"): frames from the other workers keep coming in
//    through deliver() until every peer has ended its link to this worker (each peer does so
//    once its own step 1 is done), and only then do the clients wind down. Otherwise frames
//    still on a link when the signal came would miss this worker's clients, who would get a
//    clean end of stream.
// 2. Each client's queued output is flushed; meanwhile its input is still read, and thrown
//    away. Read, because a socket closed with unread input sends RST, and a RST makes the
//    client's kernel discard what our kernel had already delivered to it (megabytes on a fast
//    link). Thrown away rather than broadcast, because broadcasting would let any client that
//    keeps sending postpone everyone's end to the deadline and turn a clean stop into resets:
//    what the server promised is the frames it had read before the stop, not those sent after.
// 3. Then FIN (shutdown(SHUT_WR)), and its input is drained until its EOF, so the kernel's send
//    buffer reaches the client before close().
// 4. At the deadline (or on a second signal) whoever is still there is reset, so a client
//    knows its stream was cut short, with one log line for all of them.
import type { Logger } from '../log.js';

/** What an engine does for each step; the order and the deadline are Shutdown's. */
export interface WindDown {
  /** Live clients. */
  readonly connections: number;
  /** Stops accepting (and closes the listener unless it is kept). */
  stopAccepting(): void;
  /** Sends out what was read before the stop (local clients and relays); from now on client
   *  input is thrown away. deliver() still broadcasts until windDownAll(). */
  stopInput(): void;
  /** Starts steps 2-3 for every client; the engine removes each as it finishes and then calls
   *  Shutdown.clientGone(). */
  windDownAll(): void;
  /** Resets every client still connected; returns how many there were. */
  cutAll(): number;
  /** Frees what is left (poller, spare descriptor) once no client is left. */
  release(): Promise<void> | void;
}

export class Shutdown {
  private done: Promise<void> | null = null;
  private resolve: (() => void) | null = null;
  private timer: NodeJS.Timeout | undefined;
  private finished = false;
  private windingDown = false;

  constructor(
    private readonly engine: WindDown,
    private readonly log: Logger,
    private readonly timeoutMs: number,
  ) {}

  /** Shutdown has begun: engines read and discard, and accept nothing. */
  get active(): boolean {
    return this.done !== null;
  }

  /** The clients are winding down (steps 2-3): nothing more is broadcast to them, deliver()
   *  included, and a client whose output is flushed gets its FIN. */
  get draining(): boolean {
    return this.windingDown;
  }

  /** `upstream`: settles once nothing more will come through deliver() (every peer link has
   *  ended); the clients wind down only then. The deadline counts from now either way. */
  begin(upstream?: Promise<void>): Promise<void> {
    if (this.done !== null) return this.done;
    this.done = new Promise<void>((resolve) => (this.resolve = resolve));
    this.engine.stopAccepting();
    this.engine.stopInput();
    if (upstream === undefined) this.windDown();
    if (this.engine.connections === 0) {
      this.finish();
    } else if (!this.finished) {
      this.log.info(`shutdown: flushing output to ${this.engine.connections} client(s), at most ${this.timeoutMs} ms`);
      this.timer = setTimeout(() => this.cut(`after ${this.timeoutMs} ms`), this.timeoutMs);
    }
    if (upstream !== undefined) void upstream.then(() => this.windDown(), () => this.windDown());
    return this.done;
  }

  /** The deadline, now (a second signal). */
  now(): Promise<void> {
    const done = this.begin();
    this.cut('at a second signal');
    return done;
  }

  private windDown(): void {
    if (this.finished || this.windingDown) return;
    this.windingDown = true;
    this.engine.windDownAll();
    if (this.engine.connections === 0) this.finish();
  }

  /** An engine removed a client while shutting down. */
  clientGone(): void {
    if (this.done !== null && !this.finished && this.engine.connections === 0) this.finish();
  }

  private cut(when: string): void {
    if (this.finished) return;
    const cut = this.engine.cutAll();
    if (cut > 0) this.log.warn(`shutdown: ${cut} client(s) still behind ${when}; reset`);
    this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    void Promise.resolve(this.engine.release()).then(() => this.resolve!());
  }
}
