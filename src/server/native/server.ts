// mob on the raw poller. One poll batch: accept until EAGAIN, drain every readable client
// until EAGAIN into the shared arena, then send the batch's frames out through the fan-out seam
// (fanout.ts): to the relays, if any, and to every local client with one write per receiver
// (one addon crossing for all of them). Receivers that cannot keep up hold regions of the
// broadcast buffers and ask for WRITABLE until they drain.
import { openSync, closeSync } from 'node:fs';
import { errno, native } from '../../native/binding.js';
import { Events, Interest, Poll, Ready, Trigger, describeReady, makeToken, type Registry } from '../../poll/index.js';
import { FrameScan, scanFrames } from '../../protocol/frame.js';
import type { Logger } from '../../log.js';
import {
  describeClose, DoomList, emptyStats, failureReason, HalfClosedClients, recordClose, recordRejected, shedInput,
  type CloseReason, type Limits, type MobServer, type ServerAddress, type ServerOptions,
} from '../policy.js';
import { dropAll, Relays, type FanoutHost, type Relay } from '../fanout.js';
import { Reclaimer } from '../reclaim.js';
import { Shutdown, type WindDown } from '../shutdown.js';
import type { LoopTracer } from '../tracer.js';
import { fitConnLimit } from '../fdlimit.js';
import { Arena } from './arena.js';
import { Connection } from './connection.js';
import { LISTENER_SLOT, Slab, WATCHED_SLOT } from './slab.js';

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
export const READ_BUDGET = 256 * 1024;

/** How soon accept is tried again after a failure that left connections queued. */
const ACCEPT_RETRY_MS = 100;

const { EAGAIN, EINTR, EMFILE, ENFILE, ECONNABORTED } = errno;
const READ_BITS = Ready.READABLE | Ready.READ_CLOSED | Ready.ERROR;
const SHUT_WR = 1;

export class NativeServer implements MobServer, FanoutHost {
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
  private readonly relays = new Relays();
  private readonly listenFd: number;
  private readonly keepListenFd: boolean;
  private listening = true;
  // Broadcast scratch, grown with the number of connections.
  private fds = new Int32Array(64);
  private results = new Int32Array(64);
  private targets: Connection[] = [];
  /** writev's buffer list, refilled per flush. */
  private readonly iov: Buffer[] = [];
  /** Connections a broadcast found broken or too slow; removed once the loop is done. */
  private readonly doomed = new DoomList<Connection>((conn, reason) => this.remove(conn, reason));
  /** Clients with frames in the arena batch not yet broadcast; kept only while relays exist
   *  (a refused batch disconnects its senders). */
  private readonly senders: Connection[] = [];
  private batchSeq = 0;
  private readonly halfClosed = new HalfClosedClients<Connection>();
  /** Clients whose read budget ran out before EAGAIN: read again on the next turn. */
  private unfinished: Connection[] = [];
  private spareUnfinished: Connection[] = [];
  private continueScheduled = false;
  /** Bytes left to read from the client being read, this turn. */
  private budget = 0;
  /** Where input read during shutdown goes (it is not broadcast: see shutdown.ts). */
  private discardBuffer: Buffer | null = null;
  /** Kept open so that, on EMFILE, closing it frees one descriptor to accept and shed with. */
  private spareFd = -1;
  /** Set while accept waits out a failure that left the (edge-triggered) queue undrained. */
  private acceptRetry: NodeJS.Timeout | null = null;
  private readonly shutdown: Shutdown;
  private readonly reclaimer = new Reclaimer();
  /** Descriptors of the scale-out layer on this poller (watch()), and who hears of them. */
  private watchedReady: ((id: number, flags: number) => void) | null = null;
  private watched = 0;
  /** Shutdown is over but watched descriptors remain: the poller closes with the last. */
  private pollOrphaned = false;
  /** Inside handleBatch: delivered frames join the arena batch instead of going out alone. */
  private inBatch = false;
  /** Bytes at the start of the arena's pending batch that were delivered (not local): they go
   *  to the local clients with the rest, never to the relays. */
  private deliveredBytes = 0;

