// The guide's generated parts (docs/edge-triggered.md): every output block sits between markers
// that name the experiment and the backend that printed it, and every picture is drawn from the
// same run. `npm run docs` rewrites them from fresh runs; test/docs.test.ts reruns the
// experiments and fails when a committed block no longer matches what they print now.
//
//   <!-- lab:output NAME BACKEND [from="text"] [to="text"] -->
//   ```
//   ...lines of `mob lab NAME` (from the first line containing `from` to the next containing `to`)...
//   ```
//   <!-- /lab:output -->
//   <!-- lab:svg NAME BACKEND file="lab/NAME.svg" -->     (the picture, written next to the guide)
//   <!-- lab:serve BACKEND --> ... <!-- /lab:serve -->        (`mob serve --trace`, one client's life)
//
// BACKEND is epoll, libkqueue or kqueue: a run fills only the blocks of the backend it ran on.
import { createConnection } from 'node:net';
import { native } from '../../src/native/binding.ts';
import { findExperiment, runExperiment, type LabResult } from '../../src/lab/index.ts';
import { renderSvg } from '../../src/trace/svg.ts';
import { createTimeline } from '../../src/trace/timeline.ts';
import { Logger } from '../../src/log.ts';
import { DEFAULT_LIMITS } from '../../src/server/policy.ts';

export type GuideBackend = 'epoll' | 'libkqueue' | 'kqueue';

export interface Marker {
  kind: 'output' | 'svg' | 'serve';
  experiment: string;
  backend: GuideBackend;
  from?: string;
  to?: string;
  file?: string;
  /** Character offsets of the generated body (between the opening marker's line and the closing marker). */
  bodyStart: number;
  bodyEnd: number;
}

const MARKER = /<!-- lab:(output|svg|serve) ((?:[a-z-]+ )?)(epoll|libkqueue|kqueue)((?: [a-z]+="[^"]*")*) -->\n/g;
const ATTRIBUTE = / ([a-z]+)="([^"]*)"/g;

/** The backend this process runs on, as the guide names it. */
export function currentBackend(): GuideBackend {
  if (native.backend === 'epoll') return 'epoll';
  return process.platform === 'linux' ? 'libkqueue' : 'kqueue';
}

export function findMarkers(markdown: string): Marker[] {
  const markers: Marker[] = [];
  for (const match of markdown.matchAll(MARKER)) {
    const kind = match[1] as Marker['kind'];
    const marker: Marker = {
      kind, experiment: match[2]!.trim(), backend: match[3] as GuideBackend,
      bodyStart: match.index + match[0].length, bodyEnd: match.index + match[0].length,
    };
    for (const attribute of match[4]!.matchAll(ATTRIBUTE)) {
      const [, key, value] = attribute;
      if (key === 'from' || key === 'to' || key === 'file') marker[key] = value;
    }
    if (kind !== 'svg') {
      const close = `<!-- /lab:${kind} -->`;
      const end = markdown.indexOf(close, marker.bodyStart);
      if (end < 0) throw new Error(`docs: ${match[0].trim()} has no ${close}`);
      marker.bodyEnd = end;
    } else if (marker.file === undefined) {
      throw new Error(`docs: ${match[0].trim()} needs file="…"`);
    }
    markers.push(marker);
  }
  return markers;
}

/** The lines a marker shows out of a whole run. */
export function select(lines: readonly string[], marker: Pick<Marker, 'from' | 'to'>): string[] {
  let start = 0;
  if (marker.from !== undefined) {
    start = lines.findIndex((line) => line.includes(marker.from!));
    if (start < 0) throw new Error(`docs: no line contains from="${marker.from}"`);
  }
  let end = lines.length - 1;
  if (marker.to !== undefined) {
    end = lines.findIndex((line, i) => i >= start && line.includes(marker.to!));
    if (end < 0) throw new Error(`docs: no line after from="${marker.from ?? ''}" contains to="${marker.to}"`);
  }
  return lines.slice(start, end + 1);
}

function codeBlock(lines: readonly string[]): string {
  return '```\n' + lines.join('\n') + '\n```\n';
}

/** What may differ between two honest runs: times, ports, descriptor numbers, byte counts that
 *  depend on buffer sizes and timing, and the padding around them. Words, kernel bit names,
 *  verdicts and the number of lines must not. */
export function normalise(text: string): string {
  return text
    .split('\n')
    .map((line) => line.replace(/\d+(\.\d+)?/g, 'N').replace(/\s+/g, ' ').trim())
    .filter((line) => line !== '')
    .join('\n');
}

