// The timeline behind `mob serve --trace` and `mob lab`: one record per thing the loop did, in
// the order it did it, with time since the start. A record is the JSON line (`--trace=json`);
// the text line is a rendering of the same record, and so is the lane diagram (trace/svg.ts),
// so the three never disagree about what happened.
import { performance } from 'node:perf_hooks';
import { native, TWO_POW_32 } from '../native/binding.js';
import { describeInterest, describeReady } from '../poll/index.js';
import type { LoopTracer, TracedCall } from '../server/tracer.js';
import { describeRawEvent, describeRegistration, type Backend } from './kernel.js';

export type TraceFormat = 'text' | 'json';
/** Calls the server never makes but the lab experiments do. */
export type TimelineCall = TracedCall | 'connect' | 'dup' | 'listen';

/** One line of the timeline. `t` is milliseconds since the timeline started. */
export type TraceRecord = { t: number } & (
  | { type: 'batch'; count: number; timeout: number; blocked: number | null }
  | { type: 'event'; token: string; tokenValue: number; flags: string; kernel: string; raw: number; data?: number }
  | { type: 'call'; call: TimelineCall; fd: number; token: string | null; result: number; outcome: string; errno?: string; requested?: number }
  | { type: 'registration'; op: 'register' | 'reregister' | 'deregister'; fd: number; token: string | null; interest: string | null; kernel: string; result: string }
  | { type: 'connection'; op: 'open' | 'half-closed' | 'close'; fd: number; token: string; detail: string }
  | { type: 'stale'; token: string; tokenValue: number; flags: string }
  | { type: 'budget'; op: 'spent' | 'resume'; fd: number; token: string; budget: number }
  | { type: 'note'; text: string }
  | { type: 'check'; ok: boolean; claim: string; detail: string }
  | { type: 'experiment'; name: string; backend: string; libkqueue: boolean; platform: string; summary: string }
  | { type: 'result'; name: string; backend: string; ok: boolean; checks: number; failed: number; skipped: string | null }
  | { type: 'listening'; host: string; port: number }
);

/** A record before it is timed. */
export type UntimedRecord = TraceRecord extends infer R ? (R extends TraceRecord ? Omit<R, 't'> : never) : never;

export interface Timeline extends LoopTracer {
  call(call: TimelineCall, fd: number, token: number, result: number, requested: number): void;
  /** A sentence between the facts: what an experiment is about to do, or what it saw. */
  note(text: string): void;
  /** A claim checked against what the kernel did (the lab's verdicts). */
  check(ok: boolean, claim: string, detail: string): void;
  /** Any other record (an experiment's start and result). */
  record(record: UntimedRecord): void;
}

export interface TimelineOptions {
  backend?: Backend;
  /** Milliseconds; defaults to performance.now(). */
  clock?: () => number;
}


/** A timeline that writes each record as a line: JSON, or text for people. */
export function createTimeline(format: TraceFormat, write: (line: string) => void, options: TimelineOptions = {}): Timeline {
  return createRecordTimeline(format === 'json' ? (record) => write(JSON.stringify(record)) : (record) => write(formatRecord(record)), options);
}

/** A timeline that hands each record to `sink` (the lab keeps them for --svg and the guide). */
export function createRecordTimeline(sink: (record: TraceRecord) => void, options: TimelineOptions = {}): Timeline {
  return new TimelineWriter(sink, options.backend ?? native.backend, options.clock ?? (() => performance.now()));
}

/** An outcome of a call, in words: "12 bytes", "EOF", "EAGAIN", "fd 14", "ok". */
export function describeResult(call: TimelineCall, result: number): string {
  if (result < 0) return native.errnoName(-result);
  switch (call) {
    case 'accept':
    case 'connect':
    case 'dup':
    case 'listen':
      return `fd ${result}`;
    case 'read':
      return result === 0 ? '0 (EOF)' : `${result} bytes`;
    case 'write':
    case 'writev':
      return `${result} bytes`;
    default:
      return result === 0 ? 'ok' : String(result);
  }
}

/** Time since the start: milliseconds, in seconds past 1000 s so the columns stay put. */
function formatTime(ms: number): string {
  return ms < 1e6 ? `+${ms.toFixed(3).padStart(10)}ms` : `+${(ms / 1000).toFixed(3).padStart(11)}s`;
}

function duration(ms: number): string {
  return ms < 0 ? 'forever' : `${ms} ms`;
}

/** The text line of a record. */
export function formatRecord(record: TraceRecord): string {
  // The verdict is not a step of the run: it starts its line, for grep and for eyes.
  if (record.type === 'result') return formatBody(record);
  return `${formatTime(record.t)}  ${formatBody(record)}`;
}

