// mob on the raw poller. One poll batch: accept until EAGAIN, drain every readable client
// until EAGAIN into the shared arena, then broadcast the batch's frames with one write per
// receiver (one addon crossing for all of them). Receivers that cannot keep up hold views of
// the broadcast buffers and ask for WRITABLE until they drain.
import { openSync, closeSync } from 'node:fs';
import { native } from '../../native/binding.js';
import { Events, Interest, Poll, Ready, Trigger, describeReady, type Registry } from '../../poll/index.js';
import { FrameScan, scanFrames } from '../../protocol/frame.js';
import type { Logger } from '../../log.js';
import {
  describeClose, emptyStats, recordClose, recordRejected,
  type CloseReason, type Limits, type MobServer, type ServerAddress, type ServerOptions,
} from '../policy.js';
import { LISTENER_SLOT, type LoopTracer } from '../tracer.js';
import { fitConnLimit } from '../fdlimit.js';
import { Arena } from './arena.js';
import { Connection } from './connection.js';
import { Slab } from './slab.js';

/** Smallest read worth a syscall; below it the arena is broadcast and rotated first. */
const MIN_READ = 64 * 1024;
/** Incomplete frames larger than this are read into their own buffer instead of the arena. */
const ASSEMBLY_THRESHOLD = 64 * 1024;
/** A large frame's buffer starts here and doubles as bytes arrive, so a bare header that
 *  promises 16 MiB costs 1 MiB, not 16. */
const ASSEMBLY_INITIAL = 1024 * 1024;
/** Bytes read from one client per turn of the loop. A client with more waiting is read again on
 *  the next turn (setImmediate), so one fast sender cannot make a batch so large that the other
 *  clients' output queues blow past --max-output before they had a chance to read. */
const READ_BUDGET = 256 * 1024;

/** How soon accept is tried again after a failure that left connections queued. */
const ACCEPT_RETRY_MS = 100;

const { EAGAIN, EINTR, EMFILE, ENFILE, ECONNABORTED } = native.errno;
const READ_BITS = Ready.READABLE | Ready.READ_CLOSED | Ready.ERROR;

export class NativeServer implements MobServer {
  readonly engine = 'native';
  readonly stats = emptyStats();
  readonly address: ServerAddress;
  readonly limits: Limits;
  tracer: LoopTracer | null = null;

  private readonly poll = new Poll();
  private readonly registry: Registry;
  private readonly events = new Events(1024);
  private readonly slab = new Slab<Connection>();
  private readonly arena = new Arena();
  private readonly scan = new FrameScan();
  private readonly listenFd: number;
  private readonly shutdownTimeoutMs: number;
  // Broadcast scratch, grown with the number of connections.
  private fds = new Int32Array(64);
  private results = new Int32Array(64);
  private targets: Connection[] = [];
  /** Connections a broadcast found broken or too slow; removed once the loop is done. */
  private readonly doomed: Connection[] = [];
  /** Clients that sent FIN this batch: closed after the batch's broadcast reaches them. */
  private readonly ended: Connection[] = [];
  /** Clients whose read budget ran out before EAGAIN: read again on the next turn. */
  private unfinished: Connection[] = [];
  private spareUnfinished: Connection[] = [];
  private continueScheduled = false;
  /** Bytes left to read from the client being read, this turn. */
  private budget = 0;
  /** Kept open so that, on EMFILE, closing it frees one descriptor to accept and shed with. */
  private spareFd = -1;
  /** Set while accept waits out a failure that left the (edge-triggered) queue undrained. */
  private acceptRetry: NodeJS.Timeout | null = null;
  private stopping = false;
  private closed: Promise<void> | null = null;
  private finishClose: (() => void) | null = null;

