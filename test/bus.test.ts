// The bus (--bus redis://…) against a real redis-server: what one node publishes, every other node
// delivers once, in order, byte for byte; outages, restarts, retention and the backlog's bound.
// The hosts here record what the bus hands them (the bus needs nothing else from a server);
// the end-to-end tests through real `mob serve` processes are in bus-nodes.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Logger } from '../src/log.ts';
import { encodeFrame, FrameScan, scanFrames } from '../src/protocol/frame.ts';
import type { FanoutHost, Relay } from '../src/server/fanout.ts';
import { connectBus, newNodeId, parseBusUrl, type Bus, type BusOptions } from '../src/scale/bus/index.ts';
import { Redis } from 'ioredis';
import { waitFor } from './helpers.ts';
import { freePort, RedisPath, RedisServer, redisSkip } from './redis.ts';

class RecordingHost implements FanoutHost {
  readonly delivered: Buffer[] = [];
  readonly drops: string[] = [];
  readonly relays = new Set<Relay>();
  deliver(frames: Buffer, start: number, end: number, count: number): void {
    // The host trusts the count (fanout.ts): every delivery in these tests checks it.
    const scan = scanFrames(frames, start, end, Number.MAX_SAFE_INTEGER, new FrameScan());
    assert.equal(scan.end, end, 'deliver() was handed a partial frame');
    assert.equal(count, scan.frames, 'deliver() was handed a wrong frame count');
    this.delivered.push(Buffer.from(frames.subarray(start, end)));
  }
  addRelay(relay: Relay): void { this.relays.add(relay); }
  removeRelay(relay: Relay): void { this.relays.delete(relay); }
  dropAllClients(reason: string): void { this.drops.push(reason); }
  get bytes(): Buffer { return Buffer.concat(this.delivered); }
}

class LogLines {
  readonly lines: string[] = [];
  readonly log = new Logger('info', (line) => this.lines.push(line));
  has(pattern: RegExp): boolean { return this.lines.some((line) => pattern.test(line)); }
}

/** Frames whose bodies hold every byte value (CR, LF, NUL, 0xff: no text decoding survives). */
function batch(tag: number, frames = 3): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < frames; i++) {
    const body = Buffer.alloc(260);
    for (let b = 0; b < body.length; b++) body[b] = (b + tag + i) & 0xff;
    body.writeUInt32BE(tag, 0);
    parts.push(encodeFrame(body));
  }
  return Buffer.concat(parts);
}

async function withRedis(fn: (redis: RedisServer) => Promise<void>, extraArgs: string[] = []): Promise<void> {
  const redis = await RedisServer.start(extraArgs);
  try {
    await fn(redis);
  } finally {
    await redis.close();
  }
}

function options(url: string, overrides: Partial<BusOptions> = {}): BusOptions {
  return { url, nodeId: newNodeId(), maxLen: 10_000, backlogBytes: 1 << 20, connectTimeoutMs: 5000, ...overrides };
}

async function closeAll(buses: Bus[]): Promise<void> {
  await Promise.all(buses.map((bus) => bus.close()));
}

interface PairOfNodes {
  a: RecordingHost;
  b: RecordingHost;
  buses: Bus[];
  /** Node b reaches Redis through it (node a directly), so a test can stall or cut b alone. */
  path: RedisPath;
  redis: RedisServer;
}

/** Two nodes on a fresh redis-server, node b behind a RedisPath. */
async function withPairBehindPath(fn: (pair: PairOfNodes) => Promise<void>, overrides: Partial<BusOptions> = {}, redisArgs: string[] = []): Promise<void> {
  await withRedis(async (redis) => {
    const path = await RedisPath.open(redis.port);
    const [a, b] = [new RecordingHost(), new RecordingHost()];
    const logs = new LogLines();
    const buses = [await connectBus(a, options(redis.url, overrides), logs.log), await connectBus(b, options(path.url, overrides), logs.log)];
    try {
      await fn({ a, b, buses, path, redis });
    } finally {
      await closeAll(buses);
      await path.close();
    }
  }, redisArgs);
}

