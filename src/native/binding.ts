// The contract between the C++ addon (native/) and TypeScript. The addon is raw calls:
// every function maps to one syscall, or to a thin loop of the same syscall, and reports
// failure as a negative errno (never an exception) wherever a loop must branch on it.
// Exceptions are for programming errors and for calls a loop never retries (register on a
// closed fd, listen on a busy port): those throw a SystemError-like Error with
// `code` ('EADDRINUSE'), `errno` (positive number) and `syscall` ('bind').
import { createRequire } from 'node:module';
import { closeSync, openSync, readSync } from 'node:fs';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Interest and mode bits for Poller.add / Poller.modify. */
export const InterestBits = {
  READABLE: 1,
  WRITABLE: 2,
  /** Edge-triggered (EPOLLET / EV_CLEAR); level-triggered when absent. */
  EDGE: 4,
  /** Disarm after one event until modify() re-arms it (EPOLLONESHOT / EV_ONESHOT). */
  ONESHOT: 8,
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
 *   [0] token low 32 bits, [1] token high 32 bits (token = lo + hi * 2**32),
 *   [2] EventBits, [3] raw backend bits (epoll: `events`; kqueue: (flags << 16) | (filter & 0xffff)),
 *   [4] kqueue `data` clamped to 0..2**32-1 (bytes readable / unsent bytes / errno); 0 on epoll.
 */
export const EVENT_STRIDE = 5;

/** Tokens are integers in 0..MAX_TOKEN: they cross into JS as numbers without loss. */
export const MAX_TOKEN = Number.MAX_SAFE_INTEGER;

export interface Poller {
  /** The epoll/kqueue descriptor itself, or -1 once closed. */
  readonly fd: number;
  /** Throws on failure (EBADF, EEXIST, ENOENT...). token must be an integer in 0..MAX_TOKEN. */
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
  /** Stops the watcher and closes the poller fd. Idempotent. */
  close(): void;
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

  // --- sockets: descriptors are non-blocking and close-on-exec -------------------------
  /** TCP listen on an IPv4 or IPv6 literal. SO_REUSEADDR always; SO_REUSEPORT if asked;
   *  backlog <= 0 means the system maximum (SOMAXCONN / net.core.somaxconn). Throws. */
  listen(host: string, port: number, backlog: number, reusePort: boolean): number;
  /** Non-blocking connect to an IP literal: returns the fd at once (EINPROGRESS is not
   *  an error: wait for writability, then check socketError()). Throws on other errors. */
  connect(host: string, port: number): number;
  /** Accepted fd (non-blocking, close-on-exec; accept4 on Linux), or -errno (-EAGAIN). */
  accept(listenFd: number): number;
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
  /** Returns 0 or -errno. */
  close(fd: number): number;
  /** dup() keeping close-on-exec (F_DUPFD_CLOEXEC). Returns fd or -errno. */
  dup(fd: number): number;
  /** O_NONBLOCK and FD_CLOEXEC on a descriptor opened elsewhere (an inherited listener).
   *  Returns 0 or -errno. */
  setNonBlocking(fd: number): number;
  setNoDelay(fd: number, on: boolean): number;
  /** SO_LINGER {on, seconds}: on with 0 seconds makes close() send RST. */
  setLinger(fd: number, on: boolean, seconds: number): number;
  /** Integer socket options; constants below. Return 0 / the value, or -errno. */
  setsockopt(fd: number, level: number, option: number, value: number): number;
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
  /** Positive errno values, by name, that a loop branches on. */
  readonly errno: Readonly<{
    EAGAIN: number; EINTR: number; ECONNRESET: number; EPIPE: number; EMFILE: number;
    ENFILE: number; ENOBUFS: number; ENOMEM: number; ECONNABORTED: number; EINPROGRESS: number;
    ENOENT: number; EBADF: number; ENOTCONN: number; ETIMEDOUT: number;
  }>;
  /** setsockopt levels and options (platform values). */
  readonly sockopt: Readonly<{
    SOL_SOCKET: number; SO_RCVBUF: number; SO_SNDBUF: number; SO_REUSEADDR: number;
    SO_REUSEPORT: number; SO_KEEPALIVE: number; IPPROTO_TCP: number; TCP_NODELAY: number;
  }>;
}

export interface LoadedBinding {
  binding: NativeBinding;
  /** 'prebuild' (prebuilds/<platform>-<arch>) or 'local build' (build/Release) */
  loadedFrom: 'prebuild' | 'local build';
  path: string;
}

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function load(): LoadedBinding {
  const require = createRequire(import.meta.url);
  const nodeGypBuild = require('node-gyp-build') as { resolve(dir: string): string };
  let path: string;
  try {
    path = nodeGypBuild.resolve(packageRoot);
  } catch (cause) {
    const error = new Error(
      `mob: no native addon for ${process.platform}-${process.arch} (node ${process.version}) in ${process.env.MOB_PREBUILD ?? packageRoot}; ` +
        'build it with `npm run build:native` (needs python3, make and a C++20 compiler)',
      { cause },
    );
    (error as Error & { code: string }).code = 'MOB_NO_ADDON';
    throw error;
  }
  // MOB_PREBUILD=build-asan comes back relative, which require() would take for a package name.
  path = resolvePath(path);
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

/** The addon, loaded once (node-gyp-build: a prebuild if present, else build/Release). */
export function loadBinding(): LoadedBinding {
  loaded ??= load();
  return loaded;
}

export const native: NativeBinding = loadBinding().binding;
