// --workers: one port, several worker threads, one server to the clients. Real sockets on
// loopback; the pool runs in this process (to stall or kill a worker) or as `mob serve`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { availableParallelism } from 'node:os';
import { runClients } from '../src/client/clients.ts';
import { fillPayload, checkPayload } from '../src/client/payload.ts';
import { DEFAULT_LIMITS } from '../src/server/policy.ts';
import { WorkerPool } from '../src/scale/workers/pool.ts';
import type { ServerSnapshot } from '../src/metrics/snapshot.ts';
import { exitOf, quietLog, spawnServer, TestClient, waitFor } from './helpers.ts';
import { scrapeUntil, sum } from './metrics-scrape.ts';
import { spawnServe, stopServe } from '../scripts/lib/serve-process.ts';
import { RedisServer, redisSkip } from './redis.ts';
import { runShutdownScenario } from '../scripts/lib/shutdown-scenario.ts';

function startPool(workers: number, maxOutput = DEFAULT_LIMITS.maxOutput, linkBound?: number): Promise<WorkerPool> {
  return WorkerPool.start({
    workers,
    server: { host: '127.0.0.1', port: 0, limits: { ...DEFAULT_LIMITS, maxOutput }, shutdownTimeoutMs: 1000 },
    engine: { engine: 'native' },
    logLevel: 'error',
    ...(linkBound === undefined ? {} : { linkBound }),
  }, quietLog);
}

async function snapshots(pool: WorkerPool): Promise<ServerSnapshot[]> {
  const all = await pool.snapshots();
  assert.ok(all.every((s) => s !== null), 'every worker answers');
  return all as ServerSnapshot[];
}

