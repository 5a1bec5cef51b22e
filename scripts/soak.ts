// Soak and churn: a `mob serve` child under minutes of clients that connect, send, hang up
// (FIN, reset, mid-frame), never read or break the frame limit, at random, while steady
// clients check that they receive every frame of every steady sender, in order and intact.
// Prints the server's RSS and descriptor count over time as a table; exits 1 if a steady
// client lost, reordered or saw a corrupt frame, or if descriptors or memory did not hold flat.
//
//   npm run soak -- [--duration 120] [--interval 10] [--steady 4] [--churners 16] [--rate 200]
//                   [--engine native|uv]
import { spawnServe } from './lib/serve-process.ts';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { encodeFrame, FrameDecoder } from '../src/protocol/frame.ts';
import { fdCount, rssKiB } from './lib/proc.ts';

const MAX_DURATION_S = 1800;
const MAX_FRAME = 1024 * 1024;

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '120' },
    interval: { type: 'string', default: '10' },
    steady: { type: 'string', default: '4' },
    churners: { type: 'string', default: '16' },
    rate: { type: 'string', default: '200' },
    engine: { type: 'string', default: 'native' },
  },
});
const durationS = Math.min(MAX_DURATION_S, Number(values.duration));
const intervalS = Number(values.interval);
const steadyCount = Number(values.steady);
const churnerCount = Number(values.churners);
const ratePerSender = Number(values.rate);
if (![durationS, intervalS, steadyCount, churnerCount, ratePerSender].every((n) => Number.isFinite(n) && n > 0)) {
  process.stderr.write('soak: --duration, --interval, --steady, --churners and --rate want positive numbers\n');
  process.exit(2);
}

const STEADY = 1;
const CHURN = 2;

/** [kind][id u32][seq u32][fill = (id + seq) & 0xff ...]: a receiver can check any frame alone. */
function payload(kind: number, id: number, seq: number, size: number): Buffer {
  const body = Buffer.alloc(Math.max(9, size), (id + seq) & 0xff);
  body[0] = kind;
  body.writeUInt32BE(id, 1);
  body.writeUInt32BE(seq, 5);
  return body;
}

function intact(body: Buffer): boolean {
  if (body.length < 9) return false;
  const fill = (body.readUInt32BE(1) + body.readUInt32BE(5)) & 0xff;
  for (let i = 9; i < body.length; i++) if (body[i] !== fill) return false;
  return true;
}

function frameSize(): number {
  const r = Math.random();
  if (r < 0.01) return 64 * 1024 + Math.floor(Math.random() * 256 * 1024); // the large-frame path
  if (r < 0.1) return 4096 + Math.floor(Math.random() * 16 * 1024);
  return 16 + Math.floor(Math.random() * 1024);
}

const problems: string[] = [];
function problem(text: string): void {
  if (problems.length < 20) process.stderr.write(`soak: ${text}\n`);
  problems.push(text);
}

// --- the server -------------------------------------------------------------------------

const serve = await spawnServe(['--engine', values.engine!, '--max-frame', String(MAX_FRAME), '--max-conns', '2000'], { env: { MOB_LOG: 'error' } });
const { child: server, port } = serve;
const serverErr = serve.stderr;
const pid = server.pid!;
let serverExit: number | null = null;
server.once('exit', (code) => {
  serverExit = code ?? -1;
  if (!stopping) problem(`server exited unexpectedly with ${code}: ${serverErr().trim().split('\n').at(-1)}`);
});

const serverRssKiB = () => rssKiB(pid).total;
const serverFds = () => fdCount(pid);

// --- steady clients: send at a fixed rate, check everything from every steady sender ----

interface Steady {
  id: number;
  socket: Socket;
  sent: number;
  next: number[];
  received: number;
  churnFrames: number;
}

async function connected(): Promise<Socket> {
  const socket = connect({ port, host: '127.0.0.1', noDelay: true });
  await once(socket, 'connect');
  return socket;
}

