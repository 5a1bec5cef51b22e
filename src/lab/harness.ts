// What every experiment shares: real loopback sockets made by the addon, a poller driven
// directly (blocking waits with short timeouts, so a run is bounded in time), a timeline of
// every call and event, and checks that fail the run when the kernel did not do what the
// experiment claims. No mocks: the point is to watch the kernel.
import { setTimeout as sleep } from 'node:timers/promises';
import { errno, native } from '../native/binding.js';
import { Events, Poll, Trigger, type Interest } from '../poll/index.js';
import { createTimeline, type Timeline, type TraceFormat } from '../trace/timeline.js';

export interface Experiment {
  name: string;
  summary: string;
  run(lab: Lab): Promise<void> | void;
}

export interface LabEvent {
  token: number;
  flags: number;
  raw: number;
  data: number;
}

export interface LabResult {
  name: string;
  backend: 'epoll' | 'kqueue';
  ok: boolean;
  checks: number;
  failures: string[];
}

export interface Pair {
  listenFd: number;
  /** The connecting side. */
  client: number;
  /** The accepted side. */
  server: number;
}

const { EAGAIN, EINTR } = errno;

export class Lab {
  readonly backend = native.backend;
  /** libkqueue emulates kqueue on top of epoll and behaves like neither in places. */
  readonly libkqueue = native.backend === 'kqueue' && process.platform === 'linux';
  readonly timeline: Timeline;
  readonly failures: string[] = [];
  checks = 0;
  private readonly fds = new Set<number>();
  private readonly polls: Poll[] = [];
  private readonly events = new Events(64);

  constructor(write: (line: string) => void, format: TraceFormat = 'text') {
    this.timeline = createTimeline(format, write);
  }

  note(text: string): void {
    this.timeline.note(text);
  }

  name(token: number, name: string): void {
    this.timeline.nameToken(token, name);
  }

  /** Records a verdict; any false one makes the experiment fail (but it runs to the end). */
  expect(ok: boolean, claim: string, expected: string, saw: string): boolean {
    this.checks++;
    this.timeline.check(ok, claim, ok ? saw : `expected ${expected}, saw ${saw}`);
    if (!ok) this.failures.push(`${claim}: expected ${expected}, saw ${saw}`);
    return ok;
  }

  // --- the poller ----------------------------------------------------------------------

  newPoll(): Poll {
    const poll = new Poll();
    poll.registry.observer = this.timeline;
    this.polls.push(poll);
    return poll;
  }

  register(poll: Poll, fd: number, token: number, interest: Interest, trigger: number = Trigger.EDGE): void {
    poll.registry.register(fd, token, interest, trigger);
  }

  reregister(poll: Poll, fd: number, token: number, interest: Interest, trigger: number = Trigger.EDGE): void {
    poll.registry.reregister(fd, token, interest, trigger);
  }

  deregister(poll: Poll, fd: number): void {
    poll.registry.deregister(fd);
  }

  /** One epoll_wait/kevent of at most timeoutMs, traced; the events, copied out. */
  wait(poll: Poll, timeoutMs: number): LabEvent[] {
    const count = poll.poll(this.events, timeoutMs);
    this.timeline.batch(count);
    const out: LabEvent[] = [];
    for (let i = 0; i < count; i++) {
      const event = { token: this.events.token(i), flags: this.events.flags(i), raw: this.events.raw(i), data: this.events.data(i) };
      this.timeline.event(event.token, event.flags, event.raw, event.data);
      out.push(event);
    }
    return out;
  }

  // --- sockets -------------------------------------------------------------------------

  /** A connected loopback pair, made with the addon; accept is retried until the handshake is done. */
  async pair(): Promise<Pair> {
    const listenFd = this.track(native.listen('127.0.0.1', 0, 0, false));
    const { port } = native.localAddress(listenFd);
    const client = this.track(native.connect('127.0.0.1', port));
    const server = this.track(await this.acceptSoon(listenFd));
    this.note(`loopback pair: client fd ${client} -> 127.0.0.1:${port} -> accepted fd ${server}`);
    return { listenFd, client, server };
  }

  listen(): { fd: number; port: number } {
    const fd = this.track(native.listen('127.0.0.1', 0, 0, false));
    return { fd, port: native.localAddress(fd).port };
  }

  connect(port: number): number {
    const fd = this.track(native.connect('127.0.0.1', port));
    this.timeline.call('connect', fd, -1, fd, 0);
    return fd;
  }

  accept(listenFd: number, token = -1): number {
    const fd = native.accept(listenFd);
    this.timeline.call('accept', listenFd, token, fd, 0);
    if (fd >= 0) this.track(fd);
    return fd;
  }

  read(fd: number, token: number, size: number): number {
    const n = native.read(fd, Buffer.allocUnsafe(size), 0, size);
    this.timeline.call('read', fd, token, n, size);
    return n;
  }

