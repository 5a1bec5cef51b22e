import type { RegistryObserver } from '../poll/index.js';

export type TracedCall = 'accept' | 'read' | 'write' | 'writev' | 'shutdown' | 'close';

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
  /** Shows `name` instead of slot/generation for this token (the server names its listener). */
  nameToken(token: number, name: string): void;
  /** A connection joined the slab or left it, or one direction of it ended: 'half-closed' when
   *  the peer's FIN came and it stays a receiver (issue #9). */
  connection(op: 'open' | 'half-closed' | 'close', fd: number, token: number, detail: string): void;
  /** An event whose token is no longer in the slab, ignored. */
  stale(token: number, flags: number): void;
  /** A client's read budget ran out before EAGAIN ('spent'); it is read on next turn with no
   *  event to say so ('resume'): edge-triggered, none will come until it is drained. */
  readBudget(op: 'spent' | 'resume', fd: number, token: number, budget: number): void;
}
