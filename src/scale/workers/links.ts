// Peer links: how a worker's batches reach the other workers' clients. Each ordered pair of
// workers (A → B) has its own socketpair, used in one direction only, so that a link cut hurts
// only the receiving side (see docs/scaling.md). A worker watches its link ends edge-triggered on
// its server's own poller when the server offers it (FanoutHost.watch: the native engine), so
// what peers send goes out in the same batch, and the same write per client, as what local
// clients send; on a Poll of their own otherwise (the libuv engine).
//
// Outbound (a Relay): a batch goes out as it is, one contiguous block of wire-format frames, in
// one write; what the kernel does not take is copied (the batch is arena memory, reused once
// publish returns) and written on WRITABLE. Past `bound` queued bytes the peer is not reading:
// the link is cut, and the supervisor tells the peer, which disconnects its clients (they missed
// frames) and gets a fresh link.
//
// Shutdown (docs/scaling.md): a worker that has stopped taking input ends its outbound links
// (SHUT_WR once each queue is written): EOF on a link means "nothing more from that peer", and
// a worker winds its clients down only once every inbound link has ended.
//
// Inbound: read into a buffer that is never written twice (the server keeps views of what it is
// handed: FanoutHost.deliver takes ownership), and every read's complete frames are delivered
// as one region. No frame is parsed beyond its length prefix, none is copied but the tail of an
// incomplete one when the buffer is replaced.
import { native } from '../../native/binding.js';
import { Events, Interest, Poll, Ready, Trigger } from '../../poll/index.js';
import { FrameScan, scanFrames } from '../../protocol/frame.js';
import type { FanoutHost, Relay } from '../../server/fanout.js';
import type { LinkFigures } from '../../metrics/snapshot.js';
import type { Logger } from '../../log.js';

const { EAGAIN, EINTR } = native.errno;
const SHORT_READ_DRAINS = native.backend === 'epoll';
/** Inbound buffer size; a larger frame gets a buffer of its own size. */
const INBOUND_BUFFER = 1024 * 1024;
/** Smallest read worth a syscall; below it the inbound buffer is replaced. */
const MIN_READ = 64 * 1024;
/** Bytes read from one link per turn of the loop before the others and the server get a turn. */
const READ_BUDGET = 1024 * 1024;
const SHUT_WR = 1;

class Outbound implements Relay {
  readonly name: string;
  private queue: Buffer[] = [];
  private head = 0;
  queuedBytes = 0;
  cut = false;
  /** Shutdown: SHUT_WR once the queue is written. */
  ending = false;
  ended = false;

  constructor(readonly peer: number, readonly fd: number, readonly token: number, private readonly links: Links) {
    this.name = `worker ${peer}`;
  }

  /** Always true: a peer that cannot keep up is the peer's clients' loss, not this worker's
   *  senders' (returning false would disconnect them). */
  publish(frames: Buffer, start: number, end: number): boolean {
    if (this.cut) return true;
    if (this.queuedBytes === 0) {
      for (;;) {
        const n = native.write(this.fd, frames, start, end - start);
        if (n >= 0) start += n;
        else if (n === -EINTR) continue;
        else if (n !== -EAGAIN) {
          this.broken(n);
          return true;
        }
        break;
      }
      if (start === end) return true;
    }

    if (this.queuedBytes + (end - start) > this.links.bound) {
      this.links.cutOutbound(this, this.queuedBytes + (end - start));
      return true;
    }
    const copy = Buffer.allocUnsafeSlow(end - start);
    frames.copy(copy, 0, start, end);
    this.queue.push(copy);
    this.queuedBytes += copy.length;
    return true;
  }

