import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CONVERTED_FROM_ANNOTATION, ConvertError, convertPolicies } from './convert.ts';

/** The tool's sample (CustomResource/deployment/sample-resource.yaml), as its users have it. */
const TOOL_SAMPLE = `
apiVersion: sampleproject.io/v1alpha1
kind: Receiver
metadata:
  name: myreceiver1
  labels:
    target: server
    key: value1
spec:
  Namespace:
    - default
  labelSelector:
    matchExpression:
      - {key: app, operator: in, values: ['title-api']}
      - {key: version, operator: in, values: ['v1', 'v3']}
  action: quarantine
  groupLabel: [app]
  logFrequency: 30
  destination:
    - ipaddress: "192.168.0.9"
      port: "3000"
      endpoint: "/"
`;

describe('guard convert', () => {
  it("converts the tool's sample Receiver field by field", () => {
    const { policies, notes } = convertPolicies(TOOL_SAMPLE, { source: 'receiver.yaml' });
    assert.deepEqual(policies, [{
      apiVersion: 'crowsnest.dev/v1alpha1',
      kind: 'GuardPolicy',
      metadata: { name: 'myreceiver1', namespace: 'default', labels: { target: 'server', key: 'value1' }, annotations: { [CONVERTED_FROM_ANNOTATION]: 'Receiver/myreceiver1' } },
      spec: {
        targets: {
          podSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['title-api'] }, { key: 'version', operator: 'In', values: ['v1', 'v3'] }] },
          groupBy: ['app'],
        },
        detectors: { health: { failures: 3, window: '90s' } },
        actions: ['Event', 'Quarantine'],
        dryRun: true,
      },
    }]);
    assert.ok(notes.some((note) => note.includes('destination is not converted')), notes.join('\n'));
    assert.ok(notes.some((note) => note.includes('nothing is scaled to zero')), notes.join('\n'));
    assert.ok(notes.some((note) => note.includes('kubectl label namespace default sidecar-injection=enabled')), notes.join('\n'));
    assert.ok(notes.some((note) => note.includes('dry runs')), notes.join('\n'));
  });

  it('makes one policy per namespace, and acts when asked to enforce', () => {
    const text = TOOL_SAMPLE.replace('    - default', '    - shop\n    - billing');
    const { policies, notes } = convertPolicies(text, { enforce: true });
    assert.deepEqual(policies.map((policy) => policy.metadata.namespace), ['shop', 'billing']);
    assert.ok(policies.every((policy) => policy.spec.dryRun === false));
    assert.ok(!notes.some((note) => note.includes('dry runs')));
    assert.ok(notes.some((note) => note.includes('kubectl label namespace billing shop sidecar-injection=enabled')), notes.join('\n'));
  });

  it('reads the second generation (PolicyDefinition, logSpec) and keys in any case, as Go decoded them', () => {
    const { policies } = convertPolicies(`
apiVersion: k8s.crd.io/v1alpha1
kind: PolicyDefinition
metadata: {name: web}
spec:
  namespace: [shop]
  Action: Quarantine
  LABELSELECTOR:
    matchLabels: {app: web, tier: 1}
    matchexpression: [{key: track, operator: NotIn, values: [canary]}, {key: debug, operator: doesnotexist}]
  logSpec: {logFrequency: "15", destination: []}
`);
    assert.equal(policies.length, 1);
    const [policy] = policies;
    assert.deepEqual(policy!.metadata, { name: 'web', namespace: 'shop', annotations: { [CONVERTED_FROM_ANNOTATION]: 'PolicyDefinition/web' } });
    assert.deepEqual(policy!.spec.targets, {
      podSelector: { matchLabels: { app: 'web', tier: '1' }, matchExpressions: [{ key: 'track', operator: 'NotIn', values: ['canary'] }, { key: 'debug', operator: 'DoesNotExist' }] },
    });
    assert.equal(policy!.spec.detectors.health?.window, '45s');
    assert.deepEqual(policy!.spec.actions, ['Event', 'Quarantine']);
  });

  it('fills in what the tool defaulted, and says so', () => {
    const { policies, notes } = convertPolicies('kind: Receiver\nmetadata: {name: all}\nspec: {}\n');
    assert.equal(policies[0]!.metadata.namespace, 'default');
    assert.deepEqual(policies[0]!.spec.targets.podSelector, {});
    assert.equal(policies[0]!.spec.detectors.health?.window, '30s');
    assert.deepEqual(policies[0]!.spec.actions, ['Event']);
    for (const expected of ['goes to "default"', 'selects every pod', 'only records Events']) {
      assert.ok(notes.some((note) => note.includes(expected)), `${expected}: ${notes.join('\n')}`);
    }
  });

  it('takes matchExpressions, which the tool ignored, and notes the change of meaning', () => {
    const { policies, notes } = convertPolicies('kind: Receiver\nmetadata: {name: r}\nspec:\n  labelSelector:\n    matchExpressions: [{key: app, operator: In, values: [a]}]\n');
    assert.deepEqual(policies[0]!.spec.targets.podSelector, { matchExpressions: [{ key: 'app', operator: 'In', values: ['a'] }] });
    assert.ok(notes.some((note) => note.includes('ignored by the tool')));
  });

  it('reads several documents and Lists, and skips empty documents', () => {
    const text = `${TOOL_SAMPLE}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- kind: Receiver\n  metadata: {name: second}\n  spec: {Namespace: [shop]}\n`;
    assert.deepEqual(convertPolicies(text).policies.map((policy) => `${policy.metadata.namespace}/${policy.metadata.name}`), ['default/myreceiver1', 'shop/second']);
  });

  it('refuses what it cannot convert, naming the document and the field', () => {
    const cases: [string, RegExp][] = [
      ['kind: Deployment\nmetadata: {name: x}\n', /document 1: kind "Deployment" is not one of the tool's/],
      ['kind: Receiver\nmetadata: {name: x}\nspec: {action: restart}\n', /document 1 \(Receiver\/x\): action "restart" is not the tool's only action, quarantine/],
      ['kind: Receiver\nmetadata: {name: x}\nspec: {labelSelector: {matchExpression: [{key: app, operator: gt, values: [1]}]}}\n', /operator "gt" is not one of in, notin, exists, doesnotexist/],
      ['kind: Receiver\nmetadata: {name: x}\nspec: {labelSelector: {matchExpression: [{key: app, operator: in}]}}\n', /operator in needs at least one value/],
      ['kind: Receiver\nmetadata: {name: x}\nspec: {Namespace: [Shop_1]}\n', /Namespace entry "Shop_1" is not a namespace name/],
      ['kind: Receiver\nmetadata: {name: x}\nspec: {groupLabel: ["bad key!"]}\n', /groupLabel entry "bad key!" is not a label key/],
      ['kind: Receiver\nmetadata: {name: x}\nspec: {logFrequency: -5}\n', /logFrequency -5 must be a whole number of seconds/],
      ['kind: Receiver\nmetadata: {name: x}\nspec: {labelSelector: {matchLabels: {app: "a b"}}}\n', /matchLabels.app "a b" is not a label value/],
      ['kind: Receiver\nmetadata: {name: x}\n', /no spec/],
      ['kind: Receiver\nmetadata: {name: x}\nspec: {}\n---\nkind: Receiver\nmetadata: {name: x}\nspec: {}\n', /document 2: a second policy named default\/x/],
      ['', /no Receiver or PolicyDefinition found/],
      ['a: [1, 2\n', /not YAML/],
    ];
    for (const [text, message] of cases) {
      assert.throws(() => convertPolicies(text, { source: 'in.yaml' }), (err: unknown) => err instanceof ConvertError && message.test(err.message), text);
    }
  });
});
