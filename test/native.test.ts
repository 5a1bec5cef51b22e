// Smoke tests of the native addon against its contract (src/native/binding.ts), on real
// loopback sockets made by the addon itself. Runs against whichever build node-gyp-build
// picks: build/Release (epoll on Linux), or another build dir through MOB_PREBUILD=DIR
// (DIR/build/Release/mob.node), e.g. the libkqueue build. Set MOB_EXPECT_BACKEND=kqueue
// to make sure the intended one was loaded.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Option, Trigger, describeInterest } from '../src/poll/index.ts';
import { native, loadBinding, loadNative, bindingKeys, EVENT_STRIDE, MAX_TOKEN, type Poller } from '../src/native/binding.ts';

// InterestBits / EventBits, spelled out: the test checks the numbers the contract gives.
const READABLE = 1;
const WRITABLE = 2;
const EDGE = 4;
const ONESHOT = 8;
const EXCLUSIVE = 16;
const NO_RDHUP = 32;
const DISPATCH = 64;
const EV_READABLE = 1;
const EV_WRITABLE = 2;
const EV_READ_CLOSED = 4;
const EV_WRITE_CLOSED = 8;
const EV_ERROR = 16;

const { EAGAIN, EPIPE, ECONNRESET, EBADF } = native.errno;

interface Ev {
  token: number;
  flags: number;
  raw: number;
  data: number;
}

const openFds = new Set<number>();
const pollers: Poller[] = [];

function track(fd: number): number {
  assert.ok(Number.isInteger(fd) && fd >= 0, `expected a descriptor, got ${fd}`);
  openFds.add(fd);
  return fd;
}

function closeFd(fd: number): void {
  openFds.delete(fd);
  assert.equal(native.close(fd), 0);
}

function newPoller(): Poller {
  const poller = new native.Poller();
  pollers.push(poller);
  return poller;
}

after(() => {
  for (const poller of pollers) poller.close();
  for (const fd of openFds) native.close(fd);
});

function waitEvents(poller: Poller, timeoutMs: number, capacity = 16): Ev[] {
  const words = new Uint32Array(capacity * EVENT_STRIDE);
  const count = poller.wait(words, timeoutMs);
  return decode(words, count);
}

function decode(words: Uint32Array, count: number): Ev[] {
  const events: Ev[] = [];
  for (let i = 0; i < count; i++) {
    const at = i * EVENT_STRIDE;
    events.push({ token: words[at] + words[at + 1] * 2 ** 32, flags: words[at + 2], raw: words[at + 3], data: words[at + 4] });
  }
  return events;
}

/** Events for `token` merged (kqueue reports one per filter). */
function flagsFor(events: Ev[], token: number): number {
  return events.filter((e) => e.token === token).reduce((acc, e) => acc | e.flags, 0);
}

async function acceptOne(listenFd: number): Promise<number> {
  const deadline = Date.now() + 2000;
  for (;;) {
    const fd = native.accept(listenFd);
    if (fd >= 0) return track(fd);
    assert.equal(fd, -EAGAIN, `accept: ${native.errnoName(-fd)}`);
    if (Date.now() > deadline) throw new Error('accept timed out');
    await sleep(1);
  }
}

/** A connected pair over loopback: [client, server-side accepted]. */
async function pair(host = '127.0.0.1'): Promise<{ listenFd: number; client: number; server: number }> {
  const listenFd = track(native.listen(host, 0, 0, false));
  const { port } = native.localAddress(listenFd);
  const client = track(native.connect(host, port));
  const server = await acceptOne(listenFd);
  return { listenFd, client, server };
}

function send(fd: number, text: string): void {
  const buf = Buffer.from(text);
  assert.equal(native.write(fd, buf, 0, buf.length), buf.length);
}

function readAll(fd: number, size = 65536): string {
  const buf = Buffer.alloc(size);
  let text = '';
  for (;;) {
    const n = native.read(fd, buf, 0, buf.length);
    if (n <= 0) {
      if (n < 0) assert.equal(n, -EAGAIN);
      return text;
    }
    text += buf.toString('utf8', 0, n);
  }
}

/** Reads until `expected` bytes arrived (loopback delivery is quick but not instant). */
async function readExactly(fd: number, expected: number): Promise<Buffer> {
  const out = Buffer.alloc(expected);
  let got = 0;
  const deadline = Date.now() + 2000;
  while (got < expected) {
    const n = native.read(fd, out, got, expected - got);
    if (n > 0) got += n;
    else if (n === -EAGAIN) {
      if (Date.now() > deadline) throw new Error(`read timed out with ${got}/${expected} bytes`);
      await sleep(1);
    } else throw new Error(`read returned ${n}`);
  }
  return out;
}

