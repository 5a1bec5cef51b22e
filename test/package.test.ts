// The package as it is published and installed: what the tarball ships, the prebuilds in it
// (x64 built here, arm64 cross-built here and run under qemu when an arm64 Node is at hand),
// the loader's choice by libc, the prepublish check, and an install into an empty project on
// a PATH with no compiler, where the `mob` command and an example typed against the package
// by name must work. Everything happens in scratch directories: the checkout is left alone.
import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { cpSync, existsSync, realpathSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exitOf, repoRoot } from './helpers.ts';
import { checkBinary, checkPrebuilds, packedFiles, TARGETS } from '../scripts/release/check-prebuilds.ts';

const scratch = mkdtempSync(join(tmpdir(), 'mob-package-'));
const pkg = join(scratch, 'pkg');
const env: NodeJS.ProcessEnv = { ...process.env, npm_config_nodedir: process.env.npm_config_nodedir ?? '/usr' };
delete env.MOB_PREBUILD;
const hasCrossCompiler = spawnSync('sh', ['-c', 'command -v aarch64-linux-gnu-g++'], { encoding: 'utf8' }).status === 0;
// Debian's arm64 node, unpacked by `scripts/prebuild/arm64-smoke.sh --fetch DIR` (not installed).
const arm64NodeRoot = process.env.MOB_ARM64_NODE_ROOT ?? '/tmp/mob-arm64-node';
const canRunArm64 = existsSync(join(arm64NodeRoot, 'usr/bin/node')) &&
  spawnSync('sh', ['-c', 'command -v qemu-aarch64-static'], { encoding: 'utf8' }).status === 0;
const onLinuxX64 = process.platform === 'linux' && process.arch === 'x64';

function run(command: string, args: string[], options: SpawnSyncOptions = {}): string {
  const result = spawnSync(command, args, { cwd: pkg, env, encoding: 'utf8', timeout: 300_000, ...options });
  assert.equal(result.status, 0, `${command} ${args.join(' ')}:\n${result.stdout}\n${result.stderr}`);
  return String(result.stdout);
}

let tarball = '';

