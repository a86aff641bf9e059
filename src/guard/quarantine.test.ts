import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { QUARANTINE_ANNOTATION, QUARANTINE_LABEL, type QuarantineRecord } from './contract.ts';
import { type GuardPod, guardPod } from './pods.ts';
import { isolationPolicy, labelsToRemove, quarantinePatch, quarantineRecordOf, releasePatch } from './quarantine.ts';

const pod: GuardPod = {
  metadata: {
    name: 'web-abc', namespace: 'shop', uid: 'uid-1', resourceVersion: '42',
    labels: { app: 'web', 'pod-template-hash': '5d9', tier: 'frontend', 'example.com/team': 'a' },
    ownerReferences: [
      { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-5d9', uid: 'rs-1', controller: true },
      { apiVersion: 'v1', kind: 'ConfigMap', name: 'keep-me', uid: 'cm-1' },
    ],
  },
  spec: { ports: [] },
  status: { containers: [] },
};
const record: QuarantineRecord = { incident: 'crashloop-0123456789', policy: 'web', detector: 'crashLoop', at: '2026-01-01T00:00:00Z', until: '2026-01-02T00:00:00Z', removedLabels: { app: 'web', 'pod-template-hash': '5d9' } };

describe('labelsToRemove', () => {
  it('takes the keys the owner selects on, and only those the pod has', () => {
    assert.deepEqual(labelsToRemove(pod, { matchLabels: { app: 'web', 'pod-template-hash': '5d9' }, matchExpressions: [{ key: 'missing', operator: 'Exists' }] }, { matchLabels: { tier: 'frontend' } }),
      { app: 'web', 'pod-template-hash': '5d9' });
  });
  it('takes the policy\'s keys for a pod without an owner', () => {
    assert.deepEqual(labelsToRemove(pod, undefined, { matchLabels: { tier: 'frontend' }, matchExpressions: [{ key: 'example.com/team', operator: 'In', values: ['a'] }] }),
      { tier: 'frontend', 'example.com/team': 'a' });
  });
});

describe('quarantinePatch', () => {
  it('is guarded by uid and resourceVersion, removes the owner labels and controller reference, adds the label and record', () => {
    assert.deepEqual(quarantinePatch(pod, record), [
      { op: 'test', path: '/metadata/uid', value: 'uid-1' },
      { op: 'test', path: '/metadata/resourceVersion', value: '42' },
      { op: 'remove', path: '/metadata/labels/app' },
      { op: 'remove', path: '/metadata/labels/pod-template-hash' },
      { op: 'add', path: '/metadata/labels/guard.crowsnest.dev~1quarantined', value: 'crashloop-0123456789' },
      { op: 'add', path: '/metadata/annotations', value: {} },
      { op: 'add', path: '/metadata/annotations/guard.crowsnest.dev~1quarantine', value: JSON.stringify(record) },
      { op: 'replace', path: '/metadata/ownerReferences', value: [pod.metadata.ownerReferences![1]] },
    ]);
  });
  it('leaves the annotations of a pod as cached (others than guard\'s dropped) where they are: it adds to them, never replaces them', () => {
    const cached = guardPod({ ...pod, metadata: { ...pod.metadata, annotations: { 'prometheus.io/scrape': 'true' } } }) as GuardPod;
    const ops = quarantinePatch(cached, record);
    assert.ok(!ops.some((op) => op.path === '/metadata/annotations'), JSON.stringify(ops));
    assert.ok(ops.some((op) => op.op === 'add' && op.path === '/metadata/annotations/guard.crowsnest.dev~1quarantine'));
  });
});

describe('releasePatch', () => {
  it('puts the removed labels back (unless set again meanwhile) and drops the quarantine label and record', () => {
    const quarantined: GuardPod = {
      ...pod,
      metadata: { ...pod.metadata, labels: { tier: 'frontend', 'pod-template-hash': 'other', [QUARANTINE_LABEL]: record.incident }, annotations: { [QUARANTINE_ANNOTATION]: JSON.stringify(record) } },
    };
    assert.deepEqual(quarantineRecordOf(quarantined), record);
    assert.deepEqual(releasePatch(quarantined, record), [
      { op: 'test', path: '/metadata/uid', value: 'uid-1' },
      { op: 'test', path: '/metadata/resourceVersion', value: '42' },
      { op: 'remove', path: '/metadata/labels/guard.crowsnest.dev~1quarantined' },
      { op: 'add', path: '/metadata/labels/app', value: 'web' },
      { op: 'remove', path: '/metadata/annotations/guard.crowsnest.dev~1quarantine' },
    ]);
  });

  it('reads no record from an annotation that is not one', () => {
    assert.equal(quarantineRecordOf({ metadata: { ...pod.metadata, annotations: { [QUARANTINE_ANNOTATION]: '{"incident": 1}' } } }), undefined);
    assert.equal(quarantineRecordOf({ metadata: { ...pod.metadata, annotations: { [QUARANTINE_ANNOTATION]: 'not json' } } }), undefined);
  });
});

describe('isolationPolicy', () => {
  it('denies all ingress and egress of the incident\'s pod, owned by the policy and marked as ours', () => {
    const np = isolationPolicy({ name: 'web', namespace: 'shop', uid: 'gp-1', apiVersion: 'crowsnest.dev/v1alpha1', kind: 'GuardPolicy' }, record.incident);
    assert.deepEqual(np.spec, { podSelector: { matchLabels: { [QUARANTINE_LABEL]: record.incident } }, policyTypes: ['Ingress', 'Egress'] });
    assert.equal(np.metadata?.labels?.['app.kubernetes.io/managed-by'], 'crowsnest');
    assert.deepEqual(np.metadata?.ownerReferences?.map((r) => `${r.kind}/${r.name}/${r.uid}/${r.controller}`), ['GuardPolicy/web/gp-1/true']);
  });
});