describe(`native addon (${native.backend}, ${loadBinding().path})`, () => {
  test('exports the contract', () => {
    if (process.env.MOB_EXPECT_BACKEND) assert.equal(native.backend, process.env.MOB_EXPECT_BACKEND);
    assert.ok(native.backend === 'epoll' || native.backend === 'kqueue');
    assert.equal(native.EVENT_STRIDE, 5);
    assert.equal(native.errnoName(native.errno.ECONNRESET), 'ECONNRESET');
    assert.equal(native.errnoName(-EAGAIN), 'EAGAIN');
    assert.equal(native.errnoName(99999), 'E99999');
    assert.ok(Object.isFrozen(native.errno) && Object.isFrozen(native.sockopt));
    const { soft, hard } = native.getFdLimit();
    assert.ok(soft > 0 && soft <= hard && hard <= Number.MAX_SAFE_INTEGER);
    assert.equal(native.setFdLimit(soft), soft);
  });

  test('listen + connect + accept over IPv4, with addresses', async () => {
    const { listenFd, client, server } = await pair();
    const listening = native.localAddress(listenFd);
    assert.equal(listening.address, '127.0.0.1');
    assert.equal(listening.family, 'IPv4');
    assert.ok(listening.port > 0);
    assert.deepEqual(native.peerAddress(client), listening);
    assert.deepEqual(native.peerAddress(server), native.localAddress(client));
    assert.equal(native.socketError(client), 0);
    assert.equal(native.setNoDelay(client, true), 0);
    assert.equal(native.getsockopt(client, native.sockopt.IPPROTO_TCP, native.sockopt.TCP_NODELAY) !== 0, true);
    assert.ok(native.getsockopt(client, native.sockopt.SOL_SOCKET, native.sockopt.SO_RCVBUF) > 0);
    assert.equal(native.accept(listenFd), -EAGAIN);
  });

  test('read on an empty socket returns -EAGAIN', async () => {
    const { server } = await pair();
    const buf = Buffer.alloc(16);
    assert.equal(native.read(server, buf, 0, 16), -EAGAIN);
  });

  test('write/read round trip, with offsets', async () => {
    const { client, server } = await pair();
    const out = Buffer.from('xxhello, mobyy');
    assert.equal(native.write(client, out, 2, 10), 10);
    const got = await readExactly(server, 10);
    assert.equal(got.toString(), 'hello, mob');
    assert.equal(native.bytesReadable(server), 0);
    // Loopback acknowledges at once; all that matters is that the call works here.
    if (process.platform === 'linux') assert.ok(native.bytesUnsent(client) >= 0);
  });

  test('argument validation', async () => {
    const { client } = await pair();
    const buf = Buffer.alloc(8);
    assert.throws(() => native.write(client, buf, 4, 5), RangeError);
    assert.throws(() => native.write(client, buf, -1, 1), RangeError);
    assert.throws(() => native.read(client, buf, 0, 0), RangeError);
    assert.throws(() => native.write(client, 'nope' as unknown as Uint8Array, 0, 1), TypeError);
    assert.throws(() => native.write(-1, buf, 0, 1), RangeError);
    assert.throws(() => native.writev(client, [buf, 'x' as unknown as Uint8Array]), TypeError);
    assert.throws(() => native.listen('localhost', 0, 0, false), (error: NodeJS.ErrnoException) => error.code === 'EINVAL');
  });

  test('writev of 3 buffers arrives as their concatenation', async () => {
    const { client, server } = await pair();
    const parts = [Buffer.from('one,'), new Uint8Array([0x74, 0x77, 0x6f, 0x2c]), Buffer.from('three')];
    assert.equal(native.writev(client, parts), 13);
    assert.equal((await readExactly(server, 13)).toString(), 'one,two,three');
    assert.equal(native.writev(client, []), 0);
  });

  test('writev sends at most IOV_MAX buffers per call', async () => {
    const { client, server } = await pair();
    const parts = Array.from({ length: 1100 }, () => Buffer.from('z'));
    const n = native.writev(client, parts);
    assert.ok(n >= 16 && n <= 1024, `wrote ${n}`);
    await readExactly(server, n);
  });

  test('writeEach writes one buffer to 3 sockets, -errno per failed fd', async () => {
    const pairs = [await pair(), await pair(), await pair()];
    const closed = track(native.dup(pairs[0].server));
    closeFd(closed);
    const fds = new Int32Array([...pairs.map((p) => p.server), closed]);
    const results = new Int32Array(4);
    const buf = Buffer.from('__broadcast__');
    native.writeEach(fds, 4, buf, 2, 9, results);
    assert.deepEqual([...results], [9, 9, 9, -EBADF]);
    for (const p of pairs) assert.equal((await readExactly(p.client, 9)).toString(), 'broadcast');
    assert.throws(() => native.writeEach(fds, 5, buf, 0, 1, results), RangeError);
  });

  test('edge-triggered read fires once per arrival, not again for data left unread', async () => {
    const { client, server } = await pair();
    const poller = newPoller();
    poller.add(server, 7, READABLE | EDGE);
    assert.deepEqual(waitEvents(poller, 0), []);
    send(client, 'a');
    const first = waitEvents(poller, 1000);
    assert.equal(first.length, 1);
    assert.equal(first[0].token, 7);
    assert.equal(first[0].flags & EV_READABLE, EV_READABLE);
    // Data is still unread, yet no new event: that is the edge.
    assert.deepEqual(waitEvents(poller, 50), []);
    assert.deepEqual(waitEvents(poller, 0), []);
    // Drained, then empty -> non-empty again: fires again.
    assert.equal(readAll(server), 'a');
    send(client, 'b');
    assert.equal(flagsFor(waitEvents(poller, 1000), 7) & EV_READABLE, EV_READABLE);
    assert.deepEqual(waitEvents(poller, 50), []);
  });

  test('level-triggered read fires again while data remains', async () => {
    const { client, server } = await pair();
    const poller = newPoller();
    poller.add(server, 8, READABLE);
    send(client, 'abc');
    for (let i = 0; i < 3; i++) assert.equal(flagsFor(waitEvents(poller, 1000), 8) & EV_READABLE, EV_READABLE);
    const buf = Buffer.alloc(1);
    assert.equal(native.read(server, buf, 0, 1), 1);
    assert.equal(flagsFor(waitEvents(poller, 0), 8) & EV_READABLE, EV_READABLE);
    assert.equal(readAll(server), 'bc');
    assert.deepEqual(waitEvents(poller, 50), []);
  });

  test('oneshot disarms until modify re-arms; re-arming fires at once if data waits', async () => {
    const { client, server } = await pair();
    const poller = newPoller();
    poller.add(server, 9, READABLE | ONESHOT);
    send(client, 'x');
    assert.equal(flagsFor(waitEvents(poller, 1000), 9) & EV_READABLE, EV_READABLE);
    send(client, 'y');
    await sleep(10);
    assert.deepEqual(waitEvents(poller, 50), []);
    poller.modify(server, 10, READABLE | ONESHOT);
    const rearmed = waitEvents(poller, 0);
    assert.equal(rearmed.length, 1);
    assert.equal(rearmed[0].token, 10);
    assert.deepEqual(waitEvents(poller, 50), []);
  });

  test('modify switches interest from read to write', async () => {
    const { client, server } = await pair();
    const poller = newPoller();
    poller.add(server, 11, READABLE);
    assert.deepEqual(waitEvents(poller, 0), []);
    poller.modify(server, 12, WRITABLE);
    const events = waitEvents(poller, 1000);
    assert.equal(flagsFor(events, 12), EV_WRITABLE);
    send(client, 'q');
    await sleep(10);
    assert.equal(flagsFor(waitEvents(poller, 0), 12) & EV_READABLE, 0);
  });

  test('delete stops events; deleting again is not an error', async () => {
    const { client, server } = await pair();
    const poller = newPoller();
    poller.add(server, 13, READABLE);
    poller.delete(server);
    send(client, 'z');
    assert.deepEqual(waitEvents(poller, 50), []);
    poller.delete(server);
  });

  test('the largest token round-trips exactly; larger ones throw RangeError', async () => {
    const { client, server } = await pair();
    const poller = newPoller();
    assert.equal(MAX_TOKEN, 2 ** 53 - 1);
    poller.add(server, MAX_TOKEN, READABLE);
    send(client, 't');
    const events = waitEvents(poller, 1000);
    assert.equal(events.length, 1);
    assert.equal(events[0].token, 2 ** 53 - 1);
    assert.throws(() => poller.modify(server, 2 ** 53, READABLE), RangeError);
    assert.throws(() => poller.modify(server, -1, READABLE), RangeError);
    assert.throws(() => poller.modify(server, 1.5, READABLE), RangeError);
    assert.throws(() => poller.modify(server, 1, 16), RangeError);
    assert.throws(() => poller.modify(server, '1' as unknown as number, READABLE), TypeError);
    assert.throws(() => poller.wait(new Uint32Array(4), 0), RangeError);
  });

  test('registration errors throw SystemErrors', async () => {
    const { server } = await pair();
    const poller = newPoller();
    const closed = track(native.dup(server));
    closeFd(closed);
    assert.throws(() => poller.add(closed, 1, READABLE), (error: NodeJS.ErrnoException) => {
      assert.equal(error.code, 'EBADF');
      assert.equal(error.errno, EBADF);
      assert.equal(error.syscall, native.backend === 'epoll' ? 'epoll_ctl' : 'kevent');
      return true;
    });
  });

  test('writing to a peer that sent RST returns -EPIPE/-ECONNRESET, never SIGPIPE', async () => {
    let sigpipes = 0;
    const onSigpipe = (): void => void sigpipes++;
    // Listening makes Node deliver SIGPIPE to JS instead of ignoring it.
    process.on('SIGPIPE', onSigpipe);
    try {
      const { client, server } = await pair();
      const poller = newPoller();
      poller.add(client, 14, READABLE);
      assert.equal(native.setLinger(server, true, 0), 0);
      closeFd(server);
      const events = waitEvents(poller, 1000);
      assert.ok(flagsFor(events, 14) & (EV_READABLE | EV_READ_CLOSED | EV_ERROR));
      poller.delete(client);
      const buf = Buffer.from('after reset');
      const results = [native.write(client, buf, 0, buf.length), native.writev(client, [buf, buf])];
      const each = new Int32Array(1);
      native.writeEach(new Int32Array([client]), 1, buf, 0, buf.length, each);
      results.push(each[0], native.write(client, buf, 0, buf.length));
      for (const n of results) assert.ok(n === -EPIPE || n === -ECONNRESET, `write returned ${n}`);
      await sleep(20);
      assert.equal(sigpipes, 0);
    } finally {
      process.off('SIGPIPE', onSigpipe);
    }
  });

  test('listen on a port in use throws EADDRINUSE with the address', () => {
    const first = track(native.listen('127.0.0.1', 0, 16, false));
    const { port } = native.localAddress(first);
    assert.throws(
      () => track(native.listen('127.0.0.1', port, 16, false)),
      (error: NodeJS.ErrnoException) => {
        assert.ok(error instanceof Error);
        assert.equal(error.code, 'EADDRINUSE');
        assert.ok(error.errno! > 0);
        assert.equal(native.errnoName(error.errno!), 'EADDRINUSE');
        assert.equal(error.syscall, 'bind');
        assert.match(error.message, new RegExp(`^bind EADDRINUSE: .+ 127\\.0\\.0\\.1:${port}$`));
        return true;
      },
    );
  });

  test('connect to a closed port reports ECONNREFUSED through the poller', async () => {
    const probe = track(native.listen('127.0.0.1', 0, 0, false));
    const { port } = native.localAddress(probe);
    closeFd(probe);
    const fd = track(native.connect('127.0.0.1', port));
    const poller = newPoller();
    poller.add(fd, 15, READABLE | WRITABLE);
    const deadline = Date.now() + 2000;
    let flags = 0;
    while ((flags & (EV_WRITE_CLOSED | EV_ERROR | EV_READ_CLOSED)) === 0 && Date.now() < deadline) {
      flags |= flagsFor(waitEvents(poller, 100), 15);
    }
    assert.ok(flags & (EV_WRITE_CLOSED | EV_ERROR | EV_READ_CLOSED), `flags ${flags}`);
    const error = native.socketError(fd);
    if (error !== 0) assert.equal(native.errnoName(error), 'ECONNREFUSED');
    poller.delete(fd);
  });

  test('IPv6 ::1 listen/connect', async (t) => {
    let listenFd: number;
    try {
      listenFd = track(native.listen('::1', 0, 0, false));
    } catch (error) {
      t.skip(`::1 unavailable: ${(error as Error).message}`);
      return;
    }
    const { port, family, address } = native.localAddress(listenFd);
    assert.equal(family, 'IPv6');
    assert.equal(address, '::1');
    const client = track(native.connect('::1', port));
    const server = await acceptOne(listenFd);
    assert.equal(native.peerAddress(server).family, 'IPv6');
    send(client, 'v6');
    assert.equal((await readExactly(server, 2)).toString(), 'v6');
  });

  test('a hang-up yields READ_CLOSED, then read returns 0', async () => {
    const { client, server } = await pair();
    const poller = newPoller();
    poller.add(server, 16, READABLE);
    closeFd(client);
    const flags = flagsFor(waitEvents(poller, 1000), 16);
    assert.equal(flags & EV_READ_CLOSED, EV_READ_CLOSED, `flags ${flags}`);
    const buf = Buffer.alloc(4);
    assert.equal(native.read(server, buf, 0, 4), 0);
    poller.delete(server);
  });

  test('Poller.start delivers events through libuv while timers keep firing', async () => {
    const { client, server } = await pair();
    const poller = newPoller();
    poller.add(server, 17, READABLE);
    const words = new Uint32Array(8 * EVENT_STRIDE);
    let timerFired = false;
    let microtaskRan = false;
    const delivered = new Promise<Ev[]>((resolve) => {
      poller.start(words, (count) => {
        const events = decode(words, count);
        queueMicrotask(() => (microtaskRan = true));
        resolve(events);
      });
    });
    setTimeout(() => {
      timerFired = true;
      send(client, 'via libuv');
    }, 20);
    const events = await delivered;
    assert.ok(timerFired);
    assert.equal(events[0].token, 17);
    assert.equal(events[0].flags & EV_READABLE, EV_READABLE);
    assert.ok(microtaskRan);
    poller.stop();
    poller.unref();
    poller.ref();
    // After stop, the callback is gone: data stays for wait().
    assert.equal(readAll(server), 'via libuv');
    poller.close();
    poller.close();
    assert.equal(poller.fd, -1);
    assert.throws(() => poller.wait(words, 0), (error: NodeJS.ErrnoException) => error.code === 'EBADF');
  });

  test('an exception thrown by onEvents reaches process uncaughtException', () => {
    const script = `
      import { native } from ${JSON.stringify(new URL('../src/native/binding.ts', import.meta.url).href)};
      const l = native.listen('127.0.0.1', 0, 0, false);
      const c = native.connect('127.0.0.1', native.localAddress(l).port);
      const p = new native.Poller();
      p.add(c, 1, 2);
      process.on('uncaughtException', (e) => { console.log('caught:' + e.message); p.close(); });
      p.start(new Uint32Array(10), () => { throw new Error('boom'); });
    `;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(child.status, 0, child.stderr);
    assert.match(child.stdout, /caught:boom/);
  });

  test('close() inside onEvents, restart after stop(), and GC of unclosed pollers', async () => {
    const { client, server } = await pair();
    const poller = newPoller();
    poller.add(server, 18, READABLE);
    const words = new Uint32Array(EVENT_STRIDE);
    // Restart: stop() and start() again with a new callback.
    let stale = 0;
    poller.start(words, () => void stale++);
    poller.stop();
    const fired = new Promise<number>((resolve) => {
      poller.start(words, (count) => {
        poller.close();
        resolve(count);
      });
    });
    send(client, 'c');
    assert.equal(await fired, 1);
    assert.equal(stale, 0);
    assert.equal(poller.fd, -1);
    await sleep(10);

    const script = `
      import { native } from ${JSON.stringify(new URL('../src/native/binding.ts', import.meta.url).href)};
      import { readdirSync } from 'node:fs';
      const count = () => process.platform === 'linux' ? readdirSync('/proc/self/fd').length : 0;
      const before = count();
      for (let i = 0; i < 200; i++) {
        const p = new native.Poller();
        if (i % 2) { p.start(new Uint32Array(5), () => {}); p.stop(); }
      }
      for (let i = 0; i < 5; i++) { globalThis.gc(); await new Promise((r) => setImmediate(r)); }
      const leaked = count() - before;
      console.log('leaked:' + leaked);
      process.exit(leaked > 20 ? 1 : 0);
    `;
    const child = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(child.status, 0, child.stdout + child.stderr);
  });
});