const steady: Steady[] = [];
for (let id = 0; id < steadyCount; id++) {
  const socket = await connected();
  const client: Steady = { id, socket, sent: 0, next: new Array<number>(steadyCount).fill(0), received: 0, churnFrames: 0 };
  const decoder = new FrameDecoder((body) => {
    if (!intact(body)) return problem(`steady ${id}: corrupt frame of ${body.length} bytes`);
    if (body[0] === CHURN) {
      client.churnFrames++;
      return;
    }
    const from = body.readUInt32BE(1);
    const seq = body.readUInt32BE(5);
    if (seq !== client.next[from]) problem(`steady ${id}: from ${from} got seq ${seq}, expected ${client.next[from]}`);
    client.next[from] = seq + 1;
    client.received++;
  }, MAX_FRAME);
  socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  socket.on('error', (error) => problem(`steady ${id}: ${error.message}`));
  socket.on('close', () => {
    if (!stopping) problem(`steady ${id}: disconnected`);
  });
  steady.push(client);
}
// Every steady client must be accepted before the first frame, or it would miss it.
await new Promise((resolve) => setTimeout(resolve, 200));

let sending = true;
let stopping = false;
const senderTimer = setInterval(() => {
  if (!sending) return;
  for (const client of steady) client.socket.write(encodeFrame(payload(STEADY, client.id, client.sent++, frameSize())));
}, 1000 / ratePerSender);

// --- churners: random lives ---------------------------------------------------------------

const churn = { connects: 0, fin: 0, reset: 0, midFrame: 0, neverRead: 0, oversized: 0, refused: 0 };
let churnSeq = 0;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function churnOnce(id: number): Promise<void> {
  let socket: Socket;
  try {
    socket = await connected();
  } catch {
    churn.refused++;
    return;
  }
  churn.connects++;
  socket.on('error', () => {});
  const life = Math.random();
  if (life < 0.15) socket.pause(); // never reads while it lives
  else socket.resume();
  const frames = Math.floor(Math.random() * 20);
  for (let i = 0; i < frames && !socket.destroyed; i++) {
    socket.write(encodeFrame(payload(CHURN, 1000 + id, churnSeq++, frameSize())));
    if (Math.random() < 0.3) await sleep(Math.random() * 20);
  }
  await sleep(Math.random() * 300);
  if (life < 0.15) {
    churn.neverRead++;
    socket.resetAndDestroy();
  } else if (life < 0.45) {
    churn.fin++;
    socket.end();
  } else if (life < 0.7) {
    churn.reset++;
    socket.resetAndDestroy();
  } else if (life < 0.95) {
    churn.midFrame++;
    const frame = encodeFrame(payload(CHURN, 1000 + id, churnSeq++, frameSize()));
    socket.write(frame.subarray(0, Math.floor(Math.random() * frame.length)));
    socket.end();
  } else {
    churn.oversized++;
    const header = Buffer.alloc(8);
    header.writeBigUInt64BE(BigInt(MAX_FRAME + 1 + Math.floor(Math.random() * 1e9)));
    socket.write(header);
    socket.end();
  }
  if (!socket.closed) await Promise.race([once(socket, 'close'), sleep(2000)]);
  socket.destroy();
}

let churning = true;
const churners = Array.from({ length: churnerCount }, async (_, id) => {
  while (churning) await churnOnce(id);
});

// --- the table ------------------------------------------------------------------------

const rows: string[][] = [];
const header = ['t (s)', 'RSS (MiB)', 'fds', 'steady frames rx', 'lost/reordered', 'churn connects', 'FIN', 'RST', 'mid-frame', 'never-read', 'oversized'];
const baseFds = serverFds();
const samples: { t: number; rss: number; fds: number }[] = [];
function sample(t: number): void {
  const rss = serverRssKiB();
  const fds = serverFds();
  samples.push({ t, rss, fds });
  const received = steady.reduce((sum, c) => sum + c.received, 0);
  const row = [String(t), (rss / 1024).toFixed(1), String(fds), String(received), String(problems.length), String(churn.connects), String(churn.fin), String(churn.reset), String(churn.midFrame), String(churn.neverRead), String(churn.oversized)];
  rows.push(row);
  process.stdout.write(row.map((cell, i) => cell.padStart(header[i]!.length)).join(' | ') + '\n');
}

