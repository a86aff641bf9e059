import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Incident } from './api.ts';
import { addTaintPatch, decideTaint, GUARD_TAINT_KEY, isSchedulable, type NodeLike, type NodeTaint, removeTaintPatch, taintValue } from './taint.ts';

const NOW = Date.parse('2026-01-01T01:00:00Z');
const VALUE = 'shop.web';
const settings = { incidents: 2, windowMs: 10 * 60_000 };

function incident(id: string, node: string, minutesAgo: number, group = 'ReplicaSet/web-h1'): Incident {
  return { id, pod: `pod-${id}`, node, group, detector: 'crashLoop', reason: 'CrashLoop', evidence: [], openedAt: new Date(NOW - minutesAgo * 60_000).toISOString(), actions: [] };
}

function node(name: string, options: { ready?: boolean; unschedulable?: boolean; taints?: NodeTaint[] } = {}): NodeLike {
  return {
    metadata: { name, uid: `uid-${name}`, resourceVersion: '42' },
    spec: { ...(options.unschedulable ? { unschedulable: true } : {}), ...(options.taints ? { taints: options.taints } : {}) },
    status: { conditions: [{ type: 'Ready', status: options.ready === false ? 'False' : 'True' }] },
  };
}

const kwok = node('kwok-0', { taints: [{ key: 'kwok.x-k8s.io/node', value: 'fake', effect: 'NoSchedule' }] });
const nodes = [node('node-a'), node('node-b'), kwok];

describe('decideTaint', () => {
  it('taints the node where most of the group\'s recent incidents are, at the threshold', () => {
    const incidents = [incident('2', 'node-a', 1), incident('1', 'node-a', 5), incident('0', 'node-b', 6)];
    const decision = decideTaint(incidents[0]!, incidents, nodes, VALUE, settings, NOW);
    assert.equal(decision.taint, true);
    assert.match(decision.message, /^2 of 3 incidents of group ReplicaSet\/web-h1 within 10m on node node-a; 1 other schedulable node remains$/);
  });

  it('holds below the threshold, when failures spread evenly, and for incidents outside the window or of another group', () => {
    const one = [incident('1', 'node-a', 1)];
    assert.match(decideTaint(one[0]!, one, nodes, VALUE, settings, NOW).message, /1 incident of group .* on node node-a within 10m \(taintNode.incidents 2\)/);
    const even = [incident('4', 'node-a', 1), incident('3', 'node-a', 2), incident('2', 'node-b', 3), incident('1', 'node-b', 4)];
    assert.match(decideTaint(even[0]!, even, nodes, VALUE, settings, NOW).message, /do not concentrate on node node-a \(2 of 4 incidents/);
    const old = [incident('2', 'node-a', 1), incident('1', 'node-a', 11)];
    assert.equal(decideTaint(old[0]!, old, nodes, VALUE, settings, NOW).taint, false);
    const other = [incident('2', 'node-a', 1), incident('1', 'node-a', 2, 'ReplicaSet/api-h2')];
    assert.equal(decideTaint(other[0]!, other, nodes, VALUE, settings, NOW).taint, false);
  });

  it('taints one node per policy at a time', () => {
    const incidents = [incident('2', 'node-b', 1), incident('1', 'node-b', 2)];
    const tainted = [node('node-a', { taints: [{ key: GUARD_TAINT_KEY, value: VALUE, effect: 'NoSchedule' }] }), node('node-b'), node('node-c')];
    assert.match(decideTaint(incidents[0]!, incidents, tainted, VALUE, settings, NOW).message, /node node-a carries this policy's taint already/);
    // Another policy's taint on node-a is not ours: it takes node-a out as a refuge, not the rail.
    const others = [node('node-a', { taints: [{ key: GUARD_TAINT_KEY, value: 'shop.api', effect: 'NoSchedule' }] }), node('node-b'), node('node-c')];
    assert.equal(decideTaint(incidents[0]!, incidents, others, VALUE, settings, NOW).taint, true);
  });

  it('never takes the last schedulable Ready node: another untainted, uncordoned, Ready node must remain', () => {
    const incidents = [incident('2', 'node-a', 1), incident('1', 'node-a', 2)];
    const last = /node node-a is not tainted: no other schedulable Ready node would remain/;
    assert.match(decideTaint(incidents[0]!, incidents, [node('node-a'), kwok], VALUE, settings, NOW).message, last);
    assert.match(decideTaint(incidents[0]!, incidents, [node('node-a'), node('node-b', { ready: false })], VALUE, settings, NOW).message, last);
    assert.match(decideTaint(incidents[0]!, incidents, [node('node-a'), node('node-b', { unschedulable: true })], VALUE, settings, NOW).message, last);
    assert.match(decideTaint(incidents[0]!, incidents, [node('node-a'), node('node-b', { taints: [{ key: 'x', effect: 'NoExecute' }] })], VALUE, settings, NOW).message, last);
    assert.equal(decideTaint(incidents[0]!, incidents, [node('node-a'), node('node-b', { taints: [{ key: 'x', effect: 'PreferNoSchedule' }] })], VALUE, settings, NOW).taint, true);
    assert.match(decideTaint(incidents[0]!, incidents, [node('node-b'), node('node-c')], VALUE, settings, NOW).message, /node node-a is gone/);
  });

  it('reads a node as schedulable only when Ready, uncordoned and without NoSchedule or NoExecute taints', () => {
    assert.deepEqual([node('a'), node('b', { ready: false }), kwok].map(isSchedulable), [true, false, false]);
  });
});

describe('taint patches', () => {
  const foreign: NodeTaint = { key: 'dedicated', value: 'db', effect: 'NoSchedule' };
  const sameKeyOtherPolicy: NodeTaint = { key: GUARD_TAINT_KEY, value: 'shop.api', effect: 'NoSchedule' };
  const ours: NodeTaint = { key: GUARD_TAINT_KEY, value: VALUE, effect: 'NoSchedule' };

  it('adds our taint after the others, tested against the resourceVersion; nothing when it is there', () => {
    assert.deepEqual(addTaintPatch(node('a', { taints: [foreign] }), VALUE), [
      { op: 'test', path: '/metadata/resourceVersion', value: '42' },
      { op: 'add', path: '/spec/taints', value: [foreign, ours] },
    ]);
    assert.deepEqual(addTaintPatch(node('a'), VALUE)?.[1], { op: 'add', path: '/spec/taints', value: [ours] });
    assert.equal(addTaintPatch(node('a', { taints: [ours] }), VALUE), undefined);
  });

  it('removes only our taint: other keys and other policies\' values stay', () => {
    assert.deepEqual(removeTaintPatch(node('a', { taints: [foreign, ours, sameKeyOtherPolicy] }), VALUE), [
      { op: 'test', path: '/metadata/resourceVersion', value: '42' },
      { op: 'add', path: '/spec/taints', value: [foreign, sameKeyOtherPolicy] },
    ]);
    assert.equal(removeTaintPatch(node('a', { taints: [foreign, sameKeyOtherPolicy] }), VALUE), undefined);
  });

  it('names the policy in the value, shortened with a hash to a label value\'s 63 characters', () => {
    assert.equal(taintValue('shop', 'web'), 'shop.web');
    const long = taintValue('a'.repeat(40), 'b'.repeat(40));
    assert.ok(long.length <= 63 && /^[a-z0-9.]+$/.test(long) && long !== taintValue('a'.repeat(40), 'b'.repeat(41)));
  });
});
