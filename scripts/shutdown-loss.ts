// Before/after figures for issue #9's shutdown: how many of N clients that are behind and still
// sending miss the end of their stream when the server gets SIGTERM.
//
//   node --import tsx scripts/shutdown-loss.ts [--clients 100] [--engine native|uv] [--cli other/dist/cli/main.js]
import { parseArgs } from 'node:util';
import { runShutdownScenario } from './lib/shutdown-scenario.ts';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '100' },
    engine: { type: 'string', default: 'native' },
    cli: { type: 'string' },
    frames: { type: 'string', default: '64' },
  },
});
const outcome = await runShutdownScenario({
  args: ['--engine', values.engine!],
  clients: Number(values.clients),
  frames: Number(values.frames),
  frameBytes: 64 * 1024,
  shutdownTimeoutMs: 10_000,
  cli: values.cli,
});
const lost = outcome.received.reduce((sum, n) => sum + (Number(values.frames) - n), 0);
console.log(
  `${values.engine}: ${outcome.missed} of ${values.clients} clients missed the end (${outcome.reset} reset), ` +
    `${lost} frames of 64 KiB lost; exit ${outcome.exitCode} after ${outcome.elapsedMs} ms`,
);
