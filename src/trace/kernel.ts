// Names for the bits the kernel actually used, next to mob's portable EventBits: a timeline
// that only said READABLE would hide exactly what people come to see (EPOLLRDHUP arriving
// with EPOLLIN, EV_EOF on a read filter that still has data).
import { InterestBits } from '../native/binding.js';

export type Backend = 'epoll' | 'kqueue';

// Linux <sys/epoll.h> values: the ABI, identical on every architecture.
export const EPOLL = {
  IN: 0x001, PRI: 0x002, OUT: 0x004, ERR: 0x008, HUP: 0x010, RDHUP: 0x2000,
  EXCLUSIVE: 0x1000_0000, ONESHOT: 0x4000_0000, ET: 0x8000_0000,
} as const;

const EPOLL_BITS: readonly [number, string][] = [
  [0x001, 'EPOLLIN'], [0x002, 'EPOLLPRI'], [0x004, 'EPOLLOUT'], [0x008, 'EPOLLERR'],
  [0x010, 'EPOLLHUP'], [0x040, 'EPOLLRDNORM'], [0x080, 'EPOLLRDBAND'], [0x100, 'EPOLLWRNORM'],
  [0x200, 'EPOLLWRBAND'], [0x400, 'EPOLLMSG'], [0x2000, 'EPOLLRDHUP'],
  [0x1000_0000, 'EPOLLEXCLUSIVE'], [0x2000_0000, 'EPOLLWAKEUP'], [0x4000_0000, 'EPOLLONESHOT'],
  [0x8000_0000, 'EPOLLET'],
];

// <sys/event.h>: the same values on macOS, the BSDs and libkqueue.
const KQUEUE_FLAGS: readonly [number, string][] = [
  [0x0001, 'EV_ADD'], [0x0002, 'EV_DELETE'], [0x0004, 'EV_ENABLE'], [0x0008, 'EV_DISABLE'],
  [0x0010, 'EV_ONESHOT'], [0x0020, 'EV_CLEAR'], [0x0040, 'EV_RECEIPT'], [0x0080, 'EV_DISPATCH'],
  [0x2000, 'EV_FLAG1'], [0x4000, 'EV_ERROR'], [0x8000, 'EV_EOF'],
];

const KQUEUE_FILTERS: Record<number, string> = { [-1]: 'EVFILT_READ', [-2]: 'EVFILT_WRITE' };

function names(value: number, table: readonly [number, string][]): string {
  const parts: string[] = [];
  let rest = value >>> 0;
  for (const [bit, name] of table) {
    if ((rest & bit) >>> 0 === bit) {
      parts.push(name);
      rest = (rest & ~bit) >>> 0;
    }
  }
  if (rest !== 0) parts.push(`0x${rest.toString(16)}`);
  return parts.length > 0 ? parts.join('|') : '0';
}

export function epollEventNames(events: number): string {
  return names(events, EPOLL_BITS);
}

export function kqueueFlagNames(flags: number): string {
  return names(flags, KQUEUE_FLAGS);
}

export function kqueueFilterName(filter: number): string {
  return KQUEUE_FILTERS[filter] ?? `filter ${filter}`;
}

/** The raw word of one event (binding.ts layout, word [3]) in the backend's own vocabulary. */
export function describeRawEvent(backend: Backend, raw: number, data: number): string {
  if (backend === 'epoll') return epollEventNames(raw);
  const filter = (raw << 16) >> 16; // low 16 bits, sign-extended: filters are negative
  const flags = raw >>> 16;
  return `${kqueueFilterName(filter)} ${kqueueFlagNames(flags)} data=${data}`;
}

/** What the addon hands the kernel for a registration change (mirrors native/selector_*.cc). */
export function describeRegistration(backend: Backend, op: 'register' | 'reregister' | 'deregister', bits: number): string {
  if (backend === 'epoll') {
    if (op === 'deregister') return 'EPOLL_CTL_DEL';
    let events = 0;
    if (bits & InterestBits.READABLE) events |= 0x001 | 0x2000;
    if (bits & InterestBits.WRITABLE) events |= 0x004;
    if (bits & InterestBits.EDGE) events |= 0x8000_0000;
    if (bits & InterestBits.ONESHOT) events |= 0x4000_0000;
    return `${op === 'register' ? 'EPOLL_CTL_ADD' : 'EPOLL_CTL_MOD'} ${epollEventNames(events)}`;
  }
  if (op === 'deregister') return 'EVFILT_WRITE EV_DELETE, EVFILT_READ EV_DELETE';
  let mode = 0x0040; // EV_RECEIPT on every change
  if (bits & InterestBits.EDGE) mode |= 0x0020;
  if (bits & InterestBits.ONESHOT) mode |= 0x0010;
  const change = (filter: string, wanted: boolean): string | null => {
    if (wanted) return `${filter} ${kqueueFlagNames(0x0001 | mode)}`;
    return op === 'reregister' ? `${filter} ${kqueueFlagNames(0x0002 | mode)}` : null;
  };
  return [change('EVFILT_WRITE', (bits & InterestBits.WRITABLE) !== 0), change('EVFILT_READ', (bits & InterestBits.READABLE) !== 0)]
    .filter((part): part is string => part !== null)
    .join(', ');
}
