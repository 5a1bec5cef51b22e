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
// (socket.writableLength) exceeds --max-output is disconnected as a slow reader.
import { createServer, type Server, type Socket } from 'node:net';
import { HEADER_BYTES, FrameAssembler, FrameScan, readLength } from '../../protocol/frame.js';
import type { Logger } from '../../log.js';
import { fitConnLimit } from '../fdlimit.js';
import {
  emptyStats, recordClose, recordRejected,
  type CloseReason, type Limits, type MobServer, type ServerAddress, type ServerOptions,
} from '../policy.js';

export type UvMode = 'plain' | 'corked' | 'coalesced';

/** Listen backlog: the kernel caps it at net.core.somaxconn, as the native engine's does. */
const BACKLOG = 65535;
/** Corked output a receiver may hold within one turn beyond --max-output before it is cut off
 *  at once (the limit proper is checked when the turn uncorks). */
const CORKED_ALLOWANCE = 16 * 1024 * 1024;

class UvConnection {
  /** Index in UvServer.live; -1 once removed. */
  liveIndex = -1;
  /** Corked during the current turn of the loop. */
  corked = false;
  readClosed = false;
  closing: CloseReason | null = null;

  constructor(readonly id: number, readonly socket: Socket, readonly peer: string, readonly frames: FrameAssembler) {}
}

export class UvServer implements MobServer {
  readonly engine: string;
  readonly stats = emptyStats();
  readonly limits: Limits;
  address!: ServerAddress;

  private readonly server: Server;
  private readonly live: UvConnection[] = [];
  private readonly corked: UvConnection[] = [];
  private readonly ended: UvConnection[] = [];
  private readonly doomed: UvConnection[] = [];
  private readonly scan = new FrameScan();
  private readonly shutdownTimeoutMs: number;
  private readonly broadcast: (region: Buffer) => void;
  private flushScheduled = false;
  private rejectedThisTurn = 0;
  private nextId = 0;
  private stopping = false;
  private closed: Promise<void> | null = null;
  private finishClose: (() => void) | null = null;

  private constructor(options: ServerOptions, private readonly log: Logger, readonly mode: UvMode) {
    this.engine = `uv-${mode}`;
    this.limits = { ...options.limits, maxConns: fitConnLimit(options.limits.maxConns, log, options.explicitMaxConns) };
    this.shutdownTimeoutMs = options.shutdownTimeoutMs ?? 5000;
    this.broadcast = mode === 'plain' ? (region) => this.broadcastPlain(region) : (region) => this.broadcastCorked(region, mode === 'corked');
    this.server = createServer({ noDelay: true, allowHalfOpen: true }, (socket) => this.onConnection(socket));
  }

  static async listen(options: ServerOptions, log: Logger, mode: UvMode = 'corked'): Promise<UvServer> {
    const uv = new UvServer(options, log, mode);
    if (options.reusePort) log.warn('--reuse-port is not available on node:net in this Node version; ignored');
    await new Promise<void>((resolve, reject) => {
      uv.server.once('error', reject);
      uv.server.listen({ host: options.host, port: options.port, backlog: BACKLOG }, () => {
        uv.server.off('error', reject);
        resolve();
      });
    });
    // libuv sheds on EMFILE itself (uv__emfile_trick) and reports each failed accept here.
    uv.server.on('error', (error) => {
      const code = (error as NodeJS.ErrnoException).code ?? error.message;
      if (log.limit('accept-failed', 'accept failed', 'error').admit()) log.error(`accept failed: ${code}`, { reason: 'accept-failed', errno: code });
    });
    const address = uv.server.address();
    if (address === null || typeof address === 'string') throw new Error('node:net returned no TCP address');
    uv.address = { host: options.host, port: address.port };
    return uv;
  }

  get connections(): number {
    return this.live.length;
  }

  // --- accept ------------------------------------------------------------------------

