import { MAX_TOKEN } from '../native/binding.js';

/**
 * A registration's identity, handed back with every event (epoll data.u64, kqueue udata).
 * Any integer in 0..MAX_TOKEN (2**53-1) crosses into JS without loss.
 */
export type Token = number;
export { MAX_TOKEN };

const TWO_POW_32 = 0x1_0000_0000;

/** A token built from a slot index (low 32 bits) and a generation (high 21 bits). */
export function makeToken(slot: number, generation: number): Token {
  return generation * TWO_POW_32 + slot;
}

export function isToken(value: number): value is Token {
  return Number.isSafeInteger(value) && value >= 0;
}
