/** Statistics the benchmarks share. */

/** The middle value (the upper one of an even count): robust against one slow outlier run. */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}
