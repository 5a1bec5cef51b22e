// `npm run bench`: the native epoll/kqueue loop against node:net (libuv), side by side.
//
// Every scenario runs each engine/mode in turn (native, uv-corked, uv-plain, then again) within
// one run, each against a fresh `mob serve` child process, driven by the load generator
// (scripts/bench/loadgen.ts) in a process of its own on the native loop. Results: a table on
// stdout, JSON + a Markdown table + an SVG chart in bench-results/ (--out), ratios against the
// libuv modes of the same run, and the issue's targets checked.
//
//   npm run bench                 quick (< 2 minutes)
//   npm run bench -- --full       the full matrix (scale to 5,000 clients, 10,000 idle, 3 rounds)
//   options: --out DIR, --rounds N, --measure MS, --only SUBSTRING, --readme (also write
//            docs/bench/latest.svg and docs/bench/latest.md for the README)
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { renderChart, formatRate, type ChartPoint } from './chart.ts';
import type { LoadResult, LoadSpec } from './loadgen.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cli = join(root, 'dist/cli/main.js');
const loadgen = join(root, 'scripts/bench/loadgen.ts');

const ENGINES = [
  { name: 'native', args: ['--engine', 'native'] },
  { name: 'uv-corked', args: ['--engine', 'uv', '--uv-mode', 'corked'] },
  { name: 'uv-coalesced', args: ['--engine', 'uv', '--uv-mode', 'coalesced'] },
  { name: 'uv-plain', args: ['--engine', 'uv', '--uv-mode', 'plain'] },
] as const;
type EngineName = (typeof ENGINES)[number]['name'];

interface Scenario {
  id: string;
  group: 'fan-out' | 'scale' | 'round trip' | 'idle';
  label: string;
  clients: number;
  senders: number;
  payload: number;
  window: number;
  idle?: boolean;
}

interface Run {
  scenario: string;
  engine: EngineName;
  round: number;
  result: LoadResult;
  /** Server CPU (user + system) over the run, fraction of one core. */
  serverCpu: number;
}

const { values: opts } = parseArgs({
  options: {
    full: { type: 'boolean', default: false },
    out: { type: 'string', default: 'bench-results' },
    rounds: { type: 'string' },
    measure: { type: 'string' },
    only: { type: 'string' },
    readme: { type: 'boolean', default: false },
  },
});
const full = opts.full!;
const rounds = Number(opts.rounds ?? (full ? 3 : 2));
const measureMs = Number(opts.measure ?? (full ? 3000 : 1000));
const warmupMs = full ? 500 : 250;

function fan(clients: number, senders: number, payload: number, group: Scenario['group'] = 'fan-out'): Scenario {
  return { id: `${group === 'scale' ? 'scale' : 'fanout'}-${clients}x${senders}-${payload}B`, group, label: `${clients} clients × ${senders} sender${senders > 1 ? 's' : ''}, ${payload} B`, clients, senders, payload, window: 16 };
}

const scenarios: Scenario[] = [
  fan(10, 10, 64),
  fan(100, 4, 64),
  fan(500, 1, 256),
  ...(full ? [10, 100, 1000, 5000] : [10, 100, 1000]).map((c) => fan(c, Math.min(c, 4), 64, 'scale')),
  { id: 'roundtrip', group: 'round trip' as const, label: '1 client, window 1, 64 B', clients: 1, senders: 1, payload: 64, window: 1 },
  { id: `idle-${full ? 10000 : 5000}`, group: 'idle' as const, label: `${full ? '10,000' : '5,000'} idle clients, then one broadcast`, clients: full ? 10_000 : 5_000, senders: 0, payload: 64, window: 1, idle: true },
].filter((s) => !opts.only || s.id.includes(opts.only));

// --- processes -----------------------------------------------------------------------

interface ServerProc {
  child: ChildProcess;
  port: number;
}

function startServer(engine: (typeof ENGINES)[number]): Promise<ServerProc> {
  const child = spawn(process.execPath, [cli, 'serve', '--port', '0', ...engine.args], {
    env: { ...process.env, MOB_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${engine.name} server did not start: ${stderr}`)), 15_000);
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d;
      const match = /listening on .*:(\d+)/.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolve({ child, port: Number(match[1]) });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${engine.name} server exited with ${code}: ${stderr}`));
    });
  });
}

async function stopServer(server: ServerProc): Promise<void> {
  const { child } = server;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]); // utime + stime, in clock ticks (100/s)
  } catch {
    return NaN;
  }
}

