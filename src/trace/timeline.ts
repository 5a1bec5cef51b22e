// The timeline behind `mob serve --trace` and `mob lab`: one line per thing the loop did, in
// the order it did it, with time since the start. Text is for people; JSON lines (`--trace=json`)
// carry the same facts under stable field names for tools.
import { performance } from 'node:perf_hooks';
import { native, TWO_POW_32 } from '../native/binding.js';
import { describeInterest, describeReady } from '../poll/index.js';
import type { LoopTracer, TracedCall } from '../server/tracer.js';
import { describeRawEvent, describeRegistration, type Backend } from './kernel.js';

export type TraceFormat = 'text' | 'json';
/** Calls the server never makes but the lab experiments do. */
export type TimelineCall = TracedCall | 'connect' | 'dup' | 'listen';

export interface Timeline extends LoopTracer {
  call(call: TimelineCall, fd: number, token: number, result: number, requested: number): void;
  /** A sentence between the facts: what an experiment is about to do, or what it saw. */
  note(text: string): void;
  /** A claim checked against what the kernel did (the lab's verdicts). */
  check(ok: boolean, claim: string, detail: string): void;
}

export interface TimelineOptions {
  backend?: Backend;
  /** Milliseconds; defaults to performance.now(). */
  clock?: () => number;
}


export function createTimeline(format: TraceFormat, write: (line: string) => void, options: TimelineOptions = {}): Timeline {
  return new TimelineWriter(format, write, options.backend ?? native.backend, options.clock ?? (() => performance.now()));
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

class TimelineWriter implements Timeline {
  private readonly start: number;
  private readonly names = new Map<number, string>();

  constructor(
    private readonly format: TraceFormat,
    private readonly write: (line: string) => void,
    private readonly backend: Backend,
    private readonly clock: () => number,
  ) {
    this.start = clock();
  }

  nameToken(token: number, name: string): void {
    this.names.set(token, name);
  }

  batch(count: number): void {
    this.emit(`wait -> ${count} event${count === 1 ? '' : 's'}`, { type: 'batch', count });
  }

  event(token: number, flags: number, raw: number, data: number): void {
    const kernel = describeRawEvent(this.backend, raw, data);
    const fields: Record<string, unknown> = { type: 'event', token: this.token(token), tokenValue: token, flags: describeReady(flags), kernel, raw };
    if (this.backend === 'kqueue') fields.data = data;
    this.emit(`  event      ${this.token(token).padEnd(10)} ${describeReady(flags).padEnd(24)} [${kernel}]`, fields);
  }

  call(call: TimelineCall, fd: number, token: number, result: number, requested: number): void {
    const outcome = describeResult(call, result);
    // Reads ask for a whole buffer, so "of N" says nothing there; a short write is the story.
    const asked = result >= 0 && result < requested && (call === 'write' || call === 'writev') ? ` (of ${requested})` : '';
    const who = token >= 0 ? ` ${this.token(token)}` : '';
    const fields: Record<string, unknown> = { type: 'call', call, fd, token: token >= 0 ? this.token(token) : null, result, outcome };
    if (result < 0) fields.errno = outcome;
    if (requested > 0) fields.requested = requested;
    this.emit(`${call.padEnd(10)} fd ${String(fd).padEnd(4)}${who} -> ${outcome}${asked}`, fields);
  }

  registration(op: 'register' | 'reregister' | 'deregister', fd: number, token: number, bits: number): void {
    const kernel = describeRegistration(this.backend, op, bits);
    const interest = op === 'deregister' ? null : describeInterest(bits);
    const who = token >= 0 ? ` ${this.token(token)}` : '';
    this.emit(`${op.padEnd(10)} fd ${String(fd).padEnd(4)}${who}${interest ? ` ${interest}` : ''} [${kernel}]`, {
      type: 'registration', op, fd, token: token >= 0 ? this.token(token) : null, interest, kernel,
    });
  }

  connection(op: 'open' | 'half-closed' | 'close', fd: number, token: number, detail: string): void {
    const verb = op === 'open' ? 'connection' : op === 'close' ? 'removed' : op;
    this.emit(`${verb.padEnd(10)} fd ${String(fd).padEnd(4)} ${this.token(token)}${detail ? ` (${detail})` : ''}`, {
      type: 'connection', op, fd, token: this.token(token), detail,
    });
  }

  stale(token: number, flags: number): void {
    this.emit(`stale      ${this.token(token)} ${describeReady(flags)}: no such connection any more, ignored`, {
      type: 'stale', token: this.token(token), tokenValue: token, flags: describeReady(flags),
    });
  }

  note(text: string): void {
    this.emit(`# ${text}`, { type: 'note', text });
  }

  check(ok: boolean, claim: string, detail: string): void {
    this.emit(`${ok ? 'CONFIRMED' : 'FAILED   '} ${claim}${detail ? ` — ${detail}` : ''}`, { type: 'check', ok, claim, detail });
  }

  /** slot/generation: the generation is what tells a reused slot from the connection it replaced. */
  private token(token: number): string {
    const name = this.names.get(token);
    if (name !== undefined) return name;
    const slot = token % TWO_POW_32;
    const generation = Math.floor(token / TWO_POW_32);
    return `${slot}/${generation}`;
  }

  private emit(text: string, fields: Record<string, unknown>): void {
    const elapsed = this.clock() - this.start;
    if (this.format === 'json') {
      this.write(JSON.stringify({ t: Math.round(elapsed * 1000) / 1000, ...fields }));
    } else {
      this.write(`+${elapsed.toFixed(3).padStart(9)}ms  ${text}`);
    }
  }
}
