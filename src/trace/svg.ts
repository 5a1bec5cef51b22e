// A lane diagram of a timeline (`mob lab NAME --svg FILE`, `mob trace-svg`): four lanes — the
// peer, the kernel's socket buffers, the poller, the loop — and one row per record, time going
// down, so an edge reads as an arrow from the kernel through the poller to the loop, and a
// read that ends in EAGAIN as an arrow back from an empty buffer. Plain SVG text, no library.
import { verdict, type TraceRecord } from './timeline.js';

const LANES = ['peer', 'kernel buffers', 'poller', 'loop'] as const;
type Lane = 0 | 1 | 2 | 3;
const PEER: Lane = 0;
const KERNEL: Lane = 1;
const POLLER: Lane = 2;
const LOOP: Lane = 3;

const WIDTH = 980;
const GUTTER = 78;
const LANE_X = [GUTTER + 60, GUTTER + 290, GUTTER + 520, GUTTER + 750];
const ROW = 17;
const TOP = 58;
const MAX_ROWS = 400;
/** Characters that fit in a row across the lanes (11px monospace is about 6.6px a character). */
const TEXT_CHARS = Math.floor((WIDTH - GUTTER - 10) / 6.6);

const COLOURS = { peer: '#6a3d9a', kernel: '#1f78b4', loop: '#33a02c', fail: '#e31a1c', note: '#666', eagain: '#b15928' };

interface Row {
  t: number;
  svg: string;
}