  /** On WRITABLE: write the queue until it is empty or EAGAIN. */
  flush(): void {
    while (this.queuedBytes > 0 && !this.cut) {
      const pending = this.head === 0 ? this.queue : this.queue.slice(this.head);
      const n = pending.length === 1 ? native.write(this.fd, pending[0]!, 0, pending[0]!.length) : native.writev(this.fd, pending);
      if (n === -EAGAIN) return;
      if (n === -EINTR) continue;
      if (n < 0) return this.broken(n);
      this.consume(n);
    }
    if (this.ending && this.queuedBytes === 0 && !this.cut) this.end();
  }

  /** EOF to the peer: nothing more comes from this worker. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.links.log.debug(`link to worker ${this.peer} ended`);
    native.shutdown(this.fd, SHUT_WR);
    this.links.outboundSettled();
  }

  private consume(written: number): void {
    this.queuedBytes -= written;
    const queue = this.queue;
    while (this.head < queue.length && written >= queue[this.head]!.length) written -= queue[this.head++]!.length;
    if (written > 0) queue[this.head] = queue[this.head]!.subarray(written);
    if (this.head === queue.length) {
      this.queue = [];
      this.head = 0;
    }
  }

  /** EPIPE/ECONNRESET: the peer's end is closed (it died); the supervisor relinks. */
  private broken(n: number): void {
    this.links.log.debug(`link to worker ${this.peer}: ${native.errnoName(-n)}; waiting for the supervisor to relink`);
    this.drop();
    this.links.outboundSettled();
  }

  drop(): void {
    this.cut = true;
    this.ended = true;
    this.queue = [];
    this.head = 0;
    this.queuedBytes = 0;
  }
}

class Inbound {
  private buf: Buffer = Buffer.allocUnsafeSlow(INBOUND_BUFFER);
  /** Start of bytes not yet delivered (an incomplete frame); bytes read end at `end`. */
  private start = 0;
  private end = 0;
  /** Total size of the incomplete frame at `start`, or -1 while its header is incomplete. */
  private pendingTotal = -1;
  private readonly scan = new FrameScan();
  closed = false;
  unfinished = false;
  /** An event said the peer has ended the link (READ_CLOSED): its EOF is waiting behind the
   *  data, and no new edge will say so again, so reads go on until it is seen. */
  hangup = false;

  constructor(readonly peer: number, readonly fd: number, readonly token: number, private readonly links: Links) {}

  /** Reads until EAGAIN or the budget is spent; true if there is more to read. */
  read(): boolean {
    const links = this.links;
    let budget = READ_BUDGET;
    while (budget > 0) {
      const pending = this.pendingTotal;
      if (pending > 0 ? this.buf.length - this.start < pending : this.buf.length - this.end < MIN_READ) this.replaceBuffer();
      const buf = this.buf;
      const want = buf.length - this.end;
      const n = native.read(this.fd, buf, this.end, want);
      if (n > 0) {
        budget -= n;
        this.end += n;
        const scan = scanFrames(buf, this.start, this.end, Number.MAX_SAFE_INTEGER, this.scan);
        this.pendingTotal = scan.pendingTotal;
        if (scan.frames > 0) {
          links.figures.framesIn += scan.frames;
          links.figures.bytesIn += scan.end - this.start;
          const from = this.start;
          this.start = scan.end;
          links.host.deliver(buf, from, scan.end, scan.frames);
        }
        // Edge-triggered epoll: a short read of a stream socket drained it, and later bytes
        // raise a new edge, so the read that would only say EAGAIN is skipped (one syscall per
        // batch). kqueue emulations may report less than is there: they read on to EAGAIN.
        // A FIN that came before the read raised its edge already: read on to the EOF.
        if (n < want && SHORT_READ_DRAINS && !this.hangup) return false;
        continue;
      }
      if (n === -EINTR) continue;
      if (n === -EAGAIN) return false;
      // End of stream or error: the peer died (the supervisor restarts it and relinks) or cut
      // this link (the supervisor says so, and this worker's clients are disconnected).
      links.log.debug(`link from worker ${this.peer} closed (${n === 0 ? 'end of stream' : native.errnoName(-n)})`);
      links.closeInbound(this);
      return false;
    }
    return true;
  }

