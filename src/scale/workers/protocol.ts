// What the supervisor (main thread) and its workers say to each other over the workers'
// message ports. Control only: frames never travel here, they go over the peer links.
import type { ServerOptions } from '../../server/policy.js';
import type { ServerSnapshot } from '../../metrics/snapshot.js';
import type { BusOptions } from '../bus/index.js';

export type WorkerEngine = { engine: 'native' } | { engine: 'uv'; uvMode: 'plain' | 'corked' | 'coalesced' };

/** One direction of a peer link: `fd` is this worker's end of a socketpair. */
export interface LinkEnd {
  peer: number;
  fd: number;
}

/** A worker's start-up data (workerData). */
export interface WorkerConfig {
  index: number;
  options: ServerOptions;
  engine: WorkerEngine;
  logLevel: string;
  /** Links to every other worker: frames this worker's clients send leave through `outbound`,
   *  frames its peers' clients sent arrive through `inbound`. */
  outbound: LinkEnd[];
  inbound: LinkEnd[];
  /** Bytes a peer may leave unread on its link before the link is cut (see docs/scaling.md). */
  linkBound: number;
  /** --bus: every worker joins it with the process's one node id, so it skips its siblings'
   *  entries (those came over the links) and each frame reaches each client once. */
  bus: BusOptions | null;
  /** A listener shared by every worker (made and owned by the supervisor), or null: each
   *  worker listens on the port itself with SO_REUSEPORT. */
  listenFd: number | null;
}

export type ToWorker =
  | { type: 'snapshot'; id: number }
  | { type: 'close' }
  /** The shutdown deadline now (a second signal): whoever is still behind is reset. */
  | { type: 'close-now' }
  /** Replace the links with `peer` (a restarted worker, or a link that was cut); -1 keeps that
   *  direction as it is. `lost`: frames from `peer` were lost on the way in, so every local
   *  client is disconnected first. */
  | { type: 'relink'; peer: number; outbound: number; inbound: number; lost: boolean }
  /** Blocks the worker's thread for `ms` (tests: a worker that stops reading its links). */
  | { type: 'stall'; ms: number };

export type FromWorker =
  | { type: 'ready'; port: number }
  | { type: 'snapshot'; id: number; snapshot: ServerSnapshot }
  /** This worker cut its outbound link to `peer`: `peer` did not read `queued` bytes in time. */
  | { type: 'link-cut'; peer: number; queued: number };
