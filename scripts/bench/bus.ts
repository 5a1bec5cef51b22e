// `node --import tsx scripts/bench/bus.ts`: what the bus costs. The same load (the benchmark's
// verifying load generator, its clients spread over the nodes' ports) against
//   1 node            one `mob serve`, no bus
//   1 node + Redis    one `mob serve --bus`: every batch goes to Redis, nothing comes back
//   2 nodes on Redis  two `mob serve --bus` on one redis-server, clients alternating between them
// Every frame is checked at every client (sender, order, content), across nodes too; a lost or
// duplicated frame fails the run. Server CPU (user + system, from /proc) is read at the edges of
// the measured interval for every node and for redis-server, and divided by the frames
// delivered in it: the bus's overhead per frame is the 2-node figure minus the 1-node one.
// On 2 cores, 2 nodes + Redis + the generator share the machine: frames/s here says little,
// CPU per frame carries.
//
//   options: --clients 20 --senders 4 --payload 64 --window 16 --measure 2000 --rounds 3 --out DIR
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { sharedNow } from './histogram.ts';
import type { LoadResult, LoadSpec } from './loadgen.ts';
import { cpuTicks } from '../lib/proc.ts';
import { RedisServer } from '../lib/redis-server.ts';
import { spawnServe, stopServe, type ServeProcess } from '../lib/serve-process.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const { values: opts } = parseArgs({
  options: {
    clients: { type: 'string', default: '20' },
    senders: { type: 'string', default: '4' },
    payload: { type: 'string', default: '64' },
    window: { type: 'string', default: '16' },
    measure: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '3' },
    out: { type: 'string', default: 'bench-results' },
  },
});
const clients = Number(opts.clients);
const senders = Number(opts.senders);
const payload = Number(opts.payload);
const window = Number(opts.window);
const measureMs = Number(opts.measure);
const rounds = Number(opts.rounds);
const warmupMs = 300;

const SETUPS = ['1 node', '1 node + Redis', '2 nodes on Redis'] as const;
type Setup = (typeof SETUPS)[number];

interface Run {
  setup: Setup;
  result: LoadResult;
  /** CPU seconds in the measured interval. */
  nodeCpuSec: number;
  redisCpuSec: number;
}

/** The generator in coordinated mode (loadgen.ts's protocol), so the driver knows when the
 *  measured interval starts and ends and can read every server's CPU at its edges. */
async function drive(spec: LoadSpec, pids: number[], redisPid: number): Promise<Omit<Run, 'setup'>> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'scripts/bench/loadgen.ts'), JSON.stringify({ ...spec, coordinated: true })],
    { cwd: root, stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = messages(child);
  const killer = setTimeout(() => child.kill('SIGKILL'), spec.timeoutMs + 15_000);
  try {
    const ready = await lines.next('ready');
    const startAt = sharedNow() + 20;
    child.stdin!.write(JSON.stringify(ready?.ok ? { type: 'go', startAt } : { type: 'abort' }) + '\n');
    const measureFrom = startAt + spec.warmupMs;
    const cpuAt = async (at: number) => {
      await new Promise((r) => setTimeout(r, Math.max(0, at - sharedNow())));
      return { nodes: pids.reduce((sum, pid) => sum + cpuTicks(pid), 0), redis: redisPid > 0 ? cpuTicks(redisPid) : 0 };
    };
    const before = ready?.ok ? await cpuAt(measureFrom) : { nodes: NaN, redis: NaN };
    const after = ready?.ok ? await cpuAt(measureFrom + spec.measureMs) : { nodes: NaN, redis: NaN };
    const sent = await lines.next('sent');
    const totals = new Array<number>(spec.senders).fill(0);
    for (const [s, n] of (sent?.sent ?? []) as [number, number][]) totals[s] = n;
    child.stdin!.write(JSON.stringify({ type: 'totals', sent: totals }) + '\n');
    const result = (await lines.next('result'))?.result as LoadResult | undefined;
    if (!result) throw new Error(`load generator exited with ${child.exitCode}`);
    return { result, nodeCpuSec: (after.nodes - before.nodes) / 100, redisCpuSec: (after.redis - before.redis) / 100 };
  } finally {
    clearTimeout(killer);
    child.kill('SIGKILL');
  }
}

function messages(child: ChildProcess) {
  const queue: Record<string, unknown>[] = [];
  let wake: (() => void) | null = null;
  let buffer = '';
  let exited = false;
  child.stdout!.on('data', (d: Buffer) => {
    buffer += d;
    for (let nl; (nl = buffer.indexOf('\n')) >= 0; buffer = buffer.slice(nl + 1)) {
      const line = buffer.slice(0, nl).trim();
      if (line) queue.push(JSON.parse(line));
    }
    wake?.();
  });
  child.once('exit', () => {
    exited = true;
    wake?.();
  });
  return {
    async next(type: string): Promise<Record<string, unknown> | null> {
      for (;;) {
        const at = queue.findIndex((m) => m.type === type);
        if (at >= 0) return queue.splice(at, 1)[0]!;
        if (exited) return null;
        await new Promise<void>((r) => (wake = r));
      }
    },
  };
}

