import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DecayingStats, judge, zScore } from './anomaly.ts';

const MINUTE = 60_000;

describe('DecayingStats', () => {
  it('is the plain mean and deviation of samples taken at one instant', () => {
    const stats = new DecayingStats(MINUTE);
    for (const v of [2, 4, 4, 4, 5, 5, 7, 9]) stats.add(v, 1_000);
    const b = stats.baseline();
    assert.equal(b.mean, 5);
    assert.equal(b.stdDev, 2);
    assert.equal(b.samples, 8);
  });

  it('weighs a sample one half-life old half as much as a new one', () => {
    const stats = new DecayingStats(MINUTE);
    stats.add(0, 0);
    stats.add(3, MINUTE);
    // weights 0.5 and 1: mean = 3 / 1.5
    assert.equal(stats.baseline().mean, 2);
  });

  it('forgets an old level: after many half-lives the mean follows the new one', () => {
    const stats = new DecayingStats(MINUTE);
    for (let t = 0; t < 10; t++) stats.add(100, t * 1000);
    for (let t = 0; t < 20; t++) stats.add(1, 10 * MINUTE + t * MINUTE);
    assert.ok(Math.abs(stats.baseline().mean - 1) < 0.01, String(stats.baseline().mean));
  });

  it('refuses a half-life that is not positive', () => {
    assert.throws(() => new DecayingStats(0), /half-life must be positive/);
  });
});

describe('judge', () => {
  const options = { threshold: 3, minSamples: 5, minStdDev: 0.5 };

  it('stays silent until the baseline has minSamples samples', () => {
    const stats = new DecayingStats(MINUTE);
    for (let i = 0; i < 4; i++) stats.add(1, i);
    assert.equal(judge(stats, 100, options).anomalous, false);
    stats.add(1, 5);
    assert.equal(judge(stats, 100, options).anomalous, true);
  });

  it('finds a rate far above a noisy group and not one inside its spread', () => {
    const stats = new DecayingStats(10 * MINUTE);
    const rates = [4, 6, 5, 5, 4, 6, 5, 5, 4, 6];
    rates.forEach((r, i) => { stats.add(r, i * 1000); });
    const inside = judge(stats, 6, options);
    assert.equal(inside.anomalous, false);
    const outside = judge(stats, 12, options);
    assert.equal(outside.anomalous, true);
    assert.ok(outside.score > 3);
  });

  it('floors the deviation of a perfectly quiet group', () => {
    assert.equal(zScore(1, { mean: 0, stdDev: 0, samples: 10 }, 0.5), 2);
    assert.equal(zScore(1, { mean: 0, stdDev: 0, samples: 10 }, 0.5) >= 3, false);
  });
});
