// A scripted check for the native engine's output queue (issue #12): draining a queue of many
// small regions must cost time linear in their number. With Array.splice per write it was
// quadratic: 1M queued 64-byte views took 1.9 s to drain, 256k took 14 ms.
//
//   node --import tsx scripts/queue-drain.ts [--entries 1000000]
//
// Fills one queue with N 64-byte regions that cannot merge (every other 64 bytes of a buffer),
// then drains it as flushQueue does: a writev of up to IOV_MAX regions, then consume() of what
// the "kernel" took (all of it, or one byte short of it every third time, so partial regions
// are exercised too). No sockets: this measures the queue's own bookkeeping. Exits 1 if the
// time per entry at N is more than 4× that at N/4 (linear is ~1×, the splice queue ~30×).
import { parseArgs } from 'node:util';
import { OutputQueue } from '../src/server/native/output.ts';

const { values } = parseArgs({ options: { entries: { type: 'string', default: '1000000' } } });
const entries = Number(values.entries);
const REGION = 64;

function drain(count: number): { ms: number; pushMs: number; writes: number } {
  const buf = Buffer.alloc(count * REGION * 2, 1);
  const queue = new OutputQueue();
  const pushed = process.hrtime.bigint();
  for (let i = 0; i < count; i++) queue.push(buf, i * REGION * 2, i * REGION * 2 + REGION);
  const pushMs = Number(process.hrtime.bigint() - pushed) / 1e6;
  const iov: Buffer[] = [];
  let writes = 0;
  const started = process.hrtime.bigint();
  while (queue.bytes > 0) {
    const n = queue.gather(iov);
    let taken = 0;
    for (let i = 0; i < n; i++) taken += iov[i]!.length;
    if (writes % 3 === 2 && taken > 1) taken -= 1;
    queue.consume(taken);
    writes++;
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (queue.entries !== 0) throw new Error(`queue not empty: ${queue.entries} entries left`);
  return { ms, pushMs, writes };
}

drain(10_000); // warm up
const small = drain(Math.floor(entries / 4));
const large = drain(entries);
const perEntrySmall = small.ms / (entries / 4);
const perEntryLarge = large.ms / entries;
const ratio = perEntryLarge / perEntrySmall;
for (const [count, run] of [[entries / 4, small], [entries, large]] as const) {
  console.log(`${count} regions of ${REGION} B: queued in ${run.pushMs.toFixed(1)} ms, drained in ${run.ms.toFixed(1)} ms (${run.writes} writev)`);
}
console.log(`time per region at ${entries} vs ${entries / 4}: ${ratio.toFixed(2)}× (linear ≈ 1×)`);
if (ratio > 4) {
  console.error('FAIL: draining the queue is not linear in its length');
  process.exit(1);
}
