import { InterestBits } from '../native/constants.js';

/** What readiness a registration asks for (mio's `Interest`). Combine with `|`. */
export const Interest = {
  READABLE: InterestBits.READABLE,
  WRITABLE: InterestBits.WRITABLE,
  BOTH: InterestBits.READABLE | InterestBits.WRITABLE,
} as const;
export type Interest = number;

/** How readiness is delivered. mio is edge-triggered only; mob exposes them all to study them. */
export const Trigger = {
  LEVEL: 0,
  EDGE: InterestBits.EDGE,
  ONESHOT: InterestBits.ONESHOT,
  EDGE_ONESHOT: InterestBits.EDGE | InterestBits.ONESHOT,
  /** EV_DISPATCH on kqueue, EPOLLONESHOT on epoll: disabled, not deleted, after one event. */
  DISPATCH: InterestBits.DISPATCH,
  EDGE_DISPATCH: InterestBits.EDGE | InterestBits.DISPATCH,
} as const;
export type Trigger = number;

/** Backend-specific options, OR-ed into the interest; a backend without one throws ENOTSUP
 *  (NativeBinding.capabilities says which it has). */
export const Option = {
  EXCLUSIVE: InterestBits.EXCLUSIVE,
  NO_RDHUP: InterestBits.NO_RDHUP,
} as const;

export function describeInterest(bits: number): string {
  const parts: string[] = [];
  if (bits & InterestBits.READABLE) parts.push('READABLE');
  if (bits & InterestBits.WRITABLE) parts.push('WRITABLE');
  parts.push(bits & InterestBits.EDGE ? 'edge' : 'level');
  if (bits & InterestBits.ONESHOT) parts.push('oneshot');
  if (bits & InterestBits.DISPATCH) parts.push('dispatch');
  if (bits & InterestBits.EXCLUSIVE) parts.push('exclusive');
  if (bits & InterestBits.NO_RDHUP) parts.push('no-rdhup');
  return parts.join('|');
}
