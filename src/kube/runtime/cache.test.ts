import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { INDEX_NAMESPACE, INDEX_OWNER, type IndexFunc, namespaceIndex, Store } from './cache.ts';
import { type KubeObject, objectKey } from '../objects/resources.ts';

const INDEX_APP = 'app';
const byAppLabel: IndexFunc<KubeObject> = (obj) => (obj.metadata?.labels?.app ? [obj.metadata.labels.app] : []);

interface PodSpec {
  readonly namespace?: string;
  readonly rv?: string;
  /** Defaults to the name, so event descriptions read `name@rv` unless a test recreates an object. */
  readonly uid?: string;
  readonly owners?: readonly string[];
  readonly app?: string;
}

function pod(name: string, spec: PodSpec = {}): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      namespace: spec.namespace ?? 'ns',
      name,
      uid: spec.uid ?? name,
      resourceVersion: spec.rv ?? '1',
      ...(spec.app ? { labels: { app: spec.app } } : {}),
      ...(spec.owners ? { ownerReferences: spec.owners.map((uid) => ({ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `rs-${uid}`, uid })) } : {}),
    },
  };
}

function node(name: string): KubeObject {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name, uid: name, resourceVersion: '1' } };
}

/** `uid@resourceVersion`: identifies one state of one object. */
function version(obj: KubeObject): string {
  return `${obj.metadata?.uid}@${obj.metadata?.resourceVersion}`;
}

/** Records handler calls per key, in call order: `add a@1`, `update a@1 → a@2`, `delete a@1 (final state unknown)`. */
function recordEvents(store: Store<KubeObject>): Record<string, string[]> {
  const byKey: Record<string, string[]> = {};
  const record = (obj: KubeObject, text: string): void => {
    const texts = byKey[objectKey(obj)] ?? [];
    texts.push(text);
    byKey[objectKey(obj)] = texts;
  };
  store.subscribe({
    onAdd: (obj) => record(obj, `add ${version(obj)}`),
    onUpdate: (oldObj, newObj) => record(newObj, `update ${version(oldObj)} → ${version(newObj)}`),
    onDelete: (obj, finalStateUnknown) => record(obj, `delete ${version(obj)}${finalStateUnknown ? ' (final state unknown)' : ''}`),
  });
  return byKey;
}

function contents(store: Store<KubeObject>): Record<string, string> {
  return Object.fromEntries(store.list().map((obj) => [objectKey(obj), version(obj)]));
}

function keysByIndex(store: Store<KubeObject>, indexName: string, value: string): string[] {
  return store.byIndex(indexName, value).map(objectKey).sort();
}

