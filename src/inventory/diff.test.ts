import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KubeObject } from '../kube/objects/resources.ts';
import { diffSnapshots, MAX_CHANGED_PATHS, objectRef, type SnapshotDiff } from './diff.ts';
import { LAST_APPLIED_ANNOTATION } from './redact.ts';

type Obj = KubeObject & Record<string, unknown>;

function deployment(overrides: (obj: Obj) => void = () => {}): Obj {
  const obj: Obj = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: 'web',
      namespace: 'shop',
      uid: 'uid-1',
      resourceVersion: '100',
      generation: 3,
      labels: { app: 'web', 'app.kubernetes.io/version': '1.0' },
      annotations: { [LAST_APPLIED_ANNOTATION]: '{"spec":{"replicas":2}}' },
      managedFields: [{ manager: 'kubectl', time: '2024-01-01T00:00:00Z' }],
    },
    spec: { replicas: 2, template: { spec: { containers: [{ name: 'web', image: 'web:1' }] } } },
    status: {
      replicas: 2,
      conditions: [{ type: 'Available', status: 'True', lastTransitionTime: '2024-01-01T00:00:00Z', lastUpdateTime: '2024-01-01T00:00:00Z' }],
    },
  };
  overrides(obj);
  return obj;
}

const meta = (obj: Obj) => obj.metadata!;
const spec = (obj: Obj) => obj['spec'] as Record<string, unknown>;
const status = (obj: Obj) => obj['status'] as { conditions: Record<string, unknown>[] };

const lease = (renewTime: string, holder = 'node-a'): Obj => ({
  apiVersion: 'coordination.k8s.io/v1',
  kind: 'Lease',
  metadata: { name: 'node-a', namespace: 'kube-node-lease', uid: 'l1' },
  spec: { holderIdentity: holder, renewTime, leaseDurationSeconds: 40 },
});

const counts = (diff: SnapshotDiff) => ({
  added: diff.added.length,
  removed: diff.removed.length,
  changed: diff.changed.length,
  replaced: diff.replaced.length,
  unchanged: diff.unchanged,
});
const only = (field: keyof ReturnType<typeof counts>) => ({ added: 0, removed: 0, changed: 0, replaced: 0, unchanged: 0, [field]: 1 });

describe('diffSnapshots: what counts as a change', () => {
  const cases: { name: string; after: Obj[]; before?: Obj[]; expected: ReturnType<typeof counts>; paths?: string[] }[] = [
    { name: 'an identical object is unchanged', after: [deployment()], expected: only('unchanged') },
    { name: 'a resourceVersion-only change is not a change', after: [deployment((o) => { meta(o).resourceVersion = '999'; })], expected: only('unchanged') },
    { name: 'a managedFields-only change is not a change', after: [deployment((o) => { meta(o).managedFields = [{ manager: 'helm' }]; })], expected: only('unchanged') },
    {
      name: 'a status lastTransitionTime/lastUpdateTime-only change is not a change',
      after: [deployment((o) => { status(o).conditions[0]!['lastTransitionTime'] = '2025-06-01T00:00:00Z'; status(o).conditions[0]!['lastUpdateTime'] = 'x'; })],
      expected: only('unchanged'),
    },
    {
      name: 'losing the last-applied annotation (e.g. a redacted snapshot) is not a change',
      after: [deployment((o) => { delete meta(o).annotations; })],
      expected: only('unchanged'),
    },
    {
      name: 'key order does not matter',
      after: [deployment((o) => { o['spec'] = { template: spec(o)['template'], replicas: 2 }; })],
      expected: only('unchanged'),
    },
    { name: 'a Lease renewing is not a change', before: [lease('2024-01-01T00:00:00Z')], after: [lease('2024-01-01T00:00:10Z')], expected: only('unchanged') },
    { name: 'a Lease changing holder is a change', before: [lease('t1')], after: [lease('t2', 'node-b')], expected: only('changed'), paths: ['spec.holderIdentity'] },
    { name: 'scaling is a change at spec.replicas', after: [deployment((o) => { spec(o)['replicas'] = 3; })], expected: only('changed'), paths: ['spec.replicas'] },
    {
      name: 'a generation bump is a change (it moves with the spec)',
      after: [deployment((o) => { meta(o).generation = 4; })],
      expected: only('changed'),
      paths: ['metadata.generation'],
    },
    {
      name: 'an image change is reported at depth 3',
      after: [deployment((o) => { spec(o)['template'] = { spec: { containers: [{ name: 'web', image: 'web:2' }] } }; })],
      expected: only('changed'),
      paths: ['spec.template.spec'],
    },
    {
      name: 'a condition flipping is a change even though its timestamps are ignored',
      after: [deployment((o) => { status(o).conditions[0]!['status'] = 'False'; })],
      expected: only('changed'),
      paths: ['status.conditions'],
    },
    {
      name: 'label keys with dots are quoted; added and removed fields both count',
      after: [deployment((o) => { meta(o).labels = { app: 'web', tier: 'front' }; })],
      expected: only('changed'),
      paths: ['metadata.labels.tier', 'metadata.labels["app.kubernetes.io/version"]'],
    },
    { name: 'a uid change is replaced, not changed', after: [deployment((o) => { meta(o).uid = 'uid-2'; spec(o)['replicas'] = 9; })], expected: only('replaced') },
    { name: 'an object only in the new snapshot is added', before: [], after: [deployment()], expected: only('added') },
    { name: 'an object only in the old snapshot is removed', after: [], expected: only('removed') },
    {
      name: 'an apiVersion move within the group is the same object',
      after: [deployment((o) => { o.apiVersion = 'apps/v1beta2'; })],
      expected: only('changed'),
      paths: ['apiVersion'],
    },
  ];
  for (const { name, before = [deployment()], after, expected, paths } of cases) {
    it(name, async () => {
      const diff = await diffSnapshots(before, after);
      assert.deepEqual(counts(diff), expected);
      if (paths) assert.deepEqual(diff.changed[0]?.paths, paths);
    });
  }

  it('does not mutate the snapshots it compares', async () => {
    const before = [deployment()];
    const after = [deployment((o) => { spec(o)['replicas'] = 5; })];
    const copies = structuredClone([before, after]);
    await diffSnapshots(before, after);
    assert.deepEqual([before, after], copies);
  });
});