  constructor(options: ServerOptions, private readonly log: Logger) {
    this.limits = { ...options.limits, maxConns: fitConnLimit(options.limits.maxConns, log, options.explicitMaxConns) };
    this.shutdownTimeoutMs = options.shutdownTimeoutMs ?? 5000;
    this.registry = this.poll.registry;
    this.listenFd = native.listen(options.host, options.port, 0, options.reusePort ?? false);
    try {
      this.address = { host: options.host, port: native.localAddress(this.listenFd).port };
      this.registry.register(this.listenFd, LISTENER_SLOT, Interest.READABLE, Trigger.EDGE);
      this.spareFd = openSpare();
    } catch (error) {
      native.close(this.listenFd);
      this.poll.close();
      throw error;
    }
    this.poll.run(this.events, (events) => this.handleBatch(events));
  }

  get connections(): number {
    return this.slab.size;
  }

  /** Attaches a tracer; the registry reports to it too. */
  setTracer(tracer: LoopTracer | null): void {
    this.tracer = tracer;
    this.registry.observer = tracer;
  }

  /** The poller's batch callback. Public so a test can replay the seeds' race: a batch
   *  holding an event for a connection that is already gone. */
  handleBatch(events: Events): void {
    const tracer = this.tracer;
    const logEvents = this.log.traceEnabled;
    const count = events.length;
    if (tracer !== null) tracer.batch(count);
    for (let i = 0; i < count; i++) {
      const slot = events.tokenLow(i);
      const flags = events.flags(i);
      if (tracer !== null) tracer.event(events.token(i), flags, events.raw(i), events.data(i));
      if (logEvents) this.log.trace(`event token=${events.token(i)} ${describeReady(flags)}`);
      if (slot === LISTENER_SLOT) {
        this.acceptAll();
        continue;
      }
      const conn = this.slab.get(slot, events.tokenHigh(i));
      if (conn === null) {
        // The seeds' race: this token's connection was removed earlier in this batch.
        if (tracer !== null) tracer.stale(events.token(i), flags);
        continue;
      }
      if ((flags & READ_BITS) !== 0 && !conn.readClosed && !this.stopping) this.readAll(conn);
      if (conn.liveIndex >= 0 && (flags & Ready.WRITABLE) !== 0 && conn.queuedBytes > 0) this.flushQueue(conn);
      if (conn.liveIndex >= 0 && (flags & Ready.ERROR) !== 0) {
        const errno = native.socketError(conn.fd);
        if (errno > 0) this.remove(conn, { kind: 'error', code: native.errnoName(errno) });
      }
    }
    this.endBatch();
  }

  private endBatch(): void {
    const arena = this.arena;
    if (arena.pending > 0) this.broadcastArena();
    // Every receiver took the batch whole or holds a view (pinned): if none does, reuse the
    // arena from the start, which keeps it hot in cache.
    if (!arena.pinned) arena.rotate(0, 0);
    const ended = this.ended;
    for (let i = 0; i < ended.length; i++) {
      const conn = ended[i]!;
      if (conn.liveIndex >= 0 && conn.queuedBytes === 0) this.remove(conn, { kind: 'end' });
    }
    ended.length = 0;
    if (this.unfinished.length > 0 && !this.continueScheduled) {
      this.continueScheduled = true;
      setImmediate(() => this.continueReads());
    }
  }

  /** Reads on from the clients whose budget ran out last turn; edge-triggered, no event will
   *  come for them until they are drained. */
  private continueReads(): void {
    this.continueScheduled = false;
    const list = this.unfinished;
    this.unfinished = this.spareUnfinished;
    this.spareUnfinished = list;
    for (let i = 0; i < list.length; i++) {
      const conn = list[i]!;
      conn.unfinished = false;
      if (conn.liveIndex >= 0 && !conn.readClosed && !this.stopping) this.readAll(conn);
    }
    list.length = 0;
    this.endBatch();
  }

  // --- accept ------------------------------------------------------------------------

