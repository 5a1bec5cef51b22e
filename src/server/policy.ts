// Limits and disconnect reasons shared by every engine, so each enforces the same policy
// and logs it in the same words.
import type { Logger } from '../log.js';

export interface Limits {
  /** Largest length prefix accepted; a larger one closes that client (the original aborted). */
  maxFrame: number;
  /** Output a client may leave unread before it is disconnected as a slow reader. */
  maxOutput: number;
  /** Connections served at once; more are accepted and closed at once. */
  maxConns: number;
  /** Partial-frame bytes all clients together may hold; past it the largest holders go. */
  maxInputTotal: number;
}

export const MiB = 1024 * 1024;

export const DEFAULT_LIMITS: Readonly<Limits> = {
  maxFrame: 16 * MiB,
  maxOutput: 64 * MiB,
  maxConns: 10_000,
  // A default server cannot be pushed past ~1 GiB of partial frames (issue #9): without it the
  // bound was max-conns × max-frame, 160 GiB.
  maxInputTotal: 1024 * MiB,
};

export type CloseReason =
  | { kind: 'end' }
  | { kind: 'error'; code: string }
  | { kind: 'frame-too-large'; length: bigint; limit: number }
  | { kind: 'slow-reader'; pending: number; limit: number }
  /** Its partial frame was among the largest when buffered input passed --max-input-total. */
  | { kind: 'input-total'; held: number; total: number; limit: number }
  /** A relay (peer worker, bus) refused a batch holding its frames (see fanout.ts). */
  | { kind: 'relay-refused'; relay: string }
  /** Frames were lost upstream of this server (dropAllClients). */
  | { kind: 'upstream-lost'; reason: string }
  /** Shutdown after its output was flushed. */
  | { kind: 'shutdown' }
  /** Shutdown deadline or a second signal while it was still behind: reset. */
  | { kind: 'shutdown-cut' };

export type CloseKind = CloseReason['kind'];
const CLOSE_KINDS: readonly CloseKind[] = [
  'end', 'error', 'frame-too-large', 'slow-reader', 'input-total', 'relay-refused', 'upstream-lost', 'shutdown', 'shutdown-cut',
];

export function describeClose(reason: CloseReason): string {
  switch (reason.kind) {
    case 'end':
      return 'peer closed';
    case 'error':
      return `socket error ${reason.code}`;
    case 'frame-too-large':
      return `frame length ${reason.length} exceeds --max-frame ${reason.limit}`;
    case 'slow-reader':
      return `slow reader: ${reason.pending} bytes unread exceeds --max-output ${reason.limit}`;
    case 'input-total':
      return `holds ${reason.held} bytes of partial frames, among the largest when buffered input reached ${reason.total} (--max-input-total ${reason.limit})`;
    case 'relay-refused':
      return `${reason.relay} refused a batch holding its frames`;
    case 'upstream-lost':
      return `frames lost upstream: ${reason.reason}`;
    case 'shutdown':
      return 'server shutting down';
    case 'shutdown-cut':
      return 'server shutting down: still behind, reset';
  }
}

/** Limit breaches are logged at warn: they are a client's fault, worth an operator's eye. */
export function isLimitBreach(reason: CloseReason): boolean {
  return reason.kind === 'frame-too-large' || reason.kind === 'slow-reader' || reason.kind === 'input-total' || reason.kind === 'relay-refused';
}

/** Counts a client's removal and logs it in the words every engine uses: a limit breach at
 *  warn, anything else at debug. `live` is the number of clients left. */
export function recordClose(stats: ServerStats, log: Logger, id: number, peer: string, reason: CloseReason, live: number): void {
  stats.closed++;
  stats.closedByReason[reason.kind]++;
  if (reason.kind === 'upstream-lost') {
    // Every client goes at once: the caller logs one line for all of them.
  } else if (isLimitBreach(reason)) {
    stats.limitBreaches++;
    warnClose(log, id, peer, reason);
  } else if (log.debugEnabled) {
    log.debug(`connection ${id} closed: ${describeClose(reason)} (${live} live)`, { conn: id, reason: reason.kind, live });
  }
}

/** A breach at warn, one line per kind of breach per second (a flood of them is counted, #9). */
function warnClose(log: Logger, id: number, peer: string, reason: CloseReason): void {
  if (!log.limit(reason.kind, `closing connections (${reason.kind})`).admit()) return;
  const { kind, ...facts } = reason;
  log.warn(`closing connection ${id}${peer ? ` (${peer})` : ''}: ${describeClose(reason)}`, {
    conn: id, ...(peer ? { peer } : {}), reason: kind, ...facts,
  });
}

/** Logs (rate-limited) and counts the connections an engine accepted and closed at once. */
export function recordRejected(stats: ServerStats, log: Logger, rejected: number, limit: number): void {
  stats.rejected += rejected;
  if (!log.limit('max-conns', `connection limit reached (--max-conns ${limit}): closing new connections`).admit(rejected)) return;
  log.warn(`connection limit reached (--max-conns ${limit}): closed ${rejected} new connection${rejected === 1 ? '' : 's'}`, {
    reason: 'max-conns', rejected, limit,
  });
}

