/** The p-th percentile (0..100) of `values`, nearest-rank; NaN for none. Sorts in place. */
export function percentile(values: Float64Array | number[], p: number): number {
  if (values.length === 0) return NaN;
  values.sort((a, b) => a - b);
  const rank = Math.min(values.length - 1, Math.max(0, Math.ceil((p / 100) * values.length) - 1));
  return values[rank]!;
}