process.stdout.write(`soak: ${durationS} s, ${steadyCount} steady clients at ${ratePerSender} frames/s each, ${churnerCount} churners; server pid ${pid} (${values.engine}), ${baseFds} fds at start\n`);
process.stdout.write(header.join(' | ') + '\n');
sample(0);
const started = Date.now();
// Hard bound: whatever hangs, the soak ends.
const hardStop = setTimeout(() => {
  problem('hard time limit hit');
  server.kill('SIGKILL');
  process.exit(1);
}, (durationS + 60) * 1000);
hardStop.unref();
for (let t = intervalS; t <= durationS; t += intervalS) {
  await sleep(started + t * 1000 - Date.now());
  sample(t);
}

// --- wind down: stop churn, let the last steady frames land, check, and shut down -------

churning = false;
await Promise.race([Promise.all(churners), sleep(10_000)]);
sending = false;
clearInterval(senderTimer);
const sent = steady.map((c) => c.sent);
const deadline = Date.now() + 20_000;
while (Date.now() < deadline && !steady.every((c) => c.next.every((next, from) => next === sent[from]))) await sleep(20);
for (const c of steady) {
  c.next.forEach((next, from) => {
    if (next !== sent[from]) problem(`steady ${c.id}: from ${from} received ${next} of ${sent[from]} frames`);
  });
}
// A churner that sent FIN and then closed for good looks half-closed until a write to it fails
// (#9: a half-closed client stays a receiver), so once sending has stopped a last FIN-closer can
// hold its descriptor. One probe frame, from a client that resets, makes every such write fail.
let quietFds = serverFds();
const fdDeadline = Date.now() + 10_000;
for (let probes = 0; quietFds !== baseFds && Date.now() < fdDeadline; probes++) {
  if (probes % 20 === 10) {
    const probe = await connected();
    probe.write(encodeFrame(payload(CHURN, 0, 0, 16)));
    await sleep(50);
    probe.resetAndDestroy();
  }
  await sleep(50);
  quietFds = serverFds();
}
const endRss = serverRssKiB();
stopping = true;
for (const c of steady) c.socket.destroy();
server.kill('SIGTERM');
if (serverExit === null) await Promise.race([once(server, 'exit'), sleep(10_000)]);

const totalSteady = steady.reduce((sum, c) => sum + c.received, 0);
const totalChurnRx = steady.reduce((sum, c) => sum + c.churnFrames, 0);
// Flat: compared from the end of warm-up (the first quarter), when heaps and buffers have grown
// to their working size, so growth after it is what a leak would look like.
const warm = samples[Math.max(1, Math.floor(samples.length / 4))] ?? samples[0]!;
const rssGrowthMiB = (endRss - warm.rss) / 1024;
const maxFds = Math.max(...samples.map((s) => s.fds));
if (quietFds !== baseFds) problem(`descriptors: ${quietFds} after churn, ${baseFds} before`);
if (rssGrowthMiB > 32) problem(`RSS grew ${rssGrowthMiB.toFixed(1)} MiB after warm-up`);
if (serverExit !== 0) problem(`server exit code ${serverExit} after SIGTERM`);

process.stdout.write(`
summary
  steady frames received     ${totalSteady} = ${sent.reduce((a, b) => a + b, 0)} sent (${sent.join(' + ')}) x ${steadyCount} receivers, expected ${sent.reduce((a, b) => a + b, 0) * steadyCount}
  churn frames seen          ${totalChurnRx} (by steady clients; partial ones are dropped by design)
  churn events               ${churn.connects} connects: ${churn.fin} FIN, ${churn.reset} RST, ${churn.midFrame} mid-frame, ${churn.neverRead} never-read, ${churn.oversized} oversized, ${churn.refused} refused
  fds                        ${baseFds} at start, max ${maxFds} under churn, ${quietFds} after
  RSS                        ${(samples[0]!.rss / 1024).toFixed(1)} MiB at start, ${(warm.rss / 1024).toFixed(1)} after warm-up (t=${warm.t}s), ${(endRss / 1024).toFixed(1)} at end (${rssGrowthMiB >= 0 ? '+' : ''}${rssGrowthMiB.toFixed(1)} MiB)
  server exit                ${serverExit}
  result                     ${problems.length === 0 ? 'PASS' : `FAIL (${problems.length} problem(s))`}
`);
process.exit(problems.length === 0 ? 0 : 1);