before(() => {
  // What a clean clone has after `npm ci`, plus what `files` names: no build/, no prebuilds/.
  for (const entry of ['package.json', 'binding.gyp', 'CMakeLists.txt', 'native', 'dist', 'README.md', 'LICENSE', 'CHANGELOG.md', 'scripts']) {
    cpSync(join(repoRoot, entry), join(pkg, entry), { recursive: true });
  }
  symlinkSync(join(repoRoot, 'node_modules'), join(pkg, 'node_modules'), 'dir');
  run('npm', ['run', 'prebuildify']);
  if (hasCrossCompiler && onLinuxX64) run('bash', ['scripts/prebuild/cross-linux-arm64.sh', pkg]);
  const [packed] = JSON.parse(run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', scratch])) as [{ filename: string }];
  tarball = join(scratch, packed.filename);
});

after(() => rmSync(scratch, { recursive: true, force: true }));

test('npm pack ships dist JS with .d.ts, the addon sources, prebuilds and the docs; no maps, no tests', () => {
  const files = packedFiles(pkg);
  const has = (path: string) => assert.ok(files.includes(path), `${path} is not in the tarball`);
  for (const path of ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md', 'binding.gyp', 'CMakeLists.txt',
    'native/addon.cc', 'native/selector.h', 'native/selector_epoll.cc', 'native/selector_kqueue.cc', 'native/sockets.cc',
    'dist/cli/main.js', 'dist/index.js', 'dist/index.d.ts', 'dist/server/index.js', 'dist/server/index.d.ts',
    'dist/protocol/index.js', 'dist/protocol/index.d.ts', 'dist/lab/index.js', 'dist/lab/index.d.ts']) {
    has(path);
  }
  if (process.platform === 'linux') has(`prebuilds/linux-${process.arch}/mob-echo.glibc.node`);
  if (hasCrossCompiler && onLinuxX64) has('prebuilds/linux-arm64/mob-echo.glibc.node');
  // Every module that ships has its declarations.
  for (const js of files.filter((f) => f.startsWith('dist/') && f.endsWith('.js'))) has(js.replace(/\.js$/, '.d.ts'));
  assert.deepEqual(files.filter((f) => f.endsWith('.map')), [], 'source maps without their sources');
  assert.deepEqual(files.filter((f) => /^(src|test|examples|scripts|build|\.github)\//.test(f)), []);
  // Every path `exports` names is in the tarball.
  const manifest = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { exports: Record<string, string | Record<string, string>> };
  for (const target of Object.values(manifest.exports)) {
    for (const path of typeof target === 'string' ? [target] : Object.values(target)) has(path.replace(/^\.\//, ''));
  }
});

test('the linux-arm64 glibc prebuild is cross-built here, and is an aarch64 shared object', { skip: !(hasCrossCompiler && onLinuxX64) && 'needs linux-x64 and aarch64-linux-gnu-g++' }, () => {
  const path = join(pkg, 'prebuilds/linux-arm64/mob-echo.glibc.node');
  assert.match(run('file', ['-b', path]), /^ELF 64-bit LSB shared object, ARM aarch64.*stripped/);
  assert.equal(checkBinary(TARGETS.find((t) => t.dir === 'linux-arm64' && t.libc === 'glibc')!, readFileSync(path)), null);
});

test('the arm64 prebuild loads in Debian\'s arm64 node under qemu and does a loopback round trip', { skip: !(hasCrossCompiler && onLinuxX64 && canRunArm64) && `needs an arm64 node in ${arm64NodeRoot} (scripts/prebuild/arm64-smoke.sh --fetch ${arm64NodeRoot}) and qemu-aarch64-static` }, () => {
  const out = run('bash', ['scripts/prebuild/arm64-smoke.sh', arm64NodeRoot, join(pkg, 'prebuilds/linux-arm64/mob-echo.glibc.node')]);
  const smoke = JSON.parse(out) as { arch: string; backend: string; echoed: number; picked: string };
  assert.equal(smoke.arch, 'arm64');
  assert.equal(smoke.backend, 'epoll');
  assert.equal(smoke.echoed, 'hello from arm64'.length);
  assert.equal(smoke.picked, 'prebuilds/linux-arm64/mob-echo.glibc.node');
});

test('the loader honours the libc tag: glibc gets the prebuild, musl gets none (and compiles on install)', { skip: process.platform !== 'linux' && 'libc tags are Linux only' }, () => {
  const resolveWith = (libc: string) => spawnSync(process.execPath, ['-e', `console.log(require('node-gyp-build').resolve(${JSON.stringify(pkg)}))`],
    { cwd: pkg, env: { ...env, LIBC: libc }, encoding: 'utf8' });
  const glibc = resolveWith('glibc');
  assert.equal(glibc.status, 0, glibc.stderr);
  assert.equal(glibc.stdout.trim(), join(pkg, `prebuilds/linux-${process.arch}/mob-echo.glibc.node`));
  const musl = resolveWith('musl');
  assert.notEqual(musl.status, 0);
  assert.match(musl.stderr, /No native build was found for .*libc=musl/);
});

test('the release workflow\'s per-platform smoke (scripts/release/smoke.sh) passes on the prebuild made here', () => {
  const out = run('sh', ['scripts/release/smoke.sh']);
  assert.match(out, /"loadedFrom": "prebuild"/);
  assert.match(out, /^ok$/m);
});

test('prepublishOnly refuses a tarball missing any platform\'s prebuild, or holding a wrong one', () => {
  const refused = spawnSync('npm', ['run', 'prepublishOnly'], { cwd: pkg, env, encoding: 'utf8', timeout: 120_000 });
  assert.equal(refused.status, 1, refused.stdout + refused.stderr);
  assert.match(refused.stderr, /refusing to publish/);
  for (const missing of ['linux-x64/mob-echo.musl.node', 'linux-arm64/mob-echo.musl.node', 'darwin-x64/mob-echo.node', 'darwin-arm64/mob-echo.node']) {
    assert.match(refused.stderr, new RegExp(`missing prebuilds/${missing}`));
  }
  if (process.platform === 'linux') assert.doesNotMatch(refused.stderr, new RegExp(`linux-${process.arch}/mob-echo\\.glibc`));

  // The checker against binaries of every kind: synthetic headers with the bytes it reads.
  const elf = (machine: number, libc: string) => {
    const bytes = Buffer.alloc(256);
    bytes.writeUInt32BE(0x7f454c46, 0);
    bytes.writeUInt16LE(machine, 18);
    bytes.write(libc, 64);
    return bytes;
  };
  const macho = (cpu: number) => {
    const bytes = Buffer.alloc(64);
    bytes.writeUInt32LE(0xfeedfacf, 0);
    bytes.writeUInt32LE(cpu, 4);
    return bytes;
  };
  const good = (t: (typeof TARGETS)[number]) => t.os === 'darwin'
    ? macho(t.arch === 'x64' ? 0x0100_0007 : 0x0100_000c)
    : elf(t.arch === 'x64' ? 0x3e : 0xb7, t.libc === 'musl' ? `libc.musl-${t.arch === 'x64' ? 'x86_64' : 'aarch64'}.so.1` : 'libc.so.6');
  const root = join(scratch, 'synthetic');
  const place = (t: (typeof TARGETS)[number], bytes: Buffer) => {
    mkdirSync(join(root, 'prebuilds', t.dir), { recursive: true });
    writeFileSync(join(root, 'prebuilds', t.dir, t.file), bytes);
    return `prebuilds/${t.dir}/${t.file}`;
  };
  const files = TARGETS.map((t) => place(t, good(t)));
  assert.deepEqual(checkPrebuilds(root, files), []);
  const [x64glibc, x64musl, arm64glibc, , darwinX64] = TARGETS;
  place(x64musl!, good(x64glibc!));
  place(arm64glibc!, good(x64glibc!));
  place(darwinX64!, elf(0x3e, 'libc.so.6'));
  assert.deepEqual(checkPrebuilds(root, files), [
    'prebuilds/linux-x64/mob-echo.musl.node: not linked against musl (no libc.musl-*)',
    'prebuilds/linux-arm64/mob-echo.glibc.node: ELF machine 0x3e, not arm64',
    'prebuilds/darwin-x64/mob-echo.node: not a 64-bit Mach-O file',
  ]);
});

test('the tarball installs into an empty project with no compiler on the PATH; mob info, serve and client work', { skip: process.platform !== 'linux' && 'prebuilds here are Linux builds' }, async () => {
  const project = join(scratch, 'project');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'uses-mob', private: true, type: 'module' }));
  // A PATH with node, npm and sh (npm runs install scripts with it) alone: no cc, gcc, g++,
  // make or python.
  const bin = join(scratch, 'bin');
  mkdirSync(bin);
  symlinkSync(process.execPath, join(bin, 'node'));
  symlinkSync('/bin/sh', join(bin, 'sh'));
  const npmCli = realpathSync(spawnSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).stdout.trim());
  writeFileSync(join(bin, 'npm'), `#!/bin/sh\nexec "${process.execPath}" "${npmCli}" "$@"\n`, { mode: 0o755 });
  const bare = { ...env, PATH: bin, npm_config_nodedir: undefined, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' };
  const compilers = spawnSync('/bin/sh', ['-c', 'for c in cc gcc g++ c++ make python3 python; do command -v $c; done'], { env: bare, encoding: 'utf8' });
  assert.equal(compilers.stdout, '', 'a compiler is still on the PATH');

  run(join(bin, 'npm'), ['install', '--prefer-offline', '--no-package-lock', tarball], { cwd: project, env: bare, timeout: 120_000 });
  const mob = join(project, 'node_modules/.bin/mob');
  const info = JSON.parse(run(mob, ['info'], { cwd: project, env: bare })) as { addon: { loadedFrom: string; path: string } };
  assert.equal(info.addon.loadedFrom, 'prebuild');
  assert.match(info.addon.path, /node_modules\/mob-echo\/prebuilds\/linux-[a-z0-9]+\/mob-echo\.glibc\.node$/);

  const server = spawn(mob, ['serve', '--port', '0'], { cwd: project, env: bare, stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    let stdout = '';
    server.stdout.on('data', (d: Buffer) => (stdout += d));
    const deadline = Date.now() + 20_000;
    while (!/listening on 127\.0\.0\.1:\d+/.test(stdout)) {
      assert.ok(Date.now() < deadline && server.exitCode === null, `mob serve did not start: ${stdout}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const port = /:(\d+)/.exec(stdout)![1]!;
    const report = JSON.parse(run(mob, ['client', '--port', port, '--clients', '4', '--messages', '50', '--json'], { cwd: project, env: bare }));
    assert.equal(report.ok, true);
    assert.equal(report.received, 4 * 4 * 50);
  } finally {
    server.kill('SIGTERM');
    assert.equal((await exitOf(server)).code, 0);
  }

  // A program typed against the installed package by name, compiled and run there.
  cpSync(join(repoRoot, 'examples/embed-server.ts'), join(project, 'embed-server.ts'));
  writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, skipLibCheck: false,
      types: ['node'], typeRoots: [join(repoRoot, 'node_modules/@types')] },
    files: ['embed-server.ts'],
  }));
  run(process.execPath, [join(repoRoot, 'node_modules/typescript/bin/tsc'), '-p', '.'], { cwd: project, env: bare });
  const embedded = run(process.execPath, ['embed-server.js'], { cwd: project, env: bare });
  assert.match(embedded, /alice got "hello from alice", bob got "hello from alice"/);
});

test('where no prebuild fits (LIBC=musl stands in for Alpine), install compiles the addon from the shipped sources', { skip: process.platform !== 'linux' && 'libc tags are Linux only' }, () => {
  const project = join(scratch, 'musl-project');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'uses-mob-on-musl', private: true }));
  const musl = { ...env, LIBC: 'musl', npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' };
  run('npm', ['install', '--prefer-offline', '--no-package-lock', tarball], { cwd: project, env: musl, timeout: 240_000 });
  const installed = join(project, 'node_modules/mob-echo');
  assert.ok(existsSync(join(installed, 'build/Release/mob.node')), 'install did not compile the addon');
  const info = JSON.parse(run(join(project, 'node_modules/.bin/mob'), ['info'], { cwd: project, env: musl })) as { addon: { loadedFrom: string; path: string } };
  assert.equal(info.addon.loadedFrom, 'local build');
  assert.equal(info.addon.path, join(installed, 'build/Release/mob.node'));
});
