// Giving back the memory of a dropped slow reader (#9 item 5).
//
// A reader cut off at --max-output leaves up to that much output behind as garbage at once. V8
// collects ArrayBuffer memory only when a collection runs, and it starts one for external memory
// only after another 64 MiB or so has been allocated: an idle server kept a dropped reader's
// 64 MiB for good, and a busy one held it beside the next reader's queue (peak RSS twice the
// limit). So after such a drop the server asks for one full collection, at most once a second.
// The function comes from V8's --expose-gc, switched on at run time (as jest's leak detector
// does); where that is refused, nothing happens and V8 collects in its own time.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Dropped output worth a collection: below this V8's own pace is fine. */
export const RECLAIM_MIN_BYTES = 4 * 1024 * 1024;
const RECLAIM_INTERVAL_MS = 1000;
/** After the sockets are closed and their write requests cancelled (next turn of the loop). */
const RECLAIM_DELAY_MS = 20;

let collect: (() => void) | null | undefined;
let scheduled = false;
let last = 0;

function collector(): (() => void) | null {
  if (collect !== undefined) return collect;
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    collect = typeof gc === 'function' ? () => (gc as () => void)() : null;
  } catch {
    collect = null;
  }
  return collect;
}

/** `bytes` of output just became garbage (a slow reader was dropped): collect it soon. */
export function reclaimDropped(bytes: number): void {
  if (bytes < RECLAIM_MIN_BYTES || scheduled) return;
  scheduled = true;
  const wait = Math.max(RECLAIM_DELAY_MS, last + RECLAIM_INTERVAL_MS - Date.now());
  setTimeout(() => {
    scheduled = false;
    last = Date.now();
    collector()?.();
  }, wait).unref();
}
