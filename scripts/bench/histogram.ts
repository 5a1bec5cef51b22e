// Latency histogram of the benchmark: 1 µs buckets to 50 ms, then 1 ms buckets to 60 s. The
// load generator processes send their non-empty buckets; the driver merges them, so percentiles
// are those of every frame received by every process.
const FINE = 50_000;
const COARSE = 60_000;

/** Non-empty buckets as [index, count] pairs, plus the exact maximum. */
export interface HistogramBuckets {
  fine: [number, number][];
  coarse: [number, number][];
  count: number;
  max: number;
}

export class Histogram {
  readonly fine = new Float64Array(FINE);
  readonly coarse = new Float64Array(COARSE);
  count = 0;
  max = 0;

  record(ms: number): void {
    const us = (ms * 1000) | 0;
    if (us < FINE) this.fine[us < 0 ? 0 : us]++;
    else this.coarse[Math.min(COARSE - 1, ms | 0)]++;
    if (ms > this.max) this.max = ms;
    this.count++;
  }

  percentile(p: number): number {
    if (this.count === 0) return NaN;
    const rank = Math.ceil((p / 100) * this.count);
    let seen = 0;
    for (let i = 0; i < FINE; i++) {
      seen += this.fine[i]!;
      if (seen >= rank) return (i + 0.5) / 1000;
    }
    for (let i = 0; i < COARSE; i++) {
      seen += this.coarse[i]!;
      if (seen >= rank) return i + 0.5;
    }
    return this.max;
  }

  toBuckets(): HistogramBuckets {
    const pairs = (a: Float64Array) => {
      const out: [number, number][] = [];
      for (let i = 0; i < a.length; i++) if (a[i] !== 0) out.push([i, a[i]!]);
      return out;
    };
    return { fine: pairs(this.fine), coarse: pairs(this.coarse), count: this.count, max: this.max };
  }

  add(b: HistogramBuckets): void {
    for (const [i, n] of b.fine) this.fine[i]! += n;
    for (const [i, n] of b.coarse) this.coarse[i]! += n;
    this.count += b.count;
    if (b.max > this.max) this.max = b.max;
  }
}

/** Milliseconds on CLOCK_MONOTONIC, common to every process of the machine (process.hrtime). */
export function sharedNow(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** performance.now() + this offset = sharedNow(), without a BigInt per call. */
export function sharedClockOffset(): number {
  let best = Infinity;
  let offset = 0;
  for (let i = 0; i < 9; i++) {
    const a = performance.now();
    const h = sharedNow();
    const b = performance.now();
    if (b - a < best) {
      best = b - a;
      offset = h - (a + b) / 2;
    }
  }
  return offset;
}
