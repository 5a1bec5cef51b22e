// Names for the bits the kernel actually used, next to mob's portable EventBits: a timeline
// that only said READABLE would hide exactly what people come to see (EPOLLRDHUP arriving
// with EPOLLIN, EV_EOF on a read filter that still has data). The values are the addon's
// (`native.kernel`, from the headers it was built against): nothing is re-encoded here.
import { InterestBits, native } from '../native/binding.js';

export type Backend = 'epoll' | 'kqueue';

/** A kernel constant of the loaded addon's backend, by its C name. */
export function kernelBit(name: string): number {
  const value = native.kernel[name];
  if (value === undefined) throw new Error(`the ${native.backend} addon has no kernel constant ${name}`);
  return value;
}

/** [value, name] pairs of the loaded backend whose names start with one of `prefixes`, in the
 *  order the addon lists them; empty when the addon is the other backend. */
function table(backend: Backend, prefixes: readonly string[]): [number, string][] {
  if (native.backend !== backend) return [];
  return Object.entries(native.kernel)
    .filter(([name]) => prefixes.some((prefix) => name.startsWith(prefix)))
    .map(([name, value]) => [value >>> 0, name]);
}

let epollBits: [number, string][] | undefined;
let kqueueFlags: [number, string][] | undefined;
let kqueueFilters: Map<number, string> | undefined;

function names(value: number, bits: readonly [number, string][]): string {
  const parts: string[] = [];
  let rest = value >>> 0;
  for (const [bit, name] of bits) {
    if (bit !== 0 && (rest & bit) >>> 0 === bit) {
      parts.push(name);
      rest = (rest & ~bit) >>> 0;
    }
  }
  if (rest !== 0) parts.push(`0x${rest.toString(16)}`);
  return parts.length > 0 ? parts.join('|') : '0';
}

export function epollEventNames(events: number): string {
  epollBits ??= table('epoll', ['EPOLL']);
  return names(events, epollBits);
}

export function kqueueFlagNames(flags: number): string {
  kqueueFlags ??= table('kqueue', ['EV_']);
  return names(flags, kqueueFlags);
}

export function kqueueFilterName(filter: number): string {
  // Filters are small negative numbers: compare them signed.
  kqueueFilters ??= new Map(table('kqueue', ['EVFILT_']).map(([value, name]) => [value | 0, name]));
  return kqueueFilters.get(filter) ?? `filter ${filter}`;
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
  if (native.backend !== backend) return op;
  return backend === 'epoll' ? describeEpollChange(op, bits) : describeKqueueChange(op, bits);
}

function describeEpollChange(op: 'register' | 'reregister' | 'deregister', bits: number): string {
  if (op === 'deregister') return 'EPOLL_CTL_DEL';
  const k = native.kernel;
  let events = 0;
  if (bits & InterestBits.READABLE) {
    events |= k.EPOLLIN!;
    // EXCLUSIVE implies NO_RDHUP: the kernel refuses EPOLLRDHUP with EPOLLEXCLUSIVE.
    if (!(bits & (InterestBits.NO_RDHUP | InterestBits.EXCLUSIVE))) events |= k.EPOLLRDHUP!;
  }
  if (bits & InterestBits.WRITABLE) events |= k.EPOLLOUT!;
  if (bits & InterestBits.EDGE) events |= k.EPOLLET!;
  if (bits & (InterestBits.ONESHOT | InterestBits.DISPATCH)) events |= k.EPOLLONESHOT!;
  if (bits & InterestBits.EXCLUSIVE) events |= k.EPOLLEXCLUSIVE!;
  return `${op === 'register' ? 'EPOLL_CTL_ADD' : 'EPOLL_CTL_MOD'} ${epollEventNames(events)}`;
}

function describeKqueueChange(op: 'register' | 'reregister' | 'deregister', bits: number): string {
  const k = native.kernel;
  if (op === 'deregister') return `EVFILT_WRITE ${kqueueFlagNames(k.EV_DELETE! | k.EV_RECEIPT!)}, EVFILT_READ ${kqueueFlagNames(k.EV_DELETE! | k.EV_RECEIPT!)}`;
  let mode = k.EV_RECEIPT!;
  if (bits & InterestBits.EDGE) mode |= k.EV_CLEAR!;
  if (bits & InterestBits.ONESHOT) mode |= k.EV_ONESHOT!;
  if (bits & InterestBits.DISPATCH) mode |= k.EV_DISPATCH! | k.EV_ENABLE!;
  const change = (filter: string, wanted: boolean): string | null => {
    if (wanted) return `${filter} ${kqueueFlagNames(k.EV_ADD! | mode)}`;
    return op === 'reregister' ? `${filter} ${kqueueFlagNames(k.EV_DELETE! | (mode & ~k.EV_ENABLE!))}` : null;
  };
  const changes = [change('EVFILT_WRITE', (bits & InterestBits.WRITABLE) !== 0), change('EVFILT_READ', (bits & InterestBits.READABLE) !== 0)]
    .filter((part): part is string => part !== null);
  // libkqueue would keep a disabled filter's old udata: the addon deletes both first.
  if (op === 'reregister' && (bits & InterestBits.DISPATCH) && process.platform === 'linux') changes.unshift('EV_DELETE both');
  return changes.join(', ');
}
