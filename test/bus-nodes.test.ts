// Nodes of one server through Redis, end to end: real `mob serve --bus` processes, a real
// redis-server, real client sockets. Every frame is checked at every client across nodes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runClients } from '../src/client/clients.ts';
import { spawnSync } from 'node:child_process';
import { cliPath, exitOf, spawnServer, TestClient, waitFor, type CliServer } from './helpers.ts';
import { RedisServer, redisSkip } from './redis.ts';
import { stopServe } from '../scripts/lib/serve-process.ts';

async function withNodes(count: number, nodeArgs: string[] | string[][], fn: (nodes: CliServer[], redis: RedisServer) => Promise<void>, redisArgs: string[] = []): Promise<void> {
  const redis = await RedisServer.start(redisArgs);
  const nodes: CliServer[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const args = Array.isArray(nodeArgs[0]) ? (nodeArgs as string[][])[i]! : (nodeArgs as string[]);
      nodes.push(await spawnServer(['--bus', redis.url, ...args]));
    }
    await fn(nodes, redis);
  } finally {
    for (const node of nodes) {
      if (node.child.signalCode === 'SIGSTOP' || node.child.exitCode === null) node.child.kill('SIGCONT');
      await stopServe(node.child);
    }
    await redis.close();
  }
}

async function clientsOn(node: CliServer, count: number): Promise<TestClient[]> {
  const clients: TestClient[] = [];
  for (let i = 0; i < count; i++) clients.push(await TestClient.connect(node.port));
  return clients;
}

/** A frame that names its sender and sequence. */
const frame = (sender: string, sequence: number) => `${sender}:${sequence}`;

/** Both nodes hold their clients and the bus path is open: a probe from each side reaches all.
 *  A client may be connected before its node has accepted it, so probes repeat until one
 *  reaches everyone (the earlier ones, from the same sender, came before it). */
async function settle(groups: TestClient[][]): Promise<void> {
  const all = groups.flat();
  for (const [g, group] of groups.entries()) {
    const deadline = Date.now() + 10_000;
    for (let k = 0; ; k++) {
      const probe = `probe-${g}-${k}`;
      group[0]!.send(probe);
      const seen = () => all.every((c) => c.frames.some((f) => f.toString() === probe));
      const until = Date.now() + 200;
      while (!seen() && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 5));
      if (seen()) break;
      if (Date.now() > deadline) throw new Error(`probes from node ${g} did not reach every client in 10 s`);
    }
  }
  for (const client of all) client.frames.length = 0;
}

test('clients spread over 2 nodes on one Redis: every frame reaches every client, in order, unaltered', { skip: redisSkip }, async () => {
  await withNodes(2, [], async (nodes) => {
    const report = await runClients({
      host: '127.0.0.1', port: nodes[0]!.port, ports: nodes.map((n) => n.port),
      clients: 8, messages: 200, size: 100, window: 8, timeoutMs: 30_000,
    });
    assert.deepEqual(report.errors, []);
    assert.equal(report.received, report.expected);
    assert.equal(report.outOfOrder, 0);
    assert.equal(report.corrupt, 0);
    assert.ok(report.ok);
  });
});

test('a native node and a node:net node on one bus are one server too', { skip: redisSkip }, async () => {
  await withNodes(2, [['--engine', 'native'], ['--engine', 'uv', '--uv-mode', 'coalesced']], async (nodes) => {
    const report = await runClients({
      host: '127.0.0.1', port: nodes[0]!.port, ports: nodes.map((n) => n.port),
      clients: 6, messages: 100, size: 64, window: 4, timeoutMs: 30_000,
    });
    assert.ok(report.ok, report.errors.join('; '));
    assert.equal(report.received, report.expected);
  });
});

test('kill -9 of one node: the other node\'s clients keep being served', { skip: redisSkip }, async () => {
  await withNodes(2, [], async (nodes) => {
    const [a, b] = [await clientsOn(nodes[0]!, 2), await clientsOn(nodes[1]!, 2)];
    await settle([a, b]);
    nodes[0]!.child.kill('SIGKILL');
    await exitOf(nodes[0]!.child);
    await waitFor(() => a.every((c) => c.closed), 'the dead node\'s clients to see their connections end');
    for (let i = 0; i < 50; i++) b[0]!.send(frame('b0', i));
    for (const client of b) {
      const frames = await client.waitFrames(50);
      assert.deepEqual(frames.map(String), Array.from({ length: 50 }, (_, i) => frame('b0', i)));
    }
    const report = await runClients({ host: '127.0.0.1', port: nodes[1]!.port, clients: 4, messages: 50, size: 64, window: 4, timeoutMs: 20_000 });
    assert.ok(report.ok, report.errors.join('; '));
  });
});

