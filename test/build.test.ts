// The addon's other two ways in: a prebuild (prebuildify --napi, loaded by node-gyp-build with
// no compiler) and a cmake-js build of the same sources. Built in a scratch copy of the
// project so the suite's own build/Release is left alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, symlinkSync, existsSync, readdirSync } from 'node:fs';
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

function run(command: string, args: string[]) {
  const result = spawnSync(command, args, { cwd: scratch, env, encoding: 'utf8', timeout: 300_000 });
  assert.equal(result.status, 0, `${command} ${args.join(' ')}:\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

test.after(() => rmSync(scratch, { recursive: true, force: true }));

test('npm run prebuildify makes a prebuild that loads with no build/ directory', () => {
  run('npm', ['run', 'prebuildify']);
  const dir = join(scratch, 'prebuilds', `${process.platform}-${process.arch}`);
  assert.ok(readdirSync(dir).some((f) => f.endsWith('.node')), `no .node in ${dir}`);
  rmSync(join(scratch, 'build'), { recursive: true, force: true });
  const info = JSON.parse(run(process.execPath, ['dist/cli/main.js', 'info']));
  assert.equal(info.addon.loadedFrom, 'prebuild');
  assert.match(info.addon.path, /prebuilds/);
});

test('npm run build:cmake builds the same addon with cmake-js, and it works', () => {
  run('npm', ['run', 'build:cmake']);
  const path = join(scratch, 'build-cmake', 'Release', 'mob.node');
  assert.ok(existsSync(path));
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