export interface Run {
  lines: string[];
  /** The experiment's result and records (absent for the server's trace, which has no picture). */
  result?: LabResult;
}

/** Runs each experiment the markers of `backend` need, once. */
export async function runFor(markers: readonly Marker[], backend: GuideBackend): Promise<Map<string, Run>> {
  const runs = new Map<string, Run>();
  for (const marker of markers) {
    if (marker.backend !== backend || runs.has(marker.experiment)) continue;
    if (marker.kind === 'serve') {
      runs.set('', { lines: await traceOneClient() });
      continue;
    }
    const experiment = findExperiment(marker.experiment);
    if (experiment === undefined) throw new Error(`docs: no experiment '${marker.experiment}'`);
    const lines: string[] = [];
    const result = await runExperiment(experiment, (line) => lines.push(line));
    if (!result.ok) throw new Error(`docs: ${marker.experiment} failed on ${backend}:\n${result.failures.join('\n')}`);
    runs.set(marker.experiment, { lines, result });
  }
  return runs;
}

/** The guide with the blocks of `backend` rewritten from `runs`; pictures to write, by file. */
export function regenerate(markdown: string, backend: GuideBackend, runs: Map<string, Run>): { markdown: string; svgs: Map<string, string> } {
  const markers = findMarkers(markdown).filter((marker) => marker.backend === backend);
  const svgs = new Map<string, string>();
  let out = '';
  let at = 0;
  for (const marker of markers) {
    const run = runs.get(marker.experiment)!;
    if (marker.kind === 'svg') {
      if (run.result === undefined) throw new Error(`docs: ${marker.file} needs an experiment's run`);
      svgs.set(marker.file!, renderSvg(run.result.records));
      continue;
    }
    out += markdown.slice(at, marker.bodyStart) + codeBlock(select(run.lines, marker));
    at = marker.bodyEnd;
  }
  return { markdown: out + markdown.slice(at), svgs };
}

/** Blocks of `backend` whose committed text differs (normalised) from what `runs` printed. */
export function drift(markdown: string, backend: GuideBackend, runs: Map<string, Run>): string[] {
  const problems: string[] = [];
  for (const marker of findMarkers(markdown)) {
    if (marker.backend !== backend || marker.kind === 'svg') continue;
    const committed = normalise(markdown.slice(marker.bodyStart, marker.bodyEnd).replace(/^```\n|```\n?$/g, ''));
    const now = normalise(select(runs.get(marker.experiment)!.lines, marker).join('\n'));
    if (committed !== now) problems.push(`${marker.kind} ${marker.experiment || 'serve'} ${backend}${marker.from ? ` from="${marker.from}"` : ''}:\n${firstDifference(committed, now)}`);
  }
  return problems;
}

function firstDifference(committed: string, now: string): string {
  const a = committed.split('\n');
  const b = now.split('\n');
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i]) return `  line ${i + 1}\n  guide: ${a[i] ?? '(none)'}\n  now:   ${b[i] ?? '(none)'}`;
  }
  return '  (same lines)';
}

/** `mob serve --trace`, in-process: one client connects, sends a 5-byte frame, reads its echo
 *  and half-closes; a half-closed client stays a receiver (#9), so the timeline runs on through
 *  the server's shutdown: FIN to the client, its EOF drained, then the close. */
export async function traceOneClient(): Promise<string[]> {
  const { NativeServer } = await import('../../src/server/native/server.js');
  const lines: string[] = [];
  const server = new NativeServer({ host: '127.0.0.1', port: 0, limits: DEFAULT_LIMITS, shutdownTimeoutMs: 1000 },
    new Logger('error'), createTimeline('text', (line) => lines.push(line)));
  lines.unshift(`listening on 127.0.0.1:${server.address.port}`);
  const socket = createConnection(server.address.port, '127.0.0.1');
  const closed = new Promise<void>((resolve, reject) => {
    let received = 0;
    socket.on('error', reject);
    socket.on('connect', () => {
      const frame = Buffer.alloc(13);
      frame.writeBigUInt64BE(5n);
      frame.write('hello', 8);
      socket.write(frame);
    });
    socket.on('data', (chunk) => {
      received += chunk.length;
      if (received === 13) socket.end();
    });
    socket.on('close', () => resolve());
  });
  const seen = (word: string) => lines.some((line) => line.includes(word));
  for (let i = 0; i < 200 && !seen('half-closed'); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  await server.close();
  await closed;
  return lines;
}