  /** A fresh buffer (the old one may be held by receivers' queues), with the incomplete tail. */
  private replaceBuffer(): void {
    const tail = this.end - this.start;
    const fresh = Buffer.allocUnsafeSlow(Math.max(INBOUND_BUFFER, this.pendingTotal, tail + MIN_READ));
    this.buf.copy(fresh, 0, this.start, this.end);
    this.buf = fresh;
    this.start = 0;
    this.end = tail;
  }
}

/** Where link ends are watched; `id` comes back to Links.ready with the event's Ready flags. */
interface LinkWatcher {
  register(fd: number, id: number, interest: Interest): void;
  deregister(fd: number): void;
  close(): void;
}

function watcherFor(host: FanoutHost, ready: (id: number, flags: number) => void): LinkWatcher {
  if (host.watch !== undefined && host.unwatch !== undefined) {
    const watch = host.watch.bind(host);
    return { register: (fd, id, interest) => watch(fd, id, interest, ready), deregister: host.unwatch.bind(host), close: () => {} };
  }
  const poll = new Poll();
  poll.run(new Events(64), (events) => {
    for (let i = 0; i < events.length; i++) ready(events.token(i), events.flags(i));
  });
  return {
    register: (fd, id, interest) => poll.registry.register(fd, id, interest, Trigger.EDGE),
    deregister: (fd) => poll.registry.deregister(fd),
    close: () => poll.close(),
  };
}

/** Every link of one worker. */
export class Links {
  readonly figures: LinkFigures = { queuedBytes: 0, cuts: 0, framesIn: 0, bytesIn: 0 };
  private readonly watcher: LinkWatcher;
  private readonly outbound = new Map<number, Outbound>();
  private readonly inbound = new Map<number, Inbound>();
  /** Registered link ends by token. */
  private readonly byToken = new Map<number, Outbound | Inbound>();
  /** Inbound links whose read budget ran out: read again on the next turn. */
  private readonly unfinished: Inbound[] = [];
  private nextToken = 1;
  private continueScheduled = false;
  /** Shutdown: told once every outbound link has ended (or was cut), and once every inbound
   *  link has (EOF from each peer). */
  private outboundWaiter: (() => void) | null = null;
  private inboundWaiter: (() => void) | null = null;

  constructor(
    readonly host: FanoutHost,
    readonly bound: number,
    readonly log: Logger,
    /** Told when an outbound link is cut (the worker passes it on to the supervisor). */
    private readonly onCut: (peer: number, queued: number) => void,
  ) {
    this.watcher = watcherFor(host, (id, flags) => this.ready(id, flags));
  }

  /** `fd` comes from the supervisor's thread: this worker owns it from now on. */
  addOutbound(peer: number, fd: number): void {
    native.adopt(fd);
    this.closeOutbound(peer);
    const link = new Outbound(peer, fd, this.nextToken++, this);
    // WRITABLE, edge-triggered: one event now, then one each time a full buffer drains.
    this.watcher.register(fd, link.token, Interest.WRITABLE);
    this.outbound.set(peer, link);
    this.byToken.set(link.token, link);
    this.host.addRelay(link);
  }

  addInbound(peer: number, fd: number): void {
    native.adopt(fd);
    const old = this.inbound.get(peer);
    if (old !== undefined) this.closeInbound(old);
    const link = new Inbound(peer, fd, this.nextToken++, this);
    this.watcher.register(fd, link.token, Interest.READABLE);
    this.inbound.set(peer, link);
    this.byToken.set(link.token, link);
    // Bytes may be waiting already (the peer wrote before this end was registered); edge-
    // triggered registration reports them, but reading now costs one EAGAIN at worst.
    this.readLater(link);
  }

  queuedBytes(): number {
    let total = 0;
    for (const link of this.outbound.values()) total += link.queuedBytes;
    return total;
  }

