import { loadNative, type NativeBinding, type Poller } from '../native/binding.js';
import { Trigger, type Interest } from './interest.js';
import type { Events } from './events.js';
import type { Token } from './token.js';

/** Sees every registration change (the --trace timeline); absent, it costs one null check. */
export interface RegistryObserver {
  /** `result` is 0 or -errno: a failed change is reported too, then thrown. */
  registration(op: 'register' | 'reregister' | 'deregister', fd: number, token: Token, bits: number, result: number): void;
}

function errnoOf(error: unknown): number {
  const errno = (error as { errno?: unknown }).errno;
  return typeof errno === 'number' ? Math.abs(errno) : 0;
}

/** Adds, changes and removes registrations (mio's `Registry`). Errors throw with errno names. */
export class Registry {
  observer: RegistryObserver | null = null;

  constructor(private readonly poller: Poller) {}

  register(fd: number, token: Token, interest: Interest, trigger: Trigger = Trigger.EDGE): void {
    if (this.observer === null) return this.poller.add(fd, token, interest | trigger);
    this.observed('register', fd, token, interest | trigger, () => this.poller.add(fd, token, interest | trigger));
  }

  reregister(fd: number, token: Token, interest: Interest, trigger: Trigger = Trigger.EDGE): void {
    if (this.observer === null) return this.poller.modify(fd, token, interest | trigger);
    this.observed('reregister', fd, token, interest | trigger, () => this.poller.modify(fd, token, interest | trigger));
  }

  /** Must come before close(fd): kqueue emulations keep state for an fd closed while watched. */
  deregister(fd: number): void {
    if (this.observer === null) return this.poller.delete(fd);
    this.observed('deregister', fd, -1, 0, () => this.poller.delete(fd));
  }

  /** The trace sees failed changes too (EEXIST, EBADF...), before the error goes on up. */
  private observed(op: 'register' | 'reregister' | 'deregister', fd: number, token: Token, bits: number, change: () => void): void {
    try {
      change();
    } catch (error) {
      this.observer!.registration(op, fd, token, bits, -errnoOf(error));
      throw error;
    }
    this.observer!.registration(op, fd, token, bits, 0);
  }
}

/**
 * The poller (mio's `Poll`): epoll or kqueue, chosen when the addon was compiled.
 * `poll()` blocks the thread — for experiments and tools; `run()` hands batches to a
 * callback from inside Node's own loop, so timers, signals and other I/O keep working.
 */
export class Poll {
  readonly registry: Registry;
  private readonly poller: Poller;

  constructor(binding: NativeBinding = loadNative()) {
    this.poller = new binding.Poller();
    this.registry = new Registry(this.poller);
  }

  get fd(): number {
    return this.poller.fd;
  }

  /** Blocks up to timeoutMs (-1: forever) and returns the number of events in `events`. */
  poll(events: Events, timeoutMs: number): number {
    events.length = this.poller.wait(events.words, timeoutMs);
    return events.length;
  }

  /** Calls onBatch(events) from Node's loop each time events are ready, until stop(). */
  run(events: Events, onBatch: (events: Events) => void): void {
    this.poller.start(events.words, (count) => {
      events.length = count;
      onBatch(events);
    });
  }

  stop(): void {
    this.poller.stop();
  }

  ref(): void {
    this.poller.ref();
  }

  unref(): void {
    this.poller.unref();
  }

  close(): void {
    this.poller.close();
  }
}
