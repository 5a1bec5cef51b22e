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
import { resolveAddonPath } from '../src/native/binding.ts';

const addonPath = resolveAddonPath();

// Plain CommonJS, so that nothing but the workers ever requires the addon.
const CHILD = String.raw`
const { Worker } = require('node:worker_threads');
const { readdirSync } = require('node:fs');
const net = require('node:net');
const [addonPath, total, parallel, mode] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3]), process.argv[4]];

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
// Started and ref'd: the worker stays alive until terminate().
poller.start(words, () => {});
parentPort.postMessage({ port, given, fds: [listener, client, accepted, poller.fd, idle.fd, kept] });
` + '`' + String.raw`;

const { readlinkSync } = require('node:fs');
const fdTable = () => new Map(readdirSync('/proc/self/fd').map((fd) => { try { return [fd, readlinkSync('/proc/self/fd/' + fd)]; } catch { return [fd, '(gone)']; } }));
const count = () => fdTable().size;
const refused = (port) => new Promise((resolve) => {
  const socket = net.connect(port, '127.0.0.1');
  socket.once('connect', () => { socket.destroy(); resolve(false); });
  socket.once('error', (error) => resolve(error.code === 'ECONNREFUSED'));
});

async function one(code = WORKER) {
  const worker = new Worker(code, { eval: true, workerData: { addonPath } });
  const message = await new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error('worker exited early: ' + code)));
  });
  await worker.terminate();
  return message;
}

(async () => {
  // The first worker makes Node open /dev/null for good (with piped stdio): warm that up with
  // a worker that does not load the addon, so "before" is Node's own steady state.
  await one("require('node:worker_threads').parentPort.postMessage({})");
  if (mode === 'warm') await one();
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
  const allRefused = (await Promise.all(ports.map(refused))).every(Boolean);
  const extra = [...fdTable()].filter(([fd, link]) => table.get(fd) !== link).map(([fd, link]) => fd + ' -> ' + link);
  console.log(JSON.stringify({ workers: messages.length, before, after, allRefused, extra }));
})().catch((error) => { console.error(error); process.exit(3); });
`;

function runChild(total: number, parallel: number, mode = '') {
  return spawnSync(process.execPath, ['-e', CHILD, addonPath, String(total), String(parallel), mode], {
    encoding: 'utf8',
    timeout: 120_000,
  });
}

describe('the addon loaded only in worker threads', { skip: process.platform !== 'linux' && 'counts /proc/self/fd' }, () => {
  for (const [total, parallel] of [[1, 1], [8, 8], [40, 8]] as const) {
    test(`${total} workers (${parallel} at a time) with started pollers, terminated: exit 0, no descriptor left, listeners closed`, () => {
      // On libkqueue, the first kqueue of a process starts a monitor thread that keeps its own
      // descriptors for good: one warm-up worker first, so that "before" already has them.
      const child = runChild(total, parallel, process.env.MOB_EXPECT_BACKEND === 'kqueue' ? 'warm' : '');
      assert.equal(child.signal, null, `child killed by ${child.signal}: ${child.stderr}`);
      assert.equal(child.status, 0, child.stderr);
      const result = JSON.parse(child.stdout.trim().split('\n').at(-1)!);
      assert.equal(result.workers, total);
      assert.equal(result.after, result.before, `descriptors before ${result.before}, after ${result.after}: ${result.extra.join(', ')}`);
      assert.equal(result.allRefused, true, 'a terminated worker left its listener open');
    });
  }
});