async function waitConnections(pool: WorkerPool, count: number): Promise<ServerSnapshot[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const all = await pool.snapshots();
    if (all.every((s) => s !== null) && all.reduce((n, s) => n + s!.connections, 0) === count) return all as ServerSnapshot[];
    if (Date.now() > deadline) throw new Error(`never saw ${count} connections: ${JSON.stringify(all.map((s) => s?.connections))}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Every worker up and answering (a restarted one included). */
async function waitAllUp(pool: WorkerPool): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await pool.snapshots()).every((s) => s !== null)) {
    if (Date.now() > deadline) throw new Error('a worker did not come back');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A test payload: sender, sequence, filler checked by checkPayload. */
function payload(sender: number, sequence: number, size: number): Buffer {
  const body = Buffer.allocUnsafe(size);
  fillPayload(body, sender, sequence);
  return body;
}

for (const engine of [['--engine', 'native'], ['--engine', 'uv', '--uv-mode', 'coalesced']]) test(`--workers 2 ${engine.join(' ')}: clients spread over both workers; every frame reaches every client, unchanged, in order per sender, once`, async (t) => {
  const server = await spawnServer(['--workers', '2', '--metrics', '127.0.0.1:0', ...engine]);
  t.after(() => stopServe(server.child));
  // src/client verifies sender, order and content of every frame at every client.
  const report = await runClients({ host: '127.0.0.1', port: server.port, clients: 24, messages: 60, size: 200, window: 8, timeoutMs: 30_000 });
  assert.ok(report.ok, JSON.stringify({ ...report, rttMs: undefined }));
  assert.equal(report.received, 24 * 24 * 60);
  // Every frame the clients got was read first: the counters are final.
  const samples = await scrapeUntil(server, (m) => sum(m, 'mob_frames_in_total') === 24 * 61, 'every frame counted');
  const perWorker = [0, 1].map((w) => sum(samples, 'mob_connections_accepted_total', `worker="${w}"`));
  t.diagnostic(`accepted per worker: ${perWorker.join(' / ')}`);
  // 24 connections hashed over two SO_REUSEPORT listeners: all on one has odds 2^-23.
  assert.ok(perWorker.every((n) => n > 0), `every worker got clients: ${perWorker.join(' / ')}`);
  assert.equal(perWorker[0]! + perWorker[1]!, 24);
  assert.equal(sum(samples, 'mob_frames_in_total'), 24 * 61);
  assert.equal(sum(samples, 'mob_peer_link_cuts_total'), 0);
});

for (const engine of ['native', 'uv'] as const) test(`one listener shared by the workers' pollers (macOS/BSD's way), ${engine} engine: every frame verified`, async (t) => {
  const pool = await WorkerPool.start({
    workers: 2, listener: 'shared', logLevel: 'error',
    server: { host: '127.0.0.1', port: 0, limits: { ...DEFAULT_LIMITS }, shutdownTimeoutMs: 1000 },
    engine: engine === 'uv' ? { engine, uvMode: 'coalesced' } : { engine },
  }, quietLog);
  t.after(() => pool.close());
  const report = await runClients({ host: '127.0.0.1', port: pool.address.port, clients: 24, messages: 30, size: 100, window: 4, timeoutMs: 20_000 });
  assert.ok(report.ok, report.errors.join('; '));
  const after = await snapshots(pool);
  // Whoever wakes first accepts: no even spread is promised here, only that nothing is lost.
  t.diagnostic(`accepted per worker: ${after.map((s) => s.accepted).join(' / ')}`);
  assert.equal(after[0]!.accepted + after[1]!.accepted, 24);
});

test('--workers auto and a bad count', async (t) => {
  const server = await spawnServer(['--workers', 'auto']);
  t.after(() => stopServe(server.child));
  const report = await runClients({ host: '127.0.0.1', port: server.port, clients: 6, messages: 10, size: 64, window: 4, timeoutMs: 20_000 });
  assert.ok(report.ok, report.errors.join('; '));
  await assert.rejects(spawnServer(['--workers', '0']), /--workers wants a whole number/);
});

const hasTaskset = process.platform === 'linux' && spawnSync('taskset', ['-c', '0', 'true']).status === 0;

test('more workers than the cores the process may use: a warning says they will share a core', { skip: !hasTaskset && 'needs Linux and taskset' }, async (t) => {
  const server = await spawnServe(['--workers', '2'], { wrap: (argv) => ['taskset', '-c', '0', ...argv] });
  t.after(() => stopServe(server.child));
  await waitFor(() => /2 workers on 1 core this process may use: the workers will take turns on a core/.test(server.stderr()), 'the warning');
  // The warning would follow the engine line on stderr, which arrives apart from stdout's
  // "listening": read all of stderr, once the process has closed it.
  const fitting = await spawnServer(['--workers', String(availableParallelism())]);
  const closed = once(fitting.child, 'close');
  await stopServe(fitting.child);
  await closed;
  assert.match(fitting.stderr(), /native engine/);
  assert.doesNotMatch(fitting.stderr(), /take turns on a core/);
});

test('a worker that stops reading its links: its clients are disconnected with a reason, the other worker\'s clients keep everything', async (t) => {
  const pool = await startPool(2, DEFAULT_LIMITS.maxOutput, 64 * 1024);
  t.after(() => pool.close());
  const clients: TestClient[] = [];
  for (let i = 0; i < 12; i++) clients.push(await TestClient.connect(pool.address.port));
  const before = await waitConnections(pool, 12);
  assert.ok(before.every((s) => s.connections > 0), `both workers have clients: ${before.map((s) => s.connections)}`);

  // Worker 1 stops reading (its thread is blocked) while everyone sends far more than a link holds.
  pool.stall(1, 1500);
  await new Promise((resolve) => setTimeout(resolve, 50));
  const FRAMES = 300;
  const SIZE = 8 * 1024;
  for (let i = 0; i < FRAMES; i++) clients.forEach((c, id) => c.send(payload(id, i, SIZE)));

  // Worker 1's clients go (they missed frames); worker 0's stay.
  await waitFor(() => clients.filter((c) => c.closed).length === before[1]!.connections, `worker 1's ${before[1]!.connections} clients to be closed`, 15_000);
  const survivors = clients.filter((c) => !c.closed);
  assert.equal(survivors.length, before[0]!.connections);
  const after = await snapshots(pool);
  assert.equal(after[0]!.links!.cuts, 1, 'worker 0 cut its link to worker 1');
  assert.equal(after[1]!.disconnects['upstream-lost'], before[1]!.connections, 'worker 1 dropped its clients as upstream-lost');
  assert.equal(after[0]!.connections, before[0]!.connections);

  // Survivors: every frame of every surviving sender, in order, unaltered; of the dropped
  // senders, a prefix (what their worker read before it dropped them).
  const surviving = new Set(survivors.map((c) => clients.indexOf(c)));
  for (const c of survivors) {
    await waitFor(() => countFrom(c, surviving) === surviving.size * FRAMES, 'every surviving sender\'s frames', 15_000);
    const next = new Map<number, number>();
    for (const body of c.frames) {
      assert.ok(checkPayload(body), 'frame unaltered');
      const sender = body.readUInt32BE(0);
      const sequence = body.readUInt32BE(4);
      assert.equal(sequence, next.get(sender) ?? 0, `sender ${sender} in order`);
      next.set(sender, sequence + 1);
    }
  }
  // Worker 1 is linked again: a new client there hears worker 0's clients.
  const late: TestClient[] = [];
  for (let i = 0; i < 8; i++) late.push(await TestClient.connect(pool.address.port));
  const now = await waitConnections(pool, survivors.length + late.length);
  assert.ok(now[1]!.connections > 0, 'worker 1 takes clients again');
  survivors[0]!.send(payload(99, 0, 64));
  for (const c of late) await c.waitFrames(1);
  for (const c of [...clients, ...late]) c.destroy();
});

