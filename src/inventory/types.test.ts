import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CUSTOM_RESOURCES_SELECTOR,
  DEFAULT_TYPE_SELECTORS,
  parseTypeSelectors,
  selectTypes,
  TypeSelectorError,
  typeName,
  type CollectableType,
} from './types.ts';

const type = (group: string, resource: string, kind: string, extra: Partial<CollectableType> = {}): CollectableType => ({
  group,
  version: 'v1',
  resource,
  kind,
  namespaced: true,
  custom: false,
  ...extra,
});

/** What discovery returns on a typical cluster, deliberately not in name order. */
const discovered: readonly CollectableType[] = [
  type('apps', 'deployments', 'Deployment'),
  type('', 'pods', 'Pod'),
  type('example.com', 'widgets', 'Widget', { custom: true }),
  type('', 'secrets', 'Secret'),
  type('events.k8s.io', 'events', 'Event'),
  type('', 'events', 'Event'),
  type('metrics.k8s.io', 'pods', 'PodMetrics', { version: 'v1beta1' }),
  type('', 'namespaces', 'Namespace', { namespaced: false }),
  type('apps', 'statefulsets', 'StatefulSet'),
];

function names(selection: { selected: readonly CollectableType[] }): string[] {
  return selection.selected.map(typeName);
}

function select(base: readonly string[], add: readonly string[] = [], remove: readonly string[] = []) {
  return selectTypes(discovered, { base, add, remove });
}

describe('typeName', () => {
  it('is the bare resource for the core group and resource.group otherwise', () => {
    assert.equal(typeName({ group: '', resource: 'pods' }), 'pods');
    assert.equal(typeName({ group: 'apps', resource: 'deployments' }), 'deployments.apps');
  });
});

describe('parseTypeSelectors', () => {
  it('trims, lower-cases, drops empty entries and duplicates, keeping first-seen order', () => {
    assert.deepEqual(
      parseTypeSelectors([' Pods ', 'DEPLOYMENTS.Apps', '', '   ', 'pods', 'Apps/*', 'core/*', '*', 'CustomResources', 'deployments.apps']),
      ['pods', 'deployments.apps', 'apps/*', 'core/*', '*', 'customresources'],
    );
  });

  it('accepts an empty list', () => {
    assert.deepEqual(parseTypeSelectors([]), []);
  });

  const subresourceHint = 'subresources (like pods/log) are not collected; use "group/*" for a whole group';
  const genericHint = 'expected "resource", "resource.group", "group/*", "customresources" or "*"';
  const rejected: { selector: string; hint: string }[] = [
    { selector: 'pods/log', hint: subresourceHint },
    { selector: 'deployments.apps/scale', hint: subresourceHint },
    { selector: '*.apps', hint: genericHint },
    { selector: 'config maps', hint: genericHint },
    { selector: 'pods;', hint: genericHint },
    { selector: '.', hint: genericHint },
    { selector: 'apps.', hint: genericHint },
  ];
  for (const { selector, hint } of rejected) {
    it(`rejects "${selector}" with a hint on what to write instead`, () => {
      assert.throws(
        () => parseTypeSelectors(['pods', selector]),
        (err: unknown) => {
          assert.ok(err instanceof TypeSelectorError);
          assert.equal(err.name, 'TypeSelectorError');
          assert.equal(err.message, `invalid resource type "${selector}": ${hint}`);
          return true;
        },
      );
    });
  }

  it('names the selector as the user wrote it, before normalizing', () => {
    assert.throws(() => parseTypeSelectors(['  Pods/Log ']), { message: /^invalid resource type " {2}Pods\/Log ": subresources/ });
  });
});