test('a Redis restart mid-run: local clients keep their frames, and what was sent during the outage reaches the other node after it, once', { skip: redisSkip }, async () => {
  await withNodes(2, [], async (nodes, redis) => {
    const [a, b] = [await clientsOn(nodes[0]!, 2), await clientsOn(nodes[1]!, 2)];
    await settle([a, b]);
    const sent: string[] = [];
    for (let i = 0; i < 20; i++) sent.push(frame('a0', i));
    for (const text of sent.slice(0, 10)) a[0]!.send(text);
    await waitFor(() => b.every((c) => c.frames.length >= 10), 'frames before the outage');
    await redis.stop();
    for (const text of sent.slice(10)) a[0]!.send(text);
    // Local clients are served during the outage.
    await waitFor(() => a.every((c) => c.frames.length >= 20), 'local delivery while the bus is down');
    await new Promise((resolve) => setTimeout(resolve, 500));
    await redis.resume();
    for (const client of b) {
      await client.waitFrames(20, 20_000);
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.deepEqual(client.frames.map(String), sent, 'every frame once, in order');
    }
    assert.ok([...a, ...b].every((c) => !c.closed), 'nobody was disconnected');
    // One server again, both ways, with no operator action.
    b[0]!.send('after');
    await waitFor(() => a.every((c) => c.frames.length === 21), 'a frame from the other node after the restart');
    assert.match(nodes[1]!.stderr(), /stream was replaced/);
  });
});

test('retention too short for what a stalled node missed: its clients are disconnected with the logged reason', { skip: redisSkip }, async () => {
  await withNodes(2, ['--bus-retention', '4'], async (nodes) => {
    const [a, b] = [await clientsOn(nodes[0]!, 1), await clientsOn(nodes[1]!, 2)];
    await settle([a, b]);
    nodes[1]!.child.kill('SIGSTOP');
    try {
      // One batch at a time, each its own entry: far more entries than the retention.
      for (let i = 0; i < 40; i++) {
        a[0]!.send(frame('a', i));
        await waitFor(() => a[0]!.frames.length > i, 'the echo');
      }
    } finally {
      nodes[1]!.child.kill('SIGCONT');
    }
    for (const client of b) await client.waitClosed(15_000);
    assert.match(nodes[1]!.stderr(), /retention \(--bus-retention\) no longer holds/);
    assert.ok(!a[0]!.closed, 'the node that lost nothing keeps its clients');
  }, ['--stream-node-max-entries', '2']);
});

test('a bus backlog past its bound: the senders are disconnected, the other clients stay', { skip: redisSkip }, async () => {
  await withNodes(1, ['--bus-backlog', '4KiB'], async (nodes, redis) => {
    const [sender, listener] = await clientsOn(nodes[0]!, 2);
    await settle([[sender!, listener!]]);
    await redis.stop();
    const body = Buffer.alloc(1000, 7);
    for (let i = 0; i < 10; i++) sender!.send(body);
    await sender!.waitClosed(15_000);
    assert.match(nodes[0]!.stderr(), /--bus-backlog/);
    assert.ok(!listener!.closed, 'a client that sent nothing stays connected');
  });
});

test('mob serve: a bad --bus URL, or a bus flag without --bus, is a usage error (exit 2)', () => {
  for (const [args, message] of [
    [['--bus', 'http://h:1'], /--bus speaks redis:\/\/ or rediss:\/\//],
    [['--bus', 'redis://h:1/db'], /--bus database must be a number/],
    [['--bus-retention', '5'], /--bus-retention has no meaning without --bus/],
    [['--bus', 'redis://h:1', '--bus-backlog', 'lots'], /--bus-backlog wants a size in bytes/],
  ] as const) {
    const run = spawnSync(process.execPath, [cliPath, 'serve', '--port', '0', ...args], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(run.status, 2, `${args.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, message);
  }
});
