// The log as an operator reads it: warnings a flood can cause stay a few lines a second, with a
// count of what was held back (#9 item 7); MOB_LOG_FORMAT=json gives one JSON object per line
// (#10); an oversized length is quoted exactly, to 2**64-1 (#9 item 8). On real sockets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { once } from 'node:events';
import { Logger } from '../src/log.ts';
import { HEADER_BYTES } from '../src/protocol/frame.ts';
import { DEFAULT_LIMITS, type MobServer } from '../src/server/policy.ts';
import { NativeServer } from '../src/server/native/server.ts';
import { UvServer } from '../src/server/uv/server.ts';
import { exitOf, spawnServer, TestClient, waitFor } from './helpers.ts';

test('RateLimit: the first line at once, the rest counted and reported once the window ends, then open again', async () => {
  const lines: string[] = [];
  const log = new Logger('warn', (line) => lines.push(line), { rateLimitMs: 50 });
  const limit = log.limit('test-reason', 'test reason');
  let admitted = 0;
  for (let i = 0; i < 100; i++) if (limit.admit()) admitted++, log.warn(`occurrence ${i}`);
  assert.equal(admitted, 1);
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /WARN  occurrence 0$/);
  await waitFor(() => lines.length === 2, 'the report of what was held back');
  assert.match(lines[1]!, /WARN  test reason \(and 99 more like this in the last [\d.]+ s\)$/);
  // A window with nothing held back reopens: the next occurrence is logged at once.
  // Timers fire in order: the empty window (due 50 ms after the report) ends before this sleep.
  await new Promise((resolve) => setTimeout(resolve, 150));
  assert.equal(limit.admit(), true);
  assert.equal(lines.length, 2);
  // Another reason has a window of its own, and flushLimits() reports what is pending now.
  assert.equal(log.limit('other', 'other reason').admit(), true);
  assert.equal(log.limit('other', 'other reason').admit(3), false);
  log.flushLimits();
  assert.match(lines.at(-1)!, /WARN  other reason \(and 3 more like this in the last [\d.]+ s\)$/);
});

const FLOOD = 820;
const HELD = 4;

for (const engine of ['native', 'uv'] as const) {
  test(`[${engine}] ${FLOOD} connections over --max-conns: a few WARN lines, and their counts add up to every connection shed`, async (t) => {
    const server = await spawnServer(['--engine', engine, '--max-conns', String(HELD)], { MOB_LOG: 'warn' });
    try {
      const held = await Promise.all(Array.from({ length: HELD }, () => TestClient.connect(server.port)));
      // Its own frame back: each is accepted, and the server is full.
      for (const client of held) client.send('held'), await client.waitFrames(1);
      const started = Date.now();
      let shed = 0;
      // In waves a quarter second apart, so the flood spans several windows of the limit.
      for (let wave = 0; wave < 10; wave++) {
        if (wave > 0) await new Promise((resolve) => setTimeout(resolve, 250));
        await Promise.all(Array.from({ length: FLOOD / 10 }, async () => {
          const socket = connect({ port: server.port, host: '127.0.0.1' });
          socket.on('error', () => {});
          socket.resume();
          await once(socket, 'close');
          shed++;
        }));
      }
      const floodSeconds = (Date.now() - started) / 1000;
      assert.equal(shed, FLOOD);
      const counted = () => {
        const lines = server.stderr().split('\n').filter((line) => line.includes('connection limit reached'));
        let total = 0;
        let summaries = 0;
        for (const line of lines) {
          const first = /: closed (\d+) new connections?$/.exec(line);
          const held = /\(and (\d+) more like this in the last [\d.]+ s\)$/.exec(line);
          if (held) summaries++;
          total += Number(first?.[1] ?? held?.[1] ?? NaN);
        }
        return { lines: lines.length, total, summaries };
      };
      // The last window's report comes at most a second after the flood.
      await waitFor(() => counted().total >= FLOOD, `WARN lines accounting for all ${FLOOD} shed connections: ${JSON.stringify(counted())}`, 10_000);
      const { lines, total, summaries } = counted();
      assert.equal(total, FLOOD, server.stderr());
      assert.ok(summaries >= 1, 'a line reports what was held back');
      // One line per second of flood, plus the first line and the last report.
      assert.ok(lines <= Math.ceil(floodSeconds) + 2, `${lines} lines for a ${floodSeconds} s flood`);
      const warnLines = server.stderr().split('\n').filter((line) => / WARN /.test(line)).length;
      t.diagnostic(`${FLOOD} connections shed in ${floodSeconds.toFixed(1)} s: ${warnLines} WARN lines (${lines} about the limit, ${summaries} of them reports of what was held back)`);
      for (const client of held) client.destroy();
    } finally {
      server.child.kill('SIGTERM');
      await exitOf(server.child);
    }
  });
}

