import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Incident } from './api.ts';
import type { PodPlacement } from './placement.ts';
import { addTaintPatch, decideTaint, GUARD_TAINT_KEY, guardNode, type NodeLike, type NodeTaint, removeTaintPatch, stampTaintPatch, taintEndMs, taintValue } from './taint.ts';

const NOW = Date.parse('2026-01-01T01:00:00Z');
const VALUE = 'shop.web';
const settings = { incidents: 2, windowMs: 10 * 60_000 };

function incident(id: string, node: string, minutesAgo: number, group = 'ReplicaSet/web-h1'): Incident {
  return { id, pod: `pod-${id}`, node, group, detector: 'crashLoop', reason: 'CrashLoop', evidence: [], openedAt: new Date(NOW - minutesAgo * 60_000).toISOString(), actions: [] };
}

function node(name: string, options: { ready?: boolean; unschedulable?: boolean; taints?: NodeTaint[]; labels?: Record<string, string> } = {}): NodeLike {
  return {
    metadata: { name, uid: `uid-${name}`, resourceVersion: '42', labels: { 'kubernetes.io/hostname': name, ...options.labels } },
    spec: { ...(options.unschedulable ? { unschedulable: true } : {}), ...(options.taints ? { taints: options.taints } : {}) },
    status: { conditions: [{ type: 'Ready', status: options.ready === false ? 'False' : 'True' }] },
  };
}

const kwok = node('kwok-0', { taints: [{ key: 'kwok.x-k8s.io/node', value: 'fake', effect: 'NoSchedule' }] });
const nodes = [node('node-a'), node('node-b'), kwok];

