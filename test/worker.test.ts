// The addon in worker threads (#12): Node unloads an addon a worker loaded when the worker
// ends, so a libuv close callback still pending then would run unloaded code (SIGSEGV), and
// descriptors nobody closed would leak, a bound listener included. Each scenario runs in a
// child process that loads the addon ONLY in its workers (the test's own process never
// needs it for this), gives every worker a started poller, a listener and an accepted
// connection, terminates them all, and then checks the exit status, /proc/self/fd and that
// every listener's port now refuses connections. Real loopback sockets throughout.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { on } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { resolveAddonPath } from '../src/native/binding.ts';

const addonPath = resolveAddonPath();

// Plain CommonJS, so that nothing but the workers ever requires the addon.
const CHILD = String.raw`
const { Worker } = require('node:worker_threads');
const { readdirSync } = require('node:fs');
const net = require('node:net');
const [addonPath, total, parallel, mode, ending] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3]), process.argv[4], process.argv[5]];

const WORKER = String.raw` + '`' + String.raw`
const { parentPort, workerData } = require('node:worker_threads');
const b = require(workerData.addonPath);
const listener = b.listen('127.0.0.1', 0, 0, false);
const port = b.localAddress(listener).port;
const client = b.connect('127.0.0.1', port);
const poller = new b.Poller();
poller.add(listener, 1, 1);
const words = new Uint32Array(b.EVENT_STRIDE * 4);
if (poller.wait(words, 10000) !== 1) throw new Error('no connection to accept');
const accepted = b.accept(listener);
if (accepted < 0) throw new Error('accept: ' + b.errnoName(accepted));
poller.add(accepted, 2, 1);
poller.add(client, 3, 2);
// A second poller, started and stopped: its libuv handle exists but is not polling.
const idle = new b.Poller();
idle.start(new Uint32Array(b.EVENT_STRIDE), () => {});
idle.stop();
// A socketpair, one end of it handed over (disowned) to the main thread.
const [kept, given] = b.socketpair();
b.disown(given);
// Started and ref'd: the worker stays alive until terminate(). Unref'd, it ends by itself.
poller.start(words, () => {});
if (workerData.ending === 'exit') poller.unref();
parentPort.postMessage({ port, given, fds: [listener, client, accepted, poller.fd, idle.fd, kept] });
` + '`' + String.raw`;

const { readlinkSync, readFileSync } = require('node:fs');
const fdTable = () => new Map(readdirSync('/proc/self/fd').map((fd) => { try { return [fd, readlinkSync('/proc/self/fd/' + fd)]; } catch { return [fd, '(gone)']; } }));
const count = () => fdTable().size;
// Inodes of the sockets listening on a port (/proc/net/tcp: state 0A is LISTEN).
const listeningInodes = (port) => readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)
  .map((line) => line.trim().split(/\s+/))
  .filter((f) => f.length > 9 && parseInt(f[1].split(':')[1], 16) === port && f[3] === '0A')
  .map((f) => 'socket:[' + f[9] + ']');
// Refused, or accepted by a listener that is not this process's: other programs on this
// machine bind ephemeral ports too, and one may have taken a freed port in the meantime.
const closedHere = (port) => new Promise((resolve) => {
  const socket = net.connect(port, '127.0.0.1');
  socket.once('connect', () => {
    socket.destroy();
    const mine = new Set(fdTable().values());
    resolve(!listeningInodes(port).some((inode) => mine.has(inode)));
  });
  socket.once('error', (error) => resolve(error.code === 'ECONNREFUSED'));
});

async function one(code = WORKER) {
  const worker = new Worker(code, { eval: true, workerData: { addonPath, ending } });
  const exited = new Promise((resolve) => worker.once('exit', resolve));
  const message = await new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
    exited.then((code) => reject(new Error('worker exited before its message: ' + code)));
  });
  if (ending === 'exit') {
    const code = await exited;
    if (code !== 0) throw new Error('worker exit code ' + code);
  } else {
    await worker.terminate();
  }
  return message;
}

(async () => {
  // The first worker makes Node open /dev/null for good (with piped stdio): warm that up with
  // a worker that does not load the addon, so "before" is Node's own steady state.
  await one("require('node:worker_threads').parentPort.postMessage({})");
  if (mode === 'warm') {
    await one();
    // libkqueue releases the warm-up kqueue's own descriptors from its monitor thread: wait
    // until the count has settled (unchanged for 250 ms, at most 3 s).
    for (let last = -1, same = 0, i = 0; same < 5 && i < 60; i++) {
      const now = count();
      same = now === last ? same + 1 : 0;
      last = now;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const table = fdTable();
  const before = table.size;
  const messages = [];
  let next = 0;
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (next < total) { next++; messages.push(await one()); }
  }));
  const given = messages.map((m) => m.given);
  // The handed-over ends are the main thread's to close now; closing them must leave the
  // count where it was (nothing else of the workers' is still open).
  for (const fd of given) require('node:fs').closeSync(fd);
  let after = count();
  // libkqueue releases a closed kqueue's own descriptors from its monitor thread: allow it a moment.
  for (let i = 0; i < 100 && after !== before; i++) { await new Promise((r) => setTimeout(r, 20)); after = count(); }
  const ports = messages.map((m) => m.port);
  const allRefused = (await Promise.all(ports.map(closedHere))).every(Boolean);
  const extra = [...fdTable()].filter(([fd, link]) => table.get(fd) !== link).map(([fd, link]) => fd + ' -> ' + link);
  console.log(JSON.stringify({ workers: messages.length, before, after, allRefused, extra }));
})().catch((error) => { console.error(error); process.exit(3); });
`;