test('MOB_LOG_FORMAT=json: every stderr line is one JSON object with time, level, msg and the facts as fields', async () => {
  const server = await spawnServer(['--max-frame', '1024'], { MOB_LOG: 'debug', MOB_LOG_FORMAT: 'json' });
  const hostile = await TestClient.connect(server.port);
  await hostile.writeRaw(Buffer.alloc(HEADER_BYTES, 0xff));
  await hostile.waitClosed();
  await waitFor(() => server.stderr().includes('exceeds --max-frame'), 'the frame-too-large line');
  server.child.kill('SIGTERM');
  assert.equal((await exitOf(server.child)).code, 0, server.stderr());
  const lines = server.stderr().trim().split('\n');
  assert.ok(lines.length >= 4, server.stderr());
  const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  for (const record of records) {
    assert.equal(typeof record.msg, 'string');
    assert.ok(['error', 'warn', 'info', 'debug', 'trace'].includes(record.level as string), String(record.level));
    assert.equal(new Date(record.time as string).toISOString(), record.time);
  }
  const breach = lines.find((line) => line.includes('exceeds --max-frame'))!;
  // 2**64-1 exactly, as a JSON number (JSON.parse would round it, so read the text).
  assert.match(breach, /"level":"warn"/);
  assert.match(breach, /"reason":"frame-too-large","length":18446744073709551615,"limit":1024/);
  assert.match(breach, /"msg":"closing connection \d+ \([^)]+\): frame length 18446744073709551615 exceeds --max-frame 1024"/);
  const parsed = JSON.parse(breach) as Record<string, unknown>;
  assert.equal(typeof parsed.conn, 'number');
  assert.match(parsed.peer as string, /^127\.0\.0\.1:\d+$/);
  assert.ok(records.some((r) => r.level === 'info' && r.msg === 'stopped'));
});

test('MOB_LOG_FORMAT with an unknown value: a warning, then text lines', () => {
  const lines: string[] = [];
  const log = Logger.fromEnv({ MOB_LOG_FORMAT: 'xml' }, (line) => lines.push(line));
  assert.equal(log.format, 'text');
  assert.match(lines[0]!, /WARN  MOB_LOG_FORMAT=xml is not one of text\|json; using text$/);
});

async function startWithLog(engine: 'native' | 'uv', log: Logger): Promise<MobServer> {
  const options = { host: '127.0.0.1', port: 0, limits: { ...DEFAULT_LIMITS, maxFrame: 1024 }, shutdownTimeoutMs: 1000 };
  return engine === 'native' ? new NativeServer(options, log) : UvServer.listen(options, log);
}

for (const engine of ['native', 'uv'] as const) {
  test(`[${engine}] an oversized length is reported exactly: 2**53+1 and 2**64-1, not rounded`, async () => {
    const lines: string[] = [];
    // A window of 1 ms: two breaches a second apart must both be quoted, not one held back.
    const server = await startWithLog(engine, new Logger('warn', (line) => lines.push(line), { rateLimitMs: 1 }));
    try {
      for (const length of [2n ** 53n + 1n, 2n ** 64n - 1n]) {
        const client = await TestClient.connect(server.address.port);
        client.send('a good frame first');
        await client.waitFrames(1);
        const header = Buffer.alloc(HEADER_BYTES);
        header.writeBigUInt64BE(length);
        await client.writeRaw(header);
        await client.waitClosed();
        await waitFor(() => lines.some((line) => line.includes(`frame length ${length} exceeds --max-frame 1024`)), `the line for ${length}: ${lines.join('\n')}`);
      }
      assert.ok(!lines.some((line) => line.includes('9007199254740992')), lines.join('\n'));
    } finally {
      await server.close();
    }
  });
}
