import { EventBits, EVENT_STRIDE, TWO_POW_32 } from '../native/constants.js';
import type { Token } from './token.js';

export const Ready = {
  READABLE: EventBits.READABLE,
  WRITABLE: EventBits.WRITABLE,
  READ_CLOSED: EventBits.READ_CLOSED,
  WRITE_CLOSED: EventBits.WRITE_CLOSED,
  ERROR: EventBits.ERROR,
} as const;

/**
 * A batch of readiness events in one reusable Uint32Array (mio's `Events`). Read them by
 * index — `events.token(i)`, `events.flags(i)` — so a batch creates no JS object per event.
 */
export class Events {
  readonly words: Uint32Array;
  /** Events in the last batch. */
  length = 0;

  constructor(readonly capacity = 1024) {
    this.words = new Uint32Array(capacity * EVENT_STRIDE);
  }

  /** Token low word: mob keeps its slab index here. */
  tokenLow(i: number): number {
    return this.words[i * EVENT_STRIDE]!;
  }

  /** Token high word: mob keeps the slot's generation here. */
  tokenHigh(i: number): number {
    return this.words[i * EVENT_STRIDE + 1]!;
  }

  token(i: number): Token {
    const at = i * EVENT_STRIDE;
    return this.words[at + 1]! * TWO_POW_32 + this.words[at]!;
  }

  flags(i: number): number {
    return this.words[i * EVENT_STRIDE + 2]!;
  }

  /** Backend bits as the kernel gave them (epoll `events`; kqueue `flags << 16 | filter`). */
  raw(i: number): number {
    return this.words[i * EVENT_STRIDE + 3]!;
  }

  /** kqueue's `data` (bytes readable, unsent bytes, errno); 0 on epoll. */
  data(i: number): number {
    return this.words[i * EVENT_STRIDE + 4]!;
  }
}

export function describeReady(flags: number): string {
  const parts: string[] = [];
  if (flags & EventBits.READABLE) parts.push('READABLE');
  if (flags & EventBits.WRITABLE) parts.push('WRITABLE');
  if (flags & EventBits.READ_CLOSED) parts.push('READ_CLOSED');
  if (flags & EventBits.WRITE_CLOSED) parts.push('WRITE_CLOSED');
  if (flags & EventBits.ERROR) parts.push('ERROR');
  return parts.length > 0 ? parts.join('|') : '-';
}