/** Counters both engines keep; tests and the benchmark read them. */
export interface ServerStats {
  accepted: number;
  rejected: number;
  closed: number;
  framesIn: number;
  bytesIn: number;
  limitBreaches: number;
  /** Frames handed to local receivers: frames × receivers, summed per batch. */
  framesDelivered: number;
  /** Gauge: output bytes waiting in the server's queues (not what the kernel holds). */
  bytesQueued: number;
  closedByReason: Record<CloseKind, number>;
  /** Gauge: bytes held for partial frames (allocated, so what they cost in memory). */
  inputBuffered: number;
}

export function emptyStats(): ServerStats {
  const closedByReason = {} as Record<CloseKind, number>;
  for (const kind of CLOSE_KINDS) closedByReason[kind] = 0;
  return {
    accepted: 0, rejected: 0, closed: 0, framesIn: 0, bytesIn: 0, limitBreaches: 0,
    framesDelivered: 0, bytesQueued: 0, closedByReason, inputBuffered: 0,
  };
}

export interface ServerAddress {
  host: string;
  port: number;
}

/** What the CLI, the tests and the benchmark need from an engine. */
export interface MobServer {
  readonly engine: string;
  readonly address: ServerAddress;
  readonly stats: ServerStats;
  /** The limits in force (max-conns may be lowered to fit RLIMIT_NOFILE). */
  readonly limits: Readonly<Limits>;
  /** Live connections. */
  readonly connections: number;
  /** Stops accepting, flushes pending output for up to shutdownTimeoutMs, closes every client.
   *  `upstream` (a worker's peer links): deliver() keeps broadcasting until it settles, and only
   *  then do the clients wind down (shutdown.ts, step 1b). */
  close(upstream?: Promise<void>): Promise<void>;
  /** The deadline now: resets whoever is still behind (a second signal). */
  closeNow(): Promise<void>;
}

export interface ServerOptions {
  host: string;
  port: number;
  limits: Limits;
  reusePort?: boolean;
  /** How long close() waits for pending output to drain before cutting clients off. */
  shutdownTimeoutMs?: number;
  /** limits.maxConns was asked for (--max-conns): keep it even above RLIMIT_NOFILE, shedding on
   *  EMFILE, rather than fitting it (see fitConnLimit). */
  explicitMaxConns?: boolean;
  /** Accept from this already-listening socket instead of binding host:port (systemd socket
   *  activation, --listen-fd, a listener shared by workers). Made non-blocking and registered. */
  listenFd?: number;
  /** Leave listenFd open on close() (its owner closes it). */
  keepListenFd?: boolean;
}

/** Connections found broken or too slow while a loop runs over the others; removed once it is
 *  done, so the loop's list does not change under it. The first reason found is kept. */
export class DoomList<C extends { closing: CloseReason | null }> {
  private readonly list: C[] = [];

  /** `remove` is given once: removeAll() runs at the end of every batch, and a callback made
   *  there would be an allocation per batch. */
  constructor(private readonly remove: (conn: C, reason: CloseReason) => void) {}

  add(conn: C, reason: CloseReason): void {
    if (conn.closing !== null) return;
    conn.closing = reason;
    this.list.push(conn);
  }

  removeAll(): void {
    const list = this.list;
    for (let i = 0; i < list.length; i++) this.remove(list[i]!, list[i]!.closing!);
    list.length = 0;
  }
}

/** --max-input-total: the clients to drop so that buffered partial frames come back under the
 *  limit, largest holders first (the ones a memory attack builds; a client sending ordinary
 *  frames holds little). */
export function shedInput<C extends { inputHeld: number }>(live: readonly C[], total: number, limit: number): C[] {
  const holders = live.filter((conn) => conn.inputHeld > 0).sort((a, b) => b.inputHeld - a.inputHeld);
  const victims: C[] = [];
  for (const conn of holders) {
    if (total <= limit) break;
    victims.push(conn);
    total -= conn.inputHeld;
  }
  return victims;
}

/**
 * Clients that sent FIN and stay receivers (half-close, issue #9), oldest first. A client that
 * sent FIN and then closed for good looks the same until the next write to it fails, so with no
 * broadcast going on they would pile up: when --max-conns is reached, the oldest half-closed
 * client with nothing pending makes room for the new one.
 */
export class HalfClosedClients<C extends { liveIndex: number; readClosed: boolean }> {
  private list: C[] = [];
  private head = 0;

  add(conn: C, live: number): void {
    this.list.push(conn);
    // Entries of clients removed since are dropped lazily; keep the list near the live count.
    if (this.list.length - this.head > 2 * live + 1024) {
      this.list = this.list.slice(this.head).filter((each) => each.liveIndex >= 0);
      this.head = 0;
    }
  }

  /** Takes out the oldest live half-closed client for which `idle` holds; null if none. */
  takeOldest(idle: (conn: C) => boolean): C | null {
    const list = this.list;
    for (let i = this.head; i < list.length; i++) {
      const conn = list[i]!;
      if (conn.liveIndex < 0 || !conn.readClosed) {
        if (i === this.head) this.head++;
        continue;
      }
      if (!idle(conn)) continue;
      if (i === this.head) this.head++;
      else list.splice(i, 1);
      return conn;
    }
    return null;
  }
}

/** Why a half-closed client's socket failed: it had said it was done sending, so a reset or
 *  a broken pipe on write is it closing for good, not an error worth counting as one. */
export function failureReason(readClosed: boolean, code: string): CloseReason {
  return readClosed && (code === 'ECONNRESET' || code === 'EPIPE') ? { kind: 'end' } : { kind: 'error', code };
}
