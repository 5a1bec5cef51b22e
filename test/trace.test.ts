// `mob serve --trace` from the build (run `npm run build:ts` first): one client's whole life —
// accepted, registered, read, echoed, hung up, deregistered, closed — shows up in the timeline,
// as text and as JSON lines.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createConnection } from 'node:net';
import { spawnServer, exitOf, TestClient, waitFor, cliPath, type CliServer } from './helpers.ts';
import { NativeServer } from '../src/server/native/server.ts';
import { DEFAULT_LIMITS } from '../src/server/policy.ts';
import { Logger } from '../src/log.ts';
import { createRecordTimeline, formatRecord, type TraceRecord } from '../src/trace/timeline.ts';
import { describeRawEvent, describeRegistration } from '../src/trace/kernel.ts';
import { native, InterestBits } from '../src/native/binding.ts';

/** Starts the server, runs one client through its life, stops the server; returns stdout lines. */
async function traceOneClient(flag: string): Promise<string[]> {
  const server: CliServer = await spawnServer([flag]);
  let stdout = '';
  server.child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk));
  try {
    const client = await TestClient.connect(server.port);
    client.send('hello, trace');
    const [echo] = await client.waitFrames(1);
    assert.equal(echo!.toString(), 'hello, trace');
    // FIN: the client stays a receiver (half-close) until the server stops and closes it.
    client.socket.end();
    await waitFor(() => /half-closed|"op":"half-closed"/.test(stdout), 'the half-close in the timeline', 5000);
    server.child.kill('SIGTERM');
    await client.waitClosed();
    await waitFor(() => /removed|"op":"close"/.test(stdout), 'the removal in the timeline', 5000);
  } finally {
    server.child.kill('SIGTERM');
  }
  const { code } = await exitOf(server.child);
  assert.equal(code, 0, server.stderr());
  // spawnServer has already consumed the "listening on" line: what is left is the timeline.
  return stdout.split('\n').filter((line) => line.length > 0 && !line.startsWith('listening on '));
}

/** Index of the first line matching `pattern` at or after `from`; fails the test if none. */
function find(lines: string[], pattern: RegExp, from: number): number {
  const at = lines.findIndex((line, i) => i >= from && pattern.test(line));
  assert.ok(at >= 0, `no line matching ${pattern} after line ${from}:\n${lines.join('\n')}`);
  return at;
}