describe('Store', () => {
  describe('reads and writes', () => {
    it('keys namespaced objects by namespace/name and cluster-scoped ones by name', () => {
      const store = new Store();
      store.upsert(pod('a', { namespace: 'ns1' }));
      store.upsert(node('n1'));
      assert.deepEqual(store.keys().sort(), ['n1', 'ns1/a']);
      assert.equal(store.size, 2);
      assert.equal(store.get('ns1/a')?.metadata?.name, 'a');
      assert.equal(store.getByName('ns1', 'a')?.metadata?.name, 'a');
      assert.equal(store.getByName(undefined, 'n1')?.kind, 'Node');
      assert.equal(store.get('ns2/a'), undefined);
      assert.deepEqual(store.list().map(objectKey).sort(), ['n1', 'ns1/a']);
    });

    it('upsert of an existing key replaces the object', () => {
      const store = new Store();
      store.upsert(pod('a', { rv: '1' }));
      store.upsert(pod('a', { rv: '2' }));
      assert.equal(store.size, 1);
      assert.equal(store.get('ns/a')?.metadata?.resourceVersion, '2');
    });

    it('delete removes the object by key, whatever state of it is passed', () => {
      const store = new Store();
      store.upsert(pod('a', { rv: '1' }));
      store.upsert(pod('b'));
      store.delete(pod('a', { rv: '7' }));
      assert.deepEqual(store.keys(), ['ns/b']);
    });

    it('deleting an object that is not there changes nothing and notifies nobody', () => {
      const store = new Store();
      store.upsert(pod('a'));
      const events = recordEvents(store);
      store.delete(pod('b'));
      assert.deepEqual(store.keys(), ['ns/a']);
      assert.deepEqual(events, {});
    });
  });

  describe('indexes', () => {
    function filledStore(): Store<KubeObject> {
      const store = new Store({ indexers: { [INDEX_APP]: byAppLabel, [INDEX_NAMESPACE]: namespaceIndex } });
      store.upsert(pod('a', { namespace: 'ns1', owners: ['o1'], app: 'web' }));
      store.upsert(pod('b', { namespace: 'ns1', owners: ['o1', 'o2'] }));
      store.upsert(pod('c', { namespace: 'ns2', owners: ['o2'], app: 'web' }));
      store.upsert(pod('d', { namespace: 'ns2', app: 'db' }));
      store.upsert(node('n1'));
      return store;
    }

    const lookups = [
      { index: INDEX_NAMESPACE, value: 'ns1', keys: ['ns1/a', 'ns1/b'] },
      { index: INDEX_NAMESPACE, value: 'ns2', keys: ['ns2/c', 'ns2/d'] },
      { index: INDEX_NAMESPACE, value: '', keys: [] }, // cluster-scoped objects are in no namespace
      { index: INDEX_OWNER, value: 'o1', keys: ['ns1/a', 'ns1/b'] },
      { index: INDEX_OWNER, value: 'o2', keys: ['ns1/b', 'ns2/c'] },
      { index: INDEX_APP, value: 'web', keys: ['ns1/a', 'ns2/c'] },
      { index: INDEX_APP, value: 'db', keys: ['ns2/d'] },
      { index: INDEX_APP, value: 'unknown', keys: [] },
    ];
    for (const { index, value, keys } of lookups) {
      it(`byIndex(${index}, ${JSON.stringify(value)}) finds ${keys.length ? keys.join(', ') : 'nothing'}`, () => {
        assert.deepEqual(keysByIndex(filledStore(), index, value), keys);
      });
    }

    it('an update moves the object from its old index values to its new ones', () => {
      const store = filledStore();
      store.upsert(pod('a', { namespace: 'ns1', rv: '2', owners: ['o3'], app: 'db' }));
      assert.deepEqual(keysByIndex(store, INDEX_OWNER, 'o1'), ['ns1/b']);
      assert.deepEqual(keysByIndex(store, INDEX_OWNER, 'o3'), ['ns1/a']);
      assert.deepEqual(keysByIndex(store, INDEX_APP, 'web'), ['ns2/c']);
      assert.deepEqual(keysByIndex(store, INDEX_APP, 'db'), ['ns1/a', 'ns2/d']);
      assert.equal(store.byIndex(INDEX_NAMESPACE, 'ns1').find((o) => o.metadata?.name === 'a')?.metadata?.resourceVersion, '2', 'the index serves the new state');
    });

    it('delete removes the object from every index', () => {
      const store = filledStore();
      store.delete(pod('b', { namespace: 'ns1' }));
      assert.deepEqual(keysByIndex(store, INDEX_NAMESPACE, 'ns1'), ['ns1/a']);
      assert.deepEqual(keysByIndex(store, INDEX_OWNER, 'o1'), ['ns1/a']);
      assert.deepEqual(keysByIndex(store, INDEX_OWNER, 'o2'), ['ns2/c']);
    });

    it('an object listed twice under one index value appears once and leaves no trace when deleted', () => {
      const store = new Store();
      store.upsert(pod('a', { owners: ['o1', 'o1'] }));
      assert.deepEqual(keysByIndex(store, INDEX_OWNER, 'o1'), ['ns/a']);
      store.delete(pod('a'));
      assert.deepEqual(keysByIndex(store, INDEX_OWNER, 'o1'), []);
    });

    it('byIndex on an unknown index throws', () => {
      assert.throws(() => new Store().byIndex('no-such-index', 'x'), /no index named no-such-index/);
      assert.throws(() => new Store().byIndex(INDEX_NAMESPACE, 'x'), /no index named namespace/, 'the namespace index only when asked for');
    });

    it('custom indexers come in addition to the built-in ones', () => {
      const store = new Store({ indexers: { [INDEX_APP]: byAppLabel, [INDEX_NAMESPACE]: namespaceIndex } });
      store.upsert(pod('a', { owners: ['o1'], app: 'web' }));
      assert.deepEqual(keysByIndex(store, INDEX_NAMESPACE, 'ns'), ['ns/a']);
      assert.deepEqual(keysByIndex(store, INDEX_OWNER, 'o1'), ['ns/a']);
      assert.deepEqual(keysByIndex(store, INDEX_APP, 'web'), ['ns/a']);
    });
  });

  describe('handlers', () => {
    it('notify onAdd, then onUpdate with the old and new object, then onDelete with finalStateUnknown false', () => {
      const store = new Store();
      const events = recordEvents(store);
      store.upsert(pod('a', { rv: '1' }));
      store.upsert(pod('a', { rv: '2' }));
      store.delete(pod('a', { rv: '3' })); // the DELETED event carries the final state
      assert.deepEqual(events, { 'ns/a': ['add a@1', 'update a@1 → a@2', 'delete a@3'] });
    });

    it('run after the store has changed', () => {
      const store = new Store();
      const seen: Array<string | undefined> = [];
      store.subscribe({
        onAdd: (obj) => seen.push(`add: ${store.get(objectKey(obj))?.metadata?.resourceVersion}`),
        onUpdate: (_old, obj) => seen.push(`update: ${store.get(objectKey(obj))?.metadata?.resourceVersion}`),
        onDelete: (obj) => seen.push(`delete: ${store.get(objectKey(obj)) === undefined ? 'gone' : 'still there'}`),
      });
      store.upsert(pod('a', { rv: '1' }));
      store.upsert(pod('a', { rv: '2' }));
      store.delete(pod('a'));
      assert.deepEqual(seen, ['add: 1', 'update: 2', 'delete: gone']);
    });

    it('every subscriber is notified; an unsubscribed one no longer is; existing objects are not replayed', () => {
      const store = new Store();
      store.upsert(pod('existing'));
      const first = recordEvents(store);
      const secondAdds: string[] = [];
      const unsubscribe = store.subscribe({ onAdd: (obj) => secondAdds.push(objectKey(obj)) });
      store.upsert(pod('a'));
      unsubscribe();
      store.upsert(pod('b'));
      assert.deepEqual(first, { 'ns/a': ['add a@1'], 'ns/b': ['add b@1'] });
      assert.deepEqual(secondAdds, ['ns/a']);
    });
  });

  describe('replace', () => {
    const cases: Array<{ name: string; before: KubeObject[]; after: KubeObject[]; events: Record<string, string[]>; contents: Record<string, string> }> = [
      {
        name: 'into an empty store adds every object',
        before: [],
        after: [pod('a'), pod('b')],
        events: { 'ns/a': ['add a@1'], 'ns/b': ['add b@1'] },
        contents: { 'ns/a': 'a@1', 'ns/b': 'b@1' },
      },
      {
        name: 'with unchanged objects (same uid and resourceVersion) notifies nothing',
        before: [pod('a', { rv: '3' }), node('n1')],
        after: [pod('a', { rv: '3' }), node('n1')],
        events: {},
        contents: { 'ns/a': 'a@3', n1: 'n1@1' },
      },
      {
        name: 'deletes objects missing from the new list with finalStateUnknown, passing their last known state',
        before: [pod('a'), pod('b', { rv: '4' })],
        after: [pod('a')],
        events: { 'ns/b': ['delete b@4 (final state unknown)'] },
        contents: { 'ns/a': 'a@1' },
      },
      {
        name: 'updates objects whose resourceVersion changed',
        before: [pod('a', { rv: '1' })],
        after: [pod('a', { rv: '2' })],
        events: { 'ns/a': ['update a@1 → a@2'] },
        contents: { 'ns/a': 'a@2' },
      },
      {
        name: 'treats a same-name object with a new uid as a delete (final state unknown) followed by an add',
        before: [pod('a', { uid: 'a', rv: '1' })],
        after: [pod('a', { uid: 'a2', rv: '9' })],
        events: { 'ns/a': ['delete a@1 (final state unknown)', 'add a2@9'] },
        contents: { 'ns/a': 'a2@9' },
      },
      {
        name: 'treats a new uid as delete + add even when the resourceVersion is the same',
        before: [pod('a', { uid: 'a', rv: '1' })],
        after: [pod('a', { uid: 'a2', rv: '1' })],
        events: { 'ns/a': ['delete a@1 (final state unknown)', 'add a2@1'] },
        contents: { 'ns/a': 'a2@1' },
      },
      {
        name: 'handles all of these in one relist',
        before: [pod('keep', { rv: '1' }), pod('change', { rv: '1' }), pod('gone', { rv: '1' }), pod('recreated', { uid: 'r1', rv: '1' })],
        after: [pod('keep', { rv: '1' }), pod('change', { rv: '5' }), pod('recreated', { uid: 'r2', rv: '6' }), pod('new', { rv: '7' })],
        events: {
          'ns/change': ['update change@1 → change@5'],
          'ns/gone': ['delete gone@1 (final state unknown)'],
          'ns/recreated': ['delete r1@1 (final state unknown)', 'add r2@6'],
          'ns/new': ['add new@7'],
        },
        contents: { 'ns/keep': 'keep@1', 'ns/change': 'change@5', 'ns/recreated': 'r2@6', 'ns/new': 'new@7' },
      },
    ];
    for (const { name, before, after, events: expectedEvents, contents: expectedContents } of cases) {
      it(name, () => {
        const store = new Store();
        for (const obj of before) store.upsert(obj);
        const events = recordEvents(store);
        store.replace(after);
        assert.deepEqual(events, expectedEvents);
        assert.deepEqual(contents(store), expectedContents);
      });
    }

    it('keeps the indexes in step with the new content', () => {
      const store = new Store({ indexers: { [INDEX_NAMESPACE]: namespaceIndex } });
      for (const obj of [pod('gone', { owners: ['o1'] }), pod('recreated', { uid: 'r1', owners: ['o1'] }), pod('change', { owners: ['o1'] })]) store.upsert(obj);
      store.replace([pod('recreated', { uid: 'r2', owners: ['o2'] }), pod('change', { rv: '2', owners: ['o2'] })]);
      assert.deepEqual(keysByIndex(store, INDEX_OWNER, 'o1'), []);
      assert.deepEqual(keysByIndex(store, INDEX_OWNER, 'o2'), ['ns/change', 'ns/recreated']);
      assert.deepEqual(keysByIndex(store, INDEX_NAMESPACE, 'ns'), ['ns/change', 'ns/recreated']);
    });

    const syncCases = [
      { name: 'sets hasSynced', objects: [pod('a')] },
      { name: 'sets hasSynced even when the list is empty', objects: [] },
    ];
    for (const { name, objects } of syncCases) {
      it(name, () => {
        const store = new Store();
        store.upsert(pod('from-a-watch'));
        assert.equal(store.hasSynced, false, 'only a complete list syncs the store');
        store.replace(objects);
        assert.equal(store.hasSynced, true);
      });
    }
  });
});
