// What every experiment shares: real loopback sockets made by the addon, a poller driven
// directly (blocking waits with short timeouts, so a run is bounded in time), a timeline of
// every call and event, and checks that fail the run when the kernel did not do what the
// experiment claims. No mocks: the point is to watch the kernel.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { errno, native } from '../native/binding.js';
import { Events, Interest, Option, Poll, Ready, Trigger } from '../poll/index.js';
import { createRecordTimeline, formatRecord, type Timeline, type TraceFormat, type TraceRecord } from '../trace/timeline.js';

/** One experiment: its own module in lab/experiments, or a student's file (`mob lab ./mine.js`)
 *  whose default export has this shape; `lab` carries everything it needs. */
export interface Experiment {
  name: string;
  summary: string;
  run(lab: Lab): Promise<void> | void;
}

/** Thrown by lab.skip(): the backend cannot show what the experiment is about. */
class Skip extends Error {}

export interface LabEvent {
  token: number;
  /** The token's two 32-bit words (mob keeps a slot in the low one, a generation in the high). */
  low: number;
  high: number;
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
  /** Why the experiment could not run on this backend, or null. A skip is not a failure. */
  skipped: string | null;
  /** The whole timeline, for --svg and the guide. */
  records: TraceRecord[];
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
  /** The public API, here so that an experiment in a file of its own needs no imports. */
  readonly native = native;
  readonly Interest = Interest;
  readonly Trigger = Trigger;
  readonly Option = Option;
  readonly Ready = Ready;
  readonly timeline: Timeline;
  readonly records: TraceRecord[] = [];
  readonly failures: string[] = [];
  checks = 0;
  private readonly fds = new Set<number>();
  private readonly polls: Poll[] = [];
  private readonly releases: (() => void)[] = [];
  private readonly events = new Events(64);

  constructor(write: (line: string) => void, format: TraceFormat = 'text') {
    const render = format === 'json' ? (record: TraceRecord) => JSON.stringify(record) : formatRecord;
    this.timeline = createRecordTimeline((record) => {
      this.records.push(record);
      write(render(record));
    });
  }

  /** Ends the experiment here, neither passed nor failed: this backend cannot show it. */
  skip(reason: string): never {
    throw new Skip(reason);
  }

  /** Something to undo when the experiment ends, whatever happens (a child process, a worker). */
  onCleanup(release: () => void): void {
    this.releases.push(release);
  }

  count(events: readonly LabEvent[], token: number): number {
    return countOf(events, token);
  }

  flags(events: readonly LabEvent[], token: number): number {
    return flagsOf(events, token);
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

  register(poll: Poll, fd: number, token: number, interest: number, trigger: number = Trigger.EDGE): void {
    poll.registry.register(fd, token, interest, trigger);
  }

  reregister(poll: Poll, fd: number, token: number, interest: number, trigger: number = Trigger.EDGE): void {
    poll.registry.reregister(fd, token, interest, trigger);
  }

  /** A registration change that may fail: the errno name, or 'ok' (the trace shows it either way). */
  attempt(change: () => void): string {
    try {
      change();
      return 'ok';
    } catch (error) {
      return (error as NodeJS.ErrnoException).code ?? String(error);
    }
  }

  deregister(poll: Poll, fd: number): void {
    poll.registry.deregister(fd);
  }

  /** One epoll_wait/kevent of at most timeoutMs, traced; the events, copied out. */
  wait(poll: Poll, timeoutMs: number): LabEvent[] {
    return this.waitTraced(poll, timeoutMs, true);
  }

  /** A wait traced only if it returns events: for loops whose empty rounds vary in number. */
  waitQuietly(poll: Poll, timeoutMs: number): LabEvent[] {
    return this.waitTraced(poll, timeoutMs, false);
  }

  /** A wait not traced at all: for loops of hundreds of rounds that report a summary. */
  waitUntraced(poll: Poll, timeoutMs: number): LabEvent[] {
    return this.waitTraced(poll, timeoutMs, false, false);
  }

  private waitTraced(poll: Poll, timeoutMs: number, traceEmpty: boolean, traced = true): LabEvent[] {
    const before = performance.now();
    const count = poll.poll(this.events, timeoutMs);
    if (traced && (count > 0 || traceEmpty)) this.timeline.batch(count, timeoutMs, performance.now() - before);
    const out: LabEvent[] = [];
    for (let i = 0; i < count; i++) {
      const event = { token: this.events.token(i), low: this.events.tokenLow(i), high: this.events.tokenHigh(i), flags: this.events.flags(i), raw: this.events.raw(i), data: this.events.data(i) };
      if (traced) this.timeline.event(event.token, event.flags, event.raw, event.data);
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

  /** The commonest start: a loopback pair whose accepted side is registered READABLE in a new
   *  poller under token 1, named 'server'. */
  async watchedServer(trigger: number = Trigger.EDGE): Promise<Pair & { poll: Poll }> {
    const pair = await this.pair();
    const poll = this.newPoll();
    this.name(1, 'server');
    this.register(poll, pair.server, 1, Interest.READABLE, trigger);
    return { ...pair, poll };
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
    for (const release of this.releases.splice(0)) {
      try {
        release();
      } catch {
        // Best effort: the rest must still be released.
      }
    }
    for (const poll of this.polls) poll.close();
    this.polls.length = 0;
    for (const fd of this.fds) native.close(fd);
    this.fds.clear();
  }

  /** Closed when the experiment ends (for descriptors the addon made outside these helpers). */
  track(fd: number): number {
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
  const { name, summary } = experiment;
  lab.timeline.record({ type: 'experiment', name, backend: lab.backend, libkqueue: lab.libkqueue, platform: process.platform, summary });
  let skipped: string | null = null;
  try {
    await experiment.run(lab);
  } catch (error) {
    if (error instanceof Skip) {
      skipped = error.message;
    } else {
      lab.checks++;
      lab.failures.push(`crashed: ${(error as Error).stack ?? String(error)}`);
      lab.timeline.check(false, 'the experiment ran to the end', (error as Error).message);
    }
  } finally {
    lab.cleanup();
  }
  // An experiment that checked nothing proves nothing, unless it said why it could not run.
  const ok = lab.failures.length === 0 && (lab.checks > 0 || skipped !== null);
  const { backend, checks, failures } = lab;
  lab.timeline.record({ type: 'result', name, backend, ok, checks, failed: failures.length, skipped });
  return { name, backend, ok, checks, failures, skipped, records: lab.records };
}
