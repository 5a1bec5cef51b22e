// mob on node:net (libuv), for comparison with the native engine. Same frames, limits, log
// lines and shutdown; the frame scanning and the policy are the native engine's own code.
//
// Three modes:
// - 'plain': what an experienced Node developer writes — each complete frame is written to
//   every receiver with socket.write() as soon as its 'data' event arrives.
// - 'corked': the "best one" — the same per-frame writes, into receivers corked when a
//   turn of the loop first broadcasts to them and uncorked once, in setImmediate (one writev per
//   receiver per turn; setImmediate measured 2x better than process.nextTick, which uncorks
//   after every event).
// - 'coalesced': the strongest node:net code we know — as 'corked', but each 'data' event's
//   complete frames go out as one write per receiver, so node:net does per chunk what the native
//   engine does per batch. Reported beside the others so the comparison hides nothing.
//
// node:net buffers writes without limit; like the native engine, a receiver whose unsent output
// (what the kernel has not taken: unsent.ts) exceeds --max-output is disconnected as a slow
// reader.
//
// Batches leave and arrive through the fan-out seam (fanout.ts), and shutdown follows the same
// steps as the native engine's (shutdown.ts).
import { createServer, type Server, type Socket } from 'node:net';
import { FrameAssembler, FrameScan, nextFrame } from '../../protocol/frame.js';
import type { Logger } from '../../log.js';
import { fitConnLimit } from '../fdlimit.js';
import {
  DoomList, emptyStats, failureReason, HalfClosedClients, recordClose, recordRejected, shedInput,
  type CloseReason, type Limits, type MobServer, type ServerAddress, type ServerOptions,
} from '../policy.js';
import { dropAll, Relays, type FanoutHost, type Relay } from '../fanout.js';
import { Reclaimer } from '../reclaim.js';
import { Shutdown, type WindDown } from '../shutdown.js';
import { unsentBytes } from './unsent.js';
import type { UvMode } from './mode.js';

export type { UvMode };

/** Listen backlog: the kernel caps it at net.core.somaxconn, as the native engine's does. */
const BACKLOG = 65535;
/** Corked output a receiver may hold within one turn beyond --max-output before it is cut off
 *  at once (the limit proper is checked when the turn uncorks). */
const CORKED_ALLOWANCE = 16 * 1024 * 1024;
/** A receiver holding more than --max-output / this gets each batch in one write, whatever the
 *  mode: per-frame writes would add a Buffer and a stream entry (~200 bytes) per queued frame to
 *  what it holds, 20% more memory at 1 KiB frames (#9 item 5). The bytes on the wire are the same. */
const BACKED_UP_FRACTION = 8;

class UvConnection {
  /** Index in UvServer.live; -1 once removed. */
  liveIndex = -1;
  /** Corked during the current turn of the loop. */
  corked = false;
  readClosed = false;
  closing: CloseReason | null = null;
  /** Input and unsent output it held when it was removed: garbage once its socket has closed. */
  heldAtRemoval = 0;

  constructor(readonly id: number, readonly socket: Socket, readonly peer: string, readonly frames: FrameAssembler) {}

  /** Bytes held for its partial frame: --max-input-total. */
  get inputHeld(): number {
    return this.frames.buffered;
  }
}

export class UvServer implements MobServer, FanoutHost {
  readonly engine: string;
  readonly stats = emptyStats();
  readonly limits: Limits;
  address!: ServerAddress;

  private readonly server: Server;
  private readonly live: UvConnection[] = [];
  private readonly corked: UvConnection[] = [];
  private readonly halfClosed = new HalfClosedClients<UvConnection>();
  private readonly doomed = new DoomList<UvConnection>((conn, reason) => this.drop(conn, reason));
  private readonly scan = new FrameScan();
  private readonly relays = new Relays();
  private readonly perFrame: boolean;
  private readonly shutdown: Shutdown;
  private readonly reclaimer = new Reclaimer();
  private serverClosed: Promise<void> | null = null;
  private flushScheduled = false;
  private rejectedThisTurn = 0;
  private nextId = 0;