describe('loading the addon', () => {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const src = (path: string) => JSON.stringify(new URL(`../src/${path}`, import.meta.url).href);
  function runChild(script: string, env: NodeJS.ProcessEnv = process.env) {
    return spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: root,
      env,
      encoding: 'utf8',
      timeout: 30_000,
    });
  }
  const addonMapped = `() => readFileSync('/proc/self/maps', 'utf8').split('\\n').some((l) => l.endsWith('.node'))`;

  test('importing the constants, the poll layer and the servers does not load it; first use does', { skip: process.platform !== 'linux' }, () => {
    const child = runChild(`
      import { readFileSync } from 'node:fs';
      import { InterestBits, EventBits, errno, native, loadNative, TWO_POW_32 } from ${src('native/binding.ts')};
      import { Interest, Events } from ${src('poll/index.ts')};
      import ${src('server/native/server.ts')};
      import ${src('lab/harness.ts')};
      const mapped = ${addonMapped};
      const before = mapped();
      new Events(4);
      const constants = InterestBits.READABLE + EventBits.ERROR + errno.EAGAIN + Interest.BOTH + TWO_POW_32;
      const stillNot = mapped();
      const backend = native.backend;
      const addon = loadNative();
      console.log(JSON.stringify({ before, stillNot, after: mapped(), backend, constants: constants > 0,
        same: native.read === addon.read && native.Poller === addon.Poller,
        errnoAgrees: Object.keys(errno).length === Object.keys(addon.errno).length && Object.entries(errno).every(([k, v]) => addon.errno[k] === v) }));
    `);
    assert.equal(child.status, 0, child.stderr);
    const result = JSON.parse(child.stdout);
    assert.deepEqual(result, { before: false, stillNot: false, after: true, backend: result.backend, constants: true, same: true, errnoAgrees: true });
  });

  test('after first use, native holds plain data properties in fast mode: no getter per call', () => {
    const child = spawnSync(
      process.execPath,
      ['--allow-natives-syntax', '--import', 'tsx', '--input-type=module', '-e', `
        import { native } from ${src('native/binding.ts')};
        native.read;
        const descriptor = Object.getOwnPropertyDescriptor(native, 'read');
        console.log(JSON.stringify({ data: 'value' in descriptor && !('get' in descriptor), fast: %HasFastProperties(native) }));
      `],
      { cwd: root, encoding: 'utf8', timeout: 30_000 },
    );
    assert.equal(child.status, 0, child.stderr);
    assert.deepEqual(JSON.parse(child.stdout), { data: true, fast: true });
  });

  test('native forwards exactly the members the addon exports', () => {
    assert.deepEqual([...bindingKeys].sort(), Object.keys(loadNative()).sort());
    for (const key of bindingKeys) assert.equal(native[key], loadNative()[key], key);
  });

  test('a missing addon is one clear error, MOB_NO_ADDON, at first use and not at import', () => {
    const empty = mkdtempSync(join(tmpdir(), 'mob-no-addon-'));
    try {
      const child = runChild(
        `
        import { native, errno } from ${src('native/binding.ts')};
        import { Poll } from ${src('poll/index.ts')};
        const codes = [];
        for (const use of [() => native.backend, () => new Poll(), () => native.listen('127.0.0.1', 0, 0, false)]) {
          try { use(); codes.push('loaded'); } catch (e) { codes.push(e.code + ': ' + e.message); }
        }
        console.log(JSON.stringify({ eagain: errno.EAGAIN, codes }));
      `,
        { ...process.env, MOB_PREBUILD: empty },
      );
      assert.equal(child.status, 0, child.stderr);
      const { eagain, codes } = JSON.parse(child.stdout);
      assert.ok(eagain > 0);
      assert.equal(codes.length, 3);
      for (const line of codes) assert.match(line, /^MOB_NO_ADDON: mob: no native addon .*npm run build:native/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});

/** fdinfo's `flags` (octal): O_NONBLOCK and O_CLOEXEC as the kernel holds them. */
function fdFlags(fd: number): { nonBlocking: boolean; cloexec: boolean } {
  const flags = parseInt(/^flags:\s+([0-7]+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1], 8);
  return { nonBlocking: (flags & 0o4000) !== 0, cloexec: (flags & 0o2000000) !== 0 };
}

const expectErrno = (code: string) => (error: NodeJS.ErrnoException) => error.code === code;

describe(`descriptors for scale-out and socket activation (${native.backend})`, () => {
  test('socketpair() gives two connected, non-blocking, close-on-exec AF_UNIX stream ends', { skip: process.platform !== 'linux' && 'reads /proc' }, async () => {
    const [a, b] = native.socketpair().map(track);
    for (const fd of [a, b]) assert.deepEqual(fdFlags(fd), { nonBlocking: true, cloexec: true });
    assert.deepEqual(native.describeSocket(a), { family: 'unix', type: 'stream', listening: false });
    const buf = Buffer.alloc(16);
    assert.equal(native.read(a, buf, 0, buf.length), -EAGAIN);
    send(a, 'to b');
    assert.equal((await readExactly(b, 4)).toString(), 'to b');
    send(b, 'to a');
    assert.equal((await readExactly(a, 4)).toString(), 'to a');
    closeFd(b);
    assert.equal(native.read(a, buf, 0, buf.length), 0);
  });

  test('setNonBlocking() sets O_NONBLOCK and FD_CLOEXEC on a descriptor made elsewhere; -EBADF on a closed one', { skip: process.platform !== 'linux' && 'reads /proc' }, () => {
    const fd = openSync('/dev/null', 'r');
    try {
      assert.equal(fdFlags(fd).nonBlocking, false);
      assert.equal(native.setNonBlocking(fd), 0);
      assert.deepEqual(fdFlags(fd), { nonBlocking: true, cloexec: true });
    } finally {
      closeSync(fd);
    }
    assert.equal(native.setNonBlocking(fd), -EBADF);
  });

  test('describeSocket() tells a listening TCP socket from an accepted one, a unix socket and a file', async () => {
    const { listenFd, server } = await pair();
    assert.deepEqual(native.describeSocket(listenFd), { family: 'IPv4', type: 'stream', listening: true });
    assert.deepEqual(native.describeSocket(server), { family: 'IPv4', type: 'stream', listening: false });
    const v6 = track(native.listen('::1', 0, 0, false));
    assert.deepEqual(native.describeSocket(v6), { family: 'IPv6', type: 'stream', listening: true });
    const file = openSync(fileURLToPath(import.meta.url), 'r');
    try {
      assert.throws(() => native.describeSocket(file), expectErrno('ENOTSOCK'));
    } finally {
      closeSync(file);
    }
  });

  test('getsockopt() returns the value and throws on failure instead of returning -errno', async () => {
    const { client } = await pair();
    assert.equal(native.getsockopt(client, native.sockopt.SOL_SOCKET, native.sockopt.SO_ACCEPTCONN), 0);
    assert.ok(native.getsockopt(client, native.sockopt.SOL_SOCKET, native.sockopt.SO_SNDBUF) > 0);
    const closed = track(native.dup(client));
    closeFd(closed);
    assert.throws(() => native.getsockopt(closed, native.sockopt.SOL_SOCKET, native.sockopt.SO_SNDBUF), (error: NodeJS.ErrnoException) => {
      assert.equal(error.code, 'EBADF');
      assert.equal(error.syscall, 'getsockopt');
      return true;
    });
  });

  test('disown() and adopt() move ownership; adopt() refuses a closed descriptor', () => {
    const [a, b] = native.socketpair().map(track);
    assert.equal(native.disown(a), true);
    assert.equal(native.disown(a), false);
    native.adopt(a);
    assert.equal(native.disown(a), true);
    native.adopt(a);
    closeFd(b);
    assert.equal(native.disown(b), false, 'close() ends ownership');
    assert.throws(() => native.adopt(b), expectErrno('EBADF'));
  });
});

describe(`interest bits and capabilities (${native.backend})`, () => {
  const epoll = native.backend === 'epoll';

  test('capabilities say what the backend honours, and kernel holds its own constants', () => {
    const caps = native.capabilities;
    assert.equal(caps.exclusive, epoll);
    assert.equal(caps.noRdhup, epoll);
    assert.equal(caps.dispatch, true);
    assert.equal(caps.oneshotFlag, epoll ? 'EPOLLONESHOT' : 'EV_ONESHOT');
    assert.equal(caps.dispatchFlag, epoll ? 'EPOLLONESHOT' : 'EV_DISPATCH');
    assert.equal(caps.interest, epoll ? 127 : 127 & ~(EXCLUSIVE | NO_RDHUP));
    assert.ok(Object.isFrozen(native.kernel));
    if (epoll) {
      assert.equal(native.kernel.EPOLLIN, 0x001);
      assert.equal(native.kernel.EPOLLRDHUP, 0x2000);
      assert.equal(native.kernel.EPOLLEXCLUSIVE, 0x1000_0000);
      assert.equal(native.kernel.EPOLLET, 0x8000_0000);
    } else {
      assert.equal(native.kernel.EVFILT_READ, -1);
      assert.equal(native.kernel.EVFILT_WRITE, -2);
      assert.equal(native.kernel.EV_EOF, 0x8000);
      assert.equal(native.kernel.EV_DISPATCH, 0x0080);
    }
  });

  test('an interest with neither READABLE nor WRITABLE, ONESHOT with DISPATCH, or EXCLUSIVE with either, is refused on every backend', async () => {
    const { server } = await pair();
    const poller = newPoller();
    const invalid = (error: Error) => error instanceof RangeError && /interest/.test(error.message);
    assert.throws(() => poller.add(server, 1, 0), invalid);
    assert.throws(() => poller.add(server, 1, EDGE), invalid);
    assert.throws(() => poller.add(server, 1, READABLE | ONESHOT | DISPATCH), invalid);
    assert.throws(() => poller.add(server, 1, READABLE | EXCLUSIVE | ONESHOT), invalid);
    assert.throws(() => poller.add(server, 1, 128), RangeError);
    poller.add(server, 1, READABLE);
    assert.throws(() => poller.modify(server, 1, EDGE), invalid);
  });

  test('the Poll layer names the new bits and passes them through', () => {
    assert.equal(describeInterest(READABLE | EDGE | DISPATCH), 'READABLE|edge|dispatch');
    assert.equal(describeInterest(READABLE | Option.EXCLUSIVE | Option.NO_RDHUP), 'READABLE|level|exclusive|no-rdhup');
    assert.equal(Trigger.EDGE_DISPATCH, EDGE | DISPATCH);
  });

  test('a bit the backend cannot honour throws ENOTSUP, never silently ignored', { skip: epoll && 'epoll honours every bit' }, async () => {
    const { server } = await pair();
    const poller = newPoller();
    for (const bit of [EXCLUSIVE, NO_RDHUP]) {
      assert.throws(() => poller.add(server, 1, READABLE | bit), (error: NodeJS.ErrnoException) => {
        assert.equal(error.code, 'ENOTSUP');
        assert.match(error.message, /capabilities/);
        return true;
      });
    }
  });

  test('NO_RDHUP: a FIN shows as READABLE alone, and READ_CLOSED only when read() returns 0; without it, READ_CLOSED comes with the FIN', { skip: !epoll && 'kqueue always reports EV_EOF' }, async () => {
    const plain = await pair();
    const quiet = await pair();
    const poller = newPoller();
    poller.add(plain.server, 1, READABLE);
    poller.add(quiet.server, 2, READABLE | NO_RDHUP);
    assert.equal(native.shutdown(plain.client, 1), 0);
    assert.equal(native.shutdown(quiet.client, 1), 0);
    await sleep(20);
    const events = waitEvents(poller, 1000);
    assert.equal(flagsFor(events, 1), EV_READABLE | EV_READ_CLOSED);
    assert.equal(flagsFor(events, 2), EV_READABLE);
    const raw = events.find((e) => e.token === 2)!.raw;
    assert.equal(raw & native.kernel.EPOLLRDHUP, 0);
    assert.equal(raw & native.kernel.EPOLLIN, native.kernel.EPOLLIN);
    assert.equal(native.read(quiet.server, Buffer.alloc(8), 0, 8), 0);
  });

  test('EXCLUSIVE registers with add() and reports a connection; modify() of it is the kernel\'s EINVAL', { skip: !epoll && 'epoll only' }, async () => {
    const listenFd = track(native.listen('127.0.0.1', 0, 0, false));
    const poller = newPoller();
    // Accepted at all only because EXCLUSIVE leaves EPOLLRDHUP out: the kernel refuses the pair.
    poller.add(listenFd, 9, READABLE | EXCLUSIVE);
    track(native.connect('127.0.0.1', native.localAddress(listenFd).port));
    const events = waitEvents(poller, 1000);
    assert.equal(flagsFor(events, 9), EV_READABLE);
    assert.throws(() => poller.modify(listenFd, 9, READABLE | EXCLUSIVE), (error: NodeJS.ErrnoException) => error.code === 'EINVAL' && error.syscall === 'epoll_ctl');
  });

  for (const [name, bit] of [['ONESHOT', ONESHOT], ['DISPATCH', DISPATCH]] as const) {
    for (const trigger of [0, EDGE]) {
      test(`${name}${trigger ? ' (edge)' : ''}: one event, then silence with data still waiting, until modify() re-arms it`, async () => {
        const { client, server } = await pair();
        const poller = newPoller();
        poller.add(server, 5, READABLE | bit | trigger);
        send(client, 'one');
        await sleep(10);
        assert.equal(flagsFor(waitEvents(poller, 1000), 5) & EV_READABLE, EV_READABLE);
        send(client, 'two');
        await sleep(10);
        assert.deepEqual(waitEvents(poller, 50), [], 'disarmed after one event');
        poller.modify(server, 6, READABLE | bit | trigger);
        assert.equal(flagsFor(waitEvents(poller, 1000), 6) & EV_READABLE, EV_READABLE);
        assert.deepEqual(waitEvents(poller, 50), [], 'disarmed again');
        assert.equal(readAll(server), 'onetwo');
      });
    }
  }
});