  /** A tracer given here also sees the listener's own registration. */
  constructor(options: ServerOptions, private readonly log: Logger, tracer: LoopTracer | null = null) {
    this.limits = { ...options.limits, maxConns: fitConnLimit(options.limits.maxConns, log, options.explicitMaxConns) };
    this.registry = this.poll.registry;
    this.setTracer(tracer);
    this.keepListenFd = options.listenFd !== undefined && options.keepListenFd === true;
    this.listenFd = options.listenFd ?? native.listen(options.host, options.port, 0, options.reusePort ?? false);
    try {
      if (options.listenFd !== undefined) {
        // Edge-triggered accept loops until EAGAIN: a blocking listener would hang it.
        const result = native.setNonBlocking(this.listenFd);
        if (result < 0) throw new Error(`listen fd ${this.listenFd}: ${native.errnoName(-result)}`);
      }
      const local = native.localAddress(this.listenFd);
      this.address = { host: options.listenFd !== undefined ? local.address : options.host, port: local.port };
      this.registry.register(this.listenFd, LISTENER_SLOT, Interest.READABLE, Trigger.EDGE);
      this.spareFd = openSpare();
    } catch (error) {
      if (!this.keepListenFd) native.close(this.listenFd);
      this.poll.close();
      throw error;
    }
    this.shutdown = new Shutdown(this.windDown(), log, options.shutdownTimeoutMs ?? 5000);
    this.poll.run(this.events, (events) => this.handleBatch(events));
  }

  get connections(): number {
    return this.slab.size;
  }

  /** Attaches a tracer; the registry reports to it too. */
  setTracer(tracer: LoopTracer | null): void {
    this.tracer = tracer;
    this.registry.observer = tracer;
    tracer?.nameToken(LISTENER_SLOT, 'listener');
  }

  // --- the fan-out seam (fanout.ts) ----------------------------------------------------

  deliver(frames: Buffer, start: number, end: number, count: number): void {
    // During shutdown, peers' frames are broadcast until the clients wind down (shutdown.ts).
    if (this.shutdown.draining || count === 0) return;
    const arena = this.arena;
    const length = end - start;
    // From a watched descriptor, before any client of this batch is read: copied once into the
    // arena, the frames leave with the batch's own, in the same write to each receiver.
    if (this.inBatch && arena.pending === this.deliveredBytes) {
      if (arena.room(0) >= length) {
        frames.copy(arena.buf, arena.committed, start, end);
        arena.committed += length;
        arena.frames += count;
        this.deliveredBytes += length;
        return;
      }
      // No room: what is staged goes first (order per sender), then this, from where it is.
      if (arena.pending > 0) this.broadcastArena();
    }
    this.broadcast(frames, start, end, count, false);
    this.removeDoomed();
  }

  watch(fd: number, id: number, interest: Interest, ready: (id: number, flags: number) => void): void {
    if (this.watchedReady !== null && this.watchedReady !== ready) throw new Error('watch: one listener per server');
    this.registry.register(fd, makeToken(WATCHED_SLOT, id), interest, Trigger.EDGE);
    this.watchedReady = ready;
    this.watched++;
  }

  unwatch(fd: number): void {
    if (this.watched === 0) return;
    this.watched--;
    this.registry.deregister(fd);
    if (this.pollOrphaned && this.watched === 0) this.closePollAfterBatch(); // the last one
  }

  /** Both callers may run inside a batch that still has events to skip: the watcher stops now,
   *  the poller closes once the batch has unwound. */
  private closePollAfterBatch(): void {
    this.poll.stop();
    setImmediate(() => this.poll.close());
  }

  addRelay(relay: Relay): void {
    this.relays.add(relay);
  }

  removeRelay(relay: Relay): void {
    this.relays.remove(relay);
  }

  dropAllClients(reason: string): void {
    dropAll(this.slab.live, reason, this.log, (conn, why) => this.remove(conn, why));
  }

  /** A batch leaves through here: to every local client, then its local part, [localFrom, end),
   *  to the relays. Arena bytes stay valid only for this call; a relay copies what it keeps,
   *  and a local receiver's queue pins the arena (enqueue). */
  private outbound(buf: Buffer, start: number, end: number, frames: number, fromArena: boolean, localFrom = start): void {
    // Local clients first, then the relays: a peer worker woken a little later more often finds
    // its own clients' frames waiting too, and sends both in one turn (#8: 168-190 ns per
    // delivered frame with --workers 2 against 179-204 publishing first, medians of 6 and 8
    // alternating runs, pinned). Only local frames are published, never delivered ones.
    this.broadcast(buf, start, end, frames, fromArena);
    if (this.relays.size > 0 && localFrom < end) {
      const refused = this.relays.publish(buf, localFrom, end);
      if (refused !== null) {
        const senders = this.senders;
        for (let i = 0; i < senders.length; i++) this.doomed.add(senders[i]!, { kind: 'relay-refused', relay: refused.name });
      }
    }
    this.senders.length = 0;
    this.batchSeq++;
  }

