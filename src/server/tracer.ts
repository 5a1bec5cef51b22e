import type { RegistryObserver } from '../poll/index.js';

/** The listener's token in the native server (and so in its timeline): a slot no connection
 *  can have, generation 0. */
export const LISTENER_SLOT = 0xffff_ffff;

export type TracedCall = 'accept' | 'read' | 'write' | 'writev' | 'close';

/**
 * Everything the native loop does, for `mob serve --trace`. The loop holds `LoopTracer | null`
 * and tests it before each call, so tracing costs nothing when it is off.
 */
export interface LoopTracer extends RegistryObserver {
  /** A batch of `count` events came back from a wait of at most `timeoutMs` (0: a poll,
   *  -1: forever) that blocked `blockedMs` (-1: unknown, e.g. libuv did the blocking). */
  batch(count: number, timeoutMs: number, blockedMs: number): void;
  event(token: number, flags: number, raw: number, data: number): void;
  /** A syscall and its result: bytes, a new fd, or -errno. */
  call(call: TracedCall, fd: number, token: number, result: number, requested: number): void;
  /** A connection joined the slab or left it. */
  connection(op: 'open' | 'close', fd: number, token: number, detail: string): void;
  /** An event whose token is no longer in the slab, ignored. */
  stale(token: number, flags: number): void;
  /** A client's read budget ran out before EAGAIN ('spent'); it is read on next turn with no
   *  event to say so ('resume'): edge-triggered, none will come until it is drained. */
  readBudget(op: 'spent' | 'resume', fd: number, token: number, budget: number): void;
}