  snapshot(): LinkFigures {
    return { ...this.figures, queuedBytes: this.queuedBytes() };
  }

  /** Shutdown, once this worker's server has stopped taking input (its last batches are on the
   *  links): each outbound link is ended as soon as its queue is written. Settles when all
   *  have, or were cut (the peer died or did not read), or after `deadlineMs`, when what is
   *  still queued is dropped (the peer's own deadline has cut its clients by then). */
  endOutbound(deadlineMs: number): Promise<void> {
    const done = new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.abortOutbound(), deadlineMs);
      this.outboundWaiter = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    for (const link of this.outbound.values()) {
      this.log.debug(`ending link to worker ${link.peer}: ${link.queuedBytes} bytes still queued`);
      link.ending = true;
      if (link.queuedBytes === 0) link.end();
    }
    this.outboundSettled();
    return done;
  }

  /** A second signal: what is still queued for peers is dropped, and endOutbound() settles. */
  abortOutbound(): void {
    for (const link of this.outbound.values()) link.drop();
    this.outboundSettled();
  }

  /** Settles once every inbound link has ended: no peer will deliver anything more. */
  inboundEnded(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.inboundWaiter = resolve;
      this.inboundSettled();
    });
  }

  outboundSettled(): void {
    if (this.outboundWaiter === null) return;
    for (const link of this.outbound.values()) if (!link.ended) return;
    const waiter = this.outboundWaiter;
    this.outboundWaiter = null;
    waiter();
  }

  private inboundSettled(): void {
    if (this.inboundWaiter === null || this.inbound.size > 0) return;
    const waiter = this.inboundWaiter;
    this.inboundWaiter = null;
    waiter();
  }

  cutOutbound(link: Outbound, queued: number): void {
    this.figures.cuts++;
    this.log.warn(`worker ${link.peer} fell behind: ${queued} bytes unread on its link exceed ${this.bound}; link cut, its clients will be disconnected`);
    this.closeOutbound(link.peer);
    this.onCut(link.peer, queued);
  }

  closeOutbound(peer: number): void {
    const link = this.outbound.get(peer);
    if (link === undefined) return;
    link.drop();
    this.host.removeRelay(link);
    this.forget(link);
    this.outbound.delete(peer);
    this.outboundSettled();
  }

  closeInbound(link: Inbound): void {
    if (link.closed) return;
    link.closed = true;
    this.forget(link);
    if (this.inbound.get(link.peer) === link) this.inbound.delete(link.peer);
    this.inboundSettled();
  }

  close(): void {
    for (const peer of [...this.outbound.keys()]) this.closeOutbound(peer);
    for (const link of [...this.inbound.values()]) this.closeInbound(link);
    this.watcher.close();
  }

  private forget(link: Outbound | Inbound): void {
    this.byToken.delete(link.token);
    this.watcher.deregister(link.fd);
    native.close(link.fd);
  }

  private ready(id: number, flags: number): void {
    const link = this.byToken.get(id);
    if (link === undefined) return;
    if (link instanceof Inbound) {
      if ((flags & (Ready.READ_CLOSED | Ready.ERROR)) !== 0) link.hangup = true;
      if ((flags & (Ready.READABLE | Ready.READ_CLOSED | Ready.ERROR)) !== 0 && link.read()) this.readLater(link);
    } else if ((flags & (Ready.WRITABLE | Ready.WRITE_CLOSED | Ready.ERROR)) !== 0) {
      link.flush();
    }
  }

  private readLater(link: Inbound): void {
    if (!link.unfinished) {
      link.unfinished = true;
      this.unfinished.push(link);
    }
    if (this.continueScheduled) return;
    this.continueScheduled = true;
    setImmediate(() => {
      this.continueScheduled = false;
      const list = this.unfinished.splice(0);
      for (const l of list) {
        l.unfinished = false;
        if (!l.closed && l.read()) this.readLater(l);
      }
    });
  }
}
