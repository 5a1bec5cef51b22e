// The addon's other two ways in: a prebuild (prebuildify --napi, loaded by node-gyp-build with
// no compiler) and a cmake-js build of the same sources, loadable through MOB_PREBUILD like
// the others; and where both builds find Node's uv.h. Built in a scratch copy of the project
// so the suite's own build/Release is left alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, mkdirSync, readFileSync, rmSync, symlinkSync, existsSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './helpers.ts';
import type { NativeBinding } from '../src/native/binding.ts';

const scratch = mkdtempSync(join(tmpdir(), 'mob-build-'));
for (const entry of ['package.json', 'binding.gyp', 'CMakeLists.txt', 'native', 'dist']) {
  cpSync(join(repoRoot, entry), join(scratch, entry), { recursive: true });
}
symlinkSync(join(repoRoot, 'node_modules'), join(scratch, 'node_modules'), 'dir');
const env = { ...process.env, npm_config_nodedir: process.env.npm_config_nodedir ?? '/usr', MOB_PREBUILD: undefined };
delete env.MOB_PREBUILD;

function run(command: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}) {
  const merged: NodeJS.ProcessEnv = { ...env, ...extraEnv };
  for (const [key, value] of Object.entries(merged)) if (value === undefined) delete merged[key];
  const result = spawnSync(command, args, { cwd: scratch, env: merged, encoding: 'utf8', timeout: 300_000 });
  assert.equal(result.status, 0, `${command} ${args.join(' ')}:\n${result.stdout}\n${result.stderr}`);
  return { stdout: result.stdout, output: result.stdout + result.stderr };
}

test.after(() => rmSync(scratch, { recursive: true, force: true }));

test('npm run prebuildify makes a prebuild that loads with no build/ directory', () => {
  run('npm', ['run', 'prebuildify']);
  const dir = join(scratch, 'prebuilds', `${process.platform}-${process.arch}`);
  assert.ok(readdirSync(dir).some((f) => f.endsWith('.node')), `no .node in ${dir}`);
  rmSync(join(scratch, 'build'), { recursive: true, force: true });
  const info = JSON.parse(run(process.execPath, ['dist/cli/main.js', 'info']).stdout);
  assert.equal(info.addon.loadedFrom, 'prebuild');
  assert.match(info.addon.path, /prebuilds/);
});

test('npm run build:cmake builds the same addon with cmake-js, loadable as MOB_PREBUILD=build-cmake', () => {
  // -Wall -Wextra (CMakeLists.txt) must stay quiet.
  assert.doesNotMatch(run('npm', ['run', 'build:cmake']).output, /warning:/);
  const path = join(scratch, 'build-cmake', 'build', 'Release', 'mob.node');
  assert.ok(existsSync(path));
  // node-gyp-build's layout: the override names the directory that holds build/Release.
  const info = JSON.parse(run(process.execPath, ['dist/cli/main.js', 'info'], { MOB_PREBUILD: 'build-cmake' }).stdout);
  assert.equal(info.addon.path, path);
  const binding = createRequire(import.meta.url)(path) as NativeBinding;
  assert.equal(binding.napiVersion, 8);
  const listener = binding.listen('127.0.0.1', 0, 0, false);
  const client = binding.connect('127.0.0.1', binding.localAddress(listener).port);
  const poller = new binding.Poller();
  try {
    poller.add(listener, 42, 1);
    const events = new Uint32Array(binding.EVENT_STRIDE * 4);
    assert.equal(poller.wait(events, 2000), 1);
    assert.equal(events[0], 42);
  } finally {
    poller.close();
    binding.close(client);
    binding.close(listener);
  }
});

test('both builds look for uv.h beside the node that runs them (DIR/bin/node, DIR/include/node)', () => {
  // A node install laid out as nvm or Homebrew lay it out, with no nodedir configured.
  const install = join(scratch, 'node-install');
  mkdirSync(join(install, 'bin'), { recursive: true });
  mkdirSync(join(install, 'include'), { recursive: true });
  writeFileSync(join(install, 'bin', 'node'), '');
  symlinkSync('/usr/include/node', join(install, 'include', 'node'), 'dir');
  const beside = { npm_config_nodedir: undefined, npm_node_execpath: join(install, 'bin', 'node') };

  // Run directly: npx would set npm_node_execpath to its own node.
  const cmake = run(process.execPath, ['node_modules/cmake-js/bin/cmake-js', 'configure', '--out', 'build-beside'], beside).output;
  assert.ok(cmake.includes(`mob: uv.h from ${join(install, 'include', 'node')}`), cmake);

  run(process.execPath, ['node_modules/node-gyp/bin/node-gyp.js', 'configure', `--nodedir=${env.npm_config_nodedir}`], beside);
  const makefile = readFileSync(join(scratch, 'build', 'mob.target.mk'), 'utf8');
  assert.ok(makefile.includes(`-I${join(install, 'include', 'node')}`), 'node-gyp build lacks the include dir beside node');
});
