// --metrics: Prometheus text at /metrics and /healthz, on a real `mob serve`, checked against
// what each test did (connections, frames, bytes, deliveries, disconnects), with one worker and
// with two.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderMetrics } from '../src/metrics/prometheus.ts';
import { parseHostPort } from '../src/metrics/server.ts';
import { spawnServer, TestClient } from './helpers.ts';
import { metricsUrl, parseMetrics, scrape, scrapeUntil, sum } from './metrics-scrape.ts';
import { stopServe } from '../scripts/lib/serve-process.ts';

for (const workers of [1, 2]) {
  test(`--metrics with --workers ${workers}: the figures match what the clients did`, async (t) => {
    const server = await spawnServer(['--metrics', '127.0.0.1:0', '--workers', String(workers)]);
    t.after(() => stopServe(server.child));
    const health = await fetch(`${metricsUrl(server)}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(await health.text(), 'ok\n');

    const clients: TestClient[] = [];
    for (let i = 0; i < 3; i++) clients.push(await TestClient.connect(server.port));
    // Accepted by whichever worker the kernel chose: only then can no frame miss a client.
    await scrapeUntil(server, (m) => sum(m, 'mob_connections') === 3, '3 connections');
    for (const c of clients) c.send('hello');
    for (const c of clients) await c.waitFrames(3);
    const FRAMES = 5;
    const BODY = 100;
    for (let i = 0; i < FRAMES; i++) clients[0]!.send(Buffer.alloc(BODY, i));
    for (const c of clients) await c.waitFrames(3 + FRAMES);
    // A client that closed is a half-closed receiver to the server until a write to it fails
    // (#9: FIN alone does not end a receiver), so the others send on until the server sees it.
    clients[2]!.destroy();
    let extra = 0;
    await scrapeUntil(server, (m) => {
      if (sum(m, 'mob_connections') === 2) return true;
      clients[0]!.send(Buffer.alloc(BODY, 0xee));
      extra++;
      return false;
    }, 'the disconnect');
    for (const c of clients.slice(0, 2)) await c.waitFrames(3 + FRAMES + extra);
    // Both remaining clients got every frame: every counter is final now.
    const samples = await scrape(server);
    const framesSent = 3 + FRAMES + extra;
    assert.equal(sum(samples, 'mob_workers'), workers);
    assert.equal(sum(samples, 'mob_workers_up'), workers);
    assert.equal(sum(samples, 'mob_worker_restarts_total'), 0);
    assert.equal(sum(samples, 'mob_connections'), 2);
    assert.equal(sum(samples, 'mob_connections_accepted_total'), 3);
    assert.equal(sum(samples, 'mob_connections_rejected_total'), 0);
    assert.equal(sum(samples, 'mob_frames_in_total'), framesSent);
    assert.equal(sum(samples, 'mob_bytes_in_total'), 3 * (8 + 5) + (FRAMES + extra) * (8 + BODY));
    // Every frame to all three, but for the extra ones the closed client no longer counted for.
    const delivered = sum(samples, 'mob_frames_delivered_total');
    assert.ok(delivered >= (3 + FRAMES) * 3 + extra * 2 && delivered <= framesSent * 3, `${delivered} delivered`);
    assert.equal(sum(samples, 'mob_output_queued_bytes'), 0);
    assert.equal(sum(samples, 'mob_disconnects_total'), 1);
    assert.equal(sum(samples, 'mob_disconnects_total', 'reason="shutdown'), 0);
    assert.equal(sum(samples, 'mob_bus_lag_entries'), 0);
    assert.equal(sum(samples, 'mob_bus_reconnects_total'), 0);
    for (let w = 0; w < workers; w++) assert.ok(samples.has(`mob_connections{worker="${w}"}`), `worker ${w} reported`);
    if (workers > 1) {
      // Frames that came over the peer links: every frame a client of the other worker sent.
      // With two workers every frame crosses exactly one peer link.
      assert.equal(sum(samples, 'mob_peer_link_cuts_total'), 0);
      assert.equal(sum(samples, 'mob_peer_frames_in_total'), framesSent);
      assert.equal(sum(samples, 'mob_peer_queued_bytes'), 0);
    }
    for (const c of clients) c.destroy();
    const missing = await fetch(`${metricsUrl(server)}/nothing`);
    assert.equal(missing.status, 404);
  });
}

test('renderMetrics: a worker that is down is left out and shows in mob_workers_up', () => {
  const text = renderMetrics([null, {
    connections: 4, accepted: 5, rejected: 1, framesIn: 7, bytesIn: 70, framesDelivered: 28, bytesQueued: 3,
    disconnects: { end: 1, 'slow-reader': 0 }, links: null, bus: { lag: 2, reconnects: 1, connected: true },
  }], { workers: 2, restarts: 3 });
  const samples = parseMetrics(text);
  assert.equal(samples.get('mob_workers'), 2);
  assert.equal(samples.get('mob_workers_up'), 1);
  assert.equal(samples.get('mob_worker_restarts_total'), 3);
  assert.equal(samples.get('mob_connections{worker="1"}'), 4);
  assert.equal(samples.has('mob_connections{worker="0"}'), false);
  assert.equal(samples.get('mob_disconnects_total{worker="1",reason="end"}'), 1);
  assert.equal(samples.get('mob_bus_lag_entries{worker="1"}'), 2);
  assert.equal(samples.get('mob_bus_connected{worker="1"}'), 1);
  // Every family is announced once, with HELP and TYPE.
  const types = text.split('\n').filter((l) => l.startsWith('# TYPE '));
  assert.equal(new Set(types).size, types.length);
});

test('--metrics wants HOST:PORT with an IP address', () => {
  assert.deepEqual(parseHostPort('127.0.0.1:9100'), { host: '127.0.0.1', port: 9100 });
  assert.deepEqual(parseHostPort('[::1]:0'), { host: '::1', port: 0 });
  assert.throws(() => parseHostPort('localhost:9100'), /HOST:PORT/);
  assert.throws(() => parseHostPort('127.0.0.1'), /HOST:PORT/);
  assert.throws(() => parseHostPort('127.0.0.1:70000'), /HOST:PORT/);
});
