// Every program in examples/ runs here as a user runs it (node with tsx), importing the
// package by its name through the package's own `exports` (self-reference), and the type
// check (npm run typecheck) compiles them against the emitted .d.ts the same way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { cliPath, exitOf, repoRoot } from './helpers.ts';

const example = (name: string) => join(repoRoot, 'examples', name);

function runExample(name: string, args: string[] = []) {
  return spawnSync(process.execPath, ['--import', 'tsx', example(name), ...args], { cwd: repoRoot, encoding: 'utf8', timeout: 60_000 });
}

test('examples/echo-poll.ts echoes every byte back, in order, across partial writes', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', example('echo-poll.ts')], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    while (!/listening on 127\.0\.0\.1:(\d+)/.test(stdout)) {
      await Promise.race([once(child.stdout, 'data'), once(child, 'exit').then(() => assert.fail(`exited: ${stdout}`))]);
    }
    const port = Number(/:(\d+)/.exec(stdout)![1]);
    // More than a socket buffer, sent without reading at first: the server must queue and wait for WRITABLE.
    const payload = randomBytes(4 * 1024 * 1024);
    const socket = connect(port, '127.0.0.1');
    await once(socket, 'connect');
    socket.pause();
    socket.write(payload);
    await new Promise((resolve) => setTimeout(resolve, 200));
    socket.resume();
    const chunks: Buffer[] = [];
    let got = 0;
    for await (const chunk of socket as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      got += chunk.length;
      if (got >= payload.length) break;
    }
    assert.ok(Buffer.concat(chunks).equals(payload), 'the echo differs from what was sent');
    socket.destroy();
  } finally {
    child.kill('SIGTERM');
    assert.equal((await exitOf(child)).code, 0);
  }
});

for (const engine of ['native', 'uv']) {
  test(`examples/embed-server.ts starts the ${engine} engine, fans a frame out to both clients and exits`, () => {
    const run = runExample('embed-server.ts', [engine]);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, new RegExp(`^${engine === 'uv' ? 'uv-corked' : 'native'} engine listening on 127\\.0\\.0\\.1:\\d+`));
    assert.match(run.stdout, /alice got "hello from alice", bob got "hello from alice"/);
    assert.match(run.stdout, /"framesIn":1/);
  });
}

test('examples/lab-experiment.ts runs a custom experiment on the lab harness and passes', () => {
  const run = runExample('lab-experiment.ts');
  assert.equal(run.status, 0, run.stdout + run.stderr);
  assert.match(run.stdout, /^PASS level-repeats \((epoll|kqueue)\): 4\/4 checks$/m);
});

test('mob lab runs the same experiment from its file (node --import tsx for a .ts file)', () => {
  const run = spawnSync(process.execPath, ['--import', 'tsx', cliPath, 'lab', './examples/lab-experiment.ts'], { cwd: repoRoot, encoding: 'utf8', timeout: 60_000 });
  assert.equal(run.status, 0, run.stdout + run.stderr);
  assert.match(run.stdout, /^PASS level-repeats \((epoll|kqueue)\): 4\/4 checks$/m);
});

test('the entry points import without an addon; the first use of one says MOB_NO_ADDON', () => {
  const script = `
    const root = await import('mob-echo');
    const server = await import('mob-echo/server');
    const protocol = await import('mob-echo/protocol');
    await import('mob-echo/lab');
    const frame = protocol.encodeFrame(Buffer.from('hi'));
    const seen = [];
    new protocol.FrameDecoder((body) => seen.push(body.toString())).push(frame);
    let code = 'none';
    try { new root.Poll(); } catch (error) { code = error.code; }
    let started = 'none';
    try { await server.startServer({ port: 0 }); } catch (error) { started = error.code; }
    console.log(JSON.stringify({ eagain: root.errno.EAGAIN > 0, edge: root.Trigger.EDGE, seen, code, started }));`;
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: repoRoot, encoding: 'utf8', timeout: 30_000, env: { ...process.env, MOB_PREBUILD: join(repoRoot, 'no-such-build') },
  });
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout), { eagain: true, edge: 4, seen: ['hi'], code: 'MOB_NO_ADDON', started: 'MOB_NO_ADDON' });
});
