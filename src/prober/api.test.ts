import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatErrors } from '../kube/api/validate.ts';
import { invalidSpecs, proberObject, validSpecs } from './api.fixtures.ts';
import { NetworkProberApi, proberPorts } from './api.ts';

describe('NetworkProber validation (the same fixtures the API server judges)', () => {
  for (const fixture of validSpecs) {
    it(`accepts ${fixture.name}`, () => {
      const result = NetworkProberApi.validate(proberObject('p', 'ns', fixture.spec));
      assert.ok(result.valid, result.valid ? '' : formatErrors(result.errors));
    });
  }
  for (const fixture of invalidSpecs) {
    it(`refuses ${fixture.name}: ${fixture.field}`, () => {
      const result = NetworkProberApi.validate(proberObject('p', 'ns', fixture.spec));
      assert.equal(result.valid, false, 'accepted');
      if (result.valid) return;
      assert.ok(result.errors.some((e) => e.field === fixture.field && fixture.rule.test(e.message)), `expected ${fixture.field}: ${fixture.rule}, got ${formatErrors(result.errors)}`);
    });
  }
});

describe('NetworkProber defaults', () => {
  it('fills what a seed manifest leaves out, keeping its string ports', () => {
    const result = NetworkProberApi.validate(proberObject('p', 'ns', { podSelector: {}, httpPort: '8081' }));
    assert.ok(result.valid);
    assert.deepEqual(result.value.spec, { podSelector: {}, httpPort: '8081', httpPrometheusPort: 19090, pollingPeriod: '10s', timeout: '1s', neighbours: 10 });
    assert.deepEqual(proberPorts(result.value.spec), { http: 8081, prometheus: 19090 });
  });

  it('does not change the object it was given', () => {
    const input = proberObject('p', 'ns', { podSelector: {} });
    const before = structuredClone(input);
    NetworkProberApi.validate(input);
    assert.deepEqual(input, before);
  });
});

describe('NetworkProber type', () => {
  it('is crowsnest.dev/v1alpha1, namespaced, networkprobers', () => {
    assert.deepEqual(NetworkProberApi.type, { group: 'crowsnest.dev', version: 'v1alpha1', resource: 'networkprobers', kind: 'NetworkProber', namespaced: true });
  });
});