test('what one node publishes, every other node delivers once, in order, byte for byte; never back to itself', { skip: redisSkip }, async () => {
  await withRedis(async (redis) => {
    const hosts = [new RecordingHost(), new RecordingHost(), new RecordingHost()];
    const logs = new LogLines();
    const buses = await Promise.all(hosts.map((host) => connectBus(host, options(redis.url), logs.log)));
    try {
      assert.ok(hosts.every((host, i) => host.relays.has(buses[i]!)), 'each bus registers as a relay on its host');
      // A publisher's bytes may be arena memory reused after publish() returns: scribble on them.
      const sent: Buffer[] = [];
      for (let tag = 0; tag < 50; tag++) {
        const arena = Buffer.concat([Buffer.from('junk'), batch(tag), Buffer.from('tail')]);
        const copy = Buffer.from(arena.subarray(4, arena.length - 4));
        assert.equal(buses[0]!.publish(arena, 4, arena.length - 4), true);
        arena.fill(0x55);
        sent.push(copy);
      }
      const expected = Buffer.concat(sent);
      await waitFor(() => hosts[1]!.bytes.length >= expected.length && hosts[2]!.bytes.length >= expected.length, 'both other nodes to receive');
      assert.ok(hosts[1]!.bytes.equals(expected), 'node 1 got the exact bytes, in order');
      assert.ok(hosts[2]!.bytes.equals(expected), 'node 2 got the exact bytes, in order');
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(hosts[0]!.delivered.length, 0, 'a node never gets its own frames back');
      assert.ok(hosts[1]!.bytes.equals(expected), 'nothing more arrived later (no duplicates)');
      const metrics = buses[0]!.metrics();
      assert.ok(metrics.published >= 1 && metrics.published <= 50, `entries are per batch or fewer: ${metrics.published}`);
      assert.equal(metrics.backlogBytes, 0);
      assert.equal(metrics.connected, true);
      const received = buses[1]!.metrics().received;
      assert.ok(received >= 1 && received <= 50 && hosts[1]!.delivered.length <= received, 'entries counted; one delivery per read');
      assert.deepEqual(hosts.map((h) => h.drops), [[], [], []]);
    } finally {
      await closeAll(buses);
    }
    assert.ok(hosts.every((host) => host.relays.size === 0), 'close() removes the relay');
  });
});

test('large frames (1 MiB) cross the bus whole and in order, a few per read', { skip: redisSkip }, async () => {
  await withRedis(async (redis) => {
    const [a, b] = [new RecordingHost(), new RecordingHost()];
    const logs = new LogLines();
    const buses = [await connectBus(a, options(redis.url, { backlogBytes: 64 << 20 }), logs.log), await connectBus(b, options(redis.url), logs.log)];
    try {
      const sent: Buffer[] = [];
      for (let i = 0; i < 12; i++) {
        const body = Buffer.alloc(1 << 20, i);
        body.writeUInt32BE(i, 0);
        const one = encodeFrame(body);
        sent.push(one);
        assert.equal(buses[0]!.publish(one, 0, one.length), true);
      }
      const expected = Buffer.concat(sent);
      await waitFor(() => b.bytes.length >= expected.length, '12 MiB at node b', 30_000);
      assert.ok(b.bytes.equals(expected));
      assert.ok(b.delivered.length >= 3, `the reads are bounded in bytes: ${b.delivered.length} deliveries`);
    } finally {
      await closeAll(buses);
    }
  });
});