  private acceptAll(): void {
    let rejected = 0;
    for (;;) {
      const fd = native.accept(this.listenFd);
      if (this.tracer !== null) this.tracer.call('accept', this.listenFd, LISTENER_SLOT, fd, 0);
      if (fd >= 0) {
        if (this.slab.size >= this.limits.maxConns || this.stopping) {
          native.close(fd);
          rejected++;
          continue;
        }
        this.open(fd);
        continue;
      }
      if (fd === -EAGAIN) break;
      if (fd === -EINTR || fd === -ECONNABORTED) continue;
      if (fd === -EMFILE || fd === -ENFILE) {
        // Edge-triggered: leaving the queue non-empty means no new event ever comes for it.
        this.shedWithSpareFd(-fd);
        break;
      }
      // ENOBUFS, ENOMEM...: the queue is not drained, and under EPOLLET nothing would say so again.
      if (this.log.limit('accept-failed', 'accept failed; retrying', 'error').admit()) {
        this.log.error(`accept failed: ${native.errnoName(-fd)}; retrying in ${ACCEPT_RETRY_MS} ms`, { reason: 'accept-failed', errno: native.errnoName(-fd) });
      }
      this.retryAcceptLater();
      break;
    }
    if (rejected > 0) recordRejected(this.stats, this.log, rejected, this.limits.maxConns);
  }

  /** libuv's EMFILE trick: give back the spare fd, accept-and-close until EAGAIN, take it again. */
  private shedWithSpareFd(errno: number): void {
    if (this.spareFd < 0) this.spareFd = openSpare();
    if (this.spareFd < 0) {
      // Someone else holds the descriptor the spare had: shed nothing now, but look again.
      if (this.log.limit('no-spare-fd', 'out of descriptors and no spare; retrying accept').admit()) {
        this.log.warn(`out of descriptors (${native.errnoName(errno)}) and no spare; retrying accept in ${ACCEPT_RETRY_MS} ms`, { reason: 'no-spare-fd' });
      }
      this.retryAcceptLater();
      return;
    }
    closeSync(this.spareFd);
    this.spareFd = -1;
    let shed = 0;
    let last = 0;
    for (;;) {
      last = native.accept(this.listenFd);
      if (this.tracer !== null) this.tracer.call('accept', this.listenFd, LISTENER_SLOT, last, 0);
      if (last >= 0) {
        native.close(last);
        shed++;
      } else if (last !== -EINTR && last !== -ECONNABORTED) {
        break;
      }
    }
    this.spareFd = openSpare();
    this.stats.rejected += shed;
    if (this.log.limit('out-of-descriptors', 'out of descriptors: closing queued connections').admit(shed)) {
      this.log.warn(`out of descriptors (${native.errnoName(errno)}): closed ${shed} queued connection${shed === 1 ? '' : 's'}`, {
        reason: 'out-of-descriptors', errno: native.errnoName(errno), shed,
      });
    }
    if (last !== -EAGAIN) this.retryAcceptLater();
  }

  private retryAcceptLater(): void {
    if (this.acceptRetry !== null || this.stopping) return;
    this.acceptRetry = setTimeout(() => {
      this.acceptRetry = null;
      if (!this.stopping) this.acceptAll();
    }, ACCEPT_RETRY_MS);
  }

  private open(fd: number): void {
    native.setNoDelay(fd, true);
    const debug = this.log.debugEnabled;
    const conn = this.slab.insert(new Connection(fd, debug ? peerName(fd) : ''));
    try {
      this.registry.register(fd, conn.token, Interest.READABLE, Trigger.EDGE);
    } catch (error) {
      this.slab.remove(conn);
      native.close(fd);
      this.log.error(`register fd ${fd} failed: ${(error as Error).message}`);
      return;
    }
    this.stats.accepted++;
    if (this.tracer !== null) this.tracer.connection('open', fd, conn.token, conn.peer);
    if (debug) this.log.debug(`connection ${conn.token} from ${conn.peer} (fd ${fd}, ${this.slab.size} live)`);
  }

  // --- read --------------------------------------------------------------------------