function countFrom(client: TestClient, senders: Set<number>): number {
  let n = 0;
  for (const body of client.frames) if (senders.has(body.readUInt32BE(0))) n++;
  return n;
}

test('a worker that dies: its clients are closed, it is logged and restarted, and the server is whole again', async (t) => {
  const pool = await startPool(2);
  t.after(() => pool.close());
  const clients: TestClient[] = [];
  for (let i = 0; i < 12; i++) clients.push(await TestClient.connect(pool.address.port));
  const before = await waitConnections(pool, 12);
  assert.ok(before.every((s) => s.connections > 0), `both workers have clients: ${before.map((s) => s.connections)}`);
  const died = new Promise((resolve) => pool.thread(1).once('exit', resolve));
  // As abrupt as a crash: the thread stops wherever it is, no JS cleanup runs.
  void pool.thread(1).terminate();
  await died;
  await waitFor(() => clients.filter((c) => c.closed).length === before[1]!.connections, `worker 1's ${before[1]!.connections} clients to be closed`, 10_000);
  await waitFor(() => pool.restarts === 1, 'the restart');
  await waitAllUp(pool);
  // Whole again: clients over both workers, every frame verified.
  for (const c of clients) c.destroy();
  const report = await runClients({ host: '127.0.0.1', port: pool.address.port, clients: 16, messages: 30, size: 100, window: 4, timeoutMs: 20_000 });
  assert.ok(report.ok, report.errors.join('; '));
  const after = await snapshots(pool);
  assert.ok(after.every((s) => s.accepted > 0), `both workers serve again: ${after.map((s) => s.accepted)}`);
  assert.deepEqual(pool.figures(), { workers: 2, restarts: 1 });
});

