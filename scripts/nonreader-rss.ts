// What one client that never reads costs the server: `mob serve` as a child, a sender that
// reads its own echo, and a non-reader, until the server cuts the non-reader off at
// --max-output. Prints the server's RSS (from /proc) before, at its peak and after, over the
// baseline and as a multiple of --max-output (#9 item 5: the uv engine held twice its limit).
//
//   node --import tsx scripts/nonreader-rss.ts [--engine native|uv] [--max-output 64MiB]
//        [--frame 65536] [--warm-up 8MiB] [--warm-up-rounds N] [--json]
import { parseArgs } from 'node:util';
import { measureNonReader } from './lib/nonreader.ts';
import { parseBytes } from '../src/cli/args.ts';

const { values } = parseArgs({
  options: {
    engine: { type: 'string', default: 'uv' },
    'max-output': { type: 'string', default: '64MiB' },
    frame: { type: 'string', default: '65536' },
    'warm-up': { type: 'string', default: '8MiB' },
    'warm-up-rounds': { type: 'string', default: '0' },
    json: { type: 'boolean', default: false },
  },
});
const maxOutput = parseBytes('max-output', values['max-output']!);
const result = await measureNonReader({ engine: values.engine!, maxOutput, frameBytes: parseBytes('frame', values.frame!), warmUpBytes: parseBytes('warm-up', values['warm-up']!), warmUpRounds: Number(values['warm-up-rounds']) });
const MiB = 1024 * 1024;
const fmt = (kib: number) => `${(kib / 1024).toFixed(1)} MiB`;
if (values.json) {
  process.stdout.write(JSON.stringify(result) + '\n');
} else {
  process.stdout.write(
    `${values.engine} --max-output ${(maxOutput / MiB).toFixed(1)} MiB, frames of ${values.frame} B: ` +
    `cold ${fmt(result.coldKiB)}, baseline after ${values['warm-up']} of warm-up ${fmt(result.baselineKiB)}, peak +${fmt(result.peakKiB - result.baselineKiB)} ` +
    `(${((result.peakKiB - result.baselineKiB) * 1024 / maxOutput).toFixed(2)}x --max-output), ` +
    `after it left +${fmt(result.afterKiB - result.baselineKiB)} (1 s), +${fmt(result.settledKiB - result.baselineKiB)} (lowest in the 7 s after); ` +
    `a second one: peak +${fmt(result.secondPeakKiB - result.baselineKiB)}; ` +
    `${(result.sentBytes / MiB).toFixed(0)} MiB sent\n`,
  );
}