  private constructor(options: ServerOptions, private readonly log: Logger, readonly mode: UvMode) {
    this.engine = `uv-${mode}`;
    this.limits = { ...options.limits, maxConns: fitConnLimit(options.limits.maxConns, log, options.explicitMaxConns) };
    this.perFrame = mode !== 'coalesced';
    this.server = createServer({ noDelay: true, allowHalfOpen: true }, (socket) => this.onConnection(socket));
    this.shutdown = new Shutdown(this.windDown(), log, options.shutdownTimeoutMs ?? 5000);
    // A gauge read rarely (metrics): summed on demand rather than kept on every write.
    Object.defineProperty(this.stats, 'bytesQueued', {
      enumerable: true,
      get: () => this.live.reduce((sum, conn) => sum + unsentBytes(conn.socket), 0),
    });
  }

  static async listen(options: ServerOptions, log: Logger, mode: UvMode = 'corked'): Promise<UvServer> {
    const uv = new UvServer(options, log, mode);
    if (options.reusePort) log.warn('--reuse-port is not available on node:net in this Node version; ignored');
    let fd = options.listenFd;
    if (fd !== undefined && options.keepListenFd) {
      // node:net closes what it listens on; listen on a duplicate so the caller's stays open.
      const { native } = await import('../../native/binding.js');
      fd = native.dup(fd);
      if (fd < 0) throw new Error(`listen fd ${options.listenFd}: dup: ${native.errnoName(-fd)}`);
    }
    await new Promise<void>((resolve, reject) => {
      uv.server.once('error', reject);
      const ready = () => {
        uv.server.off('error', reject);
        resolve();
      };
      if (fd !== undefined) uv.server.listen({ fd, backlog: BACKLOG }, ready);
      else uv.server.listen({ host: options.host, port: options.port, backlog: BACKLOG }, ready);
    });
    // libuv sheds on EMFILE itself (uv__emfile_trick) and reports each failed accept here.
    uv.server.on('error', (error) => {
      const code = (error as NodeJS.ErrnoException).code ?? error.message;
      if (log.limit('accept-failed', 'accept failed', 'error').admit()) log.error(`accept failed: ${code}`, { reason: 'accept-failed', errno: code });
    });
    const address = uv.server.address();
    if (address === null || typeof address === 'string') throw new Error('node:net returned no TCP address');
    uv.address = { host: fd !== undefined ? address.address : options.host, port: address.port };
    return uv;
  }

  get connections(): number {
    return this.live.length;
  }

  // --- the fan-out seam (fanout.ts) ----------------------------------------------------

  deliver(frames: Buffer, start: number, end: number, count: number): void {
    // During shutdown, peers' frames are broadcast until the clients wind down (shutdown.ts).
    if (this.shutdown.draining || count === 0) return;
    this.broadcast(start === 0 && end === frames.length ? frames : frames.subarray(start, end), count);
    this.removeDoomed();
  }

  addRelay(relay: Relay): void {
    this.relays.add(relay);
  }

  removeRelay(relay: Relay): void {
    this.relays.remove(relay);
  }

  dropAllClients(reason: string): void {
    dropAll(this.live, reason, this.log, (conn, why) => this.drop(conn, why));
  }


  // --- accept ------------------------------------------------------------------------

  private onConnection(socket: Socket): void {
    if (this.shutdown.active || (this.live.length >= this.limits.maxConns && !this.evictHalfClosed())) {
      socket.destroy();
      if (this.rejectedThisTurn++ === 0) setImmediate(() => this.logRejected());
      return;
    }
    const debug = this.log.debugEnabled;
    const peer = debug ? `${socket.remoteAddress}:${socket.remotePort}` : '';
    // One scan for all: 'data' handlers never run at the same time.
    const conn = new UvConnection(this.nextId++, socket, peer, new FrameAssembler(this.limits.maxFrame, this.scan));
    conn.liveIndex = this.live.length;
    this.live.push(conn);
    this.stats.accepted++;
    socket.on('data', (chunk: Buffer) => this.onData(conn, chunk));
    socket.on('end', () => this.onEnd(conn));
    socket.on('error', (error: NodeJS.ErrnoException) => this.remove(conn, failureReason(conn.readClosed, error.code ?? error.message)));
    socket.on('close', () => {
      this.remove(conn, this.shutdown.active ? { kind: 'shutdown' } : { kind: 'end' });
      // node:net lets go of a write request's buffers when the handle's close callback runs, a
      // loop turn after destroy(): a collection before that finds them still reachable. Lowest
      // anonymous RSS after a 32 MiB non-reader left: 19.6-19.8 MiB in 4 runs of 5 before, 14.0-16.4 after.
      this.reclaimer.release(conn.heldAtRemoval);
    });
    if (debug) this.log.debug(`connection ${conn.id} from ${conn.peer} (${this.live.length} live)`);
  }