function runChild(total: number, parallel: number, mode: string, ending: 'terminate' | 'exit') {
  return spawnSync(process.execPath, ['-e', CHILD, addonPath, String(total), String(parallel), mode, ending], {
    encoding: 'utf8',
    timeout: 120_000,
  });
}

describe('the addon loaded only in worker threads', { skip: process.platform !== 'linux' && 'counts /proc/self/fd' }, () => {
  const scenarios = [[1, 1, 'terminate'], [8, 8, 'terminate'], [40, 8, 'terminate'], [8, 8, 'exit']] as const;
  for (const [total, parallel, ending] of scenarios) {
    const how = ending === 'exit' ? 'ending by themselves (pollers unref\'d)' : 'terminated';
    test(`${total} workers (${parallel} at a time) with started pollers, ${how}: exit 0, no descriptor left, listeners closed`, () => {
      // On libkqueue, the first kqueue of a process starts a monitor thread that keeps its own
      // descriptors for good: one warm-up worker first, so that "before" already has them.
      const child = runChild(total, parallel, process.env.MOB_EXPECT_BACKEND === 'kqueue' ? 'warm' : '', ending);
      assert.equal(child.signal, null, `child killed by ${child.signal}: ${child.stderr}`);
      assert.equal(child.status, 0, child.stderr);
      const result = JSON.parse(child.stdout.trim().split('\n').at(-1)!);
      assert.equal(result.workers, total);
      assert.equal(result.after, result.before, `descriptors before ${result.before}, after ${result.after}: ${result.extra.join(', ')}`);
      assert.equal(result.allRefused, true, 'a terminated worker left its listener open');
    });
  }
});

// Workers terminated while they call into the addon in a loop: a call that arrives as the
// environment stops cannot throw, and node-addon-api used to make that a fatal error that
// aborted the whole process (NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS in the builds).
const BUSY_CHILD = String.raw`
const { Worker } = require('node:worker_threads');
const code = 'const b = require(' + JSON.stringify(process.argv[1]) + ');' +
  "const p = new b.Poller(); const l = b.listen('127.0.0.1', 0, 0, false); p.add(l, 1, 1);" +
  "const w = new Uint32Array(b.EVENT_STRIDE * 4); require('node:worker_threads').parentPort.postMessage('busy');" +
  'for (;;) { p.wait(w, 0); p.fd; b.accept(l); b.errnoName(11); }';
(async () => {
  for (let round = 0; round < 10; round++) {
    await Promise.all(Array.from({ length: 4 }, async (_, i) => {
      const worker = new Worker(code, { eval: true });
      await new Promise((resolve) => worker.once('message', resolve));
      await new Promise((resolve) => setTimeout(resolve, 2 + i * 5));
      await worker.terminate();
    }));
  }
  console.log('survived');
})();
`;

