import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock } from '../kube/clock.ts';
import { storedProber } from './fixtures.ts';
import { desiredStatus } from './status.ts';

const prober = storedProber('mesh', 'shop', { podSelector: {} }, 3);
const clock = new FakeClock(Date.parse('2026-03-01T00:00:00Z'));
const none = { reachable: 0, unreachable: 0, unknown: 0, reportingMembers: 0, examples: [] };

const condition = (status: ReturnType<typeof desiredStatus>, type: string) => status.conditions?.find((c) => c.type === type);

describe('desiredStatus', () => {
  it('says how to get agents when no selected pod runs one', () => {
    const status = desiredStatus(prober, 0, none, clock);
    assert.deepEqual({ ...status, conditions: undefined }, { observedGeneration: 3, conditions: undefined, injectedPods: 0, reachablePairs: 0, unreachablePairs: 0 });
    const ready = condition(status, 'Ready')!;
    assert.deepEqual([ready.status, ready.reason, ready.observedGeneration], ['False', 'NoAgents', 3]);
    assert.match(ready.message, /injected when a pod is created: restart the selected workloads/);
    assert.deepEqual([condition(status, 'Degraded')!.status, condition(status, 'Degraded')!.reason], ['False', 'AllPairsReachable']);
  });

  it('is Ready when every agent reports, and counts pairs', () => {
    const status = desiredStatus(prober, 4, { reachable: 12, unreachable: 0, unknown: 0, reportingMembers: 4, examples: [] }, clock);
    assert.deepEqual([condition(status, 'Ready')!.status, condition(status, 'Ready')!.reason, condition(status, 'Ready')!.message], ['True', 'AgentsProbing', '4 pods run the agent and report.']);
    assert.equal(condition(status, 'Degraded')!.message, 'All 12 probed pairs reach each other.');
    assert.equal(status.reachablePairs, 12);
  });

  it('is not Ready while agents have not reported, and Degraded naming failing pairs', () => {
    const status = desiredStatus(prober, 4, { reachable: 6, unreachable: 7, unknown: 0, reportingMembers: 3, examples: ['a → b (timeout)', 'c → b (refused)'] }, clock);
    assert.deepEqual([condition(status, 'Ready')!.status, condition(status, 'Ready')!.reason], ['False', 'AgentsNotReporting']);
    assert.match(condition(status, 'Ready')!.message, /^1 of 4 agents have not reported/);
    const degraded = condition(status, 'Degraded')!;
    assert.deepEqual([degraded.status, degraded.reason, degraded.message], ['True', 'PairsUnreachable', '7 of 13 probed pairs fail: a → b (timeout), c → b (refused), and 5 more.']);
    assert.equal(status.unreachablePairs, 7);
  });

  it('keeps a condition\'s transition time while its status holds, and moves it when it flips', () => {
    const first = desiredStatus(prober, 2, { ...none, reachable: 2, reportingMembers: 2 }, clock);
    clock.advance(60_000);
    const same = desiredStatus({ ...prober, status: first }, 2, { ...none, reachable: 2, reportingMembers: 2 }, clock);
    assert.equal(condition(same, 'Ready')!.lastTransitionTime, condition(first, 'Ready')!.lastTransitionTime);
    clock.advance(60_000);
    const flipped = desiredStatus({ ...prober, status: same }, 2, { ...none, reachable: 1, unreachable: 1, reportingMembers: 2, examples: ['a → b'] }, clock);
    assert.equal(condition(flipped, 'Degraded')!.lastTransitionTime, '2026-03-01T00:02:00Z');
    assert.equal(condition(flipped, 'Ready')!.lastTransitionTime, condition(first, 'Ready')!.lastTransitionTime);
  });
});