  private evictHalfClosed(): boolean {
    const conn = this.halfClosed.takeOldest((each) => each.socket.writableLength === 0);
    if (conn === null) return false;
    this.drop(conn, { kind: 'end' });
    return true;
  }

  private logRejected(): void {
    const rejected = this.rejectedThisTurn;
    this.rejectedThisTurn = 0;
    recordRejected(this.stats, this.log, rejected, this.limits.maxConns);
  }

  // --- read --------------------------------------------------------------------------

  private onData(conn: UvConnection, chunk: Buffer): void {
    // During shutdown input is read and thrown away (shutdown.ts says why).
    if (conn.liveIndex < 0 || conn.readClosed || this.shutdown.active) return;
    this.stats.bytesIn += chunk.length;
    const heldBefore = conn.frames.buffered;
    const region = conn.frames.push(chunk);
    const { frames, oversized } = conn.frames.scan;
    this.stats.framesIn += frames;
    this.holdInput(heldBefore, conn.frames.buffered);
    if (region.length > 0) {
      // Frames before an oversized one still go out; only this client goes.
      this.outbound(conn, region, frames);
      this.removeDoomed();
    }
    if (oversized >= 0 && conn.liveIndex >= 0) this.drop(conn, { kind: 'frame-too-large', length: conn.frames.scan.oversizedLength, limit: this.limits.maxFrame });
  }

  /** Counts a change in what a connection holds for its partial frame; enforces --max-input-total. */
  private holdInput(before: number, after: number): void {
    const stats = this.stats;
    stats.inputBuffered += after - before;
    if (stats.inputBuffered <= this.limits.maxInputTotal) return;
    const total = stats.inputBuffered;
    for (const victim of shedInput(this.live, total, this.limits.maxInputTotal)) {
      this.drop(victim, { kind: 'input-total', held: victim.inputHeld, total, limit: this.limits.maxInputTotal });
    }
  }

  /** FIN: what was received is broadcast already. An incomplete frame is dropped (its sender
   *  promised more); the client stays a receiver until it closes, errors or falls behind
   *  (half-close, issue #9). allowHalfOpen keeps the socket writable. */
  private onEnd(conn: UvConnection): void {
    if (conn.liveIndex < 0) return;
    conn.readClosed = true;
    this.resetInput(conn);
    // During shutdown our FIN went or goes after the flush, and 'close' follows.
    if (!this.shutdown.active) this.halfClosed.add(conn, this.live.length);
  }

  private resetInput(conn: UvConnection): void {
    const held = conn.frames.buffered;
    conn.frames.reset();
    this.holdInput(held, 0);
  }

  // --- broadcast ---------------------------------------------------------------------

  /** A local batch: to the relays, then to every local client. */
  private outbound(sender: UvConnection, region: Buffer, frames: number): void {
    if (this.relays.size > 0) {
      const refused = this.relays.publish(region, 0, region.length);
      if (refused !== null) this.doomed.add(sender, { kind: 'relay-refused', relay: refused.name });
    }
    this.broadcast(region, frames);
  }

