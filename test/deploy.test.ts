// deploy/systemd: the units parse (systemd-analyze verify, where systemd is installed), the
// service takes its socket from systemd rather than binding, and its descriptor limit leaves
// room for --max-conns. The activation itself is exercised in test/listen-fd.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RESERVED_FDS } from '../src/server/fdlimit.ts';
import { repoRoot } from './helpers.ts';

const dir = join(repoRoot, 'deploy/systemd');
const unit = (name: string) => readFileSync(join(dir, name), 'utf8');
const setting = (text: string, key: string) => new RegExp(`^${key}=(.*)$`, 'm').exec(text)?.[1];
const hasSystemd = spawnSync('sh', ['-c', 'command -v systemd-analyze'], { encoding: 'utf8' }).status === 0;

test('systemd-analyze verify accepts mob.socket and mob.service without a warning', { skip: !hasSystemd && 'no systemd-analyze here' }, () => {
  const run = spawnSync('systemd-analyze', ['verify', '--man=no', './mob.socket', './mob.service'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stderr, '');
});

test('the service runs unprivileged, takes its socket from systemd, and has descriptors for --max-conns', () => {
  const service = unit('mob.service');
  const socket = unit('mob.socket');
  assert.equal(setting(service, 'DynamicUser'), 'yes');
  assert.equal(setting(service, 'Requires'), 'mob.socket');
  assert.match(setting(socket, 'ListenStream') ?? '', /^127\.0\.0\.1:\d+$/);
  const execStart = setting(service, 'ExecStart') ?? '';
  assert.match(execStart, / mob serve /);
  assert.doesNotMatch(execStart, /--(host|port|listen-fd)\b/, 'the socket comes from LISTEN_FDS');
  const maxConns = Number(/--max-conns (\d+)/.exec(execStart)?.[1]);
  assert.ok(Number(setting(service, 'LimitNOFILE')) >= maxConns + RESERVED_FDS, 'LimitNOFILE < --max-conns + RESERVED_FDS');
});