async function runSetup(setup: Setup): Promise<Run> {
  const redis = setup === '1 node' ? null : await RedisServer.start();
  const nodes: ServeProcess[] = [];
  try {
    const count = setup === '2 nodes on Redis' ? 2 : 1;
    for (let i = 0; i < count; i++) {
      nodes.push(await spawnServe(redis ? ['--bus', redis.url] : [], { env: { MOB_LOG: 'warn' }, timeoutMs: 15_000 }));
    }
    const spec: LoadSpec = {
      host: '127.0.0.1', port: nodes[0]!.port, ports: nodes.map((n) => n.port),
      clients, senders, payload, window, warmupMs, measureMs, connectConcurrency: 256, timeoutMs: 60_000,
    };
    const run = await drive(spec, nodes.map((n) => n.child.pid!), redis?.pid ?? -1);
    return { setup, ...run };
  } finally {
    await Promise.all(nodes.map((n) => stopServe(n.child)));
    await redis?.close();
  }
}

const runs: Run[] = [];
for (let round = 0; round < rounds; round++) {
  for (const setup of SETUPS) {
    process.stderr.write(`round ${round + 1}/${rounds}: ${setup}\n`);
    runs.push(await runSetup(setup));
  }
}

const ns = (sec: number, frames: number) => (frames > 0 ? (sec * 1e9) / frames : NaN);
const rows = SETUPS.map((setup) => {
  const mine = runs.filter((r) => r.setup === setup);
  const pick = [...mine].sort((a, b) => ns(a.nodeCpuSec, a.result.delivered) - ns(b.nodeCpuSec, b.result.delivered))[Math.floor((mine.length - 1) / 2)]!;
  return {
    setup,
    ok: mine.every((r) => r.result.ok),
    errors: mine.flatMap((r) => r.result.errors),
    framesPerSec: pick.result.framesPerSec,
    p50: pick.result.latencyMs.p50,
    p99: pick.result.latencyMs.p99,
    nodeNsPerFrame: ns(pick.nodeCpuSec, pick.result.delivered),
    redisNsPerFrame: setup === '1 node' ? NaN : ns(pick.redisCpuSec, pick.result.delivered),
    nodeCpu: pick.nodeCpuSec / (measureMs / 1000),
  };
});
const base = rows[0]!.nodeNsPerFrame;
const fmt = (v: number, digits = 0) => (Number.isFinite(v) ? v.toFixed(digits) : '-');
const rate = (v: number) => (v >= 1e6 ? `${(v / 1e6).toFixed(2)}M` : `${(v / 1e3).toFixed(0)}k`);
const header = ['setup', 'frames/s', 'p50 ms', 'p99 ms', 'nodes CPU', 'nodes ns/frame', 'bus overhead ns/frame', 'Redis ns/frame', 'ok'];
const table = rows.map((r) => [r.setup, rate(r.framesPerSec), fmt(r.p50, 2), fmt(r.p99, 2), `${fmt(r.nodeCpu * 100)}%`, fmt(r.nodeNsPerFrame),
  r.setup === '1 node' ? '' : `+${fmt(r.nodeNsPerFrame - base)}`, fmt(r.redisNsPerFrame), r.ok ? 'yes' : 'NO']);
const caption = `${clients} clients × ${senders} senders, ${payload} B, window ${window}; ${measureMs} ms measured, median of ${rounds}; ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${process.platform} ${release()}, Node ${process.version}; ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`;
const markdown = [`| ${header.join(' | ')} |`, `| --- |${' ---: |'.repeat(header.length - 1)}`, ...table.map((r) => `| ${r.join(' | ')} |`)].join('\n');
process.stdout.write(`\n${caption}\n\n${markdown}\n`);
for (const r of rows) if (!r.ok) process.stdout.write(`\n${r.setup} FAILED verification: ${r.errors.slice(0, 5).join('; ')}\n`);
const outDir = resolve(root, opts.out!);
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'bus.json'), JSON.stringify({ caption, rows, runs: runs.map(({ result, ...rest }) => ({ ...rest, ok: result.ok, framesPerSec: result.framesPerSec, delivered: result.delivered, errors: result.errors })) }, null, 2));
writeFileSync(join(outDir, 'bus.md'), `${caption}\n\n${markdown}\n`);
if (rows.some((r) => !r.ok)) process.exitCode = 1;
