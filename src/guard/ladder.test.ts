import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { budgetRail, cooldownRail, heldRetryDelayMs, ladderSteps, quarantineLimit, quarantineRail, rolloutInProgress } from './ladder.ts';
import type { GuardPod } from './pods.ts';

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

describe('heldRetryDelayMs', () => {
  it('doubles from 5 s and stops at a minute', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6, 50].map(heldRetryDelayMs), [5_000, 10_000, 20_000, 40_000, 60_000, 60_000, 60_000]);
  });
});

describe('rolloutInProgress', () => {
  const pod = (name: string, owner: { kind: string; name: string } | undefined, labels: Record<string, string>, terminating = false): GuardPod => ({
    metadata: {
      name, namespace: 'shop', uid: `uid-${name}`, labels,
      ...(owner ? { ownerReferences: [{ apiVersion: 'apps/v1', kind: owner.kind, name: owner.name, uid: `uid-${owner.name}`, controller: true }] } : {}),
      ...(terminating ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}),
    },
    spec: { ports: [] }, status: { containers: [] },
  });
  const rs = (hash: string) => ({ kind: 'ReplicaSet', name: `web-${hash}` });
  it('names a Deployment whose pods carry two template hashes', () => {
    const group = [pod('a', rs('h1'), { 'pod-template-hash': 'h1' }), pod('b', rs('h1'), { 'pod-template-hash': 'h1' }), pod('c', rs('h2'), { 'pod-template-hash': 'h2' })];
    assert.equal(rolloutInProgress(group), 'Deployment web is being rolled out by someone else (its pods carry 2 revisions: h1: 2, h2: 1): the rollout restarts them already; guard restarts none until it is done');
  });
  it('names a StatefulSet whose pods carry two controller revisions', () => {
    const set = { kind: 'StatefulSet', name: 'db' };
    assert.match(rolloutInProgress([pod('db-0', set, { 'controller-revision-hash': 'db-1' }), pod('db-1', set, { 'controller-revision-hash': 'db-2' })]) ?? '', /^StatefulSet db is being rolled out/);
  });
  it('names pods being deleted', () => {
    assert.equal(rolloutInProgress([pod('a', rs('h1'), { 'pod-template-hash': 'h1' }), pod('b', rs('h2'), { 'pod-template-hash': 'h2' }, true)]),
      'pods of the group are being deleted (b): guard restarts none until they are gone');
  });
  it('is quiet for one revision per workload, and for pods of different workloads or none', () => {
    assert.equal(rolloutInProgress([pod('a', rs('h1'), { 'pod-template-hash': 'h1' }), pod('b', rs('h1'), { 'pod-template-hash': 'h1' })]), undefined);
    assert.equal(rolloutInProgress([pod('a', { kind: 'ReplicaSet', name: 'api-h1' }, { 'pod-template-hash': 'h1' }), pod('b', rs('h2'), { 'pod-template-hash': 'h2' })]), undefined);
    assert.equal(rolloutInProgress([pod('a', undefined, {}), pod('b', { kind: 'ReplicaSet', name: 'solo' }, { 'pod-template-hash': 'x' })]), undefined);
  });
});
