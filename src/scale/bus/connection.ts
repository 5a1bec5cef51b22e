// One Redis connection of the bus (a writer, a blocking reader, a metrics probe), on ioredis.
// The client reconnects by itself with a capped backoff; the bus never lets it queue or resend
// commands on its own (enableOfflineQueue, autoResendUnfulfilledCommands off): the writer keeps
// its batches and decides what to resend, so a resent batch keeps its sequence number.
import { Redis } from 'ioredis';
import type { Logger } from '../../log.js';
import type { BusAddress } from './url.js';

const BACKOFF_MAX_MS = 2000;
/** A connection that keeps failing logs the first failure, then at most this often. */
const FAILURE_LOG_INTERVAL_MS = 30_000;

export interface BusConnection {
  readonly redis: Redis;
  /** Times this connection came back after it had been ready once. */
  readonly restores: () => number;
  /** The last connection error, for a start-up failure's message. */
  readonly lastError: () => string | null;
  /** Resolves when the connection is ready (now, if it is). Rejects once it is closed. */
  ready(): Promise<void>;
  close(): void;
}

export function openConnection(address: BusAddress, role: string, log: Logger): BusConnection {
  const redis = new Redis(address.url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    connectionName: `mob-bus-${role}`,
    retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 6), BACKOFF_MAX_MS),
  });
  let everReady = false;
  let restores = 0;
  let closed = false;
  let down = false;
  let lastFailureLog = 0;
  let lastError: string | null = null;
  let suppressed = 0;
  let waiters: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];

  redis.on('ready', () => {
    if (everReady) {
      restores++;
      log.info(`bus ${address.display}: ${role} connection back${suppressed > 0 ? ` (${suppressed} failures not logged)` : ''}`);
    }
    everReady = true;
    down = false;
    suppressed = 0;
    const ready = waiters;
    waiters = [];
    for (const waiter of ready) waiter.resolve();
  });
  redis.on('error', (error: Error) => {
    if (closed) return;
    lastError = error.message;
    const now = Date.now();
    if (!down || now - lastFailureLog >= FAILURE_LOG_INTERVAL_MS) {
      log.warn(`bus ${address.display}: ${role} connection: ${error.message}; reconnecting`);
      lastFailureLog = now;
    } else {
      suppressed++;
    }
    down = true;
  });
  redis.on('close', () => {
    if (!closed && everReady && !down) {
      log.warn(`bus ${address.display}: ${role} connection lost; reconnecting`);
      lastFailureLog = Date.now();
    }
    down = true;
  });
  redis.connect().catch(() => {}); // failures arrive as 'error' events; the client retries

  return {
    redis,
    restores: () => restores,
    lastError: () => lastError,
    ready() {
      if (closed) return Promise.reject(new Error('bus closed'));
      if (redis.status === 'ready') return Promise.resolve();
      return new Promise((resolve, reject) => waiters.push({ resolve, reject }));
    },
    close() {
      if (closed) return;
      closed = true;
      redis.disconnect();
      for (const waiter of waiters) waiter.reject(new Error('bus closed'));
      waiters = [];
    },
  };
}

/** What each half of the bus (writer, reader) works with. */
export interface BusSide {
  readonly connection: BusConnection;
  readonly stream: string;
  readonly nodeId: string;
  readonly log: Logger;
  /** The address without its password, for log lines. */
  readonly display: string;
}
