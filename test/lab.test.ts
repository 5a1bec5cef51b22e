// Every `mob lab` experiment, in-process, on real loopback sockets: each must confirm what it
// claims on the backend this build uses (MOB_PREBUILD=DIR picks another build, e.g. libkqueue;
// MOB_EXPECT_BACKEND makes sure the intended one was loaded).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { native } from '../src/native/binding.ts';
import { cliPath } from './helpers.ts';
import { experiments, findExperiment, runExperiment } from '../src/lab/index.ts';

describe(`mob lab on ${native.backend}`, () => {
  test('the intended backend is loaded', () => {
    if (process.env.MOB_EXPECT_BACKEND) assert.equal(native.backend, process.env.MOB_EXPECT_BACKEND);
  });

  test('experiments have unique names and one-line summaries', () => {
    const names = experiments.map((e) => e.name);
    assert.equal(new Set(names).size, names.length);
    assert.ok(experiments.length >= 16, `${experiments.length} experiments`);
    for (const e of experiments) {
      assert.match(e.name, /^[a-z][a-z-]*$/);
      assert.ok(e.summary.length > 0 && !e.summary.includes('\n'));
      assert.equal(findExperiment(e.name), e);
    }
  });

  for (const experiment of experiments) {
    test(experiment.name, { timeout: 15_000 }, async (t) => {
      const lines: string[] = [];
      const result = await runExperiment(experiment, (line) => lines.push(line));
      assert.ok(result.ok, `${result.failures.join('\n')}\n--- timeline ---\n${lines.join('\n')}`);
      if (result.checks === 0) {
        // Only a backend that cannot show the thing at all may check nothing, and it must say why.
        assert.ok(result.skipped !== null && result.skipped.length > 0);
        t.skip(result.skipped);
        return;
      }
      assert.ok(lines.some((line) => line.includes('CONFIRMED')));
      assert.match(lines.at(-1)!, new RegExp(`^PASS ${experiment.name} \\(`));
    });
  }

  test('--json timelines are JSON lines with stable fields', async () => {
    const lines: string[] = [];
    const result = await runExperiment(findExperiment('edge-read')!, (line) => lines.push(line), 'json');
    assert.ok(result.ok);
    const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    for (const record of records) {
      assert.equal(typeof record.t, 'number');
      assert.equal(typeof record.type, 'string');
    }
    const event = records.find((r) => r.type === 'event')!;
    assert.deepEqual(Object.keys(event).slice(0, 4), ['t', 'type', 'token', 'tokenValue']);
    assert.equal(event.token, 'server');
    assert.match(String(event.kernel), native.backend === 'epoll' ? /EPOLLIN/ : /EVFILT_READ/);
    assert.ok(records.some((r) => r.type === 'call' && r.call === 'read' && r.errno === 'EAGAIN'));
    assert.ok(records.some((r) => r.type === 'check' && r.ok === true));
    assert.deepEqual(records[0], { ...records[0], type: 'experiment', name: 'edge-read', backend: native.backend });
    const last = records.at(-1)!;
    const checks = last.checks;
    assert.deepEqual(last, { ...last, type: 'result', name: 'edge-read', ok: true, failed: 0, skipped: null });
    assert.equal(checks, records.filter((r) => r.type === 'check').length);
    const wait = records.find((r) => r.type === 'batch')!;
    assert.equal(typeof wait.timeout, 'number');
    assert.equal(typeof wait.blocked, 'number');
  });

  test('the CLI (from the build): --list, one run, an unknown name', { timeout: 20_000 }, () => {
    const mob = (...args: string[]) => spawnSync(process.execPath, [cliPath, 'lab', ...args], { encoding: 'utf8', timeout: 15_000 });
    const list = mob('--list');
    assert.equal(list.status, 0, list.stderr);
    const rows = list.stdout.trim().split('\n');
    assert.deepEqual(rows.map((row) => row.split(/\s+/)[0]), experiments.map((e) => e.name));
    const run = mob('oneshot');
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /^PASS oneshot \((epoll|kqueue)\)/m);
    const unknown = mob('no-such-experiment');
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /no experiment 'no-such-experiment'/);
  });

  test('the CLI: --json is JSON lines only, with an experiment and a result record per experiment', { timeout: 30_000 }, () => {
    const run = spawnSync(process.execPath, [cliPath, 'lab', 'oneshot', 'edge-listener', '--json'], { encoding: 'utf8', timeout: 25_000 });
    assert.equal(run.status, 0, run.stderr);
    const records = run.stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.deepEqual(records.filter((r) => r.type === 'experiment').map((r) => r.name), ['oneshot', 'edge-listener']);
    const results = records.filter((r) => r.type === 'result');
    assert.deepEqual(results.map((r) => [r.name, r.ok]), [['oneshot', true], ['edge-listener', true]]);
    for (const result of results) assert.ok((result.checks as number) > 0);
  });

  test('the CLI: a closed pipe ends the run quietly', { timeout: 30_000 }, () => {
    // `mob lab --all | head -2`: head exits after two lines; the rest must not print a stack.
    const run = spawnSync('/bin/sh', ['-c', `"${process.execPath}" "${cliPath}" lab --all | head -2`], { encoding: 'utf8', timeout: 25_000 });
    assert.equal(run.status, 0);
    assert.equal(run.stdout.trim().split('\n').length, 2);
    assert.doesNotMatch(run.stderr, /EPIPE|Error|at /);
  });

  test('the CLI: --svg draws the run as a lane diagram; trace-svg draws a JSON timeline', { timeout: 30_000 }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'mob-lab-'));
    try {
      const svgFile = join(dir, 'edge-read.svg');
      const run = spawnSync(process.execPath, [cliPath, 'lab', 'edge-read', '--svg', svgFile], { encoding: 'utf8', timeout: 25_000 });
      assert.equal(run.status, 0, run.stderr);
      const svg = readFileSync(svgFile, 'utf8');
      assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
      for (const lane of ['peer', 'kernel buffers', 'poller', 'loop']) assert.ok(svg.includes(`>${lane}</text>`), lane);
      assert.match(svg, /server READABLE \[(EPOLLIN|EVFILT_READ)/);
      assert.match(svg, /PASS edge-read/);
      const json = spawnSync(process.execPath, [cliPath, 'lab', 'edge-read', '--json'], { encoding: 'utf8', timeout: 25_000 });
      const drawn = spawnSync(process.execPath, [cliPath, 'trace-svg'], { input: json.stdout, encoding: 'utf8', timeout: 25_000 });
      assert.equal(drawn.status, 0, drawn.stderr);
      assert.match(drawn.stdout, /^<svg /);
      assert.match(drawn.stdout, /server READABLE/);
      const empty = spawnSync(process.execPath, [cliPath, 'trace-svg'], { input: 'not json\n', encoding: 'utf8', timeout: 25_000 });
      assert.equal(empty.status, 2);
      assert.match(empty.stderr, /no timeline records/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the CLI runs a student's experiment from a file (docs/examples/coalesce.mjs)", { timeout: 30_000 }, () => {
    const example = fileURLToPath(new URL('../docs/examples/coalesce.mjs', import.meta.url));
    const run = spawnSync(process.execPath, [cliPath, 'lab', example], { encoding: 'utf8', timeout: 25_000 });
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /CONFIRMED three arrivals before a wait make one event/);
    assert.match(run.stdout, /^PASS coalesce \((epoll|kqueue)\): 2\/2 checks/m);
    const dir = mkdtempSync(join(tmpdir(), 'mob-lab-'));
    try {
      const bad = join(dir, 'bad.mjs');
      writeFileSync(bad, 'export default { name: "x" };\n');
      const refused = spawnSync(process.execPath, [cliPath, 'lab', bad], { encoding: 'utf8', timeout: 25_000 });
      assert.equal(refused.status, 2);
      assert.match(refused.stderr, /must export default \{ name, summary, run\(lab\) \}/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
