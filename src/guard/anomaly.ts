/**
 * The anomaly detector's arithmetic: an exponentially weighted moving average and variance of a
 * group's per-pod rates, decayed by time (a half-life, not a sample count, so irregular sampling
 * does not skew it), and the z-score of one pod's rate against it.
 *
 * Kept as time-decayed sums — weight W, weighted sum S1, weighted sum of squares S2, each multiplied
 * by 2^(-Δt / halfLife) before a sample of weight 1 is added — so several samples taken at the same
 * instant (one per pod of the group) all count, which an α-per-sample EWMA would get wrong (Δt = 0).
 * Pure: the caller passes the time.
 */

export interface Baseline {
  readonly mean: number;
  readonly stdDev: number;
  readonly samples: number;
}

export class DecayingStats {
  private readonly halfLifeMs: number;
  private weight = 0;
  private sum = 0;
  private sumOfSquares = 0;
  private lastMs: number | undefined;
  private count = 0;

  /** `halfLifeMs`: after this long, a sample weighs half as much as a new one. */
  constructor(halfLifeMs: number) {
    if (!(halfLifeMs > 0)) throw new Error(`half-life must be positive, got ${halfLifeMs} ms`);
    this.halfLifeMs = halfLifeMs;
  }

  /** Adds `value` observed at `nowMs` (times must not go back; an earlier time counts as now). */
  add(value: number, nowMs: number): void {
    this.decayTo(nowMs);
    this.weight += 1;
    this.sum += value;
    this.sumOfSquares += value * value;
    this.count++;
  }

  /** The baseline as of `nowMs` (decay does not change mean and deviation, only the weight of what comes next). */
  baseline(): Baseline {
    if (this.weight === 0) return { mean: 0, stdDev: 0, samples: 0 };
    const mean = this.sum / this.weight;
    const variance = Math.max(0, this.sumOfSquares / this.weight - mean * mean);
    return { mean, stdDev: Math.sqrt(variance), samples: this.count };
  }

  private decayTo(nowMs: number): void {
    if (this.lastMs !== undefined && nowMs > this.lastMs) {
      const factor = 2 ** (-(nowMs - this.lastMs) / this.halfLifeMs);
      this.weight *= factor;
      this.sum *= factor;
      this.sumOfSquares *= factor;
    }
    if (this.lastMs === undefined || nowMs > this.lastMs) this.lastMs = nowMs;
  }
}

/**
 * How many standard deviations `value` lies above the baseline's mean. The deviation is floored at
 * `minStdDev` so a group that was perfectly quiet (deviation 0) does not turn one event into an
 * infinite score.
 */
export function zScore(value: number, baseline: Baseline, minStdDev: number): number {
  return (value - baseline.mean) / Math.max(baseline.stdDev, minStdDev);
}

export interface AnomalyVerdict {
  readonly anomalous: boolean;
  readonly score: number;
  readonly baseline: Baseline;
}

/**
 * Judges `value` against `stats` before it is added: anomalous when the baseline has at least
 * `minSamples` samples and the z-score reaches `threshold`.
 */
export function judge(stats: DecayingStats, value: number, options: { readonly threshold: number; readonly minSamples: number; readonly minStdDev: number }): AnomalyVerdict {
  const baseline = stats.baseline();
  const score = zScore(value, baseline, options.minStdDev);
  return { anomalous: baseline.samples >= options.minSamples && score >= options.threshold, score, baseline };
}
