/**
 * The generated CRDs on a real API server judge every fixture as our validator does: valid specs
 * are created (dry run) with the same defaults, invalid ones are refused with a message that names
 * the field and the rule. Requests ask for strict field validation, as kubectl does by default.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { guardPolicyObject, invalidGuardSpecs, validGuardSpecs } from '../../src/guard/api.fixtures.ts';
import { GuardPolicyApi } from '../../src/guard/api.ts';
import { convertPolicies } from '../../src/guard/convert.ts';
import type { ApiDefinition } from '../../src/kube/api/define.ts';
import type { InvalidFixture, ValidFixture } from '../../src/kube/api/fixtures.ts';
import { invalidSpecs, proberObject, validSpecs } from '../../src/prober/api.fixtures.ts';
import { NetworkProberApi } from '../../src/prober/api.ts';
import { installCrds } from './crds.ts';
import { newNamespace, testbed } from './testbed.ts';

interface Judged {
  readonly api: ApiDefinition;
  readonly valid: readonly ValidFixture[];
  readonly invalid: readonly InvalidFixture[];
  readonly object: (name: string, namespace: string, spec: Record<string, unknown>) => Record<string, unknown>;
}

function judgeFixtures({ api, valid, invalid, object }: Judged, namespaceOf: () => string): void {
  const create = async (spec: Record<string, unknown>) => {
    const plane = await testbed();
    const res = await plane.request('POST', `/apis/${api.apiVersion}/namespaces/${namespaceOf()}/${api.plural}?dryRun=All&fieldValidation=Strict`, object('fixture', namespaceOf(), spec));
    return { status: res.status, body: JSON.parse(res.body) as { message?: string; spec?: unknown } };
  };
  for (const fixture of valid) {
    it(`accepts ${fixture.name}, defaulting as our validator does`, async () => {
      const { status, body } = await create(fixture.spec);
      assert.equal(status, 201, body.message);
      const ours = api.validate(object('fixture', namespaceOf(), fixture.spec));
      assert.ok(ours.valid);
      assert.deepEqual(body.spec, ours.value.spec);
    });
  }
  for (const fixture of invalid) {
    it(`refuses ${fixture.name}, naming ${fixture.field} and the rule`, async () => {
      const { status, body } = await create(fixture.spec);
      assert.ok(status === 422 || status === 400, `status ${status}`);
      const message = body.message ?? '';
      assert.ok(message.includes(fixture.field), `"${message}" does not name ${fixture.field}`);
      assert.match(message, fixture.rule);
      assert.equal(api.validate(object('fixture', namespaceOf(), fixture.spec)).valid, false);
    });
  }
}

describe('NetworkProber CRD on the API server', () => {
  let namespace = '';
  before(async () => {
    await installCrds();
    namespace = await newNamespace('crd-validation');
  });

  judgeFixtures({ api: NetworkProberApi, valid: validSpecs, invalid: invalidSpecs, object: proberObject }, () => namespace);

  it('shows the printer columns in kubectl get', async () => {
    const plane = await testbed();
    const created = await plane.request('POST', `/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/networkprobers`, proberObject('shown', namespace, { podSelector: {} }));
    assert.equal(created.status, 201, created.body);
    const table = await plane.kubectl(['-n', namespace, 'get', 'np', '-o', 'wide']);
    assert.match(table.split('\n')[0]!, /^NAME\s+READY\s+INJECTED\s+REACHABLE\s+UNREACHABLE\s+PERIOD\s+AGE/);
    assert.match(table, /shown\s+.*10s/);
  });
});

describe('GuardPolicy CRD on the API server', () => {
  let namespace = '';
  before(async () => {
    await installCrds();
    namespace = await newNamespace('crd-validation-guard');
  });

  judgeFixtures({ api: GuardPolicyApi, valid: validGuardSpecs, invalid: invalidGuardSpecs, object: guardPolicyObject }, () => namespace);

  it("takes what `crowsnest guard convert` makes of the policy framework's Receiver, unchanged", async () => {
    const plane = await testbed();
    const { policies } = convertPolicies(`
kind: Receiver
metadata: {name: converted, labels: {target: server}}
spec:
  Namespace: [${namespace}]
  labelSelector:
    matchLabels: {tier: api}
    matchExpression:
      - {key: app, operator: in, values: ['title-api']}
      - {key: version, operator: notin, values: ['v0']}
  action: quarantine
  groupLabel: [app]
  logFrequency: 30
`);
    assert.equal(policies.length, 1);
    const res = await plane.request('POST', `/apis/${GuardPolicyApi.apiVersion}/namespaces/${namespace}/${GuardPolicyApi.plural}?dryRun=All&fieldValidation=Strict`, policies[0]);
    assert.equal(res.status, 201, res.body);
    const stored = JSON.parse(res.body) as { spec: Record<string, unknown> };
    const ours = GuardPolicyApi.validate(policies[0]);
    assert.ok(ours.valid);
    assert.deepEqual(stored.spec, ours.value.spec);
  });
});
