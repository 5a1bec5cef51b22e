// The contract between the C++ addon (native/) and TypeScript. The addon is raw calls:
// every function maps to one syscall, or to a thin loop of the same syscall, and reports
// failure as a negative errno (never an exception) wherever a loop must branch on it.
// Exceptions are for programming errors and for calls a loop never retries (register on a
// closed fd, listen on a busy port): those throw a SystemError-like Error with
// `code` ('EADDRINUSE'), `errno` (positive number) and `syscall` ('bind').
// Importing this module loads nothing: the addon loads on first use of `native` (or
// loadNative()), and a missing one is a single MOB_NO_ADDON error saying how to build it.
import { createRequire } from 'node:module';
import { closeSync, openSync, readSync } from 'node:fs';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ErrnoConstants } from './constants.js';

// The constants need no addon; they are re-exported here so that the contract reads in one place.
export { InterestBits, EventBits, EVENT_STRIDE, TWO_POW_32, MAX_TOKEN, errno, type ErrnoConstants } from './constants.js';

export interface Poller {
  /** The epoll/kqueue descriptor itself, or -1 once closed. */
  readonly fd: number;
  /**
   * Throws on failure (EBADF, EEXIST, ENOENT...). token must be an integer in 0..MAX_TOKEN.
   * interest must include READABLE or WRITABLE (RangeError otherwise, on both backends);
   * a bit the backend cannot honour (see capabilities) throws ENOTSUP, never ignored.
   */
  add(fd: number, token: number, interest: number): void;
  modify(fd: number, token: number, interest: number): void;
  /** Deregisters; ENOENT (already gone) is not an error. */
  delete(fd: number): void;
  /**
   * Blocks up to timeoutMs (-1: forever, 0: poll) and fills `events` (capacity =
   * events.length / EVENT_STRIDE). Returns the count; EINTR returns 0.
   */
  wait(events: Uint32Array, timeoutMs: number): number;
  /**
   * Watches the poller's fd from libuv (a uv_poll_t) and, each time it is readable,
   * drains ready events into `events` without blocking and calls onEvents(count) if count > 0.
   * Runs inside an ordinary Node process: timers, signals and other I/O keep working.
   * An exception thrown by onEvents goes to process 'uncaughtException'.
   */
  start(events: Uint32Array, onEvents: (count: number) => void): void;
  stop(): void;
  /** Whether the libuv watcher keeps the process alive (default: it does). */
  ref(): void;
  unref(): void;
  /** Stops the watcher and closes the poller fd. Idempotent. A poller still open when its
   *  environment (a worker) ends is closed then, libuv handle included. */
  close(): void;
}

/** What this backend honours of InterestBits: add/modify throw ENOTSUP for the rest. */
export interface Capabilities {
  /** The InterestBits accepted, as a mask. */
  readonly interest: number;
  /** EXCLUSIVE: epoll (EPOLLEXCLUSIVE); kqueue has no counterpart. */
  readonly exclusive: boolean;
  /** NO_RDHUP: epoll; kqueue always reports EV_EOF. */
  readonly noRdhup: boolean;
  /** DISPATCH: EV_DISPATCH on kqueue, EPOLLONESHOT on epoll (dispatchFlag). */
  readonly dispatch: boolean;
  /** The kernel flags behind ONESHOT and DISPATCH. */
  readonly oneshotFlag: 'EPOLLONESHOT' | 'EV_ONESHOT';
  readonly dispatchFlag: 'EPOLLONESHOT' | 'EV_DISPATCH';
}

/** A descriptor's kind, for taking over one made elsewhere (--listen-fd, LISTEN_FDS). */
export interface SocketDescription {
  family: 'IPv4' | 'IPv6' | 'unix' | 'other';
  type: 'stream' | 'datagram' | 'other';
  /** SO_ACCEPTCONN: listen() was called on it. */
  listening: boolean;
}

export interface SocketAddress {
  address: string;
  port: number;
  family: 'IPv4' | 'IPv6';
}