test('workers of one node share its id: they skip each other\'s entries (their peer links carry them)', { skip: redisSkip }, async () => {
  await withRedis(async (redis) => {
    const nodeId = newNodeId();
    const [siblingA, siblingB, other] = [new RecordingHost(), new RecordingHost(), new RecordingHost()];
    const logs = new LogLines();
    const buses = [
      await connectBus(siblingA, options(redis.url, { nodeId }), logs.log),
      await connectBus(siblingB, options(redis.url, { nodeId }), logs.log),
      await connectBus(other, options(redis.url), logs.log),
    ];
    try {
      buses[0]!.publish(batch(1), 0, batch(1).length);
      buses[1]!.publish(batch(2), 0, batch(2).length);
      buses[2]!.publish(batch(3), 0, batch(3).length);
      await waitFor(() => other.bytes.length === batch(1).length + batch(2).length, 'the other node to get both workers\' frames');
      await waitFor(() => siblingA.bytes.length === batch(3).length && siblingB.bytes.length === batch(3).length, 'each worker to get the other node\'s');
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.ok(siblingA.bytes.equals(batch(3)) && siblingB.bytes.equals(batch(3)), 'no sibling frames over the bus');
    } finally {
      await closeAll(buses);
    }
  });
});

test('a Redis restart mid-run: what was sent while it was down arrives after it, nothing lost or duplicated, no operator action', { skip: redisSkip }, async () => {
  await withRedis(async (redis) => {
    const [a, b] = [new RecordingHost(), new RecordingHost()];
    const logs = new LogLines();
    const buses = [await connectBus(a, options(redis.url), logs.log), await connectBus(b, options(redis.url), logs.log)];
    try {
      const before = batch(1);
      buses[0]!.publish(before, 0, before.length);
      await waitFor(() => b.bytes.length === before.length, 'the first batch');
      await redis.stop();
      await waitFor(() => !buses[0]!.metrics().connected, 'the writer to notice the outage');
      const during: Buffer[] = [];
      for (let tag = 2; tag < 12; tag++) {
        during.push(batch(tag));
        assert.equal(buses[0]!.publish(batch(tag), 0, batch(tag).length), true, 'kept while the bus is down');
        const back = batch(100 + tag);
        assert.equal(buses[1]!.publish(back, 0, back.length), true);
      }
      assert.ok(buses[0]!.metrics().backlogBytes > 0, 'the backlog holds them');
      await new Promise((resolve) => setTimeout(resolve, 300));
      await redis.resume();
      const expected = Buffer.concat([before, ...during]);
      await waitFor(() => b.bytes.length >= expected.length, 'the kept frames after the restart', 15_000);
      await waitFor(() => a.bytes.length >= 10 * batch(0).length, 'the other direction too', 15_000);
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.ok(b.bytes.equals(expected), 'every frame once, in order');
      assert.equal(a.bytes.length, 10 * batch(0).length, 'no duplicates the other way');
      assert.deepEqual([a.drops, b.drops], [[], []], 'nothing was lost, so no client is dropped');
      assert.ok(buses.every((bus) => bus.metrics().connected && bus.metrics().reconnects >= 1), 'both back, reconnects counted');
      assert.equal(buses[0]!.metrics().backlogBytes, 0);
      assert.ok(logs.has(/stream was replaced/), 'the new (empty) stream is noticed and logged');
      // The bus is one server again: a batch after the restart goes through as before.
      const after = batch(99);
      buses[1]!.publish(after, 0, after.length);
      await waitFor(() => a.bytes.length === 11 * batch(0).length, 'a batch after the restart');
    } finally {
      await closeAll(buses);
    }
  });
});