  /** Reads until EAGAIN, end of stream or an error; returns the bytes and the last result.
   *  `quiet` traces only the last read (and a summary), for megabytes that would flood the timeline. */
  drain(fd: number, token: number, chunk = 65536, quiet = false): { bytes: number; last: number } {
    const buf = Buffer.allocUnsafe(chunk);
    let bytes = 0;
    let reads = 0;
    for (;;) {
      const n = native.read(fd, buf, 0, chunk);
      reads++;
      if (n > 0) {
        bytes += n;
        if (!quiet) this.timeline.call('read', fd, token, n, chunk);
      } else if (n !== -EINTR) {
        if (quiet) this.note(`${reads - 1} reads took ${bytes} bytes`);
        this.timeline.call('read', fd, token, n, chunk);
        return { bytes, last: n };
      }
    }
  }

  write(fd: number, token: number, size: number, fill = 0x61): number {
    const n = native.write(fd, Buffer.alloc(size, fill), 0, size);
    this.timeline.call('write', fd, token, n, size);
    return n;
  }

  /** Writes until EAGAIN; returns the bytes accepted. Bounded: a send buffer is finite. */
  fill(fd: number, token: number, chunk = 65536): number {
    const buf = Buffer.alloc(chunk, 0x62);
    let total = 0;
    let writes = 0;
    for (;;) {
      const n = native.write(fd, buf, 0, chunk);
      writes++;
      if (n > 0) {
        total += n;
        continue;
      }
      this.note(`${writes - 1} writes accepted ${total} bytes`);
      this.timeline.call('write', fd, token, n, chunk);
      if (n !== -EAGAIN) throw new Error(`filling fd ${fd}: ${native.errnoName(-n)}`);
      return total;
    }
  }

  close(fd: number, token = -1): number {
    this.fds.delete(fd);
    const result = native.close(fd);
    this.timeline.call('close', fd, token, result, 0);
    return result;
  }

  shutdown(fd: number, how: 0 | 1 | 2, token = -1): number {
    const result = native.shutdown(fd, how);
    this.timeline.call('shutdown', fd, token, result, 0);
    return result;
  }

  dup(fd: number): number {
    const copy = native.dup(fd);
    this.timeline.call('dup', fd, -1, copy, 0);
    if (copy >= 0) this.track(copy);
    return copy;
  }

  /** Closing with SO_LINGER {on, 0} sends RST instead of FIN. */
  reset(fd: number, token = -1): number {
    native.setLinger(fd, true, 0);
    this.note(`SO_LINGER {on, 0 s} on fd ${fd}: close() now sends RST, not FIN`);
    return this.close(fd, token);
  }

  async sleep(ms: number): Promise<void> {
    await sleep(ms);
  }

  /** Releases everything the experiment left open; pollers first, so no registration outlives its fd. */
  cleanup(): void {
    for (const poll of this.polls) poll.close();
    this.polls.length = 0;
    for (const fd of this.fds) native.close(fd);
    this.fds.clear();
  }

  private track(fd: number): number {
    if (!Number.isInteger(fd) || fd < 0) throw new Error(`expected a descriptor, got ${fd}`);
    this.fds.add(fd);
    return fd;
  }

  private async acceptSoon(listenFd: number): Promise<number> {
    const deadline = Date.now() + 2000;
    for (;;) {
      const fd = native.accept(listenFd);
      if (fd >= 0) return fd;
      if (fd !== -EAGAIN) throw new Error(`accept: ${native.errnoName(-fd)}`);
      if (Date.now() > deadline) throw new Error('accept timed out');
      await sleep(1);
    }
  }
}

/** The events for one token in a batch, merged (kqueue reports one per filter). */
export function flagsOf(events: readonly LabEvent[], token: number): number {
  let flags = 0;
  for (const event of events) if (event.token === token) flags |= event.flags;
  return flags;
}

export function countOf(events: readonly LabEvent[], token: number): number {
  let count = 0;
  for (const event of events) if (event.token === token) count++;
  return count;
}

/** Runs one experiment with its own sockets and pollers, released whatever happens. */
export async function runExperiment(experiment: Experiment, write: (line: string) => void, format: TraceFormat = 'text'): Promise<LabResult> {
  const lab = new Lab(write, format);
  lab.note(`experiment ${experiment.name} on ${lab.backend}${lab.libkqueue ? ' (libkqueue)' : ''}, ${process.platform}: ${experiment.summary}`);
  try {
    await experiment.run(lab);
  } catch (error) {
    lab.failures.push(`crashed: ${(error as Error).stack ?? String(error)}`);
    lab.timeline.check(false, 'the experiment ran to the end', (error as Error).message);
  } finally {
    lab.cleanup();
  }
  const ok = lab.failures.length === 0 && lab.checks > 0;
  return { name: experiment.name, backend: lab.backend, ok, checks: lab.checks, failures: lab.failures };
}
