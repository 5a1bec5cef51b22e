import { MAX_TOKEN, TWO_POW_32 } from '../native/constants.js';

/**
 * A registration's identity, handed back with every event (epoll data.u64, kqueue udata).
 * Any integer in 0..MAX_TOKEN (2**53-1) crosses into JS without loss.
 */
export type Token = number;
export { MAX_TOKEN };

/** A token built from a slot index (low 32 bits) and a generation (high 21 bits). */
export function makeToken(slot: number, generation: number): Token {
  return generation * TWO_POW_32 + slot;
}
