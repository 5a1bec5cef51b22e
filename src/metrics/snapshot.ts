// One server's (one worker's) numbers at scrape time. Taken from the counters the server keeps
// anyway (ServerStats: plain number adds on the hot path), copied only when scraped, and sent
// from a worker to the main thread as one small message.
import type { MobServer } from '../server/policy.js';

/** The bus's own figures (src/scale/bus: Bus.metrics()); absent without --bus. */
export interface BusFigures {
  lag: number;
  reconnects: number;
  connected: boolean;
}

export interface LinkFigures {
  /** Bytes copied into outbound peer-link queues, not yet taken by the kernel. */
  queuedBytes: number;
  /** Outbound links cut because a peer did not read (see docs/scaling.md). */
  cuts: number;
  /** Frames and bytes that arrived from peers and were broadcast here. */
  framesIn: number;
  bytesIn: number;
}

export interface ServerSnapshot {
  connections: number;
  accepted: number;
  rejected: number;
  framesIn: number;
  bytesIn: number;
  /** Frames × receivers. */
  framesDelivered: number;
  /** Output bytes waiting in client queues (gauge). */
  bytesQueued: number;
  disconnects: Record<string, number>;
  links: LinkFigures | null;
  bus: BusFigures | null;
}

export function snapshotOf(server: MobServer, links: LinkFigures | null = null, bus: BusFigures | null = null): ServerSnapshot {
  const stats = server.stats;
  return {
    connections: server.connections,
    accepted: stats.accepted,
    rejected: stats.rejected,
    framesIn: stats.framesIn,
    bytesIn: stats.bytesIn,
    framesDelivered: stats.framesDelivered,
    bytesQueued: stats.bytesQueued,
    disconnects: { ...stats.closedByReason },
    links,
    bus,
  };
}
