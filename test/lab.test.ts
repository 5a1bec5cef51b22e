// Every `mob lab` experiment, in-process, on real loopback sockets: each must confirm what it
// claims on the backend this build uses (MOB_PREBUILD=DIR picks another build, e.g. libkqueue;
// MOB_EXPECT_BACKEND makes sure the intended one was loaded).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
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
    assert.ok(experiments.length >= 8);
    for (const e of experiments) {
      assert.match(e.name, /^[a-z][a-z-]*$/);
      assert.ok(e.summary.length > 0 && !e.summary.includes('\n'));
      assert.equal(findExperiment(e.name), e);
    }
  });

  for (const experiment of experiments) {
    test(experiment.name, { timeout: 15_000 }, async () => {
      const lines: string[] = [];
      const result = await runExperiment(experiment, (line) => lines.push(line));
      assert.ok(result.ok, `${result.failures.join('\n')}\n--- timeline ---\n${lines.join('\n')}`);
      assert.ok(result.checks > 0);
      assert.ok(lines.some((line) => line.includes('CONFIRMED')));
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
});