test('entries Redis lost before a node read them (a restart without persistence): that node drops its clients, with the reason', { skip: redisSkip }, async () => {
  await withPairBehindPath(async ({ a, b, buses, path, redis }) => {
    buses[0]!.publish(batch(1), 0, batch(1).length);
    await waitFor(() => b.delivered.length === 1, 'the first entry at node b');
    path.hold('mob-bus-reader');
    for (let tag = 2; tag <= 5; tag++) {
      buses[0]!.publish(batch(tag), 0, batch(tag).length);
      await waitFor(() => buses[0]!.metrics().backlogBytes === 0, 'each entry in Redis');
    }
    await redis.stop(); // with entries 2…5 that node b never read
    path.release();
    await redis.resume();
    buses[0]!.publish(batch(6), 0, batch(6).length);
    await waitFor(() => b.drops.length > 0, 'node b to notice the loss');
    // Entry 2 may have slipped through: node b's read for it was on its way when the hold began.
    assert.match(b.drops[0]!, /entries [23]…5 of publisher .* never arrived \(lost by Redis\)/);
    assert.deepEqual(a.drops, []);
  });
});

test('one node cut off from Redis for a while resumes from its last ID and loses nothing', { skip: redisSkip }, async () => {
  await withPairBehindPath(async ({ b, buses, path }) => {
    path.sever();
    await waitFor(() => !buses[1]!.metrics().connected, 'node b to lose the bus');
    const sent: Buffer[] = [];
    for (let tag = 0; tag < 20; tag++) {
      sent.push(batch(tag));
      buses[0]!.publish(batch(tag), 0, batch(tag).length);
    }
    await waitFor(() => buses[0]!.metrics().backlogBytes === 0, 'node a to publish');
    path.restore();
    await waitFor(() => b.bytes.length >= Buffer.concat(sent).length, 'node b to catch up', 15_000);
    assert.ok(b.bytes.equals(Buffer.concat(sent)));
    assert.deepEqual(b.drops, []);
  });
});

test('lag counts the entries a node has not read yet, and returns to 0 once it has', { skip: redisSkip }, async () => {
  await withPairBehindPath(async ({ b, buses, path }) => {
    path.hold('mob-bus-reader'); // node b's reading connection only; its lag probe goes on
    for (let tag = 0; tag < 10; tag++) {
      buses[0]!.publish(batch(tag), 0, batch(tag).length);
      await waitFor(() => buses[0]!.metrics().backlogBytes === 0, 'each batch its own entry');
    }
    await waitFor(() => buses[1]!.metrics().lag === 10, `node b's lag to reach 10 (is ${buses[1]!.metrics().lag})`);
    assert.equal(b.delivered.length, 0);
    path.release();
    await waitFor(() => b.bytes.length === 10 * batch(0).length, 'node b to catch up');
    await waitFor(() => buses[1]!.metrics().lag === 0, 'the lag to return to 0');
    assert.equal(buses[1]!.metrics().received, 10);
  });
});

test('retention too short for what a node missed: its clients are dropped with the reason', { skip: redisSkip }, async () => {
  // Small stream nodes, so MAXLEN ~ trims at once instead of in 100-entry steps.
  await withPairBehindPath(async ({ b, buses, path }) => {
    const first = batch(0);
    buses[0]!.publish(first, 0, first.length);
    await waitFor(() => b.bytes.length === first.length, 'the first batch at node b');
    path.hold();
    for (let tag = 1; tag <= 40; tag++) {
      buses[0]!.publish(batch(tag), 0, batch(tag).length);
      await waitFor(() => buses[0]!.metrics().backlogBytes === 0, 'each batch its own entry');
    }
    path.release();
    await waitFor(() => b.drops.length > 0, 'node b to notice the loss');
    assert.match(b.drops[0]!, /retention .*no longer holds/);
    assert.match(b.drops[0]!, /--bus-retention/);
  }, { maxLen: 4 }, ['--stream-node-max-entries', '2']);
});

