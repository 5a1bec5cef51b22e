// `mob lab`: the edge-triggering experiments. Each runs on real loopback sockets against the
// poller this build uses, prints its timeline, and exits 1 if the kernel did not do what it
// claims, so a claim in the guide is only as good as its last run.
import { parse, UsageError } from './args.js';

export const LAB_USAGE = `mob lab --list | mob lab NAME... | mob lab --all   [--json]`;

export async function lab(argv: string[]): Promise<void> {
  const { values, positionals } = parse('lab', argv, {
    list: { type: 'boolean', default: false },
    all: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  });
  const { experiments, findExperiment, runExperiment } = await import('../lab/index.js');
  if (values.list) {
    const width = Math.max(...experiments.map((e) => e.name.length));
    for (const experiment of experiments) process.stdout.write(`${experiment.name.padEnd(width)}  ${experiment.summary}\n`);
    return;
  }
  const chosen = values.all ? [...experiments] : positionals.map((name) => {
    const found = findExperiment(name);
    if (found === undefined) throw new UsageError(`mob lab: no experiment '${name}'; mob lab --list names them`);
    return found;
  });
  if (chosen.length === 0) throw new UsageError(`usage: ${LAB_USAGE}`);
  let failed = 0;
  for (const experiment of chosen) {
    const result = await runExperiment(experiment, (line) => process.stdout.write(line + '\n'), values.json ? 'json' : 'text');
    if (!result.ok) failed++;
    const verdict = result.ok ? 'PASS' : 'FAIL';
    if (!values.json) process.stdout.write(`${verdict} ${result.name} (${result.backend}): ${result.checks - result.failures.length}/${result.checks} checks\n\n`);
    for (const failure of result.failures) process.stderr.write(`mob lab ${result.name}: ${failure}\n`);
  }
  if (failed > 0) process.exitCode = 1;
}
