import { InterestBits } from '../native/constants.js';

/** What readiness a registration asks for (mio's `Interest`). Combine with `|`. */
export const Interest = {
  READABLE: InterestBits.READABLE,
  WRITABLE: InterestBits.WRITABLE,
  BOTH: InterestBits.READABLE | InterestBits.WRITABLE,
} as const;
export type Interest = number;

/** How readiness is delivered. mio is edge-triggered only; mob exposes all three to study them. */
export const Trigger = {
  LEVEL: 0,
  EDGE: InterestBits.EDGE,
  ONESHOT: InterestBits.ONESHOT,
  EDGE_ONESHOT: InterestBits.EDGE | InterestBits.ONESHOT,
} as const;
export type Trigger = number;

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