export interface NativeBinding {
  /** 'epoll' or 'kqueue': chosen at compile time. */
  readonly backend: 'epoll' | 'kqueue';
  /** The Node-API version the addon was built against (NAPI_VERSION). */
  readonly napiVersion: number;
  readonly EVENT_STRIDE: number;
  Poller: new () => Poller;
  readonly capabilities: Capabilities;
  /**
   * The backend's own constants, by their C names, with the values of the headers the
   * addon was built against, so tools name raw bits without re-encoding them. epoll:
   * EPOLLIN, EPOLLPRI, EPOLLOUT, EPOLLERR, EPOLLHUP, EPOLLRDNORM, EPOLLRDBAND, EPOLLWRNORM,
   * EPOLLWRBAND, EPOLLMSG, EPOLLRDHUP, EPOLLEXCLUSIVE, EPOLLWAKEUP, EPOLLONESHOT, EPOLLET
   * (all unsigned). kqueue: EV_ADD, EV_DELETE, EV_ENABLE, EV_DISABLE, EV_ONESHOT, EV_CLEAR,
   * EV_RECEIPT, EV_DISPATCH, EV_ERROR, EV_EOF (flags) and EVFILT_READ, EVFILT_WRITE
   * (negative filters). Raw event words (Events.raw) are made of these.
   */
  readonly kernel: Readonly<Record<string, number>>;

  // --- ownership: every descriptor made here (listen, connect, accept, socketpair, dup)
  // belongs to the environment (main thread or worker) that made it, and is closed when
  // that environment ends unless close() or disown() came first. Close them with close(),
  // never fs.closeSync(): the environment would still own the number and, at teardown, close
  // whatever descriptor reuses it. -------------------------------------------------------
  /** This environment stops owning fd (e.g. it is handed to a worker); whether it did. */
  disown(fd: number): boolean;
  /** This environment owns fd from now on (one handed over by another thread, or inherited).
   *  Throws EBADF if fd is not open. */
  adopt(fd: number): void;

  // --- sockets: descriptors are non-blocking and close-on-exec -------------------------
  /** TCP listen on an IPv4 or IPv6 literal. SO_REUSEADDR always; SO_REUSEPORT if asked;
   *  backlog <= 0 means the system maximum (SOMAXCONN / net.core.somaxconn). Throws. */
  listen(host: string, port: number, backlog: number, reusePort: boolean): number;
  /** Non-blocking connect to an IP literal: returns the fd at once (EINPROGRESS is not
   *  an error: wait for writability, then check socketError()). Throws on other errors. */
  connect(host: string, port: number): number;
  /** Accepted fd (non-blocking, close-on-exec; accept4 on Linux), or -errno (-EAGAIN). */
  accept(listenFd: number): number;
  /** A connected AF_UNIX stream pair, both ends non-blocking and close-on-exec. Throws. */
  socketpair(): [number, number];
  /** getsockname's family, SO_TYPE and SO_ACCEPTCONN. Throws (ENOTSOCK for a file or pipe). */
  describeSocket(fd: number): SocketDescription;
  /** Bytes read into buf[offset, offset+length), 0 at end of stream, or -errno. */
  read(fd: number, buf: Uint8Array, offset: number, length: number): number;
  /** Bytes written from buf[offset, offset+length), or -errno. Never raises SIGPIPE. */
  write(fd: number, buf: Uint8Array, offset: number, length: number): number;
  /** Gathers the buffers (whole) into one sendmsg; returns bytes written or -errno.
   *  At most IOV_MAX buffers are sent per call. Never raises SIGPIPE. */
  writev(fd: number, bufs: readonly Uint8Array[]): number;
  /**
   * Broadcast: write buf[offset, offset+length) to each of fds[0..count), one write each,
   * results[i] = bytes written or -errno. One crossing for a whole fan-out.
   */
  writeEach(fds: Int32Array, count: number, buf: Uint8Array, offset: number, length: number, results: Int32Array): void;
  /** how: 0 = SHUT_RD, 1 = SHUT_WR, 2 = SHUT_RDWR. Returns 0 or -errno. */
  shutdown(fd: number, how: number): number;
  /** Returns 0 or -errno; the descriptor is gone (and no longer owned) either way. */
  close(fd: number): number;
  /** dup() keeping close-on-exec (F_DUPFD_CLOEXEC). Returns fd or -errno. */
  dup(fd: number): number;
  /** O_NONBLOCK and FD_CLOEXEC on a descriptor opened elsewhere (an inherited listener).
   *  Returns 0 or -errno. */
  setNonBlocking(fd: number): number;
  setNoDelay(fd: number, on: boolean): number;
  /** SO_LINGER {on, seconds}: on with 0 seconds makes close() send RST. */
  setLinger(fd: number, on: boolean, seconds: number): number;
  /** Integer socket option; constants below. Returns 0 or -errno. */
  setsockopt(fd: number, level: number, option: number, value: number): number;
  /** Integer socket option's value (which may be negative). Throws on failure. */
  getsockopt(fd: number, level: number, option: number): number;
  /** Pending socket error (SO_ERROR) as a positive errno, 0 if none, or -errno on failure. */
  socketError(fd: number): number;
  localAddress(fd: number): SocketAddress;
  peerAddress(fd: number): SocketAddress;
  /** Bytes waiting in the receive buffer (FIONREAD), or -errno. */
  bytesReadable(fd: number): number;
  /** Bytes in the send buffer not yet acknowledged (SIOCOUTQ on Linux, SO_NWRITE on macOS,
   *  FIONWRITE on FreeBSD), or -errno (-ENOTSUP where none exists). */
  bytesUnsent(fd: number): number;
  /** Returns freed heap memory to the system where the C library keeps it (glibc's
   *  malloc_trim); true if some was returned. */
  trimMemory(): boolean;
  /** The number of descriptors this process may open: RLIMIT_NOFILE soft / hard. */
  getFdLimit(): { soft: number; hard: number };
  /** Sets the soft limit (capped at hard); returns the new soft limit, or -errno. */
  setFdLimit(soft: number): number;
  /** Name of an errno value ('ECONNRESET'), or 'E<number>' if unknown. */
  errnoName(errno: number): string;
  /** Positive errno values, by name, that a loop branches on (also `errno` in constants.ts,
   *  which needs no addon). */
  readonly errno: ErrnoConstants;
  /** setsockopt levels and options (platform values). */
  readonly sockopt: Readonly<{
    SOL_SOCKET: number; SO_RCVBUF: number; SO_SNDBUF: number; SO_REUSEADDR: number;
    SO_REUSEPORT: number; SO_KEEPALIVE: number; SO_ACCEPTCONN: number; SO_TYPE: number;
    IPPROTO_TCP: number; TCP_NODELAY: number;
  }>;
}