test('SIGTERM with --workers 2: every worker drains its clients, the process exits 0', async () => {
  const server = await spawnServer(['--workers', '2', '--metrics', '127.0.0.1:0']);
  try {
    const clients: TestClient[] = [];
    for (let i = 0; i < 10; i++) clients.push(await TestClient.connect(server.port));
    const samples = await scrapeUntil(server, (m) => sum(m, 'mob_connections') === 10, '10 connections');
    assert.ok([0, 1].every((w) => sum(samples, 'mob_connections', `worker="${w}"`) > 0));
    clients[0]!.send('last words');
    for (const c of clients) await c.waitFrames(1);
    server.child.kill('SIGTERM');
    const { code } = await exitOf(server.child, 15_000);
    assert.equal(code, 0, server.stderr());
    for (const c of clients) await c.waitClosed();
    assert.match(server.stderr(), /SIGTERM: no longer accepting/);
    assert.match(server.stderr(), /stopped/);
  } finally {
    server.child.kill('SIGKILL');
  }
});

test('--workers 2 --bus: 2 nodes × 2 workers on one Redis are one server; bus figures in the metrics', { skip: redisSkip }, async (t) => {
  const redis = await RedisServer.start();
  t.after(() => redis.close());
  const nodes = [
    await spawnServer(['--workers', '2', '--bus', redis.url, '--metrics', '127.0.0.1:0']),
    await spawnServer(['--workers', '2', '--bus', redis.url, '--metrics', '127.0.0.1:0']),
  ];
  t.after(async () => {
    for (const node of nodes) await stopServe(node.child);
  });
  const report = await runClients({
    host: '127.0.0.1', port: nodes[0]!.port, ports: nodes.map((n) => n.port),
    clients: 16, messages: 100, size: 100, window: 8, timeoutMs: 30_000,
  });
  assert.deepEqual(report.errors, []);
  assert.ok(report.ok, `received ${report.received} of ${report.expected}, ${report.outOfOrder} out of order, ${report.corrupt} corrupt`);
  for (const node of nodes) {
    // Clients alternate between the two nodes' ports: 8 each.
    const samples = await scrapeUntil(node, (m) => sum(m, 'mob_connections_accepted_total') === 8, 'its 8 clients');
    // Each worker joined the bus itself.
    assert.equal(sum(samples, 'mob_bus_connected'), 2);
    assert.equal(sum(samples, 'mob_bus_reconnects_total'), 0);
    // SO_REUSEPORT hashes each connection: 8 land all on one worker in 1 run of 128 (a clean
    // clone's CI run met it). So idle clients join until both have one: at most 64 more, all on
    // one worker at odds of 2^-71.
    const gotClients = (m: Map<string, number>) => [0, 1].every((w) => sum(m, 'mob_connections_accepted_total', `worker="${w}"`) > 0);
    let spread = samples;
    const extra: TestClient[] = [];
    t.after(() => extra.forEach((client) => client.destroy()));
    while (!gotClients(spread) && extra.length < 64) {
      extra.push(await TestClient.connect(node.port));
      spread = await scrapeUntil(node, (m) => sum(m, 'mob_connections_accepted_total') === 8 + extra.length, `${8 + extra.length} accepted`);
    }
    assert.ok(gotClients(spread), 'both workers of each node got clients');
  }
});

test('workers that keep dying: the pool gives up (the CLI then exits 1) instead of restarting forever', async (t) => {
  const pool = await startPool(2);
  t.after(() => pool.close());
  let fatal = '';
  pool.onFatal = (reason) => (fatal = reason);
  for (let death = 1; death <= 6 && fatal === ''; death++) {
    const thread = pool.thread(death % 2);
    const exited = new Promise((resolve) => thread.once('exit', resolve));
    void thread.terminate();
    await exited;
    if (death <= 5) await waitAllUp(pool);
  }
  assert.match(fatal, /6 worker deaths within 10 s; giving up/);
  assert.equal(pool.restarts, 5);
});