  private noteSender(conn: Connection): void {
    if (conn.senderMark === this.batchSeq) return;
    conn.senderMark = this.batchSeq;
    this.senders.push(conn);
  }

  // --- the loop ------------------------------------------------------------------------

  /** The poller's batch callback. */
  private handleBatch(events: Events): void {
    const tracer = this.tracer;
    const logEvents = this.log.traceEnabled;
    const count = events.length;
    if (tracer !== null) tracer.batch(count, 0, -1);
    this.inBatch = true;
    if (this.watched > 0) this.watchedFirst(events);
    for (let i = 0; i < count; i++) {
      const slot = events.tokenLow(i);
      if (slot === WATCHED_SLOT) continue;
      const flags = events.flags(i);
      if (tracer !== null) tracer.event(events.token(i), flags, events.raw(i), events.data(i));
      if (logEvents) this.log.trace(`event token=${events.token(i)} ${describeReady(flags)}`);
      if (slot === LISTENER_SLOT) {
        if (this.listening) this.acceptAll();
        continue;
      }
      const conn = this.slab.get(slot, events.tokenHigh(i));
      if (conn === null) {
        // The seeds' race: this token's connection was removed earlier in this batch.
        if (tracer !== null) tracer.stale(events.token(i), flags);
        continue;
      }
      if ((flags & READ_BITS) !== 0 && !conn.readClosed) this.read(conn);
      if (conn.liveIndex >= 0 && (flags & Ready.WRITABLE) !== 0 && conn.queuedBytes > 0) this.flushQueue(conn);
      if (conn.liveIndex >= 0 && (flags & Ready.ERROR) !== 0) {
        const errno = native.socketError(conn.fd);
        if (errno > 0) this.remove(conn, failureReason(conn.readClosed, native.errnoName(errno)));
        // libkqueue reads SO_ERROR itself to report it, leaving 0 here; the read then saw EOF,
        // and this flag is all that tells a reset from a half-close.
        else if (conn.readClosed) this.remove(conn, { kind: 'end' });
      }
    }
    this.inBatch = false;
    this.endBatch();
  }

  /** Watched descriptors' events before any client's, so what they deliver is at the front of
   *  the arena batch, ahead of the local frames the relays get. */
  private watchedFirst(events: Events): void {
    const ready = this.watchedReady!;
    for (let i = 0; i < events.length; i++) {
      if (events.tokenLow(i) === WATCHED_SLOT) ready(events.tokenHigh(i), events.flags(i));
    }
  }

  private read(conn: Connection): void {
    if (this.shutdown.active) this.discardInput(conn);
    else this.readAll(conn);
  }

