import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { customResourceRules } from './custom-resource-access.ts';
import type { CollectableType } from './types.ts';

const type = (group: string, resource: string, custom: boolean): CollectableType =>
  ({ group, version: 'v1', resource, kind: resource, namespaced: true, custom });

describe('customResourceRules', () => {
  it('grants get and list on exactly the custom types, one rule per group, sorted', () => {
    const rules = customResourceRules([
      type('monitoring.coreos.com', 'servicemonitors', true),
      type('', 'pods', false),
      type('apps', 'deployments', false),
      type('cert-manager.io', 'issuers', true),
      type('monitoring.coreos.com', 'podmonitors', true),
      type('cert-manager.io', 'certificates', true),
      type('metrics.k8s.io', 'pods', false), // aggregated, not a CRD
    ]);
    assert.deepEqual(rules, [
      { apiGroups: ['cert-manager.io'], resources: ['certificates', 'issuers'], verbs: ['get', 'list'] },
      { apiGroups: ['monitoring.coreos.com'], resources: ['podmonitors', 'servicemonitors'], verbs: ['get', 'list'] },
    ]);
  });

  it('grants nothing when there are no custom types (never a wildcard)', () => {
    assert.deepEqual(customResourceRules([type('', 'secrets', false)]), []);
  });
});
