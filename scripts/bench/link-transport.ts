// How should one worker hand a batch to another? A micro-measurement of the candidates, each
// moving BATCH-byte blocks from one thread to another for a second, the receiver ending up
// with bytes it owns (FanoutHost.deliver keeps views of them):
//   socket:  an AF_UNIX stream socket pair (native.socketpair),
//            writer write()s, reader read()s on its own poller: 2 copies (in and out of the kernel)
//   ring:    a SharedArrayBuffer ring, Atomics.notify/wait: 2 copies (into the ring, out of it)
//   message: postMessage of a copied ArrayBuffer, transferred: 1 copy and a message per batch
// Reports MB/s and CPU (both threads) per batch.
//   node --import tsx scripts/bench/link-transport.ts [batchBytes...]
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { native } from '../../src/native/binding.ts';
import { Events, Interest, Poll, Trigger } from '../../src/poll/index.ts';
import { startThread } from '../../src/scale/workers/thread.ts';

const DURATION_MS = 1000;
const RING_BYTES = 8 * 1024 * 1024;
type Kind = 'socket' | 'ring' | 'message';
interface Job { kind: Kind; role: 'writer' | 'reader'; batch: number; fd?: number; ring?: SharedArrayBuffer; ctl?: SharedArrayBuffer }

let poll: Poll | null = null;
const events = new Events(4);

/** Blocks until fd is ready (level-triggered, one registration per thread). */
function waitFor(fd: number, interest: number): void {
  if (poll === null) {
    poll = new Poll();
    poll.registry.register(fd, 1, interest, Trigger.LEVEL);
  }
  poll.poll(events, 100);
}

function runThread(job: Job): number {
  const { EAGAIN } = native.errno;
  const block = Buffer.alloc(job.batch, 7);
  const end = performance.now() + DURATION_MS;
  let moved = 0;
  if (job.kind === 'socket') {
    const fd = job.fd!;
    native.adopt(fd);
    if (job.role === 'writer') {
      let at = 0;
      while (performance.now() < end) {
        const n = native.write(fd, block, at, block.length - at);
        if (n === -EAGAIN) { waitFor(fd, Interest.WRITABLE); continue; }
        at += n;
        if (at === block.length) { at = 0; moved++; }
      }
      native.close(fd);
    } else {
      let buf = Buffer.allocUnsafeSlow(1 << 20);
      let used = 0;
      for (;;) {
        if (buf.length - used < 65536) { buf = Buffer.allocUnsafeSlow(1 << 20); used = 0; }
        const n = native.read(fd, buf, used, buf.length - used);
        if (n === -EAGAIN) { waitFor(fd, Interest.READABLE); continue; }
        if (n <= 0) break;
        used += n;
        moved += n;
      }
      native.close(fd);
      moved = Math.floor(moved / job.batch);
    }
    return moved;
  }
  // ring: ctl[0] = bytes written (total), ctl[1] = bytes read (total), ctl[2] = done
  const ring = new Uint8Array(job.ring!);
  const ctl = new Int32Array(job.ctl!);
  const size = ring.length;
  if (job.role === 'writer') {
    let written = 0;
    while (performance.now() < end) {
      while (((written - Atomics.load(ctl, 1)) | 0) > size - job.batch) Atomics.wait(ctl, 1, Atomics.load(ctl, 1), 10);
      const at = written & (size - 1);
      const first = Math.min(job.batch, size - at);
      ring.set(block.subarray(0, first), at);
      if (first < job.batch) ring.set(block.subarray(first), 0);
      written = (written + job.batch) | 0;
      Atomics.store(ctl, 0, written);
      Atomics.notify(ctl, 0);
      moved++;
    }
    Atomics.store(ctl, 2, 1);
    Atomics.notify(ctl, 0);
    return moved;
  }
  let read = 0;
  for (;;) {
    const written = Atomics.load(ctl, 0);
    if (written === read) {
      if (Atomics.load(ctl, 2) === 1) break;
      Atomics.wait(ctl, 0, written, 10);
      continue;
    }
    const length = (written - read) | 0;
    const out = Buffer.allocUnsafe(length);
    const at = read & (size - 1);
    const first = Math.min(length, size - at);
    out.set(ring.subarray(at, at + first), 0);
    if (first < length) out.set(ring.subarray(0, length - first), first);
    read = (read + length) | 0;
    Atomics.store(ctl, 1, read);
    Atomics.notify(ctl, 1);
    moved += length;
  }
  return Math.floor(moved / job.batch);
}

function thread(job: Job): Promise<number> {
  const worker = startThread(new URL(import.meta.url), { workerData: job });
  return new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
}

async function messages(batch: number): Promise<number> {
  const worker = new Worker(`const { parentPort } = require('node:worker_threads'); let n = 0;
    parentPort.on('message', (m) => { if (m === 'end') return parentPort.postMessage(n); n++; if (n % 64 === 0) parentPort.postMessage('ack'); });`, { eval: true });
  const block = Buffer.alloc(batch, 7);
  let sent = 0;
  let acked = 0;
  worker.on('message', (m) => { if (m === 'ack') acked += 64; });
  const end = performance.now() + DURATION_MS;
  while (performance.now() < end) {
    while (sent - acked < 256 && performance.now() < end) {
      const copy = new ArrayBuffer(batch);
      new Uint8Array(copy).set(block);
      worker.postMessage(copy, [copy]);
      sent++;
    }
    await new Promise((r) => setImmediate(r));
  }
  worker.postMessage('end');
  const received = await new Promise<number>((r) => worker.on('message', (m) => { if (typeof m === 'number') r(m); }));
  await worker.terminate();
  return received;
}

async function measure(kind: Kind, batch: number): Promise<void> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let batches: number;
  if (kind === 'socket') {
    const [a, b] = native.socketpair();
    native.disown(a);
    native.disown(b);
    const [w, r] = await Promise.all([thread({ kind, role: 'writer', batch, fd: a }), thread({ kind, role: 'reader', batch, fd: b })]);
    batches = Math.min(w, r);
  } else if (kind === 'ring') {
    const ring = new SharedArrayBuffer(RING_BYTES);
    const ctl = new SharedArrayBuffer(16);
    const [w, r] = await Promise.all([thread({ kind, role: 'writer', batch, ring, ctl }), thread({ kind, role: 'reader', batch, ring, ctl })]);
    batches = Math.min(w, r);
  } else {
    batches = await messages(batch);
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const cpuNsPerBatch = ((cpu.user + cpu.system) * 1000) / batches;
  process.stdout.write(`${kind.padEnd(8)} ${String(batch).padStart(8)} B  ${((batches * batch) / seconds / 1e6).toFixed(0).padStart(6)} MB/s  ${(cpuNsPerBatch / 1000).toFixed(1).padStart(7)} µs CPU/batch  ${(cpuNsPerBatch / batch).toFixed(2)} ns/B\n`);
}

if (isMainThread) {
  const sizes = process.argv.slice(2).map(Number);
  for (const batch of sizes.length > 0 ? sizes : [1024, 16 * 1024, 256 * 1024]) {
    for (const kind of ['socket', 'ring', 'message'] as const) await measure(kind, batch);
  }
} else {
  parentPort!.postMessage(runThread(workerData as Job));
}
