// `mob trace-svg < trace.jsonl > trace.svg`: the lane diagram of a JSON timeline, from
// `mob serve --trace=json` or `mob lab --json`.
import { readFileSync, writeFileSync } from 'node:fs';
import { parse, UsageError } from './args.js';
import { endQuietlyOnClosedPipe } from './pipe.js';

export const TRACE_SVG_USAGE = 'mob trace-svg [--out FILE] < trace.jsonl   (from --trace=json or lab --json)';

export async function traceSvg(argv: string[]): Promise<void> {
  const { values, positionals } = parse('trace-svg', argv, { out: { type: 'string' } });
  if (positionals.length > 0) throw new UsageError(`usage: ${TRACE_SVG_USAGE}`);
  endQuietlyOnClosedPipe();
  const { parseTimeline, renderSvg } = await import('../trace/svg.js');
  const { records, skipped } = parseTimeline(readFileSync(0, 'utf8'));
  if (records.length === 0) throw new UsageError('mob trace-svg: no timeline records on stdin (JSON lines from --trace=json or mob lab --json)');
  if (skipped > 0) process.stderr.write(`mob trace-svg: ignored ${skipped} line(s) that are not timeline records\n`);
  const svg = renderSvg(records);
  if (values.out !== undefined) writeFileSync(values.out, svg);
  else process.stdout.write(svg);
}