describe('decideTaint', () => {
  it('taints the node where most of the group\'s recent incidents are, at the threshold', () => {
    const incidents = [incident('2', 'node-a', 1), incident('1', 'node-a', 5), incident('0', 'node-b', 6)];
    const decision = decideTaint(incidents[0]!, incidents, nodes, [], VALUE, settings, NOW);
    assert.equal(decision.taint, true);
    assert.match(decision.message, /^2 of 3 incidents of group ReplicaSet\/web-h1 within 10m on node node-a; 1 other node admits the group's pods$/);
  });

  it('holds below the threshold, when failures spread evenly, and for incidents outside the window or of another group', () => {
    const one = [incident('1', 'node-a', 1)];
    assert.match(decideTaint(one[0]!, one, nodes, [], VALUE, settings, NOW).message, /1 incident of group .* on node node-a within 10m \(taintNode.incidents 2\)/);
    const even = [incident('4', 'node-a', 1), incident('3', 'node-a', 2), incident('2', 'node-b', 3), incident('1', 'node-b', 4)];
    assert.match(decideTaint(even[0]!, even, nodes, [], VALUE, settings, NOW).message, /do not concentrate on node node-a \(2 of 4 incidents/);
    const old = [incident('2', 'node-a', 1), incident('1', 'node-a', 11)];
    assert.equal(decideTaint(old[0]!, old, nodes, [], VALUE, settings, NOW).taint, false);
    const other = [incident('2', 'node-a', 1), incident('1', 'node-a', 2, 'ReplicaSet/api-h2')];
    assert.equal(decideTaint(other[0]!, other, nodes, [], VALUE, settings, NOW).taint, false);
  });

  it('taints one node per policy at a time', () => {
    const incidents = [incident('2', 'node-b', 1), incident('1', 'node-b', 2)];
    const tainted = [node('node-a', { taints: [{ key: GUARD_TAINT_KEY, value: VALUE, effect: 'NoSchedule' }] }), node('node-b'), node('node-c')];
    assert.match(decideTaint(incidents[0]!, incidents, tainted, [], VALUE, settings, NOW).message, /node node-a carries this policy's taint already/);
    // Another policy's taint on node-a is not ours: it takes node-a out as a refuge, not the rail.
    const others = [node('node-a', { taints: [{ key: GUARD_TAINT_KEY, value: 'shop.api', effect: 'NoSchedule' }] }), node('node-b'), node('node-c')];
    assert.equal(decideTaint(incidents[0]!, incidents, others, [], VALUE, settings, NOW).taint, true);
    // On the failing node itself, it leaves no room for ours: the API server keeps one taint per key and effect.
    const onTarget = [node('node-a'), node('node-b', { taints: [{ key: GUARD_TAINT_KEY, value: 'shop.api', effect: 'NoSchedule' }] }), node('node-c')];
    assert.match(decideTaint(incidents[0]!, incidents, onTarget, [], VALUE, settings, NOW).message, /^node node-b carries the taint of policy shop\.api already/);
  });

  it('never takes the last Ready node: without placement constraints, another untainted, uncordoned, Ready node must remain', () => {
    const incidents = [incident('2', 'node-a', 1), incident('1', 'node-a', 2)];
    const last = /^node node-a is not tainted: no other Ready node would admit pods of group ReplicaSet\/web-h1 \(no nodeSelector, node affinity or toleration\)$/;
    const decide = (all: NodeLike[], placements: PodPlacement[] = []) => decideTaint(incidents[0]!, incidents, all, placements, VALUE, settings, NOW);
    assert.match(decide([node('node-a'), kwok]).message, last);
    assert.match(decide([node('node-a'), node('node-b', { ready: false })]).message, last);
    assert.match(decide([node('node-a'), node('node-b', { unschedulable: true })]).message, last);
    assert.match(decide([node('node-a'), node('node-b', { taints: [{ key: 'x', effect: 'NoExecute' }] })]).message, last);
    assert.equal(decide([node('node-a'), node('node-b', { taints: [{ key: 'x', effect: 'PreferNoSchedule' }] })]).taint, true);
    assert.match(decide([node('node-b'), node('node-c')]).message, /node node-a is gone/);
  });

  describe('where the group\'s pods can land', () => {
    const incidents = [incident('2', 'node-a', 1), incident('1', 'node-a', 2)];
    const zoned = [node('node-a', { labels: { zone: 'z1', disk: 'ssd' } }), node('node-b', { labels: { zone: 'z1' } }), node('node-c', { labels: { zone: 'z2', disk: 'ssd' } })];
    const decide = (all: NodeLike[], ...placements: PodPlacement[]) => decideTaint(incidents[0]!, incidents, all, placements, VALUE, settings, NOW);
    const required = (...terms: NonNullable<PodPlacement['affinity']>['nodeAffinity']['requiredDuringSchedulingIgnoredDuringExecution']['nodeSelectorTerms']): PodPlacement =>
      ({ affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: terms } } } });
    const refused = (decision: ReturnType<typeof decide>) => decision.taint ? 'tainted' : decision.message.replace(/^node node-a is not tainted: no other Ready node would admit pods of group ReplicaSet\/web-h1 /, '');

    it('never taints the node a group is pinned to, by nodeSelector or by required node affinity', () => {
      assert.equal(refused(decide(zoned, { nodeSelector: { 'kubernetes.io/hostname': 'node-a' } })), '(nodeSelector kubernetes.io/hostname=node-a)');
      assert.equal(refused(decide(zoned, required({ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['node-a'] }] }))), '(required node affinity of 1 term)');
      assert.equal(refused(decide(zoned, required({ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: ['node-a'] }] }))), '(required node affinity of 1 term)');
    });

    it('counts the nodes the nodeSelector and every expression of one of the terms admit', () => {
      assert.equal(refused(decide(zoned, { nodeSelector: { zone: 'z1' } })), 'tainted', 'node-b is in z1');
      assert.equal(refused(decide(zoned, { nodeSelector: { zone: 'z1', disk: 'ssd' } })), '(nodeSelector zone=z1,disk=ssd)');
      // Expressions of a term are ANDed, terms ORed.
      const ssdInZ1 = { matchExpressions: [{ key: 'zone', operator: 'In', values: ['z1'] }, { key: 'disk', operator: 'Exists' }] };
      assert.notEqual(refused(decide(zoned, required(ssdInZ1))), 'tainted');
      assert.equal(refused(decide(zoned, required(ssdInZ1, { matchExpressions: [{ key: 'zone', operator: 'In', values: ['z2'] }] }))), 'tainted', 'node-c by the second term');
      assert.equal(refused(decide(zoned, required({ matchFields: [{ key: 'metadata.name', operator: 'NotIn', values: ['node-b'] }] }))), 'tainted', 'node-c');
      assert.notEqual(refused(decide(zoned, required({ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['node-a', 'node-x'] }] }))), 'tainted');
    });

    it('counts a node whose NoSchedule and NoExecute taints the pods tolerate, a cordoned one only when they tolerate that', () => {
      const dedicated = [node('node-a'), node('node-b', { taints: [{ key: 'dedicated', value: 'db', effect: 'NoSchedule' }, { key: 'spot', effect: 'NoExecute' }] })];
      assert.notEqual(refused(decide(dedicated)), 'tainted');
      assert.notEqual(refused(decide(dedicated, { tolerations: [{ key: 'dedicated', value: 'db', effect: 'NoSchedule' }] })), 'tainted', 'the NoExecute taint is not tolerated');
      assert.equal(refused(decide(dedicated, { tolerations: [{ key: 'dedicated', value: 'db' }, { key: 'spot', operator: 'Exists', effect: 'NoExecute' }] })), 'tainted');
      assert.notEqual(refused(decide(dedicated, { tolerations: [{ key: 'dedicated', value: 'web' }, { key: 'spot', operator: 'Exists' }] })), 'tainted', 'another value');
      assert.equal(refused(decide(dedicated, { tolerations: [{ operator: 'Exists' }] })), 'tainted', 'tolerates everything');
      const cordoned = [node('node-a'), node('node-b', { unschedulable: true })];
      assert.notEqual(refused(decide(cordoned)), 'tainted');
      assert.equal(refused(decide(cordoned, { tolerations: [{ key: 'node.kubernetes.io/unschedulable', operator: 'Exists', effect: 'NoSchedule' }] })), 'tainted', 'as a DaemonSet\'s pods');
      assert.notEqual(refused(decide([node('node-a'), node('node-b', { ready: false })], { tolerations: [{ operator: 'Exists' }] })), 'tainted', 'a node not Ready never counts');
    });

    it('holds when any of the group\'s placements would be left without a node; the same placement counts once', () => {
      const free: PodPlacement = {};
      const pinned: PodPlacement = { nodeSelector: { 'kubernetes.io/hostname': 'node-a' } };
      assert.equal(refused(decide(zoned, free, free, free)), 'tainted');
      assert.equal(refused(decide(zoned, free, pinned, free)), '(nodeSelector kubernetes.io/hostname=node-a)');
      assert.match(decide(zoned, free, { nodeSelector: { zone: 'z1' } }, free).message, /; 2 other nodes admit the group's pods$/);
    });
  });
});

