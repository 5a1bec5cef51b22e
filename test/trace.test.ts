// `mob serve --trace` from the build (run `npm run build:ts` first): one client's whole life —
// accepted, registered, read, echoed, hung up, deregistered, closed — shows up in the timeline,
// as text and as JSON lines.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnServer, exitOf, TestClient, waitFor, type CliServer } from './helpers.ts';

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
      assert.ok(['batch', 'event', 'call', 'registration', 'connection', 'stale'].includes(String(record.type)), String(record.type));
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