export interface LoadedBinding {
  binding: NativeBinding;
  /** 'prebuild' (prebuilds/<platform>-<arch>) or 'local build' (build/Release) */
  loadedFrom: 'prebuild' | 'local build';
  path: string;
}

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

const require = createRequire(import.meta.url);

/** Where the addon node-gyp-build would load (MOB_PREBUILD honoured), without loading it:
 *  for a worker or child process that must load it itself. Throws MOB_NO_ADDON. */
export function resolveAddonPath(): string {
  const nodeGypBuild = require('node-gyp-build') as { resolve(dir: string): string };
  try {
    // MOB_PREBUILD=build-asan comes back relative, which require() would take for a package name.
    // node-gyp-build's own override is <PACKAGE_NAME>_PREBUILD (MOB_ECHO_PREBUILD); MOB_PREBUILD
    // is the project's documented one, so it is passed on here.
    return resolvePath(nodeGypBuild.resolve(process.env.MOB_PREBUILD || packageRoot));
  } catch (cause) {
    const error = new Error(
      `mob: no native addon for ${process.platform}-${process.arch} (node ${process.version}) in ${process.env.MOB_PREBUILD ?? packageRoot}; ` +
        'build it with `npm run build:native` (needs python3, make and a C++20 compiler)',
      { cause },
    );
    (error as Error & { code: string }).code = 'MOB_NO_ADDON';
    throw error;
  }
}

function load(): LoadedBinding {
  const path = resolveAddonPath();
  let binding: NativeBinding;
  try {
    binding = require(path) as NativeBinding;
  } catch (cause) {
    const error = new Error(`mob: cannot load the native addon ${path}: ${whyNotLoadable(path, cause)}`, { cause });
    (error as Error & { code: string }).code = 'ERR_DLOPEN_FAILED';
    throw error;
  }
  const loadedFrom = path.split(/[\\/]/).includes('prebuilds') ? 'prebuild' : 'local build';
  return { binding, loadedFrom, path };
}