export function renderSvg(records: readonly TraceRecord[]): string {
  const start = records.find((r) => r.type === 'experiment');
  const title = start?.type === 'experiment'
    ? `mob lab ${start.name} — ${start.backend}${start.libkqueue ? ' (libkqueue)' : ''}, ${start.platform}`
    : 'mob trace';
  const rows: Row[] = [];
  for (const record of records) {
    if (rows.length === MAX_ROWS) {
      rows.push({ t: record.t, svg: text(GUTTER + 10, 0, `… ${records.length - MAX_ROWS} more records not drawn`, COLOURS.note) });
      break;
    }
    const svg = drawRecord(record);
    if (svg !== null) rows.push({ t: record.t, svg });
  }
  const height = TOP + rows.length * ROW + 20;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="ui-monospace,Menlo,Consolas,monospace" font-size="11">`);
  out.push(`<defs><marker id="a" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L8,4 L0,8 z" fill="#444"/></marker></defs>`);
  out.push(`<rect width="${WIDTH}" height="${height}" fill="#fff"/>`);
  out.push(`<text x="8" y="18" font-size="13" font-weight="bold">${escape(title)}</text>`);
  for (let lane = 0; lane < LANES.length; lane++) {
    const x = LANE_X[lane]!;
    out.push(`<text x="${x}" y="${TOP - 14}" text-anchor="middle" font-weight="bold">${LANES[lane]}</text>`);
    out.push(`<line x1="${x}" y1="${TOP - 8}" x2="${x}" y2="${height - 10}" stroke="#bbb" stroke-dasharray="3,3"/>`);
  }
  rows.forEach((row, i) => {
    const y = TOP + i * ROW + 10;
    out.push(`<g transform="translate(0,${y})"><text x="4" y="0" fill="${COLOURS.note}">${escape(formatMs(row.t))}</text>${row.svg}</g>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

function formatMs(ms: number): string {
  return ms < 1e5 ? `${ms.toFixed(1)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function drawRecord(r: TraceRecord): string | null {
  switch (r.type) {
    case 'experiment':
      return text(GUTTER + 10, 0, `experiment ${r.name}: ${r.summary}`, '#000', 'normal', 'bold');
    case 'listening':
      return marker(LOOP, `listening on ${r.host}:${r.port}`, COLOURS.loop);
    case 'batch':
      return arrow(LOOP, POLLER, `wait(${r.timeout < 0 ? '∞' : `${r.timeout} ms`}) → ${r.count} event${r.count === 1 ? '' : 's'}`, '#444');
    case 'event':
      return arrow(KERNEL, LOOP, `${r.token} ${r.flags} [${r.kernel}]`, COLOURS.kernel) + dot(POLLER, COLOURS.kernel);
    case 'registration':
      return arrow(LOOP, POLLER, `${r.op} fd ${r.fd}${r.interest ? ` ${r.interest}` : ''} → ${r.result}`, '#444');
    case 'call':
      return drawCall(r);
    case 'connection':
      return marker(LOOP, `${r.op === 'open' ? 'connection' : 'removed'} ${r.token}${r.detail ? ` (${r.detail})` : ''}`, COLOURS.loop);
    case 'stale':
      return marker(LOOP, `stale ${r.token}: ignored`, COLOURS.eagain);
    case 'budget':
      return marker(LOOP, r.op === 'spent' ? `${r.token}: read budget spent` : `${r.token}: read on, no event`, COLOURS.eagain);
    case 'note':
      return text(GUTTER + 10, 0, `# ${r.text}`, COLOURS.note, 'italic');
    case 'check':
      return text(GUTTER + 10, 0, `${r.ok ? '✔' : '✘'} ${r.claim}`, r.ok ? COLOURS.loop : COLOURS.fail, 'normal', 'bold');
    case 'result':
      return text(GUTTER + 10, 0, `${verdict(r)} ${r.name}: ${r.checks - r.failed}/${r.checks} checks${r.skipped !== null ? `; skipped: ${r.skipped}` : ''}`,
        r.ok ? COLOURS.loop : COLOURS.fail, 'normal', 'bold');
  }
}

function drawCall(r: Extract<TraceRecord, { type: 'call' }>): string {
  // Calls with no token are the other end of the connection (the lab's client side), except
  // the loop's own bookkeeping.
  const actor: Lane = r.token !== null || r.call === 'dup' || r.call === 'accept' ? LOOP : PEER;
  const colour = r.errno === 'EAGAIN' ? COLOURS.eagain : r.result < 0 ? COLOURS.fail : actor === PEER ? COLOURS.peer : COLOURS.loop;
  const label = `${r.call} fd ${r.fd} → ${r.outcome}`;
  // Data flows out of the kernel's buffers on read and accept, into them otherwise.
  return r.call === 'read' || r.call === 'accept' ? arrow(KERNEL, actor, label, colour) : arrow(actor, KERNEL, label, colour);
}

function arrow(from: Lane, to: Lane, label: string, colour: string): string {
  const x1 = LANE_X[from]!;
  const x2 = LANE_X[to]!;
  const left = Math.min(x1, x2);
  // The label sits on the arrow, starting at its left end, clipped to the row.
  return `<line x1="${x1}" y1="3" x2="${x2}" y2="3" stroke="${colour}" marker-end="url(#a)"/>` +
    text(left + 6, 0, label, colour, 'normal', 'normal', Math.floor((WIDTH - left - 10) / 6.6));
}

function dot(lane: Lane, colour: string): string {
  return `<circle cx="${LANE_X[lane]}" cy="3" r="3" fill="${colour}"/>`;
}

function marker(lane: Lane, label: string, colour: string): string {
  const x = LANE_X[lane]!;
  return `<rect x="${x - 4}" y="-1" width="8" height="8" fill="${colour}"/>` + text(x + 8, 0, label, colour, 'normal', 'normal', Math.floor((WIDTH - x - 10) / 6.6));
}

function text(x: number, y: number, content: string, colour: string, style = 'normal', weight = 'normal', chars = TEXT_CHARS): string {
  const clipped = content.length > chars ? content.slice(0, chars - 1) + '…' : content;
  const attrs = `${style !== 'normal' ? ` font-style="${style}"` : ''}${weight !== 'normal' ? ` font-weight="${weight}"` : ''}`;
  return `<text x="${x}" y="${y}" fill="${colour}"${attrs}>${escape(clipped)}</text>`;
}

function escape(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Parses a JSON-lines timeline (`--trace=json`, `mob lab --json`); lines that are not records
 *  are counted, not fatal, so a log with a stray line still draws. */
export function parseTimeline(input: string): { records: TraceRecord[]; skipped: number } {
  const records: TraceRecord[] = [];
  let skipped = 0;
  for (const line of input.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const value = JSON.parse(line) as Partial<TraceRecord>;
      if (typeof value === 'object' && value !== null && typeof value.type === 'string' && typeof value.t === 'number') records.push(value as TraceRecord);
      else if (typeof value === 'object' && value !== null && value.type === 'listening') continue;
      else skipped++;
    } catch {
      skipped++;
    }
  }
  return { records, skipped };
}