function runLoadgen(spec: LoadSpec): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', loadgen, JSON.stringify(spec)], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d));
    child.stderr!.on('data', (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), spec.timeoutMs + 15_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(stdout.trim().split('\n').pop()!) as LoadResult);
      } catch {
        reject(new Error(`load generator exited with ${code}: ${stderr.slice(-2000)}`));
      }
    });
  });
}

async function runOne(scenario: Scenario, engine: (typeof ENGINES)[number], round: number): Promise<Run> {
  const server = await startServer(engine);
  try {
    const pid = server.child.pid!;
    const ticks0 = cpuTicks(pid);
    const t0 = performance.now();
    const result = await runLoadgen({
      host: '127.0.0.1',
      port: server.port,
      clients: scenario.clients,
      senders: scenario.senders,
      payload: scenario.payload,
      window: scenario.window,
      warmupMs,
      measureMs,
      idle: scenario.idle,
      serverPid: pid,
      connectConcurrency: 512,
      timeoutMs: 60_000,
    });
    const serverCpu = (cpuTicks(pid) - ticks0) / 100 / ((performance.now() - t0) / 1000);
    return { scenario: scenario.id, engine: engine.name, round, result, serverCpu };
  } finally {
    await stopServer(server);
  }
}

// --- progress ------------------------------------------------------------------------