describe('selectTypes', () => {
  it('resolves a bare "events" to the core group only, not events.events.k8s.io', () => {
    const selection = select(['events']);
    assert.deepEqual(names(selection), ['events']);
    assert.equal(selection.selected[0]?.group, '');
    assert.deepEqual(selection.unmatched, []);
  });

  it('resolves a bare "pods" to core pods, not the aggregated metrics pods', () => {
    assert.deepEqual(names(select(['pods'])), ['pods']);
  });

  it('picks the non-core type when the core group does not serve that name', () => {
    assert.deepEqual(names(select(['widgets', 'deployments'])), ['deployments.apps', 'widgets.example.com']);
  });

  it('picks exactly one group with resource.group', () => {
    assert.deepEqual(names(select(['events.events.k8s.io'])), ['events.events.k8s.io']);
    assert.deepEqual(names(select(['pods.metrics.k8s.io'])), ['pods.metrics.k8s.io']);
  });

  it('picks every type of a group with group/*', () => {
    assert.deepEqual(names(select(['apps/*'])), ['deployments.apps', 'statefulsets.apps']);
  });

  it('picks the core group with core/*', () => {
    assert.deepEqual(names(select(['core/*'])), ['events', 'namespaces', 'pods', 'secrets']);
  });

  it('picks only CRD-served types with customresources, not aggregated APIs', () => {
    const selection = select([CUSTOM_RESOURCES_SELECTOR]);
    assert.deepEqual(names(selection), ['widgets.example.com']);
  });

  it('picks everything with *, sorted by type name', () => {
    assert.deepEqual(names(select(['*'])), [
      'deployments.apps',
      'events',
      'events.events.k8s.io',
      'namespaces',
      'pods',
      'pods.metrics.k8s.io',
      'secrets',
      'statefulsets.apps',
      'widgets.example.com',
    ]);
  });

  it('adds the add selectors to the base', () => {
    assert.deepEqual(names(select(['pods'], ['secrets', 'apps/*'])), ['deployments.apps', 'pods', 'secrets', 'statefulsets.apps']);
  });

  it('lets a removal win over an addition of the same type', () => {
    assert.deepEqual(names(select(['pods'], ['secrets'], ['secrets'])), ['pods']);
  });

  it('removes through group and keyword selectors too', () => {
    assert.deepEqual(names(select(['*'], [], ['core/*', 'customresources', 'pods.metrics.k8s.io'])), [
      'deployments.apps',
      'events.events.k8s.io',
      'statefulsets.apps',
    ]);
  });

  it('applies the core-first rule to removals: removing "events" keeps events.events.k8s.io', () => {
    assert.deepEqual(names(select(['*'], [], ['events', 'pods', 'apps/*', 'widgets.example.com', 'namespaces', 'secrets'])), [
      'events.events.k8s.io',
      'pods.metrics.k8s.io',
    ]);
  });

  it('reports base and add selectors that match nothing, once each, without failing', () => {
    const selection = select(['pods', 'gizmos', 'batch/*'], ['gizmos', 'cronjobs.batch'], ['nothing-here']);
    assert.deepEqual(names(selection), ['pods']);
    assert.deepEqual(selection.unmatched, ['gizmos', 'batch/*', 'cronjobs.batch']);
  });

  it('never reports customresources as unmatched, even on a cluster without CRDs', () => {
    const builtIns = discovered.filter((t) => !t.custom);
    const selection = selectTypes(builtIns, { base: ['customresources', 'pods'], add: [], remove: [] });
    assert.deepEqual(names(selection), ['pods']);
    assert.deepEqual(selection.unmatched, []);
  });

  it('returns nothing and reports nothing for an empty discovery with only customresources', () => {
    assert.deepEqual(selectTypes([], { base: ['customresources'], add: [], remove: [] }), { selected: [], unmatched: [] });
  });

  it('does not mutate the discovered list', () => {
    const copy = [...discovered];
    select(['*']);
    assert.deepEqual(discovered, copy);
  });
});

describe('DEFAULT_TYPE_SELECTORS', () => {
  it('are all valid selectors, without duplicates', () => {
    assert.deepEqual(parseTypeSelectors(DEFAULT_TYPE_SELECTORS), [...DEFAULT_TYPE_SELECTORS]);
  });

  it('leave out Secrets and Events but include workloads and custom resources', () => {
    for (const excluded of ['secrets', 'events', 'events.events.k8s.io']) {
      assert.ok(!DEFAULT_TYPE_SELECTORS.includes(excluded), `${excluded} must not be collected by default`);
    }
    // k8s-collector's defaults (collector/config/config.go) that are not subresources or Argo CRs
    for (const included of ['pods', 'deployments.apps', 'namespaces', 'customresources', 'endpoints', 'leases.coordination.k8s.io', 'flowschemas.flowcontrol.apiserver.k8s.io', 'prioritylevelconfigurations.flowcontrol.apiserver.k8s.io']) {
      assert.ok(DEFAULT_TYPE_SELECTORS.includes(included), `${included} must be collected by default`);
    }
  });

  it('select no secrets or events from a discovered cluster', () => {
    const selection = selectTypes(discovered, { base: DEFAULT_TYPE_SELECTORS, add: [], remove: [] });
    assert.deepEqual(names(selection), ['deployments.apps', 'namespaces', 'pods', 'statefulsets.apps', 'widgets.example.com']);
  });
});