describe('mob serve --trace', () => {
  test('text: a client\'s whole life, in order', { timeout: 20_000 }, async () => {
    const lines = await traceOneClient('--trace');
    for (const line of lines) assert.match(line, /^\+\s*\d+\.\d{3}ms {2}/, `untimed line: ${line}`);
    let at = find(lines, /event\s+listener\s+READABLE\s+\[(EPOLLIN|EVFILT_READ)/, 0);
    at = find(lines, /accept\s+fd \d+\s+listener -> fd \d+/, at);
    at = find(lines, /register\s+fd \d+\s+0\/0 READABLE\|edge \[(EPOLL_CTL_ADD|EVFILT_READ EV_ADD)/, at);
    find(lines, /accept\s+fd \d+\s+listener -> EAGAIN/, at);
    at = find(lines, /connection fd \d+\s+0\/0/, at);
    at = find(lines, /event\s+0\/0\s+READABLE/, at);
    at = find(lines, /read\s+fd \d+\s+0\/0 -> 20 bytes/, at);
    at = find(lines, /read\s+fd \d+\s+0\/0 -> EAGAIN/, at);
    at = find(lines, /write\s+fd \d+\s+0\/0 -> 20 bytes/, at);
    at = find(lines, /read\s+fd \d+\s+0\/0 -> 0 \(EOF\)/, at);
    at = find(lines, /half-closed fd \d+\s+0\/0/, at);
    at = find(lines, /deregister fd \d+/, at);
    at = find(lines, /close\s+fd \d+\s+0\/0 -> ok/, at);
    find(lines, /removed\s+fd \d+\s+0\/0 \(server shutting down\)/, at);
  });

  test('json: the same life as JSON lines with stable fields', { timeout: 20_000 }, async () => {
    const lines = await traceOneClient('--trace=json');
    const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    for (const record of records) {
      assert.equal(typeof record.t, 'number');
      assert.ok(['batch', 'event', 'call', 'registration', 'connection', 'stale', 'budget'].includes(String(record.type)), String(record.type));
    }
    const index = (predicate: (r: Record<string, unknown>) => boolean, what: string): number => {
      const at = records.findIndex(predicate);
      assert.ok(at >= 0, `no ${what} in ${JSON.stringify(records, null, 1)}`);
      return at;
    };
    const accept = index((r) => r.type === 'call' && r.call === 'accept' && (r.result as number) >= 0, 'accept');
    const register = index((r) => r.type === 'registration' && r.op === 'register' && r.token === '0/0' && r.interest === 'READABLE|edge', 'register');
    const read = index((r) => r.type === 'call' && r.call === 'read' && r.result === 20 && r.outcome === '20 bytes', 'read');
    const again = index((r) => r.type === 'call' && r.call === 'read' && r.errno === 'EAGAIN', 'read EAGAIN');
    const write = index((r) => r.type === 'call' && r.call === 'write' && r.result === 20, 'write');
    const eof = index((r) => r.type === 'call' && r.call === 'read' && r.result === 0, 'read EOF');
    const deregister = index((r) => r.type === 'registration' && r.op === 'deregister', 'deregister');
    const close = index((r) => r.type === 'call' && r.call === 'close' && r.result === 0, 'close');
    const removed = index((r) => r.type === 'connection' && r.op === 'close', 'removal');
    const order = [accept, register, read, again, write, eof, deregister, close, removed];
    assert.deepEqual([...order].sort((a, b) => a - b), order, `out of order: ${order}`);
    const event = records.find((r) => r.type === 'event')!;
    assert.equal(typeof event.kernel, 'string');
    assert.equal(typeof event.flags, 'string');
  });
});

describe('the timeline', () => {
  test('--trace=json: stdout is JSON lines only, the listening line and the listener\'s registration included', { timeout: 20_000 }, async () => {
    const child = spawn(process.execPath, [cliPath, 'serve', '--port', '0', '--trace=json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk));
    try {
      await waitFor(() => stdout.includes('"type":"listening"'), 'the listening record', 10_000);
      const port = (JSON.parse(stdout.split('\n').find((line) => line.includes('"listening"'))!) as { port: number }).port;
      const client = await TestClient.connect(port);
      client.send('json only');
      await client.waitFrames(1);
      // A reset, not a FIN: a half-closed client stays a receiver until shutdown (#9).
      client.socket.resetAndDestroy();
      await waitFor(() => stdout.includes('"op":"close"'), 'the removal', 5000);
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal((await exitOf(child)).code, 0);
    const records = stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    const listener = records[0]!;
    assert.deepEqual([listener.type, listener.op, listener.token, listener.result], ['registration', 'register', 'listener', 'ok']);
    assert.ok(records.some((r) => r.type === 'listening' && typeof r.port === 'number'));
    const last = records.slice(-2).map((r) => [r.type, r.op ?? r.call, r.token, r.result]);
    assert.deepEqual(last, [['registration', 'deregister', null, 'ok'], ['call', 'close', 'listener', 0]]);
  });

  test('reads continued after the read budget are explained: budget spent, then continue, then the read with no event before it', { timeout: 20_000 }, async () => {
    const records: TraceRecord[] = [];
    const server = new NativeServer({ host: '127.0.0.1', port: 0, limits: DEFAULT_LIMITS, shutdownTimeoutMs: 1000 },
      new Logger('error'), createRecordTimeline((record) => records.push(record)));
    const frames = 32;
    const size = 64 * 1024;
    try {
      const socket = createConnection(server.address.port, '127.0.0.1');
      let echoed = 0;
      socket.on('data', (chunk) => (echoed += chunk.length));
      await new Promise((resolve) => socket.once('connect', resolve));
      const frame = Buffer.alloc(8 + size, 0x61);
      frame.writeBigUInt64BE(BigInt(size));
      socket.write(Buffer.concat(Array.from({ length: frames }, () => frame)));
      await waitFor(() => echoed === frames * frame.length, 'every frame echoed', 10_000);
      socket.destroy();
    } finally {
      await server.close();
    }
    const spent = records.findIndex((r) => r.type === 'budget' && r.op === 'spent');
    assert.ok(spent >= 0, 'a budget line');
    const resume = records.findIndex((r, i) => i > spent && r.type === 'budget' && r.op === 'resume');
    assert.ok(resume > spent, 'a continue line after it');
    const next = records[resume + 1]!;
    assert.deepEqual([next.type, next.type === 'call' && next.call], ['call', 'read']);
    assert.match(formatRecord(records[resume]!), /continue {3}fd \d+\s+0\/0: no event comes for it/);
  });

  test('columns stay put past 10 s, and past 1000 s the time is in seconds', () => {
    const at = (t: number) => formatRecord({ t, type: 'note', text: 'x' }).indexOf('#');
    assert.equal(at(1.5), at(12_345.678));
    assert.equal(at(1.5), at(999_999.999));
    assert.equal(at(1.5), at(3_600_000));
    assert.match(formatRecord({ t: 3_600_000, type: 'note', text: 'x' }), /^\+ +3600\.000s  # x$/);
    assert.match(formatRecord({ t: 12_345.678, type: 'batch', count: 2, timeout: 50, blocked: 1.5 }), /wait\(50 ms\) -> 2 events, blocked 1\.500 ms$/);
  });
});

describe('kernel names', () => {
  const { READABLE, WRITABLE, EDGE, DISPATCH, EXCLUSIVE, NO_RDHUP } = InterestBits;
  test('raw bits are named with the addon\'s own constants, and registrations as the selector makes them', () => {
    const k = native.kernel;
    if (native.backend === 'epoll') {
      assert.equal(describeRawEvent('epoll', k.EPOLLIN! | k.EPOLLRDHUP! | 0x40_0000, 0), 'EPOLLIN|EPOLLRDHUP|0x400000');
      assert.equal(describeRegistration('epoll', 'register', READABLE | EDGE), 'EPOLL_CTL_ADD EPOLLIN|EPOLLRDHUP|EPOLLET');
      assert.equal(describeRegistration('epoll', 'register', READABLE | NO_RDHUP), 'EPOLL_CTL_ADD EPOLLIN');
      // The kernel refuses EPOLLRDHUP with EPOLLEXCLUSIVE: the addon leaves it out.
      assert.equal(describeRegistration('epoll', 'register', READABLE | EXCLUSIVE), 'EPOLL_CTL_ADD EPOLLIN|EPOLLEXCLUSIVE');
      assert.equal(describeRegistration('epoll', 'reregister', WRITABLE | EDGE | DISPATCH), 'EPOLL_CTL_MOD EPOLLOUT|EPOLLONESHOT|EPOLLET');
    } else {
      const raw = ((k.EV_ADD! | k.EV_EOF!) << 16) | (k.EVFILT_READ! & 0xffff);
      assert.equal(describeRawEvent('kqueue', raw, 100), 'EVFILT_READ EV_ADD|EV_EOF data=100');
      assert.match(describeRegistration('kqueue', 'register', READABLE | EDGE | DISPATCH), /^EVFILT_READ EV_ADD\|EV_ENABLE\|EV_CLEAR\|EV_RECEIPT\|EV_DISPATCH$/);
    }
  });
});
