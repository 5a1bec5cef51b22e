// The `mob` command as a user runs it: a real process, real signals, real sockets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliPath, exitOf, repoRoot, spawnServer, TestClient, waitFor } from './helpers.ts';

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

/** `mob client ... --json` against a `mob serve` started with `serveArgs`: its report. */
async function clientReport(serveArgs: string[], clientArgs: string[]) {
  const server = await spawnServer(serveArgs);
  try {
    const run = mob(['client', '--port', String(server.port), ...clientArgs, '--json']);
    assert.equal(run.status, 0, run.stdout + run.stderr);
    return JSON.parse(run.stdout) as { received: number; outOfOrder: number; corrupt: number; rttMs: { p50: number } };
  } finally {
    server.child.kill('SIGTERM');
    await exitOf(server.child);
  }
}

test('mob client speaks the protocol end to end: every frame, in order, at every client', async () => {
  const report = await clientReport([], ['--clients', '8', '--messages', '200', '--size', '100', '--window', '4']);
  assert.equal(report.received, 8 * 8 * 200);
  assert.equal(report.outOfOrder, 0);
  assert.equal(report.corrupt, 0);
  assert.ok(report.rttMs.p50 > 0);
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


test('--version prints the package version; --help on every command prints its usage and exits 0', () => {
  const version = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')).version as string;
  assert.equal(mob(['--version']).stdout, `${version}\n`);
  for (const command of ['serve', 'client', 'info', 'lab', 'trace-svg']) {
    const run = mob([command, '--help']);
    assert.equal(run.status, 0, `${command}: ${run.stderr}`);
    assert.match(run.stdout, new RegExp(`^usage: mob ${command}`));
  }
  const serve = mob(['serve', '--help']).stdout;
  for (const flag of ['--host', '--port', '--max-frame', '--max-conns', '--max-output', '--engine', '--trace']) assert.match(serve, new RegExp(`^  ${flag} `, 'm'));
});

test('mob with no command prints the usage on stderr and exits 2', () => {
  const run = mob([]);
  assert.equal(run.status, 2);
  assert.equal(run.stdout, '');
  assert.match(run.stderr, /^usage:\n {2}mob serve /m);
});

test('zero, negative and out-of-range values, and stray arguments, are refused naming the flag', () => {
  const cases: [string[], RegExp][] = [
    [['serve', '--port', '-1'], /^--port wants a whole number from 0 to 65535, not '-1'$/],
    [['serve', '--max-frame', '0'], /^--max-frame must be at least 1024 bytes, not '0'$/],
    [['serve', '--max-frame', '1000'], /^--max-frame must be at least 1024 bytes/],
    [['serve', '--max-output', '-1'], /^--max-output wants a size in bytes/],
    [['serve', '--max-conns', '0'], /^--max-conns wants a whole number of at least 1, not '0'$/],
    [['serve', '--shutdown-timeout', '-5'], /^--shutdown-timeout wants a whole number of at least 0/],
    [['serve', '--engine', 'fast'], /^--engine must be one of native, uv, not 'fast'$/],
    [['client', '--clients', '0'], /^--clients wants a whole number from 1 to 100000, not '0'$/],
    [['client', '--messages', '-3'], /^--messages wants a whole number of at least 1, not '-3'$/],
    [['client', '--size', '4'], /^--size must be at least 8 bytes, not '4'$/],
    [['client', '--port', '0'], /^--port wants a whole number from 1 to 65535, not '0'$/],
    [['serve', 'extra'], /^mob serve: unexpected argument 'extra'/],
    [['client', '127.0.0.1'], /^mob client: unexpected argument '127\.0\.0\.1'/],
    [['info', 'now'], /^mob info: unexpected argument 'now'/],
    [['serve', '--bogus'], /^mob serve: unknown option '--bogus'; mob serve --help lists the flags$/],
  ];
  for (const [args, message] of cases) {
    const run = mob(args);
    assert.equal(run.status, 2, `${args.join(' ')}: ${run.stderr}`);
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    assert.match(run.stderr.trim(), message, args.join(' '));
  }
});

test('--host [::1] is accepted, as the server prints it, by serve and client', async () => {
  const report = await clientReport(['--host', '[::1]'], ['--host', '[::1]', '--clients', '2', '--messages', '5']);
  assert.equal(report.received, 2 * 2 * 5);
});

test('mob client with no server prints one line, no statistics, and exits 1', async () => {
  const probe = createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const port = (probe.address() as { port: number }).port;
  probe.close();
  await once(probe, 'close');
  for (const extra of [[], ['--json']]) {
    const run = mob(['client', '--port', String(port), ...extra]);
    assert.equal(run.status, 1);
    assert.equal(run.stdout, '');
    assert.equal(run.stderr, `mob: cannot connect to 127.0.0.1:${port}: ECONNREFUSED\n`);
  }
});

test("the README's usage block is what mob --help prints", () => {
  const help = mob(['--help']).stdout;
  const usage = /^usage:\n((?: {2}.*\n)+)/m.exec(help)![1]!.replace(/^ {2}/gm, '');
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const block = /```sh\n(mob serve [^]*?)```/.exec(readme);
  assert.ok(block, 'README has a ```sh block starting with "mob serve"');
  assert.equal(block[1], usage);
});