test('past the backlog bound publish() refuses (the host disconnects those senders); it takes again once Redis is back', { skip: redisSkip }, async () => {
  await withRedis(async (redis) => {
    const host = new RecordingHost();
    const logs = new LogLines();
    const one = batch(1);
    const bus = await connectBus(host, options(redis.url, { backlogBytes: one.length * 3 }), logs.log);
    try {
      await redis.stop();
      await waitFor(() => !bus.metrics().connected, 'the outage');
      assert.equal(bus.publish(one, 0, one.length), true);
      assert.equal(bus.publish(one, 0, one.length), true);
      assert.equal(bus.publish(one, 0, one.length), true);
      assert.equal(bus.publish(one, 0, one.length), false, 'over the bound');
      assert.equal(bus.metrics().backlogBytes, one.length * 3);
      assert.ok(logs.has(/--bus-backlog/), 'the refusal is logged with the flag to raise');
      await redis.resume();
      await waitFor(() => bus.metrics().backlogBytes === 0, 'the kept frames to be published', 15_000);
      assert.equal(bus.publish(one, 0, one.length), true);
    } finally {
      await bus.close();
    }
  });
});

test('connectBus fails with a clear error when nothing answers, and rejects a bad URL', { skip: redisSkip }, async () => {
  const port = await freePort();
  const logs = new LogLines();
  await assert.rejects(connectBus(new RecordingHost(), options(`redis://127.0.0.1:${port}`, { connectTimeoutMs: 500 }), logs.log),
    /cannot reach the bus at redis:\/\/127\.0\.0\.1:\d+ within 500 ms/);
  assert.throws(() => parseBusUrl('http://x:1'), /redis:\/\/ or rediss:\/\//);
  assert.throws(() => parseBusUrl('redis://h:1/x'), /database must be a number/);
  assert.throws(() => parseBusUrl('nonsense'), /--bus wants/);
  assert.equal(parseBusUrl('redis://u:secret@h:6379/2').display, 'redis://u:***@h:6379/2');
});

test('a password in the URL is used, never logged; a wrong one fails start-up with the server\'s answer', { skip: redisSkip }, async () => {
  await withRedis(async (redis) => {
    const logs = new LogLines();
    const host = new RecordingHost();
    const bus = await connectBus(host, options(`redis://:s3cret@127.0.0.1:${redis.port}`), logs.log);
    try {
      assert.match(bus.name, /redis:\/\/:\*\*\*@127\.0\.0\.1/);
    } finally {
      await bus.close();
    }
    await assert.rejects(connectBus(host, options(`redis://:wrong@127.0.0.1:${redis.port}`, { connectTimeoutMs: 1000 }), logs.log),
      /cannot reach the bus at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+ within 1000 ms: WRONGPASS/);
    assert.ok(logs.lines.every((line) => !line.includes('s3cret') && !line.includes('wrong@')), 'no password in the log');
  }, ['--requirepass', 's3cret']);
});

test('a stream key clobbered by another program: bounded warnings, and the bus goes on once the key is a stream again', { skip: redisSkip }, async () => {
  await withRedis(async (redis) => {
    const [a, b] = [new RecordingHost(), new RecordingHost()];
    const logs = new LogLines();
    const buses = [await connectBus(a, options(redis.url), logs.log), await connectBus(b, options(redis.url), logs.log)];
    const other = new Redis(redis.url);
    try {
      await other.set('mob:frames', 'not a stream');
      buses[0]!.publish(batch(1), 0, batch(1).length);
      await new Promise((resolve) => setTimeout(resolve, 1500)); // failures every 200 ms meanwhile
      const count = (pattern: RegExp) => logs.lines.filter((line) => pattern.test(line)).length;
      assert.ok(count(/XADD failed: WRONGTYPE/) === 1, logs.lines.join('\n'));
      assert.ok(count(/read failed: .*WRONGTYPE/) <= 2, 'one per reader in the interval');
      await other.del('mob:frames');
      await waitFor(() => b.bytes.length >= batch(1).length, 'the kept batch once the key is free', 15_000);
      assert.ok(b.bytes.subarray(b.bytes.length - batch(1).length).equals(batch(1)));
    } finally {
      other.disconnect();
      await closeAll(buses);
    }
  });
});
