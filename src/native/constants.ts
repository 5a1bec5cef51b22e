// The numbers of the addon's contract that need no addon: importing them never loads it
// (#10), so a tool, a type or an experiment that only names a bit works on a machine with
// no build. Values the addon defines for the platform it was built on (socket options, the
// kernel's own bits) stay on the binding (binding.ts).
import { constants as osConstants } from 'node:os';

/** Interest and mode bits for Poller.add / Poller.modify. add/modify need READABLE or WRITABLE. */
export const InterestBits = {
  READABLE: 1,
  WRITABLE: 2,
  /** Edge-triggered (EPOLLET / EV_CLEAR); level-triggered when absent. */
  EDGE: 4,
  /** One event, then silence until modify() (EPOLLONESHOT: disarmed; EV_ONESHOT: the
   *  filter is deleted, so modify() adds it again). */
  ONESHOT: 8,
  /** Wake one of the threads blocked on pollers that share this descriptor, not all
   *  (EPOLLEXCLUSIVE). add() only: modify() of such a registration fails with EINVAL. Not
   *  with ONESHOT or DISPATCH; implies NO_RDHUP (the kernel refuses EPOLLRDHUP with it).
   *  kqueue has none: capabilities.exclusive is false and add throws ENOTSUP. */
  EXCLUSIVE: 16,
  /** Leave EPOLLRDHUP out: a FIN then shows as READABLE alone until read() returns 0.
   *  kqueue always sets EV_EOF: capabilities.noRdhup is false and add/modify throw. */
  NO_RDHUP: 32,
  /** One event, then disabled but kept until modify() (EV_DISPATCH). On epoll this is
   *  EPOLLONESHOT, which is exactly that; capabilities.dispatch names what is used. */
  DISPATCH: 64,
} as const;

/** Readiness bits written in the `flags` word of each event (mio's mapping). */
export const EventBits = {
  READABLE: 1,
  WRITABLE: 2,
  /** The peer will send no more: EPOLLHUP, EPOLLIN|EPOLLRDHUP, EV_EOF on EVFILT_READ. */
  READ_CLOSED: 4,
  /** We can send no more: EPOLLHUP, EPOLLOUT|EPOLLERR, EV_EOF on EVFILT_WRITE. */
  WRITE_CLOSED: 8,
  /** EPOLLERR, EV_ERROR, or EV_EOF carrying a socket error in fflags. */
  ERROR: 16,
} as const;

/**
 * Layout of one event in the caller's Uint32Array (EVENT_STRIDE words per event):
 *   [0] token low 32 bits, [1] token high 32 bits (token = lo + hi * TWO_POW_32),
 *   [2] EventBits, [3] raw backend bits (epoll: `events`; kqueue: (flags << 16) | (filter & 0xffff)),
 *   [4] kqueue `data` clamped to 0..2**32-1 (bytes readable / unsent bytes / errno); 0 on epoll.
 */
export const EVENT_STRIDE = 5;

/** 2**32: joins and splits the two 32-bit halves of tokens and frame lengths. */
export const TWO_POW_32 = 0x1_0000_0000;

/** Tokens are integers in 0..MAX_TOKEN: they cross into JS as numbers without loss. */
export const MAX_TOKEN = Number.MAX_SAFE_INTEGER;

const os = osConstants.errno;

/** Positive errno values, by name, that a loop branches on: the platform's own (Node's
 *  os.constants.errno), equal to the addon's `errno` object. */
export const errno = Object.freeze({
  EAGAIN: os.EAGAIN, EINTR: os.EINTR, ECONNRESET: os.ECONNRESET, EPIPE: os.EPIPE,
  EMFILE: os.EMFILE, ENFILE: os.ENFILE, ENOBUFS: os.ENOBUFS, ENOMEM: os.ENOMEM,
  ECONNABORTED: os.ECONNABORTED, EINPROGRESS: os.EINPROGRESS, ENOENT: os.ENOENT,
  EBADF: os.EBADF, ENOTCONN: os.ENOTCONN, ETIMEDOUT: os.ETIMEDOUT, ENOTSUP: os.ENOTSUP,
  EINVAL: os.EINVAL, ECONNREFUSED: os.ECONNREFUSED,
});
export type ErrnoConstants = typeof errno;