describe('taint ttl', () => {
  const ttlMs = 30 * 60_000;

  it('ends a ttl after the taint\'s own timeAdded, whoever reads it; a taint without a readable one has no end yet', () => {
    assert.equal(taintEndMs({ key: GUARD_TAINT_KEY, value: VALUE, effect: 'NoSchedule', timeAdded: '2026-01-01T00:40:00Z' }, ttlMs), Date.parse('2026-01-01T01:10:00Z'));
    assert.equal(taintEndMs({ key: GUARD_TAINT_KEY, value: VALUE, effect: 'NoSchedule' }, ttlMs), undefined);
    assert.equal(taintEndMs({ key: GUARD_TAINT_KEY, value: VALUE, effect: 'NoSchedule', timeAdded: 'yesterday' }, ttlMs), undefined);
  });
});

describe('taint patches', () => {
  // Others' taints as the API server serves them: their timeAdded must come back unchanged.
  const foreign: NodeTaint = { key: 'dedicated', value: 'db', effect: 'NoExecute', timeAdded: '2025-12-31T08:00:00Z' };
  const sameKeyOtherPolicy: NodeTaint = { key: GUARD_TAINT_KEY, value: 'shop.api', effect: 'NoSchedule', timeAdded: '2026-01-01T00:55:00Z' };
  const ours: NodeTaint = { key: GUARD_TAINT_KEY, value: VALUE, effect: 'NoSchedule', timeAdded: '2026-01-01T01:00:00Z' };
  const oursUnstamped: NodeTaint = { key: GUARD_TAINT_KEY, value: VALUE, effect: 'NoSchedule' };

  it('adds our taint after the others, added now (timeAdded, to the second), tested against the resourceVersion', () => {
    assert.deepEqual(addTaintPatch(node('a', { taints: [foreign] }), VALUE, NOW + 999), [
      { op: 'test', path: '/metadata/resourceVersion', value: '42' },
      { op: 'add', path: '/spec/taints', value: [foreign, ours] },
    ]);
    assert.deepEqual(addTaintPatch(node('a'), VALUE, NOW)?.[1], { op: 'add', path: '/spec/taints', value: [ours] });
  });

  it('adds nothing when our taint is there: its timeAdded, and so its end, stay', () => {
    const earlier = { ...ours, timeAdded: '2026-01-01T00:10:00Z' };
    assert.equal(addTaintPatch(node('a', { taints: [earlier] }), VALUE, NOW), undefined);
    assert.equal(addTaintPatch(node('a', { taints: [oursUnstamped] }), VALUE, NOW), undefined);
  });

  it('stamps our taint that has no timeAdded with now, and only ours', () => {
    const otherUnstamped: NodeTaint = { key: GUARD_TAINT_KEY, value: 'shop.api', effect: 'NoSchedule' };
    assert.deepEqual(stampTaintPatch(node('a', { taints: [foreign, oursUnstamped, otherUnstamped] }), VALUE, NOW)?.[1], {
      op: 'add', path: '/spec/taints', value: [foreign, ours, otherUnstamped],
    });
    assert.equal(stampTaintPatch(node('a', { taints: [foreign, ours] }), VALUE, NOW + 60_000), undefined, 'stamped already: kept');
    assert.equal(stampTaintPatch(node('a', { taints: [foreign] }), VALUE, NOW), undefined);
  });

  it('removes only our taint: other keys and other policies\' values stay, with their timeAdded', () => {
    assert.deepEqual(removeTaintPatch(node('a', { taints: [foreign, ours, sameKeyOtherPolicy] }), VALUE), [
      { op: 'test', path: '/metadata/resourceVersion', value: '42' },
      { op: 'add', path: '/spec/taints', value: [foreign, sameKeyOtherPolicy] },
    ]);
    assert.equal(removeTaintPatch(node('a', { taints: [foreign, sameKeyOtherPolicy] }), VALUE), undefined);
  });

  it('keeps of a node what the rails and the expiry read: labels, cordon, taints with timeAdded, conditions\' type and status', () => {
    const raw = {
      apiVersion: 'v1', kind: 'Node',
      metadata: { name: 'a', uid: 'u', resourceVersion: '7', labels: { zone: 'z1' }, annotations: { big: 'x'.repeat(100) }, managedFields: [{}] },
      spec: { unschedulable: true, taints: [ours], podCIDR: '10.0.0.0/24' },
      status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'ok', lastHeartbeatTime: '2026-01-01T00:00:00Z' }], images: [{ names: ['x'], sizeBytes: 1 }], addresses: [] },
    };
    assert.deepEqual(guardNode(raw as never), {
      metadata: { name: 'a', uid: 'u', resourceVersion: '7', labels: { zone: 'z1' } },
      spec: { unschedulable: true, taints: [ours] },
      status: { conditions: [{ type: 'Ready', status: 'True' }] },
    });
  });

  it('names the policy in the value, shortened with a hash to a label value\'s 63 characters', () => {
    assert.equal(taintValue('shop', 'web'), 'shop.web');
    const long = taintValue('a'.repeat(40), 'b'.repeat(40));
    assert.ok(long.length <= 63 && /^[a-z0-9.]+$/.test(long) && long !== taintValue('a'.repeat(40), 'b'.repeat(41)));
  });
});
