import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type Condition, findStatusCondition, formatConditionTime, isStatusConditionTrue, removeStatusCondition, setStatusCondition,
} from './conditions.ts';

const T0 = Date.parse('2026-03-01T10:00:00.250Z');
const T1 = T0 + 90_000;
const at = (ms: number) => ({ now: () => ms });

const ready = (status: Condition['status'], reason: string, extra: Partial<Condition> = {}): Condition => ({
  type: 'Ready', status, lastTransitionTime: formatConditionTime(T0), reason, message: '', ...extra,
});

describe('setStatusCondition (meta.SetStatusCondition semantics)', () => {
  it('adds a new condition with lastTransitionTime now, in whole seconds', () => {
    const { conditions, changed } = setStatusCondition(undefined, { type: 'Ready', status: 'True', reason: 'AgentsReachable', observedGeneration: 3 }, at(T0));
    assert.equal(changed, true);
    assert.deepEqual(conditions, [{ type: 'Ready', status: 'True', observedGeneration: 3, lastTransitionTime: '2026-03-01T10:00:00Z', reason: 'AgentsReachable', message: '' }]);
  });

  it('keeps lastTransitionTime when only reason and message change', () => {
    const before = [ready('False', 'NoPods')];
    const { conditions, changed } = setStatusCondition(before, { type: 'Ready', status: 'False', reason: 'WebhookUnavailable', message: 'no endpoint' }, at(T1));
    assert.equal(changed, true);
    assert.equal(conditions[0]!.lastTransitionTime, before[0]!.lastTransitionTime);
    assert.equal(conditions[0]!.reason, 'WebhookUnavailable');
    assert.equal(conditions[0]!.message, 'no endpoint');
  });

  it('moves lastTransitionTime when the status flips', () => {
    const { conditions } = setStatusCondition([ready('False', 'NoPods')], { type: 'Ready', status: 'True', reason: 'AgentsReachable' }, at(T1));
    assert.equal(conditions[0]!.lastTransitionTime, formatConditionTime(T1));
    assert.equal(conditions[0]!.status, 'True');
  });

  it('reports no change for the same condition, and an observedGeneration change as a change', () => {
    const before = [ready('True', 'AgentsReachable', { observedGeneration: 1 })];
    assert.equal(setStatusCondition(before, { type: 'Ready', status: 'True', reason: 'AgentsReachable', observedGeneration: 1 }, at(T1)).changed, false);
    const next = setStatusCondition(before, { type: 'Ready', status: 'True', reason: 'AgentsReachable', observedGeneration: 2 }, at(T1));
    assert.equal(next.changed, true);
    assert.equal(next.conditions[0]!.lastTransitionTime, before[0]!.lastTransitionTime);
  });

  it('leaves the other conditions and the input alone', () => {
    const degraded: Condition = { type: 'Degraded', status: 'False', lastTransitionTime: formatConditionTime(T0), reason: 'AsExpected', message: '' };
    const before = [ready('False', 'NoPods'), degraded];
    const frozen = structuredClone(before);
    const { conditions } = setStatusCondition(before, { type: 'Ready', status: 'True', reason: 'AgentsReachable' }, at(T1));
    assert.deepEqual(before, frozen);
    assert.equal(conditions[1], degraded);
  });

  for (const [field, update] of [
    ['reason', { type: 'Ready', status: 'True', reason: 'agents reachable' }],
    ['reason', { type: 'Ready', status: 'True', reason: 'agents_reachable' }],
    ['reason', { type: 'Ready', status: 'True', reason: '' }],
    ['type', { type: 'ready', status: 'True', reason: 'Fine' }],
  ] as const) {
    it(`refuses a ${field} that is not CamelCase: ${JSON.stringify(update[field])}`, () => {
      assert.throws(() => setStatusCondition([], update, at(T0)), /CamelCase/);
    });
  }
});

describe('condition lookups', () => {
  it('finds, tests and removes by type', () => {
    const conditions = [ready('True', 'AgentsReachable')];
    assert.equal(findStatusCondition(conditions, 'Ready')?.reason, 'AgentsReachable');
    assert.equal(isStatusConditionTrue(conditions, 'Ready'), true);
    assert.equal(isStatusConditionTrue(conditions, 'Degraded'), false);
    assert.deepEqual(removeStatusCondition(conditions, 'Ready'), { conditions: [], changed: true });
    assert.equal(removeStatusCondition(conditions, 'Degraded').changed, false);
  });
});
