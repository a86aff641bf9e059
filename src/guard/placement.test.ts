import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { admits, type NodeLike, type NodeSelectorRequirement, type NodeTaint, podPlacement, tolerates } from './placement.ts';
import { guardPod } from './pods.ts';

function node(name: string, labels: Record<string, string> = {}, taints: NodeTaint[] = []): NodeLike {
  return { metadata: { name, labels }, spec: { taints }, status: { conditions: [{ type: 'Ready', status: 'True' }] } };
}

const required = (...matchExpressions: NodeSelectorRequirement[]) => ({ affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions }] } } } });

describe('tolerates (corev1 Toleration.ToleratesTaint)', () => {
  const taint: NodeTaint = { key: 'dedicated', value: 'db', effect: 'NoSchedule' };
  const cases: Array<[string, Parameters<typeof tolerates>[0], boolean]> = [
    ['key, value and effect equal', { key: 'dedicated', operator: 'Equal', value: 'db', effect: 'NoSchedule' }, true],
    ['Equal is the default operator', { key: 'dedicated', value: 'db' }, true],
    ['another value', { key: 'dedicated', value: 'web' }, false],
    ['no value against a value', { key: 'dedicated' }, false],
    ['Exists: any value', { key: 'dedicated', operator: 'Exists' }, true],
    ['another key', { key: 'gpu', operator: 'Exists' }, false],
    ['another effect', { key: 'dedicated', operator: 'Exists', effect: 'NoExecute' }, false],
    ['no key, Exists: everything', { operator: 'Exists' }, true],
    ['an operator it does not know', { key: 'dedicated', operator: 'Gt', value: '1' }, false],
  ];
  for (const [name, toleration, expected] of cases) it(name, () => assert.equal(tolerates(toleration, taint), expected));
});

describe('admits', () => {
  const a = node('a', { zone: 'z1', gen: '5' });

  it('matches required node affinity expressions with the scheduler\'s operators', () => {
    const verdicts = (...rs: NodeSelectorRequirement[]) => rs.map((r) => admits(a, required(r)));
    assert.deepEqual(verdicts(
      { key: 'zone', operator: 'In', values: ['z1', 'z2'] }, { key: 'zone', operator: 'NotIn', values: ['z1'] },
      { key: 'rack', operator: 'NotIn', values: ['r1'] }, { key: 'zone', operator: 'Exists' }, { key: 'rack', operator: 'DoesNotExist' },
    ), [true, false, true, true, true]);
    assert.deepEqual(verdicts(
      { key: 'gen', operator: 'Gt', values: ['4'] }, { key: 'gen', operator: 'Gt', values: ['5'] }, { key: 'gen', operator: 'Lt', values: ['10'] },
      { key: 'zone', operator: 'Gt', values: ['1'] }, { key: 'rack', operator: 'Lt', values: ['1'] }, { key: 'gen', operator: 'Gt', values: ['1', '2'] },
    ), [true, false, true, false, false, false]);
  });

  it('admits nowhere what it cannot read: an empty term, an unknown operator or field', () => {
    const terms = (t: object) => admits(a, { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [t] } } } });
    assert.equal(terms({}), false);
    assert.equal(terms({ matchExpressions: [{ key: 'zone', operator: 'Near', values: ['z1'] }] }), false);
    assert.equal(terms({ matchFields: [{ key: 'metadata.uid', operator: 'In', values: ['x'] }] }), false);
    assert.equal(terms({ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['a'] }] }), true);
  });
});

describe('the pod cache\'s placement fields', () => {
  const defaults = [
    { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
    { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
  ];

  it('keeps nodeSelector, the required node affinity and the tolerations that matter, without tolerationSeconds', () => {
    const affinity = {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['a'] }] }] },
        preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 1, preference: { matchExpressions: [{ key: 'zone', operator: 'In', values: ['z1'] }] } }],
      },
      podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: 'kubernetes.io/hostname' }] },
    };
    const pod = guardPod({
      apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'shop', uid: 'u' },
      spec: {
        nodeName: 'a', nodeSelector: { disk: 'ssd' }, affinity,
        tolerations: [...defaults, { key: 'dedicated', operator: 'Equal', value: 'db', effect: 'NoSchedule' }, { key: 'spot', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 60 }, { key: 'soft', operator: 'Exists', effect: 'PreferNoSchedule' }],
        containers: [{ name: 'main', image: 'x' }],
      },
    } as never);
    assert.deepEqual((pod as { spec: unknown }).spec, {
      nodeName: 'a', ports: [], nodeSelector: { disk: 'ssd' },
      affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['a'] }] }] } } },
      tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'db', effect: 'NoSchedule' }, { key: 'spot', operator: 'Exists', effect: 'NoExecute' }],
    });
  });

  it('keeps nothing for a pod with only the default tolerations and no constraint', () => {
    assert.deepEqual(podPlacement({ tolerations: defaults, nodeSelector: {}, affinity: { nodeAffinity: {} } }), {});
  });
});