const totalSteps = scenarios.length * rounds * ENGINES.length;
let step = 0;
const began = performance.now();
function progress(what: string): void {
  const width = 30;
  const done = Math.round((step / totalSteps) * width);
  const elapsed = (performance.now() - began) / 1000;
  const line = `[${'#'.repeat(done)}${'-'.repeat(width - done)}] ${step}/${totalSteps} ${elapsed.toFixed(0)}s ${what}`;
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${line}`);
  else process.stderr.write(line + '\n');
}

// --- aggregate -----------------------------------------------------------------------

interface Summary {
  scenario: Scenario;
  engine: EngineName;
  runs: number;
  ok: boolean;
  errors: string[];
  framesPerSec: number;
  mbPerSec: number;
  p50: number;
  p99: number;
  p999: number;
  serverCpu: number;
  genCpu: number;
  synRetransmits: number;
  idle?: LoadResult['idle'];
}

function median<T>(items: T[], key: (t: T) => number): T {
  const sorted = [...items].sort((a, b) => key(a) - key(b));
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

function summarize(runs: Run[]): Summary[] {
  const out: Summary[] = [];
  for (const scenario of scenarios) {
    for (const engine of ENGINES) {
      const mine = runs.filter((r) => r.scenario === scenario.id && r.engine === engine.name);
      if (mine.length === 0) continue;
      const ok = mine.every((r) => r.result.ok);
      // The median run by the scenario's headline figure; its latencies come with it.
      const pick = scenario.idle ? median(mine, (r) => r.result.idle?.broadcastMs ?? Infinity) : median(mine, (r) => r.result.framesPerSec);
      out.push({
        scenario, engine: engine.name, runs: mine.length, ok,
        errors: mine.flatMap((r) => r.result.errors),
        framesPerSec: pick.result.framesPerSec,
        mbPerSec: pick.result.mbPerSec,
        p50: pick.result.latencyMs.p50,
        p99: pick.result.latencyMs.p99,
        p999: pick.result.latencyMs.p999,
        serverCpu: pick.serverCpu,
        genCpu: pick.result.genCpu,
        synRetransmits: Math.max(...mine.map((r) => r.result.synRetransmits)),
        ...(scenario.idle ? { idle: median(mine, (r) => r.result.idle?.rssPerConnBytes ?? Infinity).result.idle } : {}),
      });
    }
  }
  return out;
}

// --- report --------------------------------------------------------------------------

const ms = (v: number) => (Number.isFinite(v) ? (v >= 10 ? v.toFixed(1) : v.toFixed(2)) : '-');
const ratio = (a: number, b: number) => (b > 0 && Number.isFinite(a / b) ? `${(a / b).toFixed(a / b >= 10 ? 0 : 1)}×` : '-');

function table(summaries: Summary[]): { text: string; markdown: string } {
  const rows: string[][] = [];
  const header = ['scenario', 'engine', 'frames/s', 'MB/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'native ×', 'server CPU', 'ok'];
  const idleHeader = ['scenario', 'engine', 'anon RSS/conn', 'total RSS/conn', 'broadcast ms', 'SYN waits', '', 'native ×', 'server CPU', 'ok'];
  const find = (id: string, engine: EngineName) => summaries.find((s) => s.scenario.id === id && s.engine === engine);
  for (const s of summaries) {
    const nat = find(s.scenario.id, 'native');
    if (s.scenario.idle) {
      rows.push([s.scenario.label, s.engine, s.idle ? `${(s.idle.rssPerConnBytes / 1024).toFixed(2)} KiB` : '-', s.idle ? `${(s.idle.totalRssPerConnBytes / 1024).toFixed(2)} KiB` : '-', s.idle ? ms(s.idle.broadcastMs) : '-', String(s.synRetransmits), '',
        s.engine === 'native' || !nat?.idle || !s.idle ? '' : `${ratio(s.idle.rssPerConnBytes, nat.idle.rssPerConnBytes)} less RAM`, `${(s.serverCpu * 100).toFixed(0)}%`, s.ok ? 'yes' : 'NO']);
    } else {
      rows.push([s.scenario.label, s.engine, formatRate(s.framesPerSec), s.mbPerSec.toFixed(0), ms(s.p50), ms(s.p99), ms(s.p999),
        s.engine === 'native' || !nat ? '' : ratio(nat.framesPerSec, s.framesPerSec), `${(s.serverCpu * 100).toFixed(0)}%`, s.ok ? 'yes' : 'NO']);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, idleHeader[i]!.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => r.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const lines = [fmt(header), widths.map((w) => '-'.repeat(w)).join('  ')];
  let last = '';
  const md = ['| ' + header.join(' | ') + ' |', '|' + header.map((_, i) => (i < 2 ? ' --- |' : ' ---: |')).join('')];
  summaries.forEach((s, i) => {
    if (s.scenario.idle && last !== 'idle') {
      lines.push(fmt(idleHeader));
      md.push('| ' + idleHeader.map((h) => (h ? `**${h}**` : '')).join(' | ') + ' |');
    }
    last = s.scenario.idle ? 'idle' : '';
    lines.push(fmt(rows[i]!));
    md.push('| ' + rows[i]!.join(' | ') + ' |');
  });
  return { text: lines.join('\n'), markdown: md.join('\n') };
}

interface Target {
  name: string;
  pass: boolean;
  detail: string;
  /** Reported beside the targets, not one of them. */
  info?: boolean;
}

function targets(summaries: Summary[]): Target[] {
  const out: Target[] = [];
  const get = (id: string, engine: EngineName) => summaries.find((s) => s.scenario.id === id && s.engine === engine);
  for (const id of ['fanout-10x10-64B', 'fanout-100x4-64B']) {
    const n = get(id, 'native');
    const c = get(id, 'uv-corked');
    const p = get(id, 'uv-plain');
    if (!n || !c || !p) continue;
    const rc = n.framesPerSec / c.framesPerSec;
    const rp = n.framesPerSec / p.framesPerSec;
    out.push({ name: `${id}: native ≥ 2× uv-corked`, pass: rc >= 2, detail: `${rc.toFixed(2)}×` });
    out.push({ name: `${id}: native ≥ 20× uv-plain`, pass: rp >= 20, detail: `${rp.toFixed(1)}×` });
    out.push({ name: `${id}: native p99 ≤ uv-corked p99`, pass: n.p99 <= c.p99, detail: `${ms(n.p99)} vs ${ms(c.p99)} ms` });
    const k = get(id, 'uv-coalesced');
    if (k) out.push({ name: `${id}: native vs uv-coalesced (no target)`, pass: true, info: true, detail: `${(n.framesPerSec / k.framesPerSec).toFixed(2)}×, p99 ${ms(n.p99)} vs ${ms(k.p99)} ms` });
  }
  {
    const n = get('fanout-500x1-256B', 'native');
    const c = get('fanout-500x1-256B', 'uv-corked');
    if (n && c) out.push({ name: 'fanout-500x1-256B: native ≥ 1.3× uv-corked', pass: n.framesPerSec / c.framesPerSec >= 1.3, detail: `${(n.framesPerSec / c.framesPerSec).toFixed(2)}×` });
  }
  const idle = summaries.find((s) => s.scenario.idle && s.engine === 'native');
  if (idle?.idle) {
    out.push({ name: `${idle.scenario.clients} idle: native ≤ 1 KiB RSS (anonymous) per connection`, pass: idle.idle.rssPerConnBytes <= 1024, detail: `${(idle.idle.rssPerConnBytes / 1024).toFixed(2)} KiB` });
    out.push({ name: `${idle.scenario.clients} idle: no connect waited on a SYN retransmit`, pass: idle.synRetransmits === 0, detail: `${idle.synRetransmits}` });
    out.push({ name: `${idle.scenario.clients} idle: broadcast to all well under 1 s`, pass: idle.idle.broadcastMs < 500, detail: `${ms(idle.idle.broadcastMs)} ms` });
  }
  out.push({ name: 'no frame lost, reordered or corrupted, in any run', pass: summaries.every((s) => s.ok), detail: summaries.filter((s) => !s.ok).map((s) => `${s.scenario.id}/${s.engine}`).join(', ') || 'all verified' });
  return out;
}

async function main(): Promise<void> {
  const runs: Run[] = [];
  for (const scenario of scenarios) {
    for (let round = 0; round < rounds; round++) {
      for (const engine of ENGINES) {
        progress(`${scenario.id} ${engine.name} (round ${round + 1}/${rounds})`);
        try {
          runs.push(await runOne(scenario, engine, round));
        } catch (error) {
          runs.push({ scenario: scenario.id, engine: engine.name, round, serverCpu: NaN, result: failed(scenario, (error as Error).message) });
        }
        step++;
      }
    }
  }
  progress('done');
  if (process.stderr.isTTY) process.stderr.write('\n');

  const summaries = summarize(runs);
  const checked = targets(summaries);
  const machine = {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    os: `${process.platform} ${release()}`,
    node: process.version,
  };
  const date = new Date().toISOString();
  const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  const { text, markdown } = table(summaries);
  const caption = `${machine.cores} × ${machine.cpu}, ${machine.os}, Node ${machine.node}; ${date.slice(0, 16).replace('T', ' ')} UTC; ${command}`;

  process.stdout.write(`\n${caption}\n${full ? 'full' : 'quick'} run, ${rounds} round(s) per engine, ${measureMs} ms measured per run (median shown)\n\n${text}\n\nTargets:\n`);
  for (const t of checked) process.stdout.write(`  ${t.info ? 'INFO' : t.pass ? 'PASS' : 'FAIL'}  ${t.name}: ${t.detail}\n`);

  const outDir = join(root, opts.out!);
  mkdirSync(outDir, { recursive: true });
  const scale = new Map<string, ChartPoint[]>();
  for (const s of summaries) {
    if (s.scenario.group !== 'scale') continue;
    const points = scale.get(s.engine) ?? [];
    points.push({ clients: s.scenario.clients, framesPerSec: s.framesPerSec, p99Ms: s.p99 });
    scale.set(s.engine, points);
  }
  const svg = scale.size > 0 ? renderChart(scale, `4 senders, 64 B, window 16 — ${caption}`) : null;
  const json = { machine, date, command, full, rounds, measureMs, warmupMs, summaries: summaries.map(({ scenario, ...rest }) => ({ scenario: scenario.id, label: scenario.label, clients: scenario.clients, senders: scenario.senders, payload: scenario.payload, window: scenario.window, ...rest })), targets: checked, runs };
  const stamp = date.replace(/[:.]/g, '-');
  writeFileSync(join(outDir, `bench-${stamp}.json`), JSON.stringify(json, null, 2));
  writeFileSync(join(outDir, 'latest.json'), JSON.stringify(json, null, 2));
  const md = `${caption}\n\n${markdown}\n\n${checked.map((t) => `- ${t.info ? 'ℹ️' : t.pass ? '✅' : '❌'} ${t.name}: ${t.detail}`).join('\n')}\n`;
  writeFileSync(join(outDir, 'latest.md'), md);
  if (svg) writeFileSync(join(outDir, 'latest.svg'), svg);
  process.stdout.write(`\nwrote ${join(opts.out!, 'latest.json')}, latest.md${svg ? ', latest.svg' : ''}\n`);
  if (opts.readme) {
    const docs = join(root, 'docs/bench');
    mkdirSync(docs, { recursive: true });
    if (svg) writeFileSync(join(docs, 'latest.svg'), svg);
    writeFileSync(join(docs, 'latest.md'), md);
    process.stdout.write('wrote docs/bench/latest.svg and docs/bench/latest.md\n');
  }
  if (summaries.some((s) => !s.ok)) process.exitCode = 1;
}

function failed(scenario: Scenario, message: string): LoadResult {
  return {
    ok: false, errors: [message], clients: scenario.clients, senders: scenario.senders, payload: scenario.payload, window: scenario.window,
    framesPerSec: 0, mbPerSec: 0, sentPerSec: 0, latencyMs: { p50: NaN, p99: NaN, p999: NaN, max: NaN }, delivered: 0,
    synRetransmits: 0, connectMs: 0, genCpu: 0,
  };
}

await main();
