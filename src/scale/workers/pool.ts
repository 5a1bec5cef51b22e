// `mob serve --workers N`: the supervisor, on the main thread. It picks the port, makes the
// peer links (one socketpair per ordered pair of workers), starts the workers, restarts one that
// dies, relinks a link that was cut, gathers the workers' figures for --metrics, and drains them
// all on close(). No frame passes through it.
import type { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { extname } from 'node:path';
import { native } from '../../native/binding.js';
import type { Logger } from '../../log.js';
import type { ServerAddress, ServerOptions } from '../../server/policy.js';
import type { ServerSnapshot } from '../../metrics/snapshot.js';
import type { ProcessFigures, WorkerSnapshots } from '../../metrics/prometheus.js';
import { startThread } from './thread.js';
import type { BusOptions } from '../bus/index.js';
import type { FromWorker, LinkEnd, ToWorker, WorkerConfig, WorkerEngine } from './protocol.js';

// Under tsx (tests) this module is worker.ts's sibling source; built, it is worker.js's.
const workerEntry = new URL(`./worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

export interface PoolOptions {
  workers: number;
  server: ServerOptions;
  engine: WorkerEngine;
  logLevel: string;
  /** Bytes a worker may leave unread on a link before it is cut; default: --max-output. */
  linkBound?: number;
  /** A worker did not answer a snapshot request within this (then it counts as down). */
  snapshotTimeoutMs?: number;
  /** --bus, joined by every worker (same node id). */
  bus?: BusOptions | null;
  /** How the workers share the port. 'reuseport' (Linux default): a listener per worker in one
   *  SO_REUSEPORT group, and the kernel spreads connections evenly. 'shared' (the default
   *  elsewhere: macOS and the BSDs do not balance SO_REUSEPORT): one listener that every
   *  worker's poller watches, and whoever wakes first accepts. */
  listener?: 'reuseport' | 'shared';
}

/** More deaths than this within RESTART_WINDOW_MS: the pool gives up (onFatal). */
const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 10_000;
const START_TIMEOUT_MS = 15_000;

interface Slot {
  index: number;
  worker: Worker;
  ready: boolean;
  /** Exited (and a replacement is or is not under way). */
  gone: boolean;
}

export class WorkerPool {
  readonly address: ServerAddress;
  readonly engine: string;
  restarts = 0;
  /** Called when workers keep dying: the process should exit non-zero. */
  onFatal: (reason: string) => void = () => {};

  private readonly slots: Slot[] = [];
  private readonly linkBound: number;
  private readonly recentDeaths: number[] = [];
  private readonly snapshotWaiters = new Map<number, (snapshot: ServerSnapshot) => void>();
  private nextSnapshotId = 1;
  private stopping = false;
  private closed: Promise<void> | null = null;
  /** The shared listener ('shared' mode), or -1. */
  private listenFd = -1;

  private constructor(private readonly options: PoolOptions, port: number, private readonly log: Logger) {
    this.address = { host: options.server.host, port };
    this.engine = options.engine.engine === 'native' ? 'native' : `uv-${options.engine.uvMode}`;
    this.linkBound = options.linkBound ?? options.server.limits.maxOutput;
  }

  static async start(options: PoolOptions, log: Logger): Promise<WorkerPool> {
    if (options.workers < 2) throw new RangeError('a worker pool has at least 2 workers');
    const shared = (options.listener ?? (process.platform === 'linux' ? 'reuseport' : 'shared')) === 'shared';
    // Port 0: bind once here to learn the kernel's choice, so every worker joins that port's
    // SO_REUSEPORT group; closed once they all listen (before anyone is told the port). Shared:
    // the one listener, kept for the pool's life.
    const reservation = native.listen(options.server.host, options.server.port, 0, !shared);
    let pool: WorkerPool;
    try {
      pool = new WorkerPool(options, native.localAddress(reservation).port, log);
      if (shared) pool.listenFd = reservation;
      const ends = pool.makeLinks();
      const starting = [];
      for (let i = 0; i < options.workers; i++) starting.push(pool.spawn(i, ends.outbound[i]!, ends.inbound[i]!));
      const results = await Promise.allSettled(starting);
      const failed = results.find((r) => r.status === 'rejected');
      if (failed !== undefined) {
        await pool.close();
        throw (failed as PromiseRejectedResult).reason;
      }
    } catch (error) {
      if (shared) native.close(reservation);
      throw error;
    } finally {
      if (!shared) native.close(reservation);
    }
    return pool;
  }

  get workers(): number {
    return this.options.workers;
  }

  figures(): ProcessFigures {
    return { workers: this.options.workers, restarts: this.restarts };
  }

  /** Every worker's figures; null for one that is down or did not answer in time. */
  snapshots(): Promise<WorkerSnapshots> {
    const timeoutMs = this.options.snapshotTimeoutMs ?? 1000;
    return Promise.all(this.slots.map((slot) => {
      if (!slot.ready || slot.gone) return Promise.resolve(null);
      const id = this.nextSnapshotId++;
      return new Promise<ServerSnapshot | null>((resolve) => {
        const timer = setTimeout(() => {
          this.snapshotWaiters.delete(id);
          resolve(null);
        }, timeoutMs);
        this.snapshotWaiters.set(id, (snapshot) => {
          clearTimeout(timer);
          resolve(snapshot);
        });
        this.send(slot, { type: 'snapshot', id });
      });
    }));
  }

  /** Tests: blocks worker `index`'s thread for `ms` (it reads nothing meanwhile). */
  stall(index: number, ms: number): void {
    this.send(this.slots[index]!, { type: 'stall', ms });
  }

  /** Tests: the worker thread object (to terminate it as a crash would end it). */
  thread(index: number): Worker {
    return this.slots[index]!.worker;
  }

  /** Stops accepting and drains every worker as a single server does (server.close()). */
  close(): Promise<void> {
    if (this.closed !== null) return this.closed;
    this.stopping = true;
    const grace = (this.options.server.shutdownTimeoutMs ?? 5000) + 5000;
    this.closed = Promise.all(this.slots.map((slot) => new Promise<void>((resolve) => {
      if (slot.gone) return resolve();
      const timer = setTimeout(() => {
        this.log.warn(`worker ${slot.index} did not stop within ${grace} ms; terminating it`);
        void slot.worker.terminate();
      }, grace);
      slot.worker.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      this.send(slot, { type: 'close' });
    }))).then(() => {
      if (this.listenFd >= 0) native.close(this.listenFd);
      this.listenFd = -1;
    });
    return this.closed;
  }

  /** The deadline now, in every worker (a second signal): close() then settles at once. */
  closeNow(): Promise<void> {
    const closing = this.close();
    for (const slot of this.slots) this.send(slot, { type: 'close-now' });
    return closing;
  }

  // --- workers -----------------------------------------------------------------------

  /** One socketpair per ordered pair (a → b): a writes, b reads. */
  private makeLinks(): { outbound: LinkEnd[][]; inbound: LinkEnd[][] } {
    const n = this.options.workers;
    const outbound: LinkEnd[][] = Array.from({ length: n }, () => []);
    const inbound: LinkEnd[][] = Array.from({ length: n }, () => []);
    for (let a = 0; a < n; a++) {
      for (let b = 0; b < n; b++) {
        if (a === b) continue;
        const [out, into] = this.linkPair();
        outbound[a]!.push({ peer: b, fd: out });
        inbound[b]!.push({ peer: a, fd: into });
      }
    }
    return { outbound, inbound };
  }

  /** The two ends of one link, made here and handed to two workers: this thread gives up
   *  owning them (each worker adopts its end, and the addon closes it when that worker ends). */
  private linkPair(): [number, number] {
    const pair = native.socketpair();
    native.disown(pair[0]);
    native.disown(pair[1]);
    return pair;
  }

  private spawn(index: number, outbound: LinkEnd[], inbound: LinkEnd[]): Promise<void> {
    const config: WorkerConfig = {
      index,
      options: { ...this.options.server, port: this.address.port },
      engine: this.options.engine,
      logLevel: this.options.logLevel,
      outbound,
      inbound,
      linkBound: this.linkBound,
      bus: this.options.bus ?? null,
      listenFd: this.listenFd >= 0 ? this.listenFd : null,
    };
    const worker = startThread(workerEntry, { workerData: config });
    const slot: Slot = { index, worker, ready: false, gone: false };
    this.slots[index] = slot;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`worker ${index} did not start within ${START_TIMEOUT_MS} ms`));
        void worker.terminate();
      }, START_TIMEOUT_MS);
      worker.on('message', (message: FromWorker) => {
        if (message.type === 'ready') {
          clearTimeout(timer);
          slot.ready = true;
          this.log.debug(`worker ${index} listening on port ${message.port}`);
          resolve();
        } else {
          this.onMessage(slot, message);
        }
      });
      worker.on('error', (error) => {
        this.log.error(`worker ${index} failed: ${error.stack ?? error.message}`);
        if (!slot.ready) {
          clearTimeout(timer);
          reject(error);
        }
      });
      worker.on('exit', (code) => {
        clearTimeout(timer);
        slot.gone = true;
        if (!slot.ready) return reject(new Error(`worker ${index} exited with code ${code} before it was ready`));
        if (!this.stopping) this.onDeath(slot, code);
      });
    });
  }

  private onMessage(slot: Slot, message: FromWorker): void {
    switch (message.type) {
      case 'snapshot': {
        const waiter = this.snapshotWaiters.get(message.id);
        this.snapshotWaiters.delete(message.id);
        waiter?.(message.snapshot);
        return;
      }
      case 'link-cut':
        this.relinkAfterCut(slot.index, message.peer);
        return;
      case 'ready':
        return;
    }
  }

  /** `from` cut its link to `to` (`to` did not read): a fresh link, and `to` drops its
   *  clients, who missed `from`'s frames. */
  private relinkAfterCut(from: number, to: number): void {
    const sender = this.slots[from]!;
    const receiver = this.slots[to]!;
    if (this.stopping || sender.gone || receiver.gone) return; // a restart relinks everything
    const [out, into] = this.linkPair();
    this.send(sender, { type: 'relink', peer: to, outbound: out, inbound: -1, lost: false });
    this.send(receiver, { type: 'relink', peer: from, outbound: -1, inbound: into, lost: true });
  }

  /** A worker died: its clients are closed with its thread (the addon closes the descriptors
   *  an environment owned); say so, and start it again with fresh links to every peer. */
  private onDeath(slot: Slot, code: number): void {
    const now = Date.now();
    this.recentDeaths.push(now);
    while (this.recentDeaths[0]! < now - RESTART_WINDOW_MS) this.recentDeaths.shift();
    if (this.recentDeaths.length > MAX_RESTARTS) {
      const reason = `${this.recentDeaths.length} worker deaths within ${RESTART_WINDOW_MS / 1000} s; giving up`;
      this.log.error(reason);
      this.onFatal(reason);
      return;
    }
    this.log.error(`worker ${slot.index} died (exit code ${code}); its clients were disconnected; restarting it`);
    this.restarts++;
    const index = slot.index;
    const outbound: LinkEnd[] = [];
    const inbound: LinkEnd[] = [];
    for (const peer of this.slots) {
      if (peer.index === index) continue;
      const [toPeer, atPeer] = this.linkPair();
      const [fromPeer, atNew] = this.linkPair();
      outbound.push({ peer: peer.index, fd: toPeer });
      inbound.push({ peer: peer.index, fd: atNew });
      this.send(peer, { type: 'relink', peer: index, outbound: fromPeer, inbound: atPeer, lost: false });
    }
    this.spawn(index, outbound, inbound).catch((error: Error) => {
      // Died or hung while starting: one more death (the storm bound above still applies).
      this.log.error(`worker ${index} could not be restarted: ${error.message}`);
      if (!this.stopping) this.onDeath(this.slots[index]!, -1);
    });
  }

  private send(slot: Slot, message: ToWorker): void {
    if (!slot.gone) slot.worker.postMessage(message);
  }
}
