// Giving memory back once clients that held a lot of it are gone (issue #9). A partial frame's
// buffer is garbage once its client is removed, but V8 collects garbage when JS allocates, and
// a server whose big senders just left may allocate almost nothing for a long time: 200 clients
// that each sent a 16 MiB header and 1 MiB of body left +280 MiB of RSS behind them, for good.
// So, once removals have released enough, a full collection is asked for, at most once a second,
// and then glibc is asked to give the freed heap back (it keeps it for reuse otherwise).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { native } from '../native/binding.js';

/** Released bytes that make a collection worth its pause (a few ms for mob's small heap). */
const RECLAIM_AT = 32 * 1024 * 1024;
const MIN_INTERVAL_MS = 1000;
/** V8 frees ArrayBuffer memory on a background thread after the collection returns: a trim at
 *  once found most of it still allocated (a dropped slow reader's 64 MiB stayed in RSS in 2 runs
 *  of 3, the uv engine). */
const TRIM_DELAY_MS = 200;

let collect: (() => void) | null = null;

function collector(): () => void {
  if (collect === null) {
    // --expose-gc takes effect for contexts made after it is set: one is made to fetch gc().
    setFlagsFromString('--expose-gc');
    collect = runInNewContext('gc') as () => void;
  }
  return collect;
}

export class Reclaimer {
  private released = 0;
  private timer: NodeJS.Timeout | null = null;
  private trimTimer: NodeJS.Timeout | null = null;
  private last = 0;

  /** Counts input memory a removal let go of; may schedule a collection. */
  release(bytes: number): void {
    this.released += bytes;
    if (this.released < RECLAIM_AT || this.timer !== null) return;
    const wait = Math.max(0, this.last + MIN_INTERVAL_MS - Date.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      this.released = 0;
      this.last = Date.now();
      collector()();
      this.trimTimer ??= setTimeout(() => {
        this.trimTimer = null;
        native.trimMemory();
      }, TRIM_DELAY_MS).unref();
    }, wait);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.trimTimer !== null) clearTimeout(this.trimTimer);
    this.timer = null;
    this.trimTimer = null;
  }
}
