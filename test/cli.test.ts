// The `mob` command as a user runs it: a real process, real signals, real sockets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliPath, exitOf, spawnServer, TestClient, waitFor } from './helpers.ts';

function mob(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, [cliPath, ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } });
}

test('SIGTERM: stops accepting, closes clients, exits 0', async () => {
  const server = await spawnServer([]);
  const client = await TestClient.connect(server.port);
  client.send('before shutdown');
  await client.waitFrames(1);
  server.child.kill('SIGTERM');
  const { code } = await exitOf(server.child);
  assert.equal(code, 0, server.stderr());
  await client.waitClosed();
  await assert.rejects(TestClient.connect(server.port), /ECONNREFUSED/);
});

test('SIGINT stops the server cleanly too', async () => {
  const server = await spawnServer([]);
  server.child.kill('SIGINT');
  assert.equal((await exitOf(server.child)).code, 0);
});

test('mob client speaks the protocol end to end: every frame, in order, at every client', async () => {
  const server = await spawnServer([]);
  try {
    const run = mob(['client', '--port', String(server.port), '--clients', '8', '--messages', '200', '--size', '100', '--window', '4', '--json']);
    assert.equal(run.status, 0, run.stdout + run.stderr);
    const report = JSON.parse(run.stdout);
    assert.equal(report.received, 8 * 8 * 200);
    assert.equal(report.outOfOrder, 0);
    assert.equal(report.corrupt, 0);
    assert.ok(report.rttMs.p50 > 0);
  } finally {
    server.child.kill('SIGTERM');
    await exitOf(server.child);
  }
});

test('a port in use is one clear line and exit 1', async () => {
  const blocker = createServer().listen(0, '127.0.0.1');
  await once(blocker, 'listening');
  const port = (blocker.address() as { port: number }).port;
  try {
    const run = mob(['serve', '--port', String(port)]);
    assert.equal(run.status, 1);
    assert.match(run.stderr, /address already in use/);
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
  } finally {
    blocker.close();
  }
});

test('a bad flag or value is one line and exit 2', () => {
  for (const args of [['serve', '--bogus'], ['serve', '--max-frame', 'lots'], ['serve', '--port', '70000'], ['frobnicate']]) {
    const run = mob(args);
    assert.equal(run.status, 2, `${args.join(' ')}: ${run.stderr}`);
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    assert.doesNotMatch(run.stderr, /at .*\.js:\d+/); // no stack trace
  }
});

test('a missing or wrong-platform addon is one clear line and exit 1', () => {
  const real = JSON.parse(mob(['info']).stdout).addon.path as string;
  const root = mkdtempSync(join(tmpdir(), 'mob-addon-'));
  try {
    const place = (name: string, bytes: Buffer | string) => {
      mkdirSync(join(root, name, 'build', 'Release'), { recursive: true });
      writeFileSync(join(root, name, 'build', 'Release', 'mob.node'), bytes);
      return join(root, name);
    };
    mkdirSync(join(root, 'empty'));
    const elf = readFileSync(real);
    const foreign = Buffer.from(elf);
    // Another CPU's build: same file, another ELF e_machine (dlopen itself says "No such file").
    if (foreign.subarray(0, 4).toString('latin1') === '\x7fELF') foreign.writeUInt16LE(process.arch === 'arm64' ? 0x3e : 0xb7, 18);
    const cases: [string, RegExp][] = [
      [join(root, 'empty'), /^mob: no native addon for \S+ \(node v[\d.]+\) in .*empty; build it with `npm run build:native`/],
      [place('text', 'not a shared library\n'), /^mob: cannot load the native addon .*mob\.node: it is not a shared library/],
    ];
    if (process.platform === 'linux') cases.push([place('foreign', foreign), /^mob: cannot load the native addon .*: it is built for (arm64|x64), this is linux-/]);
    for (const [dir, message] of cases) {
      for (const args of [['serve', '--port', '0'], ['info']]) {
        const run = mob(args, { MOB_PREBUILD: dir });
        assert.equal(run.status, 1, `${dir} ${args[0]}: ${run.stderr}`);
        assert.match(run.stderr, message);
        assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
        assert.doesNotMatch(run.stderr, /at .*\.js:\d+/);
      }
    }
    // A relative MOB_PREBUILD (MOB_PREBUILD=build-asan, as DEVELOPERS.md shows) loads too.
    place('copy', elf);
    const run = spawnSync(process.execPath, [cliPath, 'info'], { cwd: root, encoding: 'utf8', env: { ...process.env, MOB_PREBUILD: 'copy' } });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(JSON.parse(run.stdout).addon.path, join(root, 'copy', 'build', 'Release', 'mob.node'));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('mob info reports version, backend, Node-API version and how the addon loaded', () => {
  const run = mob(['info']);
  assert.equal(run.status, 0, run.stderr);
  const info = JSON.parse(run.stdout);
  assert.match(info.version, /^\d+\.\d+\.\d+/);
  assert.ok(['epoll', 'kqueue'].includes(info.backend));
  // MOB_EXPECT_BACKEND=kqueue when the suite runs against a kqueue build (see DEVELOPERS.md).
  assert.equal(info.backend, process.env.MOB_EXPECT_BACKEND ?? (process.platform === 'linux' ? 'epoll' : 'kqueue'));
  assert.ok(info.napiVersion >= 8);
  assert.ok(['prebuild', 'local build'].includes(info.addon.loadedFrom));
});

test('MOB_LOG=debug logs connection events to stderr', async () => {
  const server = await spawnServer([], { MOB_LOG: 'debug' });
  const client = await TestClient.connect(server.port);
  await waitFor(() => /connection \d+ from 127\.0\.0\.1:\d+/.test(server.stderr()), 'a debug line for the connection');
  client.socket.resetAndDestroy(); // after a FIN alone it would stay a receiver (half-close)
  // (kqueue emulations consume the socket error and report EOF: 'peer closed' there.)
  await waitFor(() => /closed: (socket error ECONNRESET|peer closed)/.test(server.stderr()), 'a debug line for the close');
  server.child.kill('SIGTERM');
  await exitOf(server.child);
});

test('a client over the connection limit gets a warning in the log', async () => {
  const server = await spawnServer(['--max-conns', '1']);
  const a = await TestClient.connect(server.port);
  const b = await TestClient.connect(server.port);
  await b.waitClosed();
  await waitFor(() => /connection limit reached \(--max-conns 1\)/.test(server.stderr()), 'the limit warning');
  a.destroy();
  server.child.kill('SIGTERM');
  await exitOf(server.child);
});