test('workers terminated in the middle of addon calls do not abort the process', () => {
  const child = spawnSync(process.execPath, ['-e', BUSY_CHILD, addonPath], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(child.signal, null, `child killed by ${child.signal}: ${child.stderr.split('\n').slice(0, 3).join(' | ')}`);
  assert.equal(child.status, 0, child.stderr);
  assert.equal(child.stdout.trim(), 'survived');
});

describe('descriptors shared with worker threads', () => {
  // These load the addon in this process too: the listener and the socketpair are made here.
  const load = () => import('../src/native/binding.ts').then((m) => m.loadNative());

  function startWorker(code: string, workerData: object): { worker: Worker; messages: AsyncIterator<unknown> } {
    const worker = new Worker(`const { parentPort, workerData } = require('node:worker_threads'); const b = require(workerData.addonPath); ${code}`, {
      eval: true,
      workerData: { addonPath, ...workerData },
    });
    worker.on('error', (error) => assert.fail(error));
    const messages = on(worker, 'message');
    return { worker, messages: { next: async () => ({ done: false, value: ((await messages.next()).value as unknown[])[0] }) } };
  }

  test('a descriptor disowned here and adopted by a worker is closed when that worker ends', async () => {
    const native = await load();
    const [mine, theirs] = native.socketpair();
    assert.equal(native.disown(theirs), true);
    const { worker, messages } = startWorker(
      `b.adopt(workerData.fd); const p = new b.Poller(); p.add(workerData.fd, 1, 1); p.start(new Uint32Array(5), () => {}); parentPort.postMessage('adopted');`,
      { fd: theirs },
    );
    try {
      assert.equal((await messages.next()).value, 'adopted');
      const buf = Buffer.alloc(8);
      assert.equal(native.read(mine, buf, 0, buf.length), -native.errno.EAGAIN, 'still open while the worker runs');
      await worker.terminate();
      assert.equal(native.read(mine, buf, 0, buf.length), 0, 'the worker closed its end at teardown');
    } finally {
      native.close(mine);
    }
  });

  test('EXCLUSIVE: one connection wakes one of two workers blocked on a shared listener; without it, both', { skip: process.platform !== 'linux' && 'EPOLLEXCLUSIVE is Linux epoll' }, async (t) => {
    const native = await load();
    if (!native.capabilities.exclusive) return t.skip(`${native.backend} has no EXCLUSIVE`);
    // EPOLLEXCLUSIVE only changes who is woken among threads blocked in epoll_wait: each
    // worker blocks on its own poller. A worker slow to block may still see the event (the
    // kernel then has nobody to wake exclusively), so an exclusive round is retried; a
    // round without the bit is never retried and must wake both.
    async function round(interest: number): Promise<number> {
      const listener = native.listen('127.0.0.1', 0, 0, false);
      const workers = [0, 1].map(() =>
        startWorker(
          `const p = new b.Poller(); p.add(workerData.listener, 1, workerData.interest); parentPort.postMessage('waiting');
           parentPort.postMessage(p.wait(new Uint32Array(b.EVENT_STRIDE * 4), 3000)); p.close();`,
          { listener, interest },
        ),
      );
      try {
        for (const { messages } of workers) assert.equal((await messages.next()).value, 'waiting');
        await sleep(300);
        const client = native.connect('127.0.0.1', native.localAddress(listener).port);
        const counts = await Promise.all(workers.map(async ({ messages }) => (await messages.next()).value as number));
        native.close(client);
        return counts.reduce((a, b) => a + b, 0);
      } finally {
        await Promise.all(workers.map(({ worker }) => worker.terminate()));
        native.close(listener);
      }
    }
    assert.equal(await round(1), 2, 'without EXCLUSIVE both pollers report the connection');
    let woken = 0;
    for (let attempt = 0; attempt < 3 && woken !== 1; attempt++) woken = await round(1 | 16);
    assert.equal(woken, 1, 'with EXCLUSIVE one poller reports it');
  });
});
