import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatErrors } from '../kube/api/validate.ts';
import { guardPolicyObject, invalidGuardSpecs, validGuardSpecs } from './api.fixtures.ts';
import { errorLogPattern, GuardPolicyApi } from './api.ts';

describe('GuardPolicy validation (the same fixtures the API server judges)', () => {
  for (const fixture of validGuardSpecs) {
    it(`accepts ${fixture.name}`, () => {
      const result = GuardPolicyApi.validate(guardPolicyObject('p', 'ns', fixture.spec));
      assert.ok(result.valid, result.valid ? '' : formatErrors(result.errors));
    });
  }
  for (const fixture of invalidGuardSpecs) {
    it(`refuses ${fixture.name}: ${fixture.field}`, () => {
      const result = GuardPolicyApi.validate(guardPolicyObject('p', 'ns', fixture.spec));
      assert.equal(result.valid, false, 'accepted');
      if (result.valid) return;
      assert.ok(result.errors.some((e) => e.field === fixture.field && fixture.rule.test(e.message)), `expected ${fixture.field}: ${fixture.rule}, got ${formatErrors(result.errors)}`);
    });
  }
});

describe('GuardPolicy defaults', () => {
  it('fills a detector given as {} and the top-level rails', () => {
    const result = GuardPolicyApi.validate(guardPolicyObject('p', 'ns', { targets: { podSelector: {} }, detectors: { crashLoop: {}, errorLogs: {} } }));
    assert.ok(result.valid);
    assert.deepEqual(result.value.spec, {
      targets: { podSelector: {} },
      detectors: { crashLoop: { restarts: 3, window: '10m' }, errorLogs: { pattern: 'error|panic|fatal', ignoreCase: true, lines: 20, window: '1m' } },
      actions: ['Event'],
      cooldown: '5m',
      dryRun: false,
    });
    assert.equal(errorLogPattern(result.value.spec), '(?i:error|panic|fatal)');
    assert.ok(new RegExp(errorLogPattern(result.value.spec)!).test('a PANIC here'));
  });
});

describe('GuardPolicy type', () => {
  it('is crowsnest.dev/v1alpha1, namespaced, guardpolicies', () => {
    assert.deepEqual(GuardPolicyApi.type, { group: 'crowsnest.dev', version: 'v1alpha1', resource: 'guardpolicies', kind: 'GuardPolicy', namespaced: true });
  });
});