  /** Reads until EAGAIN, committing complete frames to the arena as they arrive. */
  private readAll(conn: Connection): void {
    const arena = this.arena;
    const fd = conn.fd;
    const maxFrame = this.limits.maxFrame;
    let tail = 0; // bytes of an incomplete frame sitting right after arena.committed
    this.budget = READ_BUDGET;
    if (conn.stashLength > 0) {
      tail = conn.stashLength;
      conn.stashLength = 0;
      if (arena.room(0) < tail + MIN_READ && !this.makeRoom(conn, 0, tail + MIN_READ)) return;
      conn.stash!.copy(arena.buf, arena.committed, 0, tail);
    }
    for (;;) {
      if (this.budget <= 0) {
        if (tail > 0) this.stashTail(conn, arena.buf, arena.committed, tail);
        if (!conn.unfinished) {
          conn.unfinished = true;
          this.unfinished.push(conn);
        }
        return;
      }
      if (conn.assembly !== null) {
        if (!this.readAssembly(conn)) return;
        continue;
      }
      if (arena.room(tail) < MIN_READ && !this.makeRoom(conn, tail, tail + MIN_READ)) return;
      const buf = arena.buf;
      const at = arena.committed + tail;
      const n = native.read(fd, buf, at, buf.length - at);
      if (this.tracer !== null) this.tracer.call('read', fd, conn.token, n, buf.length - at);
      if (n > 0) {
        this.stats.bytesIn += n;
        this.budget -= n;
        const scan = scanFrames(buf, arena.committed, at + n, maxFrame, this.scan);
        this.stats.framesIn += scan.frames;
        arena.committed = scan.end;
        tail = at + n - scan.end;
        if (scan.oversized >= 0) {
          // The frames before it are committed and still go out; only this client goes.
          this.remove(conn, { kind: 'frame-too-large', length: scan.oversizedLength, limit: maxFrame });
          return;
        }
        if (scan.pendingTotal > ASSEMBLY_THRESHOLD) {
          this.startAssembly(conn, buf, arena.committed, tail, scan.pendingTotal);
          tail = 0;
        }
        continue;
      }
      if (n === -EAGAIN) {
        if (tail > 0) this.stashTail(conn, arena.buf, arena.committed, tail);
        return;
      }
      if (n === -EINTR) continue;
      if (n === 0) {
        // An incomplete frame at end of stream is dropped: its sender promised more.
        this.endOfStream(conn);
      } else {
        this.remove(conn, { kind: 'error', code: native.errnoName(-n) });
      }
      return;
    }
  }

  /** Broadcasts what is committed and rotates the arena; false if `conn` was removed meanwhile
   *  (a broadcast drops slow readers, and `conn` may be one). */
  private makeRoom(conn: Connection, tail: number, need: number): boolean {
    if (this.arena.pending > 0) this.broadcastArena();
    this.arena.rotate(tail, need);
    return conn.liveIndex >= 0;
  }

  private stashTail(conn: Connection, buf: Buffer, from: number, length: number): void {
    if (conn.stash === null || conn.stash.length < length) conn.stash = Buffer.allocUnsafe(Math.max(length, 64));
    buf.copy(conn.stash, 0, from, from + length);
    conn.stashLength = length;
  }

  private startAssembly(conn: Connection, buf: Buffer, from: number, length: number, total: number): void {
    const assembly = Buffer.allocUnsafeSlow(Math.min(total, Math.max(ASSEMBLY_INITIAL, length)));
    buf.copy(assembly, 0, from, from + length);
    conn.assembly = assembly;
    conn.assembled = length;
    conn.assemblyTotal = total;
  }