  private onConnection(socket: Socket): void {
    if (this.live.length >= this.limits.maxConns || this.stopping) {
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
    socket.on('error', (error: NodeJS.ErrnoException) => this.remove(conn, { kind: 'error', code: error.code ?? error.message }));
    socket.on('close', () => this.remove(conn, { kind: 'end' }));
    if (debug) this.log.debug(`connection ${conn.id} from ${conn.peer} (${this.live.length} live)`);
  }

  private logRejected(): void {
    const rejected = this.rejectedThisTurn;
    this.rejectedThisTurn = 0;
    recordRejected(this.stats, this.log, rejected, this.limits.maxConns);
  }

  // --- read --------------------------------------------------------------------------

  private onData(conn: UvConnection, chunk: Buffer): void {
    if (conn.liveIndex < 0 || conn.readClosed) return;
    this.stats.bytesIn += chunk.length;
    const region = conn.frames.push(chunk);
    const { frames, oversized } = conn.frames.scan;
    this.stats.framesIn += frames;
    if (region.length > 0) {
      // Frames before an oversized one still go out; only this client goes.
      this.broadcast(region);
      this.removeDoomed();
    }
    if (oversized >= 0) this.drop(conn, { kind: 'frame-too-large', length: conn.frames.scan.oversizedLength, limit: this.limits.maxFrame });
  }

  /** FIN: what was received is broadcast already; the client gets what the current turn sends,
   *  then its output is flushed and it is closed. */
  private onEnd(conn: UvConnection): void {
    if (conn.liveIndex < 0) return;
    conn.readClosed = true;
    conn.frames.reset();
    this.ended.push(conn);
    this.scheduleFlush();
  }

  // --- broadcast ---------------------------------------------------------------------

  /** Each complete frame, written to each receiver on its own. */
  private broadcastPlain(region: Buffer): void {
    const live = this.live;
    const maxOutput = this.limits.maxOutput;
    let at = 0;
    while (at < region.length) {
      const total = HEADER_BYTES + readLength(region, at);
      const frame = at === 0 && total === region.length ? region : region.subarray(at, at + total);
      at += total;
      for (let i = 0; i < live.length; i++) {
        const conn = live[i]!;
        const socket = conn.socket;
        socket.write(frame);
        if (socket.writableLength > maxOutput) this.doom(conn, socket.writableLength);
      }
    }
  }

  /** Into corked sockets uncorked once per turn: frame by frame ('corked'), or the region in
   *  one write per receiver ('coalesced'). */
  private broadcastCorked(region: Buffer, perFrame: boolean): void {
    const live = this.live;
    const maxOutput = this.limits.maxOutput;
    for (let i = 0; i < live.length; i++) {
      const conn = live[i]!;
      const socket = conn.socket;
      if (!conn.corked) {
        conn.corked = true;
        socket.cork();
        this.corked.push(conn);
      }
      if (perFrame) {
        for (let at = 0; at < region.length; ) {
          const total = HEADER_BYTES + readLength(region, at);
          socket.write(at === 0 && total === region.length ? region : region.subarray(at, at + total));
          at += total;
        }
      } else {
        socket.write(region);
      }
      // What is corked is this turn's, not the reader's fault: the limit is checked on uncork,
      // like the native engine's against what the kernel did not take. A turn reads a bounded
      // amount (libuv: at most 32 reads per socket per event), so this is bounded too.
      if (socket.writableLength > maxOutput + CORKED_ALLOWANCE) this.doom(conn, socket.writableLength);
    }
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  /** Once per turn: uncork every receiver written to, then close the clients that sent FIN. */
  private flush(): void {
    this.flushScheduled = false;
    const corked = this.corked;
    for (let i = 0; i < corked.length; i++) {
      const conn = corked[i]!;
      conn.corked = false;
      if (conn.liveIndex < 0) continue;
      conn.socket.uncork();
      if (conn.socket.writableLength > this.limits.maxOutput) this.doom(conn, conn.socket.writableLength);
    }
    corked.length = 0;
    this.removeDoomed();
    const ended = this.ended;
    for (let i = 0; i < ended.length; i++) {
      const conn = ended[i]!;
      if (conn.liveIndex < 0) continue;
      this.unlink(conn, { kind: 'end' });
      conn.socket.end(); // flushes what is buffered, then FIN; 'close' follows
    }
    ended.length = 0;
  }

  private doom(conn: UvConnection, pending: number): void {
    if (conn.closing !== null) return;
    conn.closing = { kind: 'slow-reader', pending, limit: this.limits.maxOutput };
    this.doomed.push(conn);
  }

  private removeDoomed(): void {
    const doomed = this.doomed;
    if (doomed.length === 0) return;
    for (let i = 0; i < doomed.length; i++) this.drop(doomed[i]!, doomed[i]!.closing!);
    doomed.length = 0;
  }

  // --- removal and shutdown ----------------------------------------------------------

  /** Removes and closes at once, dropping unsent output. */
  private drop(conn: UvConnection, reason: CloseReason): void {
    this.remove(conn, reason);
    conn.socket.destroy();
  }

  /** Removes on a socket event ('error', 'close'); the socket is closed already or closing. */
  private remove(conn: UvConnection, reason: CloseReason): void {
    if (conn.liveIndex < 0) return;
    this.unlink(conn, reason);
  }

  /** Takes a connection out of the broadcast set, counts it and logs it as the native engine does. */
  private unlink(conn: UvConnection, reason: CloseReason): void {
    const live = this.live;
    const index = conn.liveIndex;
    const last = live.pop()!;
    if (last !== conn) {
      live[index] = last;
      last.liveIndex = index;
    }
    conn.liveIndex = -1;
    conn.frames.reset();
    conn.closing ??= reason;
    recordClose(this.stats, this.log, conn.id, conn.peer, reason, live.length);
    if (this.stopping && live.length === 0) this.finishClose?.();
  }

  close(): Promise<void> {
    if (this.closed !== null) return this.closed;
    this.stopping = true;
    this.closed = new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      let serverClosed: Promise<void>;
      const finish = () => {
        if (this.finishClose === null) return;
        this.finishClose = null;
        if (timer !== undefined) clearTimeout(timer);
        void serverClosed.then(resolve);
      };
      this.finishClose = finish;
      // Stop accepting now; server.close() calls back once the last socket has closed.
      serverClosed = new Promise<void>((done) => this.server.close(() => done()));
      this.flush();
      for (const conn of [...this.live]) {
        conn.socket.pause();
        if (conn.socket.writableLength === 0) {
          this.drop(conn, { kind: 'shutdown' });
        } else {
          // Flush what is pending, then close; 'finish' fires once it is all handed to the kernel.
          conn.socket.end(() => this.drop(conn, { kind: 'shutdown' }));
        }
      }
      if (this.live.length === 0) return finish();
      this.log.info(`shutdown: flushing output to ${this.live.length} client(s), at most ${this.shutdownTimeoutMs} ms`);
      timer = setTimeout(() => {
        const left = [...this.live];
        if (left.length > 0) this.log.warn(`shutdown: ${left.length} client(s) still behind after ${this.shutdownTimeoutMs} ms; closing`);
        for (const conn of left) this.drop(conn, { kind: 'shutdown' });
        finish();
      }, this.shutdownTimeoutMs);
    });
    return this.closed;
  }
}
