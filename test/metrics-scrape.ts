// Reading --metrics from a running `mob serve` in tests: scrape, parse, sum over labels.
import assert from 'node:assert/strict';
import type { CliServer } from './helpers.ts';

/** name{labels} → value, for every sample line. */
export type Samples = Map<string, number>;

export function parseMetrics(text: string): Samples {
  const samples: Samples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

export function metricsUrl(server: CliServer): string {
  const match = /metrics on (http:\/\/\S+)\/metrics/.exec(server.stdout());
  assert.ok(match, `no "metrics on" line in: ${server.stdout()}`);
  return match[1]!;
}

export async function scrape(server: CliServer): Promise<Samples> {
  const response = await fetch(`${metricsUrl(server)}/metrics`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return parseMetrics(await response.text());
}

/** Scrapes until `done` holds (bounded). */
export async function scrapeUntil(server: CliServer, done: (samples: Samples) => boolean, what: string, timeoutMs = 10_000): Promise<Samples> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const samples = await scrape(server);
    if (done(samples)) return samples;
    if (Date.now() > deadline) throw new Error(`metrics never showed ${what}: ${JSON.stringify([...samples])}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Sum of a metric over its samples whose labels include `labels` (e.g. 'reason="end"'). */
export function sum(samples: Samples, name: string, labels = ''): number {
  let total = 0;
  for (const [key, value] of samples) {
    const bare = key.split('{')[0];
    if (bare === name && key.includes(labels)) total += value;
  }
  return total;
}

