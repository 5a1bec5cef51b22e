// --max-conns within RLIMIT_NOFILE, shared by both engines: raise the soft limit if allowed,
// else clamp the connection limit and say so.
import { native } from '../native/binding.js';
import type { Logger } from '../log.js';

/** Descriptors kept back from --max-conns for the listener, the poller, Node and the spare. */
export const RESERVED_FDS = 64;

/**
 * `explicit`: the operator named --max-conns. Then it is honoured even above the limit, with a
 * warning: past the descriptors there are, accept fails with EMFILE and the engine sheds
 * (accepts and closes) the queued excess. A default limit is fitted instead, quietly safe.
 */
export function fitConnLimit(wanted: number, log: Logger, explicit = false): number {
  const need = wanted + RESERVED_FDS;
  let { soft, hard } = native.getFdLimit();
  if (soft < need) {
    const raised = native.setFdLimit(Math.min(need, hard));
    if (raised > 0) soft = raised;
  }
  if (soft >= need) return wanted;
  if (explicit) {
    log.warn(`--max-conns ${wanted} exceeds RLIMIT_NOFILE ${soft} (hard ${hard}): connections past the descriptors left are accepted and closed on EMFILE`);
    return wanted;
  }
  const fitted = Math.max(1, soft - RESERVED_FDS);
  log.warn(`--max-conns ${wanted} exceeds RLIMIT_NOFILE ${soft} (hard ${hard}); serving at most ${fitted}`);
  return fitted;
}
