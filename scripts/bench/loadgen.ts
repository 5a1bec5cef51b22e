// The benchmark's load generator: K processes (spec.procs), each on its own blocking
// epoll/kqueue loop (src/poll and the addon, no libuv in the data path), so that it is not the
// bottleneck. Process k owns the clients whose global index i has i % K === k; sender ids are
// global, so every receiver, in whichever process, checks every frame from every sender:
// length, sender, per-sender sequence, and the filler derived from (sender, sequence). Any
// loss, reordering or corruption fails the run.
//
// Run: node --import tsx scripts/bench/loadgen.ts '<LoadSpec JSON>'; prints a LoadResult JSON line.
// With spec.coordinated (what scripts/bench/main.ts does), the processes meet at barriers over
// stdout (JSON lines it writes) and stdin (JSON lines the driver writes, read from the same
// poll loop):
//   -> {"type":"ready","ok":…}        every own client connected and reached by a probe
//   <- {"type":"go","startAt":T}      start sending at T (shared clock), so no frame is sent
//                                     before every receiver of every process is connected,
//                                     and warmup/measure windows are the same in every process
//   -> {"type":"sent","sent":[[s,n]]} sending stopped: frames sent per own sender
//   <- {"type":"totals","sent":[n…]}  frames sent by every sender: drain until all have come
//   -> {"type":"result","result":…}   the LoadResult (with latency histogram buckets)
//   <- {"type":"abort"}               another process failed: stop waiting, report
// Send times are stamped on CLOCK_MONOTONIC (common to all processes), so a frame sent by one
// process and received by another has a correct latency.
//
// Payload (all frames of a run have the same size, a multiple of 8, at least 16 bytes):
//   [sender u32][sequence u32][send time f64, ms][filler u32 words derived from sender, sequence]
// Frames are kept 8-byte aligned in the read buffer, so they are checked through typed-array
// views with no per-frame allocation.
import { writeSync } from 'node:fs';
import { native } from '../../src/native/binding.ts';
import { Events, Interest, Poll, Ready, Trigger } from '../../src/poll/index.ts';
import { Histogram, sharedClockOffset, type HistogramBuckets } from './histogram.ts';
import { cpuTicks, fdCount, rssKiB } from '../lib/proc.ts';

export interface LoadSpec {
  host: string;
  port: number;
  /** Several servers (nodes of one bus): global client i connects to ports[i % ports.length]. */
  ports?: number[];
  /** Connections. The first `senders` of them send; all of them receive. */
  clients: number;
  senders: number;
  /** Payload bytes per frame (multiple of 8, >= 16). */
  payload: number;
  /** Own frames in flight per sender. */
  window: number;
  warmupMs: number;
  measureMs: number;
  /** Idle scenario: connect, wait until the server holds every connection, one broadcast. */
  idle?: boolean;
  /** Server pid, to read its RSS and descriptor count (Linux /proc). */
  serverPid?: number;
  /** Handshakes in flight at once while connecting. */
  connectConcurrency?: number;
  timeoutMs: number;
  /** Generator processes (K) and this one's index: it owns clients i with i % procs === proc. */
  procs?: number;
  proc?: number;
  /** Meet the other processes at the barriers over stdin/stdout (see above). */
  coordinated?: boolean;
}

export interface LoadResult {
  ok: boolean;
  errors: string[];
  clients: number;
  senders: number;
  payload: number;
  window: number;
  /** Frames delivered (summed over receivers) per second in the measured interval. */
  framesPerSec: number;
  /** Payload + header bytes delivered per second, in MB (10^6). */
  mbPerSec: number;
  /** Frames sent per second by all senders. */
  sentPerSec: number;
  /** Send-to-receive latency, ms. */
  latencyMs: { p50: number; p99: number; p999: number; max: number };
  /** The latency histogram's non-empty buckets (merged across processes by the driver, then dropped). */
  histogram?: HistogramBuckets;
  delivered: number;
  /** Connects that took longer than SYN_RETRANSMIT_MS (a dropped SYN is retried after ~1 s). */
  synRetransmits: number;
  connectMs: number;
  /** Idle scenario. */
  /** Idle scenario. rssPerConnBytes counts anonymous memory (RssAnon): the per-connection cost.
   *  Total VmRSS also counts file-backed pages, such as the node binary's optimising compiler,
   *  faulted in once the first time hot code is optimised (~4 MB, shared, not per connection). */
  idle?: { rssBaseKiB: number; rssKiB: number; rssPerConnBytes: number; totalRssPerConnBytes: number; broadcastMs: number };
  /** Load generator CPU over the measured interval (user + system, fraction of one core);
   *  with several processes, the busiest one's, and each one's in genCpus. */
  genCpu: number;
  genCpus?: number[];
  /** Generator processes. */
  procs?: number;
  /** Server CPU (user + system, all its threads) over the measured interval, in seconds, read
   *  from /proc by generator process 0 at the interval's edges (10 ms ticks). */
  serverCpuSec?: number;
}