// Frames still on a link when the stop comes must reach the other worker's clients (before,
// the receiving worker dropped deliver() once its own shutdown had begun, and its clients got
// a clean EOF without them). The receiving worker's thread is blocked while the frames cross,
// so they are still on the link, unread, when it is told to stop.
for (const engine of ['native', 'uv'] as const) test(`shutdown with workers, ${engine} engine: frames still on a peer link at the stop reach the other worker's clients, then EOF`, async (t) => {
  const FRAMES = 64;
  const SIZE = 64 * 1024;
  const pool = await WorkerPool.start({
    workers: 2, logLevel: 'error', engine: engine === 'uv' ? { engine, uvMode: 'coalesced' } : { engine },
    server: { host: '127.0.0.1', port: 0, limits: { ...DEFAULT_LIMITS }, shutdownTimeoutMs: 20_000 },
  }, quietLog);
  t.after(() => pool.close());
  const sender = await TestClient.connect(pool.address.port);
  const senderAt = (await waitConnections(pool, 1)).findIndex((s) => s.connections === 1);
  const receivers: TestClient[] = [];
  for (let i = 0; i < 12; i++) receivers.push(await TestClient.connect(pool.address.port));
  const spread = await waitConnections(pool, 13);
  const other = 1 - senderAt;
  // 12 connections hashed over two listeners: none on the sender's peer has odds 2^-12.
  assert.ok(spread[other]!.connections > 0, `the sender's peer has clients: ${spread.map((s) => s.connections)}`);
  t.diagnostic(`sender on worker ${senderAt}; clients per worker ${spread.map((s) => s.connections).join(' / ')}`);

  // The peer reads nothing for a while: what the sender sends waits on the link (4 MiB, more
  // than the socketpair holds, so part of it is still queued in the sender's worker too).
  pool.stall(other, 3000);
  for (let i = 0; i < FRAMES; i++) sender.send(payload(0, i, SIZE));
  // Echoed to the sender: its worker has read every frame and handed it to the link.
  await sender.waitFrames(FRAMES, 20_000);
  const stopped = pool.close();
  for (const receiver of receivers) {
    await receiver.waitClosed(30_000);
    assert.equal(receiver.error, null, 'a clean end of stream');
    assert.equal(receiver.frames.length, FRAMES, `a client got ${receiver.frames.length} of ${FRAMES} frames, then EOF`);
    receiver.frames.forEach((body, i) => assert.ok(checkPayload(body) && body.readUInt32BE(4) === i, `frame ${i} altered or out of order`));
  }
  await stopped;
});

test('--workers 2, SIGTERM: clients behind on both workers and still sending all get every frame, then EOF; exit 0', async (t) => {
  const outcome = await runShutdownScenario({ args: ['--workers', '2'], clients: 20, frames: 32, frameBytes: 64 * 1024, shutdownTimeoutMs: 20_000 });
  t.diagnostic(`${outcome.complete} of 20 complete, ${outcome.reset} reset; exit ${outcome.exitCode} after ${outcome.elapsedMs} ms`);
  assert.equal(outcome.exitCode, 0, outcome.stderr);
  assert.equal(outcome.missed, 0, `received: ${outcome.received.join(' ')}`);
  assert.equal(outcome.stderr.match(/worker \d: shutdown: flushing output/g)?.length, 2, 'both workers drained their clients');
});

test('--workers 2, a second signal: every worker resets whoever is still behind, and the process exits 1', async (t) => {
  const outcome = await runShutdownScenario({
    args: ['--workers', '2'], clients: 10, frames: 64, frameBytes: 64 * 1024, shutdownTimeoutMs: 20_000, signals: ['SIGTERM', 'SIGINT'],
  });
  t.diagnostic(`${outcome.reset} of 10 reset, received ${outcome.received.join(', ')}; exit ${outcome.exitCode}`);
  assert.equal(outcome.exitCode, 1, outcome.stderr);
  assert.match(outcome.stderr, /SIGINT again/);
  const cut = [...outcome.stderr.matchAll(/shutdown: (\d+) client\(s\) still behind at a second signal; reset/g)].reduce((n, m) => n + Number(m[1]), 0);
  assert.ok(cut > 0, outcome.stderr);
  assert.equal(outcome.reset, cut, 'every client cut was reset');
});