  /** Into each receiver: frame by frame ('plain', 'corked') or the region in one write
   *  ('coalesced'); corked receivers are uncorked once per turn. */
  private broadcast(region: Buffer, frames: number): void {
    const live = this.live;
    const maxOutput = this.limits.maxOutput;
    const cork = this.mode !== 'plain';
    // What is corked is this turn's, not the reader's fault: the limit is checked on uncork,
    // like the native engine's against what the kernel did not take. A turn reads a bounded
    // amount (libuv: at most 32 reads per socket per event), so this is bounded too.
    const limit = cork ? maxOutput + CORKED_ALLOWANCE : maxOutput;
    const backedUp = maxOutput / BACKED_UP_FRACTION;
    this.stats.framesDelivered += frames * live.length;
    for (let i = 0; i < live.length; i++) {
      const conn = live[i]!;
      const socket = conn.socket;
      if (cork && !conn.corked) {
        conn.corked = true;
        socket.cork();
        this.corked.push(conn);
      }
      if (this.perFrame && frames > 1 && socket.writableLength < backedUp) {
        for (let at = 0; at < region.length; ) {
          const end = nextFrame(region, at);
          socket.write(region.subarray(at, end));
          at = end;
        }
      } else {
        socket.write(region);
      }
      if (socket.writableLength > limit) this.checkUnsent(conn, limit);
    }
    if (cork) this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  /** Once per turn: uncork every receiver written to. */
  private flush(): void {
    this.flushScheduled = false;
    const corked = this.corked;
    for (let i = 0; i < corked.length; i++) {
      const conn = corked[i]!;
      conn.corked = false;
      if (conn.liveIndex < 0) continue;
      conn.socket.uncork();
      if (conn.socket.writableLength > this.limits.maxOutput) this.checkUnsent(conn, this.limits.maxOutput);
    }
    corked.length = 0;
    this.removeDoomed();
  }

  /** writableLength only ever counts more than is unsent, so the exact figure is read only
   *  past the limit. */
  private checkUnsent(conn: UvConnection, limit: number): void {
    const unsent = unsentBytes(conn.socket);
    if (unsent > limit) this.doomed.add(conn, { kind: 'slow-reader', pending: unsent, limit: this.limits.maxOutput });
  }

  private removeDoomed(): void {
    this.doomed.removeAll();
  }

  // --- removal and shutdown ----------------------------------------------------------

  /** Removes and closes at once, dropping unsent output. */
  private drop(conn: UvConnection, reason: CloseReason): void {
    this.remove(conn, reason);
    conn.socket.destroy();
  }

  /** Takes a connection out of the broadcast set, counts it and logs it as the native engine
   *  does; on a socket event ('error', 'close') the socket is closed already or closing. */
  private remove(conn: UvConnection, reason: CloseReason): void {
    if (conn.liveIndex < 0) return;
    const live = this.live;
    const index = conn.liveIndex;
    const last = live.pop()!;
    if (last !== conn) {
      live[index] = last;
      last.liveIndex = index;
    }
    conn.liveIndex = -1;
    // Output it leaves unsent is garbage too: a slow reader's, up to --max-output (#9 item 5);
    // the reclaimer hears of it on 'close'.
    conn.heldAtRemoval = conn.inputHeld + conn.socket.writableLength;
    this.resetInput(conn);
    conn.closing ??= reason;
    recordClose(this.stats, this.log, conn.id, conn.peer, reason, live.length);
    this.shutdown.clientGone();
  }

  private windDown(): WindDown {
    const server = this;
    return {
      get connections() {
        return server.live.length;
      },
      stopAccepting: () => {
        // server.close() calls back once the last socket has closed.
        this.serverClosed = new Promise<void>((done) => this.server.close(() => done()));
      },
      stopInput: () => {
        this.flush();
        for (const conn of [...this.live]) this.resetInput(conn);
      },
      windDownAll: () => {
        this.flush();
        for (const conn of [...this.live]) {
          // Flushes what is pending, then FIN (allowHalfOpen: the socket keeps reading, and
          // 'data' throws it away), then 'close' once the client's FIN came too.
          if (conn.readClosed) conn.socket.end(() => conn.socket.destroy());
          else conn.socket.end();
        }
      },
      cutAll: () => {
        const left = [...this.live];
        for (const conn of left) {
          // A reset, not a FIN: the client learns its stream was cut short.
          this.remove(conn, { kind: 'shutdown-cut' });
          conn.socket.resetAndDestroy();
        }
        return left.length;
      },
      release: () => {
        this.reclaimer.stop();
        return this.serverClosed ?? Promise.resolve();
      },
    };
  }

  close(upstream?: Promise<void>): Promise<void> {
    return this.shutdown.begin(upstream);
  }

  closeNow(): Promise<void> {
    return this.shutdown.now();
  }
}