const SYN_RETRANSMIT_MS = 900;
const PROBE = 0xffff_ffff;
/** The token of stdin, the driver's control channel; clients' tokens are their local indexes. */
const CONTROL = 0xffff_fffe;
const READ_BUFFER = 256 * 1024;
const skipEagainRead = native.backend === 'epoll';
const { EAGAIN, EINTR, EINPROGRESS } = native.errno;
// Filler words: a window of one pseudo-random template (the same in every generator process),
// w[j] = template[offset + j], offset = (imul(sender, A) ^ imul(sequence, B)) mod TEMPLATE_WORDS.
// Large fillers are written and checked with one native memcpy/memcmp against the template: a
// word-by-word check of 64 KiB frames held the generator's core at ~100% and it, not the
// server, set the large-frame scenarios' frames/s. Small ones go word by word (a native call
// costs more than a dozen words).
const A = 0x9e3779b1 | 0;
const B = 0x85ebca77 | 0;
const TEMPLATE_WORDS = 65521;
const NATIVE_FILLER_WORDS = 256;

/** The template, extended by `fillerWords` so that every window is one contiguous range. */
function fillerTemplate(fillerWords: number): Int32Array {
  const template = new Int32Array(TEMPLATE_WORDS + fillerWords);
  let x = 0x2545f491;
  for (let k = 0; k < TEMPLATE_WORDS; k++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    template[k] = x;
  }
  for (let k = TEMPLATE_WORDS; k < template.length; k++) template[k] = template[k - TEMPLATE_WORDS]!;
  return template;
}

const fillerOffset = (sender: number, sequence: number) => ((Math.imul(sender, A) ^ Math.imul(sequence, B)) >>> 0) % TEMPLATE_WORDS;


type Control = { type: 'go'; startAt: number } | { type: 'totals'; sent: number[] } | { type: 'abort' };

