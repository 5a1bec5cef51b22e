// Connections by token. A token is slot + generation * 2**32: a slot freed and reused within
// one poll batch gets a new generation, so an event still queued for the old connection (the
// seeds' race: a read fails, then a write event arrives for the same token) finds no match
// and is ignored instead of landing on a stranger.
import { makeToken, type Token } from '../../poll/index.js';

const GENERATION_MASK = 0x1f_ffff; // 21 bits: slot (32) + generation (21) stays within 2**53.

/** A slot the slab never hands out (slots are array indexes): the native server registers its
 *  listener under it, generation 0. */
export const LISTENER_SLOT = 0xffff_ffff;
/** Another: descriptors watched for the scale-out layer (FanoutHost.watch), with their own id as
 *  the generation. */
export const WATCHED_SLOT = 0xffff_fffe;

export interface Slotted {
  slot: number;
  generation: number;
  token: Token;
  /** Index in Slab.live; -1 once removed. */
  liveIndex: number;
}

export class Slab<T extends Slotted> {
  private readonly entries: (T | null)[] = [];
  private readonly generations: number[] = [];
  private readonly free: number[] = [];
  /** Every entry, densely packed, for the broadcast loop. */
  readonly live: T[] = [];

  get size(): number {
    return this.live.length;
  }

  /** Assigns slot, generation and token to `entry` and stores it. */
  insert(entry: T): T {
    const slot = this.free.length > 0 ? this.free.pop()! : this.entries.length;
    if (slot === this.entries.length) {
      this.entries.push(null);
      this.generations.push(0);
    }
    const generation = this.generations[slot]!;
    entry.slot = slot;
    entry.generation = generation;
    entry.token = makeToken(slot, generation);
    entry.liveIndex = this.live.length;
    this.entries[slot] = entry;
    this.live.push(entry);
    return entry;
  }

  /** The entry for a token's two words, or null if that token is stale or unknown. */
  get(slot: number, generation: number): T | null {
    const entry = slot < this.entries.length ? this.entries[slot]! : null;
    return entry !== null && entry.generation === generation ? entry : null;
  }

  remove(entry: T): void {
    if (entry.liveIndex < 0) return;
    this.entries[entry.slot] = null;
    this.generations[entry.slot] = (entry.generation + 1) & GENERATION_MASK;
    this.free.push(entry.slot);
    const last = this.live.pop()!;
    if (last !== entry) {
      this.live[entry.liveIndex] = last;
      last.liveIndex = entry.liveIndex;
    }
    entry.liveIndex = -1;
  }
}