// ELF e_machine values of the architectures Node ships for.
const ELF_MACHINES: Record<number, string> = { 3: 'ia32', 0x3e: 'x64', 0x28: 'arm', 0xb7: 'arm64', 0x15: 'ppc64', 0x16: 's390x', 0xf3: 'riscv64' };

/** dlopen's own words can mislead (an addon for another CPU reports "No such file or
 *  directory"), so look at the file's header and name what is wrong in terms a user can act on. */
function whyNotLoadable(path: string, cause: unknown): string {
  const fallback = String((cause as Error).message ?? cause).split('\n')[0]!;
  let head = Buffer.alloc(20);
  try {
    const fd = openSync(path, 'r');
    try {
      head = head.subarray(0, readSync(fd, head, 0, head.length, 0));
    } finally {
      closeSync(fd);
    }
  } catch {
    return fallback;
  }
  const rebuild = '; rebuild it with `npm run build:native`';
  const magic = head.length >= 4 ? head.readUInt32BE(0) : 0;
  if (magic === 0xcffaedfe || magic === 0xcefaedfe || magic === 0xcafebabe) {
    if (process.platform !== 'darwin') return `it is a macOS build, not one for ${process.platform}-${process.arch}${rebuild}`;
  } else if (head.length >= 20 && head.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) {
    if (process.platform === 'darwin') return `it is an ELF (Linux/BSD) build, not one for macOS${rebuild}`;
    const machine = head[5] === 2 ? head.readUInt16BE(18) : head.readUInt16LE(18);
    const arch = ELF_MACHINES[machine] ?? `ELF machine ${machine}`;
    if (arch !== process.arch) return `it is built for ${arch}, this is ${process.platform}-${process.arch}${rebuild}`;
  } else {
    return `it is not a shared library (${head.length} bytes read)${rebuild}`;
  }
  if (/did not self-register/.test(fallback)) return `it is a shared library but not a Node addon${rebuild}`;
  return `${fallback.replace(/\.$/, '')}${rebuild}`;
}

let loaded: LoadedBinding | undefined;

/** The addon, loaded once (node-gyp-build: a prebuild if present, else build/Release), with
 *  where it came from. Throws MOB_NO_ADDON (with how to build it) when there is none. */
export function loadBinding(): LoadedBinding {
  loaded ??= load();
  return loaded;
}

/** The addon's own exports object, loading it on first call. Hot paths hold what it returns. */
export function loadNative(): NativeBinding {
  return loadBinding().binding;
}

// Every member of NativeBinding, checked by the compiler both ways (a missing or an extra
// key fails to type-check), and against the loaded addon by test/native.test.ts.
const BINDING_KEYS: Record<keyof NativeBinding, true> = {
  backend: true, napiVersion: true, EVENT_STRIDE: true, Poller: true, capabilities: true,
  kernel: true, disown: true, adopt: true, socketpair: true, setNonBlocking: true,
  describeSocket: true, listen: true, connect: true, accept: true, read: true, write: true, writev: true, writeEach: true,
  shutdown: true, close: true, dup: true, setNoDelay: true, setLinger: true, setsockopt: true,
  getsockopt: true, socketError: true, localAddress: true, peerAddress: true, bytesReadable: true,
  bytesUnsent: true, trimMemory: true, getFdLimit: true, setFdLimit: true, errnoName: true, errno: true, sockopt: true,
};

/** The members `native` must forward: the test compares them with the addon's exports. */
export const bindingKeys: readonly (keyof NativeBinding)[] = Object.keys(BINDING_KEYS) as (keyof NativeBinding)[];

// `native` starts empty over a prototype of getters. The first member read loads the addon
// and copies every member onto `native` itself as plain read-only data, which shadows the
// getters: from then on `native.read` is an ordinary property load, as fast as on the
// addon's own object, and importing this module (or anything that imports it) never loads
// the addon by itself (#10).
const lazyMembers: object = Object.create(null);
for (const key of bindingKeys) {
  Object.defineProperty(lazyMembers, key, {
    get(this: NativeBinding) {
      const binding = loadNative();
      if (this === native) {
        for (const member of bindingKeys) {
          Object.defineProperty(native, member, { value: binding[member], enumerable: true });
        }
      }
      return binding[key];
    },
  });
}

/** The addon, loaded on first use of any member. */
export const native: NativeBinding = Object.create(lazyMembers) as NativeBinding;
