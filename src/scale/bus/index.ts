// mob serve --bus redis://…: nodes on different hosts act as one server through a Redis (or
// Valkey) stream. The bus is a Relay on the fan-out seam (src/server/fanout.ts): the host hands
// it local batches, it hands the host everyone else's. Redis Streams, not pub/sub, because a
// stream remembers: a node back from an outage reads on from its last ID and loses nothing.
import { randomUUID } from 'node:crypto';
import type { Logger } from '../../log.js';
import type { FanoutHost, Relay } from '../../server/fanout.js';
import { openConnection } from './connection.js';
import { StreamReader } from './reader.js';
import { parseBusUrl } from './url.js';
import { StreamWriter } from './writer.js';

export { BusUrlError, parseBusUrl } from './url.js';
export { DEFAULT_BACKLOG_BYTES, DEFAULT_RETENTION, newNodeId } from './flags.js';

export interface BusOptions {
  /** redis://[user:pass@]host:port[/db] or rediss://. */
  url: string;
  /** The process's id, shared by all its workers: entries with it are skipped on reading. */
  nodeId: string;
  /** Retention: XADD … MAXLEN ~ maxLen entries. */
  maxLen: number;
  /** Bound on local bytes not yet in Redis (kept while the bus is down). */
  backlogBytes: number;
  /** The stream's key (default 'mob:frames'); nodes on one key are one server. */
  stream?: string;
  /** How long connectBus waits for Redis before giving up (default 10 s). */
  connectTimeoutMs?: number;
}

export interface BusMetrics {
  /** Entries in the stream this node has not read yet (sampled every second). */
  lag: number;
  /** Connections re-established after a loss. */
  reconnects: number;
  /** Entries this node appended. */
  published: number;
  /** Entries from other nodes delivered to local clients. */
  received: number;
  /** Local bytes not yet in Redis. */
  backlogBytes: number;
  connected: boolean;
}

export interface Bus extends Relay {
  close(): Promise<void>;
  metrics(): BusMetrics;
}

export const DEFAULT_STREAM = 'mob:frames';
const LAG_PROBE_MS = 1000;
/** close() publishes what is still kept for at most this long. */
const CLOSE_DRAIN_MS = 2000;

export async function connectBus(host: FanoutHost, options: BusOptions, log: Logger): Promise<Bus> {
  const address = parseBusUrl(options.url);
  const stream = options.stream ?? DEFAULT_STREAM;
  const publisherId = `${options.nodeId}/${randomUUID().slice(0, 8)}`;
  const writing = openConnection(address, 'writer', log);
  const reading = openConnection(address, 'reader', log);
  const connections = [writing, reading];
  const closeAll = () => connections.forEach((c) => c.close());

  const side = { stream, nodeId: options.nodeId, log, display: address.display };
  const writer = new StreamWriter({ ...side, connection: writing }, publisherId, options.maxLen, options.backlogBytes);
  const reader = new StreamReader({ ...side, connection: reading }, host);
  const timeoutMs = options.connectTimeoutMs ?? 10_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      Promise.all([writing.ready(), reader.join()]),
      new Promise((_, reject) => {
        timer = setTimeout(() => {
          const why = writing.lastError() ?? reading.lastError();
          reject(new Error(`cannot reach the bus at ${address.display} within ${timeoutMs} ms${why ? `: ${why}` : ''}`));
        }, timeoutMs);
      }),
    ]);
  } catch (error) {
    closeAll();
    throw error;
  } finally {
    clearTimeout(timer);
  }

  let lag = 0;
  let closed = false;
  const probe = setInterval(() => {
    if (writing.redis.status !== 'ready') return;
    writing.redis.call('XINFO', 'STREAM', stream).then((info) => {
      const fields = info as unknown[];
      const at = fields.indexOf('entries-added');
      if (at >= 0) lag = reader.entriesBehind(Number(fields[at + 1]));
    }, () => {}); // no stream yet, or the connection dropped: keep the last value
  }, LAG_PROBE_MS);
  probe.unref();

  reader.start();
  log.info(`bus ${address.display}: node ${options.nodeId} on stream ${stream} (retention ~${options.maxLen} entries, backlog bound ${options.backlogBytes} B)`);

  const bus: Bus = {
    name: `bus ${address.display}`,
    publish: (frames, start, end) => writer.publish(frames, start, end),
    metrics: () => ({
      lag,
      reconnects: writing.restores() + reading.restores(),
      published: writer.published,
      received: reader.received,
      backlogBytes: writer.backlogBytes,
      connected: writing.redis.status === 'ready' && reading.redis.status === 'ready',
    }),
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(probe);
      host.removeRelay(bus);
      if (writer.backlogBytes > 0 && writing.redis.status === 'ready') await writer.drain(Date.now() + CLOSE_DRAIN_MS);
      if (writer.backlogBytes > 0) log.warn(`bus ${address.display}: closing with ${writer.backlogBytes} B never published`);
      writer.close();
      closeAll();
      await reader.close();
    },
  };
  host.addRelay(bus);
  return bus;
}