function formatBody(r: TraceRecord): string {
  const who = (token: string | null): string => (token !== null ? ` ${token}` : '');
  switch (r.type) {
    case 'batch': {
      const blocked = r.blocked === null ? ' (libuv did the blocking)' : `, blocked ${r.blocked.toFixed(3)} ms`;
      return `wait(${duration(r.timeout)}) -> ${r.count} event${r.count === 1 ? '' : 's'}${blocked}`;
    }
    case 'event':
      return `  event      ${r.token.padEnd(10)} ${r.flags.padEnd(24)} [${r.kernel}]`;
    case 'call': {
      // Reads ask for a whole buffer, so "of N" says nothing there; a short write is the story.
      const short = r.result >= 0 && r.requested !== undefined && r.result < r.requested && (r.call === 'write' || r.call === 'writev');
      return `${r.call.padEnd(10)} fd ${String(r.fd).padEnd(4)}${who(r.token)} -> ${r.outcome}${short ? ` (of ${r.requested})` : ''}`;
    }
    case 'registration':
      return `${r.op.padEnd(10)} fd ${String(r.fd).padEnd(4)}${who(r.token)}${r.interest ? ` ${r.interest}` : ''} [${r.kernel}] -> ${r.result}`;
    case 'connection':
      return `${(r.op === 'open' ? 'connection' : r.op === 'close' ? 'removed' : r.op).padEnd(10)} fd ${String(r.fd).padEnd(4)} ${r.token}${r.detail ? ` (${r.detail})` : ''}`;
    case 'stale':
      return `stale      ${r.token} ${r.flags}: no such connection any more, ignored`;
    case 'budget':
      return r.op === 'spent'
        ? `budget     fd ${String(r.fd).padEnd(4)} ${r.token}: read budget of ${r.budget} bytes spent before EAGAIN; read on next turn`
        : `continue   fd ${String(r.fd).padEnd(4)} ${r.token}: no event comes for it (edge-triggered, not drained): reading on after last turn's budget`;
    case 'note':
      return `# ${r.text}`;
    case 'check':
      return `${r.ok ? 'CONFIRMED' : 'FAILED   '} ${r.claim}${r.detail ? ` — ${r.detail}` : ''}`;
    case 'experiment':
      return `# experiment ${r.name} on ${r.backend}${r.libkqueue ? ' (libkqueue)' : ''}, ${r.platform}: ${r.summary}`;
    case 'result':
      return `${verdict(r)} ${r.name} (${r.backend}): ${r.checks - r.failed}/${r.checks} checks${r.skipped !== null ? `; ${r.checks > 0 ? 'the rest ' : ''}skipped: ${r.skipped}` : ''}`;
    case 'listening':
      return `listening on ${r.host}:${r.port}`;
  }
}

/** PASS, FAIL, or SKIP for an experiment that could check nothing on this backend. */
export function verdict(result: { ok: boolean; checks: number; skipped: string | null }): 'PASS' | 'FAIL' | 'SKIP' {
  if (!result.ok) return 'FAIL';
  return result.checks === 0 && result.skipped !== null ? 'SKIP' : 'PASS';
}

class TimelineWriter implements Timeline {
  private readonly start: number;
  private readonly names = new Map<number, string>();

  constructor(
    private readonly sink: (record: TraceRecord) => void,
    private readonly backend: Backend,
    private readonly clock: () => number,
  ) {
    this.start = clock();
  }

  nameToken(token: number, name: string): void {
    this.names.set(token, name);
  }

  batch(count: number, timeoutMs: number, blockedMs: number): void {
    this.record({ type: 'batch', count, timeout: timeoutMs, blocked: blockedMs < 0 ? null : Math.round(blockedMs * 1000) / 1000 });
  }

  event(token: number, flags: number, raw: number, data: number): void {
    const kernel = describeRawEvent(this.backend, raw, data);
    const record: UntimedRecord = { type: 'event', token: this.token(token), tokenValue: token, flags: describeReady(flags), kernel, raw };
    if (this.backend === 'kqueue') record.data = data;
    this.record(record);
  }

  call(call: TimelineCall, fd: number, token: number, result: number, requested: number): void {
    const outcome = describeResult(call, result);
    const record: UntimedRecord = { type: 'call', call, fd, token: token >= 0 ? this.token(token) : null, result, outcome };
    if (result < 0) record.errno = outcome;
    if (requested > 0) record.requested = requested;
    this.record(record);
  }

  registration(op: 'register' | 'reregister' | 'deregister', fd: number, token: number, bits: number, result: number): void {
    this.record({
      type: 'registration', op, fd, token: token >= 0 ? this.token(token) : null,
      interest: op === 'deregister' ? null : describeInterest(bits), kernel: describeRegistration(this.backend, op, bits),
      result: result < 0 ? native.errnoName(-result) : 'ok',
    });
  }

  connection(op: 'open' | 'half-closed' | 'close', fd: number, token: number, detail: string): void {
    this.record({ type: 'connection', op, fd, token: this.token(token), detail });
  }

  stale(token: number, flags: number): void {
    this.record({ type: 'stale', token: this.token(token), tokenValue: token, flags: describeReady(flags) });
  }

  readBudget(op: 'spent' | 'resume', fd: number, token: number, budget: number): void {
    this.record({ type: 'budget', op, fd, token: this.token(token), budget });
  }

  note(text: string): void {
    this.record({ type: 'note', text });
  }

  check(ok: boolean, claim: string, detail: string): void {
    this.record({ type: 'check', ok, claim, detail });
  }

  record(record: UntimedRecord): void {
    const t = Math.round((this.clock() - this.start) * 1000) / 1000;
    this.sink({ t, ...record } as TraceRecord);
  }

  /** slot/generation: the generation is what tells a reused slot from the connection it replaced. */
  private token(token: number): string {
    const name = this.names.get(token);
    if (name !== undefined) return name;
    const slot = token % TWO_POW_32;
    const generation = Math.floor(token / TWO_POW_32);
    return `${slot}/${generation}`;
  }
}
