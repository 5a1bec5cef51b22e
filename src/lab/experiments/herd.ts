import { Worker } from 'node:worker_threads';
import { loadBinding, native } from '../../native/binding.js';
import { Interest, Trigger } from '../../poll/index.js';
import { interestBit } from '../capabilities.js';
import type { Experiment, Lab } from '../harness.js';

const WAITERS = 4;
const WAIT_MS = 300;

/** One thread blocked in its own poller's wait on the shared listener, reporting what woke it.
 *  Plain CommonJS on the raw addon: a worker needs no TypeScript loader for twenty lines. */
const WAITER = `
const { parentPort, workerData } = require('node:worker_threads');
const native = require(workerData.addon);
const poller = new native.Poller();
try {
  poller.add(workerData.fd, workerData.index, workerData.bits);
} catch (error) {
  parentPort.postMessage({ error: error.code || String(error) });
  process.exit(0);
}
const events = new Uint32Array(native.EVENT_STRIDE * 4);
parentPort.postMessage({ ready: true });
// All threads start their waits together, so a slow thread start cannot make another time out.
Atomics.wait(workerData.go, 0, 0, 5000);
const before = performance.now();
const count = poller.wait(events, workerData.timeout);
const blocked = performance.now() - before;
poller.close();
parentPort.postMessage({ count, blocked });
`;

interface Waiter {
  index: number;
  count: number;
  blocked: number;
}

export const herd: Experiment = {
  name: 'herd',
  summary: 'the thundering herd: four threads, each blocked in its own poller on one shared listener; one connection wakes them all, EPOLLEXCLUSIVE wakes one',
  async run(lab) {
    const { fd, port } = lab.listen();
    lab.note(`one listener (fd ${fd}), ${WAITERS} threads, each with its own poller watching it level-triggered, each blocked in a wait of ${WAIT_MS} ms`);
    lab.note('one client connects');
    const plain = await trial(lab, fd, port, Interest.READABLE | Trigger.LEVEL);
    lab.note(summary(plain));
    const woke = plain.filter((w) => w.count > 0).length;
    lab.expect(woke === WAITERS, 'one connection wakes every waiter: the herd (only one of them can accept it)', `${WAITERS} of ${WAITERS} woke`,
      `${woke} of ${WAITERS} woke`);

    const exclusive = interestBit('EXCLUSIVE');
    if (lab.backend !== 'epoll') return lab.skip('kqueue has no EPOLLEXCLUSIVE: every kqueue watching the socket is woken (the BSDs spread accepts with SO_REUSEPORT_LB instead, see `reuseport`)');
    if ('missing' in exclusive) return lab.skip(exclusive.missing);
    lab.note('the same, each registration made with EPOLLEXCLUSIVE (Linux 4.5; allowed only with EPOLL_CTL_ADD)');
    // The kernel wakes exclusive waiters one at a time, but a poller nobody is blocked in yet
    // does not count as woken and the wake-up moves on: a slow thread start can let two through.
    // Up to three tries, traced as one: the timeline must not depend on how many it took.
    let best: Waiter[] = [];
    let attempts = 0;
    while (attempts < 3 && (best.length === 0 || wokeCount(best) === WAITERS)) {
      attempts++;
      const waiters = await trial(lab, fd, port, Interest.READABLE | Trigger.LEVEL | exclusive.bit);
      if (best.length === 0 || wokeCount(waiters) < wokeCount(best)) best = waiters;
    }
    lab.note(`one client connects; ${summary(best)} (the best of ${attempts} run(s), each its own connection)`);
    const fewest = wokeCount(best);
    lab.expect(fewest >= 1 && fewest < WAITERS, 'EPOLLEXCLUSIVE wakes "one or more" of the waiters (epoll_ctl(2)), not all',
      `1 to ${WAITERS - 1} woke`, `${fewest} of ${WAITERS} woke`);
  },
};

function wokeCount(waiters: readonly Waiter[]): number {
  return waiters.filter((w) => w.count > 0).length;
}

/** In an order that does not depend on which thread won. */
function summary(waiters: readonly Waiter[]): string {
  const woke = waiters.filter((w) => w.count > 0);
  const slowest = Math.max(0, ...woke.map((w) => w.blocked));
  return `${woke.length} of ${WAITERS} threads woke with the event (within ${slowest.toFixed(1)} ms of blocking), ${WAITERS - woke.length} slept the full ${WAIT_MS} ms`;
}

/** One connection against WAITERS threads blocked on the listener; untraced, the caller sums up. */
async function trial(lab: Lab, fd: number, port: number, bits: number): Promise<Waiter[]> {
  const addon = loadBinding().path;
  const workers: Worker[] = [];
  const results: Waiter[] = [];
  let ready = 0;
  let failed: string | null = null;
  const go = new Int32Array(new SharedArrayBuffer(4));
  const allReady = new Promise<void>((resolve) => {
    for (let index = 0; index < WAITERS; index++) {
      // execArgv: [] keeps a test runner's TypeScript loader out of these plain-JS threads.
      const worker = new Worker(WAITER, { eval: true, execArgv: [], workerData: { addon, fd, index, bits, timeout: WAIT_MS, go } });
      workers.push(worker);
      lab.onCleanup(() => void worker.terminate());
      worker.on('message', (message: { ready?: boolean; error?: string; count?: number; blocked?: number }) => {
        if (message.error !== undefined) failed = message.error;
        if (message.ready || message.error !== undefined) {
          if (++ready === WAITERS) resolve();
        } else {
          results.push({ index, count: message.count!, blocked: message.blocked! });
        }
      });
    }
  });
  await allReady;
  if (failed !== null) throw new Error(`a waiter could not register the listener: ${failed}`);
  Atomics.store(go, 0, 1);
  Atomics.notify(go, 0);
  await lab.sleep(50); // let every thread get into its wait
  lab.track(native.connect('127.0.0.1', port));
  await Promise.all(workers.map((worker) => new Promise((resolve) => worker.once('exit', resolve))));
  results.sort((a, b) => a.index - b.index);
  // The one connection, taken off the queue so that the next trial starts from an empty one.
  for (let i = 0; i < 100; i++) {
    const conn = native.accept(fd);
    if (conn >= 0) {
      lab.track(conn);
      break;
    }
    await lab.sleep(5);
  }
  return results;
}