export function runLoad(spec: LoadSpec): LoadResult {
  const { senders, payload, window } = spec;
  const procs = Math.max(1, spec.procs ?? 1);
  const proc = spec.proc ?? 0;
  // Own clients: local index l is global client proc + l * procs (the first `senders` send).
  const clients = Math.max(0, Math.ceil((spec.clients - proc) / procs));
  const gid = new Uint32Array(clients);
  for (let l = 0; l < clients; l++) gid[l] = proc + l * procs;
  const offset = sharedClockOffset();
  const clock = () => performance.now() + offset;
  if (payload % 8 !== 0 || payload < 16) throw new RangeError('payload must be a multiple of 8, at least 16');
  const frameBytes = 8 + payload;
  const fillerWords = (payload - 16) >>> 2;
  const template = fillerTemplate(fillerWords);
  const templateBytes = Buffer.from(template.buffer, template.byteOffset, template.byteLength);
  const nativeFiller = fillerWords >= NATIVE_FILLER_WORDS;
  const errors: string[] = [];
  const fail = (message: string) => {
    if (errors.length < 20) errors.push(procs > 1 ? `[gen ${proc}] ${message}` : message);
  };

  const limit = native.getFdLimit();
  if (limit.soft < clients + 64) native.setFdLimit(Math.min(limit.hard, clients + 64));

  const poll = new Poll();
  const registry = poll.registry;
  const events = new Events(4096);

  // Per client.
  const fds = new Int32Array(clients).fill(-1);
  const connected = new Uint8Array(clients);
  const connectStart = new Float64Array(clients);
  const stash: (Buffer | null)[] = new Array(clients).fill(null);
  const stashLength = new Int32Array(clients);
  const probed = new Uint8Array(clients);
  const next = new Uint32Array(clients * Math.max(1, senders));
  const pendingOut: (Buffer | null)[] = new Array(clients).fill(null);
  // Per own sender: local indexes 0..localSenders-1 (global ids gid[l] < senders).
  let localSenders = 0;
  while (localSenders < clients && gid[localSenders]! < senders) localSenders++;
  const sent = new Uint32Array(localSenders);
  const inflight = new Int32Array(localSenders);
  const sendBuf: Buffer[] = [];
  for (let s = 0; s < localSenders; s++) sendBuf.push(Buffer.alloc(frameBytes * Math.max(window, 1)));
  const probeFrame = Buffer.alloc(frameBytes);
  // A sender tops its window up once half of it has come back: one write for several frames.
  const refillAt = window - Math.max(1, window >> 1);

  // The read buffer, 8-byte aligned, with u32 and f64 views.
  // Room for two whole frames at least: a large frame is checked in place, never split.
  const readBufferBytes = Math.max(READ_BUFFER, 2 * frameBytes + 8);
  const arrayBuffer = new ArrayBuffer(readBufferBytes);
  const rbuf = Buffer.from(arrayBuffer);
  const w32 = new Uint32Array(arrayBuffer);
  const f64 = new Float64Array(arrayBuffer);
  const lengthWord = new Uint32Array(new Uint8Array([(payload >>> 24) & 0xff, (payload >>> 16) & 0xff, (payload >>> 8) & 0xff, payload & 0xff]).buffer)[0]!;

  const hist = new Histogram();
  let measuring = false;
  let delivered = 0; // frames received during the measured interval
  let received = 0; // data frames received in all
  let sentTotal = 0;
  let probesSeen = 0;
  let synRetransmits = 0;
  let connectedCount = 0;

  function writeFrame(buf: Buffer, at: number, sender: number, sequence: number, now: number): void {
    buf.writeUInt32BE(0, at);
    buf.writeUInt32BE(payload, at + 4);
    buf.writeUInt32LE(sender, at + 8);
    buf.writeUInt32LE(sequence, at + 12);
    buf.writeDoubleLE(now, at + 16);
    const from = fillerOffset(sender, sequence);
    if (nativeFiller) templateBytes.copy(buf, at + 24, from * 4, (from + fillerWords) * 4);
    else for (let j = 0, o = at + 24; j < fillerWords; j++, o += 4) buf.writeInt32LE(template[from + j]!, o);
  }

  function writeAll(s: number, buf: Buffer, length: number): void {
    const fd = fds[s]!;
    let off = 0;
    while (off < length) {
      const n = native.write(fd, buf, off, length - off);
      if (n > 0) {
        off += n;
        continue;
      }
      if (n === -EINTR) continue;
      if (n === -EAGAIN) {
        pendingOut[s] = Buffer.from(buf.subarray(off, length));
        return;
      }
      fail(`client ${gid[s]}: write failed: ${native.errnoName(-n)}`);
      return;
    }
  }

  function flushPending(s: number): void {
    const out = pendingOut[s];
    if (out === null || out === undefined) return;
    pendingOut[s] = null;
    writeAll(s, out, out.length);
  }

  function pump(s: number, now: number): void {
    if (pendingOut[s] !== null) return;
    const room = window - inflight[s]!;
    if (room <= 0) return;
    const buf = sendBuf[s]!;
    let seq = sent[s]!;
    for (let k = 0, id = gid[s]!; k < room; k++) writeFrame(buf, k * frameBytes, id, seq++, now);
    sent[s] = seq;
    inflight[s]! += room;
    sentTotal += room;
    writeAll(s, buf, room * frameBytes);
  }

  /** Checks frames in rbuf[0, end) (starting at 0, so 8-aligned); returns where the tail starts. */
  function consume(r: number, end: number, now: number): number {
    let p = 0;
    let frames = 0;
    while (end - p >= frameBytes) {
      const q = p >>> 2;
      if (w32[q] !== 0 || w32[q + 1] !== lengthWord) {
        fail(`client ${gid[r]}: bad length prefix ${rbuf.readUInt32BE(p)}:${rbuf.readUInt32BE(p + 4)} (expected ${payload})`);
        return end;
      }
      const sender = w32[q + 2]!;
      const sequence = w32[q + 3]!;
      p += frameBytes;
      if (sequence === PROBE) {
        if (probed[r] === 0) {
          probed[r] = 1;
          probesSeen++;
        }
        continue;
      }
      if (sender >= senders) {
        fail(`client ${gid[r]}: frame from unknown sender ${sender}`);
        continue;
      }
      const slot = r * senders + sender;
      if (sequence !== next[slot]) fail(`client ${gid[r]}: sender ${sender}: frame ${sequence} arrived where ${next[slot]} was due`);
      next[slot] = sequence + 1;
      const from = fillerOffset(sender, sequence);
      const fillerStart = q + 6;
      if (!nativeFiller || rbuf.compare(templateBytes, from * 4, (from + fillerWords) * 4, fillerStart * 4, (fillerStart + fillerWords) * 4) !== 0) {
        for (let j = 0; j < fillerWords; j++) {
          if ((w32[fillerStart + j]! | 0) !== template[from + j]) {
            fail(`client ${gid[r]}: sender ${sender}: frame ${sequence} corrupt at byte ${16 + j * 4}`);
            break;
          }
        }
      }
      frames++;
      if (measuring) {
        const latency = now - f64[(q + 4) >>> 1]!;
        hist.record(latency);
      }
      if (sender === gid[r]) inflight[r]!--;
    }
    received += frames;
    if (measuring) delivered += frames;
    return p;
  }

  function readAll(r: number): void {
    const fd = fds[r]!;
    for (;;) {
      let tail = stashLength[r]!;
      if (tail > 0) stash[r]!.copy(rbuf, 0, 0, tail);
      const n = native.read(fd, rbuf, tail, readBufferBytes - tail);
      if (n > 0) {
        const end = tail + n;
        const now = clock();
        const at = consume(r, end, now);
        tail = end - at;
        if (tail > 0) {
          const s = (stash[r] ??= Buffer.alloc(frameBytes));
          rbuf.copy(s, 0, at, end);
        }
        stashLength[r] = tail;
        // Edge-triggered epoll: a short read of a stream socket means it is drained, and data
        // arriving later raises a new edge, so the EAGAIN read is skipped (not so on kqueue
        // emulations, which may report less than is there).
        if (skipEagainRead && n < readBufferBytes - (end - n)) return;
        continue;
      }
      if (n === -EAGAIN) return;
      if (n === -EINTR) continue;
      fail(n === 0 ? `client ${gid[r]}: closed by the server` : `client ${gid[r]}: read failed: ${native.errnoName(-n)}`);
      closeClient(r);
      return;
    }
  }

  function closeClient(r: number): void {
    if (fds[r]! < 0) return;
    registry.deregister(fds[r]!);
    native.close(fds[r]!);
    fds[r] = -1;
  }

  // --- the driver's control channel: JSON lines on stdin, read from this same poll -------
  const controls: Control[] = [];
  let controlText = '';
  const controlBuf = Buffer.alloc(4096);
  let controlOpen = false;
  if (spec.coordinated) {
    // Level-triggered, one read per event: stdin may be a blocking descriptor.
    registry.register(0, CONTROL, Interest.READABLE, Trigger.LEVEL);
    controlOpen = true;
  }

  function readControl(): void {
    const n = native.read(0, controlBuf, 0, controlBuf.length);
    if (n === -EAGAIN || n === -EINTR) return;
    if (n <= 0) {
      // The driver is gone: nothing will tell us to go on.
      registry.deregister(0);
      controlOpen = false;
      controls.push({ type: 'abort' });
      return;
    }
    controlText += controlBuf.toString('utf8', 0, n);
    let nl: number;
    while ((nl = controlText.indexOf('\n')) >= 0) {
      const line = controlText.slice(0, nl).trim();
      controlText = controlText.slice(nl + 1);
      if (line) controls.push(JSON.parse(line) as Control);
    }
  }

  /** Keeps reading every client (frames from other processes go on arriving) until the driver
   *  sends `type` or abort; null at the deadline. */
  function awaitControl(type: Control['type']): Control | null {
    for (;;) {
      const at = controls.findIndex((c) => c.type === type || c.type === 'abort');
      if (at >= 0) return controls.splice(at, 1)[0]!;
      if (clock() >= deadline) return null;
      turn(5);
    }
  }

  // --- connect -------------------------------------------------------------------------
  const began = clock();
  const deadline = began + spec.timeoutMs;
  const concurrency = spec.connectConcurrency ?? 256;
  const rssBase = spec.idle && spec.serverPid ? rssKiB(spec.serverPid) : { total: NaN, anon: NaN };
  const fdBase = spec.idle && spec.serverPid ? fdCount(spec.serverPid) : 0;
  let started = 0;
  let handshaking = 0;
  const startConnects = () => {
    while (started < clients && handshaking < concurrency) {
      const fd = native.connect(spec.host, spec.ports ? spec.ports[gid[started]! % spec.ports.length]! : spec.port);
      fds[started] = fd;
      connectStart[started] = clock();
      native.setNoDelay(fd, true);
      registry.register(fd, started, Interest.BOTH, Trigger.EDGE);
      started++;
      handshaking++;
    }
  };
  void EINPROGRESS;

  function handle(count: number): void {
    const now = clock();
    for (let i = 0; i < count; i++) {
      const r = events.tokenLow(i);
      const flags = events.flags(i);
      if (r === CONTROL) {
        if (controlOpen) readControl();
        continue;
      }
      if (fds[r]! < 0) continue;
      if (connected[r] === 0) {
        if ((flags & (Ready.WRITABLE | Ready.ERROR | Ready.WRITE_CLOSED)) === 0) continue;
        const err = native.socketError(fds[r]!);
        if (err !== 0) {
          fail(`client ${gid[r]}: connect failed: ${native.errnoName(err)}`);
          closeClient(r);
          handshaking--;
          continue;
        }
        connected[r] = 1;
        connectedCount++;
        handshaking--;
        if (now - connectStart[r]! > SYN_RETRANSMIT_MS) synRetransmits++;
      }
      if ((flags & (Ready.READABLE | Ready.READ_CLOSED | Ready.ERROR)) !== 0) readAll(r);
      if ((flags & Ready.WRITABLE) !== 0 && pendingOut[r] !== null) flushPending(r);
    }
  }

  const turn = (timeoutMs: number) => {
    const count = poll.poll(events, timeoutMs);
    if (count > 0) handle(count);
  };

  while (connectedCount + errors.length < clients && clock() < deadline) {
    startConnects();
    turn(10);
  }
  const connectMs = clock() - began;
  if (connectedCount < clients) fail(`only ${connectedCount} of ${clients} clients connected`);

  // --- wait until the server holds every own connection: a probe from our first client ---
  // (Probes from other processes reach our clients too; any probe proves the server holds the
  // connection that received it.)
  let idleResult: LoadResult['idle'];
  if (errors.length === 0 && spec.idle && spec.serverPid) {
    // Every connection accepted = the server process holds `clients` more descriptors.
    while (fdCount(spec.serverPid) < fdBase + clients && clock() < deadline) turn(20);
    const settle = clock() + 200;
    while (clock() < settle) turn(20);
    const rss = rssKiB(spec.serverPid);
    const t0 = clock();
    writeFrame(probeFrame, 0, 0, PROBE, t0);
    writeAll(0, probeFrame, frameBytes);
    while (probesSeen < clients && errors.length === 0 && clock() < deadline) turn(10);
    const broadcastMs = clock() - t0;
    if (probesSeen < clients) fail(`the broadcast reached ${probesSeen} of ${clients} clients`);
    idleResult = {
      rssBaseKiB: rssBase.anon,
      rssKiB: rss.anon,
      rssPerConnBytes: ((rss.anon - rssBase.anon) * 1024) / clients,
      totalRssPerConnBytes: ((rss.total - rssBase.total) * 1024) / clients,
      broadcastMs,
    };
  } else if (errors.length === 0 && clients > 0) {
    let lastProbe = -Infinity;
    while (probesSeen < clients && errors.length === 0 && clock() < deadline) {
      const now = clock();
      if (now - lastProbe > 50) {
        writeFrame(probeFrame, 0, gid[0]!, PROBE, now);
        writeAll(0, probeFrame, frameBytes);
        lastProbe = now;
      }
      turn(5);
    }
    if (probesSeen < clients) fail(`the probe reached ${probesSeen} of ${clients} clients`);
  }

  // --- start barrier: every process ready, then all go at the same (shared clock) time ---
  let startAt = clock();
  if (spec.coordinated) {
    emit({ type: 'ready', ok: errors.length === 0, clients, senders: localSenders });
    const go = awaitControl('go');
    if (go?.type === 'go') startAt = go.startAt;
    else fail(go?.type === 'abort' ? 'aborted: another generator process failed before the start' : 'no start signal from the driver');
  }

  // --- load ----------------------------------------------------------------------------
  let measuredMs = 0;
  let cpu = 0;
  let sentInMeasure = 0;
  let serverTicks = NaN;
  if (errors.length === 0 && !spec.idle && senders > 0) {
    const measureFrom = startAt + spec.warmupMs;
    const measureTo = measureFrom + spec.measureMs;
    while (clock() < startAt - 1) turn(1);
    while (clock() < startAt) {
      // spin the last millisecond
    }
    let cpuStart: NodeJS.CpuUsage | null = null;
    const watchServer = spec.serverPid !== undefined && proc === 0;
    let sentAtStart = 0;
    let now = clock();
    for (let s = 0; s < localSenders; s++) pump(s, now);
    while (errors.length === 0 && now < measureTo && now < deadline) {
      turn(5);
      now = clock();
      if (!measuring && now >= measureFrom && now < measureTo) {
        measuring = true;
        cpuStart = process.cpuUsage();
        if (watchServer) serverTicks = -cpuTicks(spec.serverPid!);
        sentAtStart = sentTotal;
        measuredMs = -now;
      }
      for (let s = 0; s < localSenders; s++) if (inflight[s]! <= refillAt) pump(s, now);
    }
    if (measuring) {
      measuredMs += now;
      if (watchServer) serverTicks += cpuTicks(spec.serverPid!);
    }
    measuring = false;
    sentInMeasure = sentTotal - sentAtStart;
    if (cpuStart !== null) {
      const used = process.cpuUsage(cpuStart);
      cpu = (used.user + used.system) / 1000 / measuredMs;
      if (process.env.MOB_BENCH_DEBUG) process.stderr.write(`gen ${proc} user ${(used.user / 1000 / measuredMs).toFixed(2)} sys ${(used.system / 1000 / measuredMs).toFixed(2)}\n`);
    }
  }

  // --- drain: every own receiver must get every frame every sender (of any process) sent ---
  let totals: ArrayLike<number> = new Uint32Array(senders);
  if (spec.coordinated) {
    emit({ type: 'sent', sent: Array.from(sent, (n, s) => [gid[s]!, n]) });
    const got = awaitControl('totals');
    if (got?.type === 'totals' && got.sent.length === senders) totals = got.sent;
    else fail(got?.type === 'abort' ? 'aborted: another generator process did not report what it sent' : 'no sent totals from the driver');
  } else {
    const own = new Uint32Array(senders);
    for (let s = 0; s < localSenders; s++) own[gid[s]!] = sent[s]!;
    totals = own;
  }
  if (errors.length === 0 && !spec.idle && senders > 0) {
    let perReceiver = 0;
    for (let s = 0; s < senders; s++) perReceiver += totals[s]!;
    const expected = perReceiver * clients;
    while (received < expected && errors.length === 0 && clock() < deadline) turn(10);
    if (received < expected) fail(`lost frames: received ${received} of ${expected} (timed out)`);
    for (let r = 0; r < clients && errors.length === 0; r++) {
      for (let s = 0; s < senders; s++) {
        if (next[r * senders + s] !== totals[s]) fail(`client ${gid[r]}: got ${next[r * senders + s]} of ${totals[s]} frames from sender ${s}`);
      }
    }
  }

  for (let r = 0; r < clients; r++) closeClient(r);
  if (controlOpen) registry.deregister(0);
  poll.close();
  const seconds = measuredMs / 1000;
  return {
    ok: errors.length === 0,
    errors,
    clients,
    senders: localSenders,
    payload,
    window,
    framesPerSec: seconds > 0 ? delivered / seconds : 0,
    mbPerSec: seconds > 0 ? (delivered * frameBytes) / seconds / 1e6 : 0,
    sentPerSec: seconds > 0 ? sentInMeasure / seconds : 0,
    latencyMs: { p50: hist.percentile(50), p99: hist.percentile(99), p999: hist.percentile(99.9), max: hist.max },
    histogram: hist.toBuckets(),
    delivered,
    synRetransmits,
    connectMs,
    ...(idleResult ? { idle: idleResult } : {}),
    genCpu: cpu,
    genCpus: [cpu],
    procs: 1,
    ...(Number.isFinite(serverTicks) ? { serverCpuSec: serverTicks / 100 } : {}),
  };
}

/** One JSON line on stdout, written synchronously (the loop never yields to libuv). stdout may
 *  be non-blocking and the result line is large (histogram buckets): wait out EAGAIN. */
function emit(message: object): void {
  const line = Buffer.from(JSON.stringify(message) + '\n');
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (let off = 0; off < line.length; ) {
    try {
      off += writeSync(1, line, off);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
      Atomics.wait(nap, 0, 0, 1);
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec;
  const result = runLoad(spec);
  emit(spec.coordinated ? { type: 'result', result } : result);
}
