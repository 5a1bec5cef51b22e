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
}

export const MiB = 1024 * 1024;

export const DEFAULT_LIMITS: Readonly<Limits> = {
  maxFrame: 16 * MiB,
  maxOutput: 64 * MiB,
  maxConns: 10_000,
};

export type CloseReason =
  | { kind: 'end' }
  | { kind: 'error'; code: string }
  | { kind: 'frame-too-large'; length: bigint; limit: number }
  | { kind: 'slow-reader'; pending: number; limit: number }
  | { kind: 'shutdown' };

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
    case 'shutdown':
      return 'server shutting down';
  }
}

/** Limit breaches are logged at warn: they are a client's fault, worth an operator's eye. */
export function isLimitBreach(reason: CloseReason): boolean {
  return reason.kind === 'frame-too-large' || reason.kind === 'slow-reader';
}

/** Counts a client's removal and logs it in the words every engine uses: a limit breach at
 *  warn, anything else at debug. `live` is the number of clients left. */
export function recordClose(stats: ServerStats, log: Logger, id: number, peer: string, reason: CloseReason, live: number): void {
  stats.closed++;
  if (isLimitBreach(reason)) {
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
}

export function emptyStats(): ServerStats {
  return { accepted: 0, rejected: 0, closed: 0, framesIn: 0, bytesIn: 0, limitBreaches: 0 };
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
  /** Stops accepting, flushes pending output for up to shutdownTimeoutMs, closes every client. */
  close(): Promise<void>;
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
}