describe('diffSnapshots: matching', () => {
  const variants: { name: string; change: (o: Obj) => void }[] = [
    { name: 'namespace', change: (o) => { meta(o).namespace = 'other'; } },
    { name: 'name', change: (o) => { meta(o).name = 'api'; } },
    { name: 'kind', change: (o) => { o.kind = 'StatefulSet'; } },
    { name: 'group', change: (o) => { o.apiVersion = 'example.com/v1'; } },
  ];
  for (const { name, change } of variants) {
    it(`the same object in another ${name} is a different object`, async () => {
      const diff = await diffSnapshots([deployment()], [deployment(change)]);
      assert.deepEqual(counts(diff), { added: 1, removed: 1, changed: 0, replaced: 0, unchanged: 0 });
    });
  }

  it('tells a core kind from the same kind in a group, and cluster-scoped from namespaced', () => {
    assert.deepEqual(objectRef({ apiVersion: 'v1', kind: 'Event', metadata: { name: 'e', namespace: 'n' } }), { group: '', kind: 'Event', namespace: 'n', name: 'e', apiVersion: 'v1' });
    assert.deepEqual(objectRef({ apiVersion: 'events.k8s.io/v1', kind: 'Event', metadata: { name: 'e', namespace: 'n' } })?.group, 'events.k8s.io');
    assert.deepEqual(objectRef({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'n' } }), { group: '', kind: 'Namespace', name: 'n', apiVersion: 'v1' });
    assert.equal(objectRef({ apiVersion: 'v1', metadata: { name: 'n' } }), undefined);
  });

  it('lists results sorted by group, kind, namespace, name whatever the input order', async () => {
    const obj = (apiVersion: string, kind: string, name: string, namespace?: string): KubeObject => ({ apiVersion, kind, metadata: { name, ...(namespace ? { namespace } : {}) } });
    const diff = await diffSnapshots([], [
      obj('apps/v1', 'Deployment', 'b', 'ns'), obj('v1', 'Pod', 'a', 'ns'), obj('apps/v1', 'Deployment', 'a', 'ns'),
      obj('v1', 'Namespace', 'ns'), obj('apps/v1', 'DaemonSet', 'z', 'a'),
    ]);
    assert.deepEqual(diff.added.map((r) => `${r.group}/${r.kind}/${r.namespace ?? ''}/${r.name}`), [
      '/Namespace//ns', '/Pod/ns/a', 'apps/DaemonSet/a/z', 'apps/Deployment/ns/a', 'apps/Deployment/ns/b',
    ]);
  });

  it('counts duplicates and objects without kind or name instead of comparing them', async () => {
    const diff = await diffSnapshots(
      [deployment(), deployment((o) => { spec(o)['replicas'] = 7; }), { metadata: { name: 'x' } }],
      [deployment(), { kind: 'Pod', metadata: {} }],
    );
    assert.deepEqual(counts(diff), only('unchanged'));
    assert.deepEqual(diff.skipped, { duplicates: 1, unidentified: 2 });
  });

  it('reads async sources (file readers) as well as arrays', async () => {
    async function* stream(objs: Obj[]) { yield* objs; }
    const diff = await diffSnapshots(stream([deployment()]), stream([deployment((o) => { spec(o)['replicas'] = 1; })]));
    assert.deepEqual(counts(diff), only('changed'));
  });

  it(`lists at most ${MAX_CHANGED_PATHS} changed paths and counts the rest`, async () => {
    const labels = (value: string) => Object.fromEntries(Array.from({ length: MAX_CHANGED_PATHS + 5 }, (_, i) => [`l${String(i).padStart(2, '0')}`, value]));
    const diff = await diffSnapshots([deployment((o) => { meta(o).labels = labels('a'); })], [deployment((o) => { meta(o).labels = labels('b'); })]);
    assert.equal(diff.changed[0]!.paths.length, MAX_CHANGED_PATHS);
    assert.equal(diff.changed[0]!.paths[0], 'metadata.labels.l00');
    assert.equal(diff.changed[0]!.morePaths, 5);
  });
});