  private endBatch(): void {
    const arena = this.arena;
    if (arena.pending > 0) this.broadcastArena();
    this.removeDoomed();
    // Every receiver took the batch whole or holds a region (pinned): if none does, reuse the
    // arena from the start, which keeps it hot in cache.
    if (!arena.pinned) arena.rotate(0, 0);
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
      if (conn.liveIndex >= 0 && !conn.readClosed) {
        if (this.tracer !== null) this.tracer.readBudget('resume', conn.fd, conn.token, READ_BUDGET);
        this.read(conn);
      }
    }
    list.length = 0;
    this.endBatch();
  }

  private readLater(conn: Connection): void {
    if (conn.unfinished) return;
    if (this.tracer !== null) this.tracer.readBudget('spent', conn.fd, conn.token, READ_BUDGET);
    conn.unfinished = true;
    this.unfinished.push(conn);
  }

  // --- accept ------------------------------------------------------------------------

  private acceptAll(): void {
    let rejected = 0;
    for (;;) {
      const fd = native.accept(this.listenFd);
      if (this.tracer !== null) this.tracer.call('accept', this.listenFd, LISTENER_SLOT, fd, 0);
      if (fd >= 0) {
        if (this.slab.size >= this.limits.maxConns && !this.evictHalfClosed()) {
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

  private evictHalfClosed(): boolean {
    const conn = this.halfClosed.takeOldest((each) => each.queuedBytes === 0);
    if (conn === null) return false;
    this.remove(conn, { kind: 'end' });
    return true;
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
    if (this.acceptRetry !== null || !this.listening) return;
    this.acceptRetry = setTimeout(() => {
      this.acceptRetry = null;
      if (this.listening) this.acceptAll();
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
    const relayed = this.relays.size > 0;
    let tail = 0; // bytes of an incomplete frame sitting right after arena.committed
    this.budget = READ_BUDGET;
    if (conn.stashLength > 0) {
      tail = conn.stashLength;
      conn.stashLength = 0;
      if (arena.room(0) < tail + MIN_READ && !this.makeRoom(conn, 0, tail + MIN_READ)) return;
      conn.stash!.copy(arena.buf, arena.committed, 0, tail);
      this.holdInput(conn, 0);
    }
    for (;;) {
      if (this.budget <= 0) {
        if (tail > 0) this.stashTail(conn, arena.buf, arena.committed, tail);
        if (conn.liveIndex >= 0) this.readLater(conn);
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
        if (scan.frames > 0) {
          this.stats.framesIn += scan.frames;
          arena.frames += scan.frames;
          if (relayed) this.noteSender(conn);
        }
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
          if (conn.liveIndex < 0) return;
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
    this.removeDoomed();
    this.arena.rotate(tail, need);
    return conn.liveIndex >= 0;
  }

  private stashTail(conn: Connection, buf: Buffer, from: number, length: number): void {
    if (conn.stash === null || conn.stash.length < length) conn.stash = Buffer.allocUnsafe(Math.max(length, 64));
    buf.copy(conn.stash, 0, from, from + length);
    conn.stashLength = length;
    this.holdInput(conn, length);
  }

  private startAssembly(conn: Connection, buf: Buffer, from: number, length: number, total: number): void {
    const assembly = Buffer.allocUnsafeSlow(Math.min(total, Math.max(ASSEMBLY_INITIAL, length)));
    buf.copy(assembly, 0, from, from + length);
    conn.assembly = assembly;
    conn.assembled = length;
    conn.assemblyTotal = total;
    this.holdInput(conn, assembly.length);
  }

  /** One read toward a large frame; true to keep reading, false when the drain is over. */
  private readAssembly(conn: Connection): boolean {
    let assembly = conn.assembly!;
    if (conn.assembled === assembly.length) {
      const grown = Buffer.allocUnsafeSlow(Math.min(conn.assemblyTotal, assembly.length * 2));
      assembly.copy(grown, 0, 0, conn.assembled);
      conn.assembly = assembly = grown;
      this.holdInput(conn, grown.length);
      if (conn.liveIndex < 0) return false;
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
        this.holdInput(conn, 0);
        this.stats.framesIn++;
        // Frames committed before this one go first: order per sender is the promise.
        if (this.arena.pending > 0) this.broadcastArena();
        if (this.relays.size > 0) this.noteSender(conn);
        this.outbound(assembly, 0, conn.assemblyTotal, 1, false);
        this.removeDoomed();
        return conn.liveIndex >= 0;
      }
      return true;
    }
    if (n === -EINTR) return true;
    if (n === 0) this.endOfStream(conn);
    else if (n !== -EAGAIN) this.remove(conn, { kind: 'error', code: native.errnoName(-n) });
    return false;
  }

  /** Sets what `conn` holds for its partial frame, and enforces --max-input-total. */
  private holdInput(conn: Connection, bytes: number): void {
    const stats = this.stats;
    stats.inputBuffered += bytes - conn.inputHeld;
    conn.inputHeld = bytes;
    if (stats.inputBuffered > this.limits.maxInputTotal) {
      const total = stats.inputBuffered;
      for (const victim of shedInput(this.slab.live, total, this.limits.maxInputTotal)) {
        this.remove(victim, { kind: 'input-total', held: victim.inputHeld, total, limit: this.limits.maxInputTotal });
      }
    }
  }

  /** FIN from the client. An incomplete frame is dropped (its sender promised more); the client
   *  stays a receiver until it closes, errors or falls behind (half-close, issue #9). */
  private endOfStream(conn: Connection): void {
    conn.readClosed = true;
    conn.stashLength = 0;
    conn.stash = null;
    conn.assembly = null;
    this.holdInput(conn, 0);
    if (this.shutdown.draining) {
      if (conn.queuedBytes === 0) this.remove(conn, { kind: 'shutdown' });
      return;
    }
    // Still a receiver of peers' frames until the clients wind down (shutdown.ts, step 1b).
    if (this.shutdown.active) return;
    if (this.tracer !== null) this.tracer.connection('half-closed', conn.fd, conn.token, 'peer sent FIN; still a receiver');
    this.halfClosed.add(conn, this.slab.size);
  }

  /** During shutdown: reads and throws away (shutdown.ts says why), until EAGAIN or EOF. */
  private discardInput(conn: Connection): void {
    const buf = (this.discardBuffer ??= Buffer.allocUnsafeSlow(MIN_READ));
    let budget = READ_BUDGET;
    for (;;) {
      if (budget <= 0) return this.readLater(conn);
      const n = native.read(conn.fd, buf, 0, buf.length);
      if (this.tracer !== null) this.tracer.call('read', conn.fd, conn.token, n, buf.length);
      if (n > 0) {
        budget -= n;
        continue;
      }
      if (n === -EINTR) continue;
      if (n === 0) this.endOfStream(conn);
      else if (n !== -EAGAIN) this.remove(conn, { kind: 'error', code: native.errnoName(-n) });
      return;
    }
  }

  // --- broadcast and write -----------------------------------------------------------

  private broadcastArena(): void {
    const arena = this.arena;
    const frames = arena.frames;
    const localFrom = arena.batchStart + this.deliveredBytes;
    arena.frames = 0;
    this.deliveredBytes = 0;
    this.outbound(arena.buf, arena.batchStart, arena.committed, frames, true, localFrom);
    arena.markBroadcast();
  }

  /** Sends buf[start, end) to every local client: one write each for those with nothing
   *  pending, a region appended to the queue of those still behind (the same buffer for all
   *  of them: no view per receiver). */
  private broadcast(buf: Buffer, start: number, end: number, frames: number, fromArena: boolean): void {
    const live = this.slab.live;
    const length = end - start;
    this.stats.framesDelivered += frames * live.length;
    if (this.fds.length < live.length) this.growScratch(live.length);
    const fds = this.fds;
    const targets = this.targets;
    let n = 0;
    for (let i = 0; i < live.length; i++) {
      const conn = live[i]!;
      if (conn.writeClosed) continue;
      if (conn.queuedBytes === 0) {
        fds[n] = conn.fd;
        targets[n++] = conn;
      } else {
        this.enqueue(conn, buf, start, end, fromArena);
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
        this.enqueue(conn, buf, start + Math.max(written, 0), end, fromArena);
        this.wantWrite(conn);
      } else {
        this.doomed.add(conn, failureReason(conn.readClosed, native.errnoName(-written)));
      }
    }
  }

  private enqueue(conn: Connection, buf: Buffer, start: number, end: number, fromArena: boolean): void {
    // The seam's rule: arena bytes a receiver keeps pin the arena (it is not reused).
    if (fromArena) this.arena.pinned = true;
    conn.enqueue(buf, start, end);
    this.stats.bytesQueued += end - start;
    const cost = conn.outputCost;
    if (cost > this.limits.maxOutput) this.doomed.add(conn, { kind: 'slow-reader', pending: cost, limit: this.limits.maxOutput });
  }

  private removeDoomed(): void {
    this.doomed.removeAll();
  }

  /** Writes the queue until it is empty or EAGAIN. */
  private flushQueue(conn: Connection): void {
    const output = conn.output!;
    while (conn.queuedBytes > 0) {
      let n: number;
      let call: 'write' | 'writev';
      if (output.entries === 1) {
        call = 'write';
        n = native.write(conn.fd, output.headBuffer(), output.headStart(), output.headEnd() - output.headStart());
      } else {
        call = 'writev';
        output.gather(this.iov);
        n = native.writev(conn.fd, this.iov);
        this.iov.length = 0;
      }
      if (this.tracer !== null) this.tracer.call(call, conn.fd, conn.token, n, conn.queuedBytes);
      if (n >= 0) {
        conn.consume(n);
        this.stats.bytesQueued -= n;
        continue;
      }
      if (n === -EAGAIN) {
        this.wantWrite(conn);
        return;
      }
      if (n === -EINTR) continue;
      this.remove(conn, failureReason(conn.readClosed, native.errnoName(-n)));
      return;
    }
    conn.output = null;
    if (this.shutdown.draining) {
      this.endOutput(conn);
      return;
    }
    if (conn.writeInterest) {
      conn.writeInterest = false;
      this.reregister(conn, Interest.READABLE);
    }
  }

  /** WRITABLE joins the registration only while output is pending. */
  private wantWrite(conn: Connection): void {
    if (conn.writeInterest) return;
    conn.writeInterest = true;
    this.reregister(conn, Interest.BOTH);
  }

  /** A registration that cannot be changed (the fd is no longer what was registered, the
   *  kernel is out of memory) dooms that connection alone: the loop over writeEach results
   *  that calls this must go on for everyone else (issue #12). */
  private reregister(conn: Connection, interest: Interest): void {
    try {
      this.registry.reregister(conn.fd, conn.token, interest, Trigger.EDGE);
    } catch (error) {
      this.doomed.add(conn, { kind: 'error', code: (error as NodeJS.ErrnoException).code ?? (error as Error).message });
    }
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
    // It may fail (the fd is not what was registered any more): the close below is what counts.
    try {
      this.registry.deregister(conn.fd);
    } catch {}
    const result = native.close(conn.fd);
    if (this.tracer !== null) {
      this.tracer.call('close', conn.fd, conn.token, result, 0);
      this.tracer.connection('close', conn.fd, conn.token, describeClose(reason));
    }
    this.slab.remove(conn);
    // Output it leaves unsent is garbage too: a slow reader's, up to --max-output (#9 item 5).
    const outputDropped = conn.queuedBytes;
    this.stats.bytesQueued -= conn.queuedBytes;
    conn.output = null;
    conn.queuedBytes = 0;
    conn.stash = null;
    conn.stashLength = 0;
    conn.assembly = null;
    this.reclaimer.release(conn.inputHeld + outputDropped);
    this.holdInput(conn, 0);
    conn.closing ??= reason;
    recordClose(this.stats, this.log, conn.token, conn.peer, reason, this.slab.size);
    this.shutdown.clientGone();
  }

  /** Output flushed during shutdown: FIN, then its input is drained until EOF (shutdown.ts). */
  private endOutput(conn: Connection): void {
    if (conn.readClosed) return this.remove(conn, { kind: 'shutdown' });
    if (conn.writeClosed) return;
    conn.writeClosed = true;
    const result = native.shutdown(conn.fd, SHUT_WR);
    if (this.tracer !== null) this.tracer.call('shutdown', conn.fd, conn.token, result, 0);
    if (result < 0) return this.remove(conn, { kind: 'error', code: native.errnoName(-result) });
    // EOF may be waiting already, with no edge left to report it.
    this.discardInput(conn);
  }

  private windDown(): WindDown {
    const server = this;
    return {
      get connections() {
        return server.slab.size;
      },
      stopAccepting: () => {
        this.listening = false;
        if (this.acceptRetry !== null) clearTimeout(this.acceptRetry);
        this.acceptRetry = null;
        this.registry.deregister(this.listenFd);
        if (this.keepListenFd) return;
        const closed = native.close(this.listenFd);
        if (this.tracer !== null) this.tracer.call('close', this.listenFd, LISTENER_SLOT, closed, 0);
      },
      stopInput: () => {
        // Broadcast what was read before the stop: that much was promised.
        if (this.arena.pending > 0) this.broadcastArena();
        this.removeDoomed();
        for (const conn of [...this.slab.live]) {
          conn.stash = null;
          conn.stashLength = 0;
          conn.assembly = null;
          this.holdInput(conn, 0);
        }
      },
      windDownAll: () => {
        for (const conn of [...this.slab.live]) {
          if (conn.liveIndex >= 0 && conn.queuedBytes === 0) this.endOutput(conn);
        }
      },
      cutAll: () => {
        const left = [...this.slab.live];
        for (const conn of left) {
          // A reset, not a FIN: the client learns its stream was cut short, and the kernel
          // drops the unsent bytes now instead of holding them for a reader that never reads.
          native.setLinger(conn.fd, true, 0);
          this.remove(conn, { kind: 'shutdown-cut' });
        }
        return left.length;
      },
      release: () =>
        new Promise<void>((resolve) => {
          this.reclaimer.stop();
          // Watched descriptors (peer links still ending) keep the poller: the last unwatch()
          // closes it. No client or listener is left on it to report anything.
          this.pollOrphaned = this.watched > 0;
          if (!this.pollOrphaned) this.closePollAfterBatch();
          setImmediate(() => {
            if (this.spareFd >= 0) closeSync(this.spareFd);
            this.spareFd = -1;
            resolve();
          });
        }),
    };
  }

  close(upstream?: Promise<void>): Promise<void> {
    return this.shutdown.begin(upstream);
  }

  closeNow(): Promise<void> {
    return this.shutdown.now();
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
