// What one thread waking another costs here, on one core and across two (Linux). Two threads
// ping-pong one byte over a socketpair, each blocked in its own poller between turns, so
// every byte is one wake-up of a sleeping thread: the cost a peer link adds when the worker it
// feeds has gone idle (issue #8, docs/scaling.md "Why 10 × 10 misses").
// Prints wall time and CPU (both threads) per wake-up.
//   node --import tsx scripts/bench/wake-cost.ts [roundTrips]
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { readlinkSync } from 'node:fs';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { native } from '../../src/native/binding.ts';
import { Events, Interest, Poll, Trigger } from '../../src/poll/index.ts';
import { startThread } from '../../src/scale/workers/thread.ts';

interface Job { fd: number; cpu: number; roundTrips: number; starts: boolean }

/** Pins the calling thread (taskset takes a thread id as well as a process id). */
function pinThisThread(cpu: number): void {
  const tid = readlinkSync('/proc/thread-self').split('/').pop()!;
  execFileSync('taskset', ['-pc', String(cpu), tid], { stdio: 'ignore' });
}

function pingPong({ fd, cpu, roundTrips, starts }: Job): void {
  pinThisThread(cpu);
  const poll = new Poll();
  const events = new Events(1);
  poll.registry.register(fd, 1, Interest.READABLE, Trigger.LEVEL);
  const byte = Buffer.alloc(1);
  const receive = () => {
    while (native.read(fd, byte, 0, 1) !== 1) poll.poll(events, -1);
  };
  for (let i = 0; i < roundTrips; i++) {
    if (starts) {
      native.write(fd, byte, 0, 1);
      receive();
    } else {
      receive();
      native.write(fd, byte, 0, 1);
    }
  }
  poll.close();
  native.close(fd);
}

async function measure(cpus: [number, number], roundTrips: number): Promise<{ wallUs: number; cpuUs: number }> {
  const [a, b] = native.socketpair();
  native.disown(b);
  const peer = startThread(new URL(import.meta.url), { workerData: { fd: b, cpu: cpus[1], roundTrips, starts: false } satisfies Job });
  const done = new Promise<void>((resolve, reject) => {
    peer.once('exit', () => resolve());
    peer.once('error', reject);
  });
  await new Promise<void>((resolve) => peer.once('message', () => resolve()));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  pingPong({ fd: a, cpu: cpus[0], roundTrips, starts: true });
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  await done;
  const wakes = 2 * roundTrips;
  return { wallUs: (wallMs * 1000) / wakes, cpuUs: (cpu.user + cpu.system) / wakes };
}

if (isMainThread) {
  if (process.platform !== 'linux' || availableParallelism() < 2) throw new Error('needs Linux (taskset) and 2 cores');
  const roundTrips = Number(process.argv[2] ?? 50_000);
  const last = availableParallelism() - 1;
  for (const [label, cpus] of [['one core', [last, last]], ['two cores', [0, last]]] as const) {
    const { wallUs, cpuUs } = await measure([cpus[0], cpus[1]], roundTrips);
    process.stdout.write(`${label.padEnd(9)}  ${wallUs.toFixed(1).padStart(6)} µs wall  ${cpuUs.toFixed(1).padStart(6)} µs CPU per wake-up (${roundTrips} round trips)\n`);
  }
} else {
  const job = workerData as Job;
  native.adopt(job.fd); // made and disowned by the main thread
  parentPort!.postMessage('ready');
  pingPong(job);
}
