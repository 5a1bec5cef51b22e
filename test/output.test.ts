// The native engine's output queue (src/server/native/output.ts): what a slow reader holds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ENTRY_OVERHEAD, OutputQueue } from '../src/server/native/output.ts';

function drainAll(queue: OutputQueue, take: (offered: number) => number): Buffer {
  const out: Buffer[] = [];
  const iov: Buffer[] = [];
  while (queue.bytes > 0) {
    const count = queue.gather(iov);
    const offered = Buffer.concat(iov.slice(0, count));
    const taken = take(offered.length);
    out.push(offered.subarray(0, taken));
    queue.consume(taken);
  }
  return Buffer.concat(out);
}

test('regions that continue one another in the same buffer become one entry; others do not', () => {
  const a = Buffer.from('0123456789');
  const b = Buffer.from('abcdefghij');
  const queue = new OutputQueue();
  queue.push(a, 0, 3);
  queue.push(a, 3, 7); // continues: merged
  queue.push(b, 7, 10); // same offsets, another buffer: not merged
  queue.push(a, 8, 10); // a gap: not merged
  assert.equal(queue.entries, 3);
  assert.equal(queue.bytes, 7 + 3 + 2);
  assert.equal(queue.cost, 12 + 3 * ENTRY_OVERHEAD, 'each entry costs its overhead against --max-output');
  assert.equal(drainAll(queue, (n) => n).toString(), '0123456hij89');
  assert.equal(queue.entries, 0);
  assert.equal(queue.cost, 0);
});

test('partial writes of any size drain every byte once, in order', () => {
  const source = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7) & 0xff));
  const queue = new OutputQueue();
  // 2,500 two-byte regions with one-byte gaps: none merge, and more than IOV_MAX are queued.
  const expected: Buffer[] = [];
  for (let at = 0; at + 2 <= source.length; at += 3) {
    queue.push(source, at, at + 2);
    expected.push(source.subarray(at, at + 2));
  }
  let turn = 0;
  const got = drainAll(queue, (offered) => Math.max(1, Math.min(offered, [1, 7, 1000, 4096][turn++ % 4]!)));
  assert.ok(got.equals(Buffer.concat(expected)));
});

test('the same buffer queued for many receivers is one reference, not a view each', () => {
  const batch = Buffer.alloc(1024, 1);
  const queues = Array.from({ length: 100 }, () => new OutputQueue());
  for (const queue of queues) queue.push(batch, 100, 900);
  const iov: Buffer[] = [];
  for (const queue of queues) {
    queue.gather(iov);
    assert.equal(iov[0]!.buffer, batch.buffer, 'a copy was made');
    assert.equal(iov[0]!.byteOffset, batch.byteOffset + 100);
  }
});