  /** One read toward a large frame; true to keep reading, false when the drain is over. */
  private readAssembly(conn: Connection): boolean {
    let assembly = conn.assembly!;
    if (conn.assembled === assembly.length) {
      const grown = Buffer.allocUnsafeSlow(Math.min(conn.assemblyTotal, assembly.length * 2));
      assembly.copy(grown, 0, 0, conn.assembled);
      conn.assembly = assembly = grown;
    }
    const want = assembly.length - conn.assembled;
    const n = native.read(conn.fd, assembly, conn.assembled, want);
    if (this.tracer !== null) this.tracer.call('read', conn.fd, conn.token, n, want);
    if (n > 0) {
      this.stats.bytesIn += n;
      this.budget -= n;
      conn.assembled += n;
      if (conn.assembled === conn.assemblyTotal) {
        conn.assembly = null;
        this.stats.framesIn++;
        // Frames committed before this one go first: order per sender is the promise.
        if (this.arena.pending > 0) this.broadcastArena();
        this.broadcast(assembly, 0, conn.assemblyTotal, false);
        return conn.liveIndex >= 0;
      }
      return true;
    }
    if (n === -EINTR) return true;
    if (n === 0) this.endOfStream(conn);
    else if (n !== -EAGAIN) this.remove(conn, { kind: 'error', code: native.errnoName(-n) });
    return false;
  }

  private endOfStream(conn: Connection): void {
    conn.readClosed = true;
    conn.stashLength = 0;
    conn.assembly = null;
    this.ended.push(conn);
  }

  // --- broadcast and write -----------------------------------------------------------

  private broadcastArena(): void {
    const arena = this.arena;
    this.broadcast(arena.buf, arena.batchStart, arena.committed, true);
    arena.markBroadcast();
  }

  /** Sends buf[start, end) to every client: one write each for those with nothing pending,
   *  a view appended to the queue of those still behind. */
  private broadcast(buf: Buffer, start: number, end: number, fromArena: boolean): void {
    const live = this.slab.live;
    const length = end - start;
    if (this.fds.length < live.length) this.growScratch(live.length);
    const fds = this.fds;
    const targets = this.targets;
    let n = 0;
    for (let i = 0; i < live.length; i++) {
      const conn = live[i]!;
      if (conn.queuedBytes === 0) {
        fds[n] = conn.fd;
        targets[n++] = conn;
      } else {
        this.enqueue(conn, buf.subarray(start, end), fromArena);
      }
    }
    if (n > 0) native.writeEach(fds, n, buf, start, length, this.results);
    const results = this.results;
    const tracer = this.tracer;
    for (let i = 0; i < n; i++) {
      const written = results[i]!;
      const conn = targets[i]!;
      if (tracer !== null) tracer.call('write', conn.fd, conn.token, written, length);
      if (written === length) continue;
      if (written >= 0 || written === -EAGAIN) {
        this.enqueue(conn, buf.subarray(start + Math.max(written, 0), end), fromArena);
        this.wantWrite(conn);
      } else {
        this.doom(conn, { kind: 'error', code: native.errnoName(-written) });
      }
    }
    this.removeDoomed();
  }

  private enqueue(conn: Connection, view: Buffer, fromArena: boolean): void {
    if (fromArena) this.arena.pinned = true;
    conn.enqueue(view);
    if (conn.queuedBytes > this.limits.maxOutput) {
      this.doom(conn, { kind: 'slow-reader', pending: conn.queuedBytes, limit: this.limits.maxOutput });
    }
  }

  private doom(conn: Connection, reason: CloseReason): void {
    if (conn.closing !== null) return;
    conn.closing = reason;
    this.doomed.push(conn);
  }

  private removeDoomed(): void {
    const doomed = this.doomed;
    for (let i = 0; i < doomed.length; i++) this.remove(doomed[i]!, doomed[i]!.closing!);
    doomed.length = 0;
  }

  /** Writes the queue until it is empty or EAGAIN. */
  private flushQueue(conn: Connection): void {
    while (conn.queuedBytes > 0) {
      const queue = conn.queue!;
      const head = queue[0]!;
      const n = queue.length === 1 ? native.write(conn.fd, head, 0, head.length) : native.writev(conn.fd, queue);
      if (this.tracer !== null) this.tracer.call(queue.length === 1 ? 'write' : 'writev', conn.fd, conn.token, n, conn.queuedBytes);
      if (n >= 0) {
        conn.consume(n);
        continue;
      }
      if (n === -EAGAIN) {
        this.wantWrite(conn);
        return;
      }
      if (n === -EINTR) continue;
      this.remove(conn, { kind: 'error', code: native.errnoName(-n) });
      return;
    }
    conn.queue = null;
    if (conn.readClosed || this.stopping) {
      this.remove(conn, conn.readClosed ? { kind: 'end' } : { kind: 'shutdown' });
      return;
    }
    if (conn.writeInterest) {
      conn.writeInterest = false;
      this.registry.reregister(conn.fd, conn.token, Interest.READABLE, Trigger.EDGE);
    }
  }

