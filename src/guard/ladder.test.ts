import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { budgetRail, cooldownRail, ladderSteps, quarantineLimit, quarantineRail } from './ladder.ts';

describe('ladderSteps', () => {
  it('orders the listed actions as the ladder does, whatever the order given', () => {
    assert.deepEqual(ladderSteps(['Isolate', 'Event', 'Quarantine']), ['Event', 'Quarantine', 'Isolate']);
    assert.deepEqual(ladderSteps(['Evict', 'Preventive']), ['Preventive', 'Evict']);
  });
  it('is Event alone by default', () => {
    assert.deepEqual(ladderSteps(undefined), ['Event']);
  });
});

describe('quarantineLimit', () => {
  it('takes a count as it is', () => {
    assert.equal(quarantineLimit(1, 3), 1);
    assert.equal(quarantineLimit(0, 3), 0);
  });
  it('rounds a percentage of the group down', () => {
    assert.equal(quarantineLimit('34%', 3), 1);
    assert.equal(quarantineLimit('33%', 3), 0);
    assert.equal(quarantineLimit('100%', 3), 3);
  });
  it('defaults to one pod', () => {
    assert.equal(quarantineLimit(undefined, 10), 1);
  });
});

describe('rails', () => {
  const situation = { group: 'ReplicaSet/web-1', size: 3, quarantined: 0, budgets: [] };

  it('lets the first quarantine of a 3-pod group with max 1 through, and holds the second', () => {
    assert.equal(quarantineRail(situation, 1), undefined);
    assert.match(quarantineRail({ ...situation, quarantined: 1 }, 1) ?? '', /maxQuarantined: 1 of 3 pods .* at most 1/);
  });

  it('holds a quarantine a PodDisruptionBudget does not allow', () => {
    assert.match(quarantineRail({ ...situation, budgets: [{ name: 'web', disruptionsAllowed: 0 }] }, 1) ?? '', /PodDisruptionBudget web allows no disruption/);
    assert.equal(budgetRail({ ...situation, budgets: [{ name: 'web', disruptionsAllowed: 1 }] }), undefined);
  });

  it('holds disruption within the cooldown and not after it', () => {
    const recent = { ...situation, lastDisruptionMs: 100_000 };
    assert.match(cooldownRail(recent, 300_000, 160_000) ?? '', /cooldown: .* last disrupted 1m ago; cooldown 5m/);
    assert.equal(cooldownRail(recent, 300_000, 400_000), undefined);
    assert.equal(cooldownRail(recent, 0, 100_001), undefined);
  });
});
