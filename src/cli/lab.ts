// `mob lab`: the edge-triggering experiments. Each runs on real loopback sockets against the
// poller this build uses, prints its timeline, and exits 1 if the kernel did not do what it
// claims, so a claim in the guide is only as good as its last run.
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Experiment } from '../lab/index.js';
import { parse, UsageError } from './args.js';
import { endQuietlyOnClosedPipe } from './pipe.js';

export const LAB_USAGE = `mob lab --list | mob lab NAME|./FILE.js... [--svg FILE] | mob lab --all   [--json]`;

export async function lab(argv: string[]): Promise<void> {
  const { values, positionals } = parse('lab', argv, {
    list: { type: 'boolean', default: false },
    all: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    svg: { type: 'string' },
  });
  endQuietlyOnClosedPipe();
  const { experiments, findExperiment, runExperiment } = await import('../lab/index.js');
  if (values.list) {
    const width = Math.max(...experiments.map((e) => e.name.length));
    for (const experiment of experiments) process.stdout.write(`${experiment.name.padEnd(width)}  ${experiment.summary}\n`);
    return;
  }
  const chosen: Experiment[] = values.all ? [...experiments] : [];
  for (const name of values.all ? [] : positionals) {
    const found = isFile(name) ? await loadExperimentFile(name) : findExperiment(name);
    if (found === undefined) throw new UsageError(`mob lab: no experiment '${name}'; mob lab --list names them (a file of your own: ./NAME.js)`);
    chosen.push(found);
  }
  if (chosen.length === 0) throw new UsageError(`usage: ${LAB_USAGE}`);
  if (values.svg !== undefined && chosen.length !== 1) throw new UsageError('mob lab --svg FILE draws one experiment: name exactly one');
  let failed = 0;
  for (const experiment of chosen) {
    const result = await runExperiment(experiment, (line) => process.stdout.write(line + '\n'), values.json ? 'json' : 'text');
    if (!result.ok) failed++;
    if (!values.json) process.stdout.write('\n');
    for (const failure of result.failures) process.stderr.write(`mob lab ${result.name}: ${failure}\n`);
    if (values.svg !== undefined) {
      const { renderSvg } = await import('../trace/svg.js');
      writeFileSync(values.svg, renderSvg(result.records));
    }
  }
  if (failed > 0) process.exitCode = 1;
}

function isFile(name: string): boolean {
  return name.includes('/') || /\.(m?js|ts)$/.test(name);
}

/** A student's experiment: a module whose default (or `experiment`) export is an Experiment. */
async function loadExperimentFile(path: string): Promise<Experiment> {
  let module: { default?: unknown; experiment?: unknown };
  try {
    module = (await import(pathToFileURL(resolve(path)).href)) as typeof module;
  } catch (error) {
    throw new UsageError(`mob lab: cannot load ${path}: ${(error as Error).message.split('\n')[0]}`);
  }
  const candidate = (module.default ?? module.experiment) as Partial<Experiment> | undefined;
  if (candidate === undefined || typeof candidate.name !== 'string' || typeof candidate.summary !== 'string' || typeof candidate.run !== 'function') {
    throw new UsageError(`mob lab: ${path} must export default { name, summary, run(lab) } (see docs/edge-triggered.md, "Your own experiment")`);
  }
  return candidate as Experiment;
}