  /** WRITABLE joins the registration only while output is pending. */
  private wantWrite(conn: Connection): void {
    if (conn.writeInterest) return;
    conn.writeInterest = true;
    this.registry.reregister(conn.fd, conn.token, Interest.BOTH, Trigger.EDGE);
  }

  private growScratch(size: number): void {
    const capacity = Math.max(size, this.fds.length * 2);
    this.fds = new Int32Array(capacity);
    this.results = new Int32Array(capacity);
  }

  // --- removal and shutdown ----------------------------------------------------------

  private remove(conn: Connection, reason: CloseReason): void {
    if (conn.liveIndex < 0) return;
    // Deregister before close: kqueue emulations keep state for a watched fd closed under them.
    this.registry.deregister(conn.fd);
    const result = native.close(conn.fd);
    if (this.tracer !== null) {
      this.tracer.call('close', conn.fd, conn.token, result, 0);
      this.tracer.connection('close', conn.fd, conn.token, describeClose(reason));
    }
    this.slab.remove(conn);
    conn.queue = null;
    conn.queuedBytes = 0;
    conn.assembly = null;
    conn.closing ??= reason;
    recordClose(this.stats, this.log, conn.token, conn.peer, reason, this.slab.size);
    if (this.stopping && this.slab.size === 0) this.finishClose?.();
  }

  close(): Promise<void> {
    if (this.closed !== null) return this.closed;
    this.stopping = true;
    if (this.acceptRetry !== null) clearTimeout(this.acceptRetry);
    this.acceptRetry = null;
    this.closed = new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = () => {
        if (this.finishClose === null) return;
        this.finishClose = null;
        if (timer !== undefined) clearTimeout(timer);
        // May run inside a batch that still has events to skip: stop the watcher now,
        // close the poller once the batch has unwound.
        this.poll.stop();
        setImmediate(() => {
          this.poll.close();
          if (this.spareFd >= 0) closeSync(this.spareFd);
          this.spareFd = -1;
          resolve();
        });
      };
      this.finishClose = finish;
      this.registry.deregister(this.listenFd);
      native.close(this.listenFd);
      for (const conn of [...this.slab.live]) {
        if (conn.queuedBytes === 0) this.remove(conn, { kind: 'shutdown' });
      }
      if (this.slab.size === 0) return finish();
      this.log.info(`shutdown: flushing output to ${this.slab.size} client(s), at most ${this.shutdownTimeoutMs} ms`);
      timer = setTimeout(() => {
        const left = [...this.slab.live];
        if (left.length > 0) this.log.warn(`shutdown: ${left.length} client(s) still behind after ${this.shutdownTimeoutMs} ms; closing`);
        for (const conn of left) {
          // A reset, not a FIN: the client learns its stream was cut short, and the kernel
          // drops the unsent bytes now instead of holding them for a reader that never reads.
          native.setLinger(conn.fd, true, 0);
          this.remove(conn, { kind: 'shutdown' });
        }
        finish();
      }, this.shutdownTimeoutMs);
    });
    return this.closed;
  }
}

function openSpare(): number {
  try {
    return openSync('/dev/null', 'r');
  } catch {
    return -1;
  }
}

function peerName(fd: number): string {
  try {
    const peer = native.peerAddress(fd);
    return peer.family === 'IPv6' ? `[${peer.address}]:${peer.port}` : `${peer.address}:${peer.port}`;
  } catch {
    return '?';
  }
}
