// Serving an inherited listening socket, as a supervisor hands it over: `mob serve
// --listen-fd N`, and systemd's socket activation (LISTEN_FDS, LISTEN_PID, fd 3). The test is
// the supervisor: it binds the socket itself and passes it to the child as descriptor 3.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { native } from '../src/native/binding.ts';
import { cliPath, exitOf, TestClient } from './helpers.ts';

/** A listening socket on a kernel-chosen port, owned by this (supervisor) process. */
function bindListener(): { fd: number; port: number } {
  const fd = native.listen('127.0.0.1', 0, 0, false);
  return { fd, port: native.localAddress(fd).port };
}

/** Starts `argv` with the listener as its fd 3; resolves with its "listening on" line. */
async function startWithListener(argv: string[], listenerFd: number, env: NodeJS.ProcessEnv = {}) {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe', listenerFd], env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d));
  child.stderr!.on('data', (d: Buffer) => (stderr += d));
  const deadline = Date.now() + 15_000;
  while (!/listening on .*\n/.test(stdout)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      assert.fail(`no listening line: ${stdout} ${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return { child, line: /listening on (.*)\n/.exec(stdout)![1]!, stderr: () => stderr };
}

/** Two clients through the served socket: a frame from one reaches both. */
async function checkServes(port: number): Promise<void> {
  const a = await TestClient.connect(port);
  const b = await TestClient.connect(port);
  try {
    await new Promise((resolve) => setTimeout(resolve, 50));
    a.send('through an inherited socket');
    await a.waitFrames(1);
    await b.waitFrames(1);
    assert.equal(b.frames[0]!.toString(), 'through an inherited socket');
  } finally {
    a.destroy();
    b.destroy();
  }
}

/** Binds a listener, hands it to `argv` as fd 3, and checks that the child serves it, then
 *  stops on SIGTERM with exit 0. */
async function checkInherited(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<void> {
  const listener = bindListener();
  try {
    const served = await startWithListener(argv, listener.fd, env);
    assert.equal(served.line, `127.0.0.1:${listener.port}`);
    await checkServes(listener.port);
    served.child.kill('SIGTERM');
    assert.equal((await exitOf(served.child)).code, 0, served.stderr());
  } finally {
    native.close(listener.fd);
  }
}

for (const engine of ['native', 'uv']) {
  test(`mob serve --listen-fd 3 serves the socket it inherits (${engine} engine)`, () =>
    checkInherited([process.execPath, cliPath, 'serve', '--listen-fd', '3', '--engine', engine]));

  // systemd sets LISTEN_PID to the service's own pid: sh's $$ is the pid node runs as after exec.
  test(`systemd socket activation: LISTEN_FDS=1 for this pid serves fd 3 (${engine} engine)`, () =>
    checkInherited(['/bin/sh', '-c', `LISTEN_PID=$$ exec "${process.execPath}" "${cliPath}" serve --engine ${engine}`], { LISTEN_FDS: '1' }));
}

test('LISTEN_FDS meant for another process (LISTEN_PID) is ignored: the server binds its own port', async () => {
  const listener = bindListener();
  try {
    const served = await startWithListener([process.execPath, cliPath, 'serve', '--port', '0'], listener.fd, { LISTEN_FDS: '1', LISTEN_PID: '1' });
    assert.match(served.line, /^127\.0\.0\.1:\d+$/);
    assert.notEqual(served.line, `127.0.0.1:${listener.port}`);
    served.child.kill('SIGTERM');
    await exitOf(served.child);
  } finally {
    native.close(listener.fd);
  }
});

test('--listen-fd refuses --host/--port, and a descriptor that is no listening socket, in one line', () => {
  const mob = (args: string[]) => spawnSync(process.execPath, [cliPath, 'serve', ...args], { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] });
  const both = mob(['--listen-fd', '3', '--port', '8000']);
  assert.equal(both.status, 2);
  assert.equal(both.stderr, "--port does not apply to an inherited socket (--listen-fd or systemd's LISTEN_FDS)\n");
  const notSocket = mob(['--listen-fd', '0']);
  assert.equal(notSocket.status, 1);
  assert.equal(notSocket.stderr, 'mob: cannot serve fd 0: not an open listening socket (ENOTSOCK)\n');
  const closed = mob(['--listen-fd', '250']);
  assert.equal(closed.status, 1);
  assert.match(closed.stderr, /^mob: .*250.*EBADF.*\n$/);
});
