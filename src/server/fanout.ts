// The fan-out seam (issue #12): the one place where a batch of frames leaves a server for
// elsewhere, and where batches from elsewhere come in, for both engines.
//
//   local clients ──read──▶ batch ──┬──▶ local receivers (the engine's own broadcast)
//                                   └──▶ relays: peer workers, the bus (Relay.publish)
//   relays ──deliver()──▶ local receivers only (never re-published: no loops)
//
// The rule of the seam: the bytes of a local batch may be the native engine's arena, which is
// overwritten as soon as the loop moves on. Whatever keeps them past the call that handed them
// over must pin them (a local receiver's queue holds the arena, Arena.pinned) or copy them (a
// relay). deliver() is the other way round: the caller hands its buffer over for good, so the
// host keeps views of it without a copy.
import type { Logger } from '../log.js';
import type { Interest } from '../poll/index.js';
import type { CloseReason } from './policy.js';

/** A destination beyond this process's (or worker's) own clients: a peer-worker link or the bus. */
export interface Relay {
  /** For logs: 'worker 2', 'bus redis://…'. */
  readonly name: string;
  /**
   * Whole wire-format frames (8-byte BE length + body, back to back) that LOCAL clients sent,
   * in arrival order; one call per broadcast batch (never per frame). The bytes may be arena
   * memory that is reused as soon as the call returns: a relay that keeps them must copy.
   * Returns false when the relay cannot take the batch (over its own bound): the host then
   * disconnects every local client whose frames are in that batch, with a logged reason.
   * Must not call back into the host synchronously.
   */
  publish(frames: Buffer, start: number, end: number): boolean;
}

/** What a server, either engine, offers the scale-out layer. */
export interface FanoutHost {
  /**
   * Whole wire-format frames from elsewhere (another worker or node): broadcast to this
   * server's local clients only, never re-published to relays. Ownership of `frames` passes
   * to the host: it may keep views of it without copying. Not called from inside publish().
   * `count` is the number of frames in [start, end): every caller has walked them already (a
   * link's reader to find where whole frames end, the bus to check an entry), so the host
   * trusts it rather than walk each frame a second time (#8: with `--workers 2` at 10 × 10,
   * walking frames took 1.4% of the server's CPU samples, half of it this second walk). A wrong
   * count only skews the metrics; whole frames are the caller's promise (a partial frame would
   * desynchronise every receiver's stream).
   */
  deliver(frames: Buffer, start: number, end: number, count: number): void;
  addRelay(relay: Relay): void;
  removeRelay(relay: Relay): void;
  /** Disconnects every local client with a logged reason: frames were lost upstream (bus
   *  retention no longer holds what this node missed; a peer link broke). */
  dropAllClients(reason: string): void;
  /**
   * Optional (the native engine): `fd` joins the host's own poller, edge-triggered, and
   * `ready(id, flags)` is called from the host's poll batch, before its clients are read. Frames
   * delivered from there go out with that batch's local frames, in the same one write per
   * receiver (with a poller of their own, a peer's block and the local batch went out as two
   * writes per receiver, and each worker waited on two pollers). The host's poller outlives
   * its shutdown until the last watched descriptor is unwatched.
   */
  watch?(fd: number, id: number, interest: Interest, ready: (id: number, flags: number) => void): void;
  unwatch?(fd: number): void;
}

/** The relays a host publishes to. The engines test `size` before anything else, so a single
 *  process with no relay pays one comparison per batch. */
export class Relays {
  private list: Relay[] = [];

  get size(): number {
    return this.list.length;
  }

  add(relay: Relay): void {
    if (!this.list.includes(relay)) this.list = [...this.list, relay];
  }

  remove(relay: Relay): void {
    this.list = this.list.filter((each) => each !== relay);
  }

  /** Hands the batch to every relay (a relay added or removed meanwhile takes effect from the
   *  next batch); returns the first that refused it, or null. */
  publish(frames: Buffer, start: number, end: number): Relay | null {
    const list = this.list;
    let refused: Relay | null = null;
    for (let i = 0; i < list.length; i++) {
      if (!list[i]!.publish(frames, start, end) && refused === null) refused = list[i]!;
    }
    return refused;
  }
}

/** dropAllClients for either engine: one warning for all, then each client removed. */
export function dropAll<C>(clients: readonly C[], reason: string, log: Logger, remove: (conn: C, reason: CloseReason) => void): void {
  const list = [...clients];
  if (list.length > 0) log.warn(`disconnecting all ${list.length} client(s): frames lost upstream: ${reason}`);
  for (const conn of list) remove(conn, { kind: 'upstream-lost', reason });
}
