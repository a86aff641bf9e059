/**
 * The reflector and cache against a real kube-apiserver: paging, ordered watch events, recovery
 * from an apiserver crash, watch expiry (410) after etcd compaction and the relist at the last
 * resourceVersion seen, its fallback when the server cannot serve that one, streaming lists
 * (WatchList), and the silent-watch watchdog.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Store } from '../../src/kube/runtime/cache.ts';
import { KubeApiError, KubeClient } from '../../src/kube/client/client.ts';
import { Informer } from '../../src/kube/runtime/informer.ts';
import { ExponentialBackoff } from '../../src/kube/runtime/ratelimiter.ts';
import { KubeListerWatcher, type ListerWatcher, Reflector } from '../../src/kube/runtime/reflector.ts';
import { collectionPath, type KubeObject, objectKey, type ResourceType, Resources } from '../../src/kube/objects/resources.ts';
import { TcpProxy } from './tcp-proxy.ts';
import { mapConcurrent } from '../../src/kube/concurrency.ts';
import { adminKubeConfig, eventually, newNamespace, testbed } from './testbed.ts';

interface Recorded {
  readonly op: 'add' | 'update' | 'delete';
  readonly name: string;
  readonly finalStateUnknown?: boolean;
}

function record<T extends KubeObject>(informer: Informer<T>): Recorded[] {
  const events: Recorded[] = [];
  informer.on({
    onAdd: (o) => events.push({ op: 'add', name: o.metadata!.name! }),
    onUpdate: (_old, o) => events.push({ op: 'update', name: o.metadata!.name! }),
    onDelete: (o, finalStateUnknown) => events.push({ op: 'delete', name: o.metadata!.name!, finalStateUnknown }),
  });
  return events;
}

async function create(client: KubeClient, type: ResourceType, namespace: string, name: string, data: Record<string, unknown> = {}): Promise<void> {
  const body = type.resource === 'configmaps'
    ? { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data }
    : { apiVersion: 'v1', kind: 'PodTemplate', metadata: { name, namespace }, template: { metadata: { labels: data }, spec: { containers: [{ name: 'c', image: 'busybox' }] } } };
  await client.json(collectionPath(type, namespace), { method: 'POST', body });
}

async function remove(client: KubeClient, type: ResourceType, namespace: string, name: string): Promise<void> {
  await client.json(`${collectionPath(type, namespace)}/${name}`, { method: 'DELETE' });
}

async function patchLabel(client: KubeClient, type: ResourceType, namespace: string, name: string, value: string): Promise<void> {
  await client.json(`${collectionPath(type, namespace)}/${name}`, {
    method: 'PATCH',
    contentType: 'application/merge-patch+json',
    body: { metadata: { labels: { step: value } } },
  });
}

/** name → resourceVersion of what the server has now. */
async function serverState(client: KubeClient, type: ResourceType, namespace: string): Promise<Map<string, string>> {
  const list = await client.json<{ items: KubeObject[] }>(collectionPath(type, namespace));
  return new Map(list.items.map((o) => [o.metadata!.name!, o.metadata!.resourceVersion!]));
}

function cacheState<T extends KubeObject>(informer: Informer<T>): Map<string, string> {
  return new Map(informer.store.list().map((o) => [o.metadata!.name!, o.metadata!.resourceVersion!]));
}

async function converged<T extends KubeObject>(informer: Informer<T>, client: KubeClient, type: ResourceType, namespace: string): Promise<boolean> {
  const server = await serverState(client, type, namespace);
  const cache = cacheState(informer);
  return server.size === cache.size && [...server].every(([name, rv]) => cache.get(name) === rv);
}

describe('reflector on a real apiserver', () => {
  let admin: KubeClient;
  before(async () => {
    admin = new KubeClient(await adminKubeConfig());
  });
  after(async () => {
    await admin.close();
  });

  it('lists more than 1,000 objects across several pages, then sees adds, updates and deletes in order', async () => {
    const namespace = await newNamespace('reflector-paging');
    const names = Array.from({ length: 1_200 }, (_, i) => `cm-${String(i).padStart(4, '0')}`);
    await mapConcurrent(names, 16, (name) => create(admin, Resources.configMaps, namespace, name, { i: name }));

    const controller = new AbortController();
    const informer = new Informer({ client: admin, type: Resources.configMaps, namespace, pageSize: 500 });
    const events = record(informer);
    const running = informer.run(controller.signal);
    try {
      await informer.waitForSync(controller.signal);
      // 1,200 ConfigMaps (+ kube-root-ca.crt) at 500 a page: three pages.
      assert.ok(informer.reflector.stats.listPages >= 3, `expected >= 3 pages, got ${informer.reflector.stats.listPages}`);
      for (const name of names) assert.ok(informer.store.getByName(namespace, name), `${name} missing from the cache`);
      assert.equal(events.filter((e) => e.op === 'add').length, informer.store.size);

      events.length = 0;
      await create(admin, Resources.configMaps, namespace, 'late');
      await patchLabel(admin, Resources.configMaps, namespace, 'late', '1');
      await patchLabel(admin, Resources.configMaps, namespace, 'late', '2');
      await remove(admin, Resources.configMaps, namespace, 'late');
      await remove(admin, Resources.configMaps, namespace, 'cm-0000');
      await eventually('five events', () => events.length >= 5, 10_000);
      assert.deepEqual(events, [
        { op: 'add', name: 'late' },
        { op: 'update', name: 'late' },
        { op: 'update', name: 'late' },
        { op: 'delete', name: 'late', finalStateUnknown: false },
        { op: 'delete', name: 'cm-0000', finalStateUnknown: false },
      ]);
      assert.ok(await converged(informer, admin, Resources.configMaps, namespace));
      assert.equal(informer.store.getByName(namespace, 'cm-0001')?.metadata?.managedFields, undefined, 'managedFields are stripped before caching');
      assert.equal(informer.store.getByName(namespace, 'cm-0001')?.kind, 'ConfigMap', 'list items get their kind');
    } finally {
      controller.abort();
      await running;
    }
  });

  it('converges to the exact server state after kube-apiserver is killed with SIGKILL and restarted', async () => {
    const plane = await testbed();
    const namespace = await newNamespace('reflector-crash');
    const names = Array.from({ length: 60 }, (_, i) => `cm-${i}`);
    await mapConcurrent(names, 8, (name) => create(admin, Resources.configMaps, namespace, name));

    const watcher = new KubeClient(await adminKubeConfig());
    const controller = new AbortController();
    const informer = new Informer({ client: watcher, type: Resources.configMaps, namespace });
    const events = record(informer);
    const running = informer.run(controller.signal);
    try {
      await informer.waitForSync(controller.signal);
      await plane.killApiServer();
      await plane.startApiServer();
      // Changes made right after the restart, while the reflector is still reconnecting.
      const deleted = names.slice(0, 20);
      await mapConcurrent(deleted, 8, (name) => remove(admin, Resources.configMaps, namespace, name));
      await mapConcurrent(names.slice(20, 30), 8, (name) => patchLabel(admin, Resources.configMaps, namespace, name, 'after-restart'));
      await mapConcurrent(['new-1', 'new-2', 'new-3'], 3, (name) => create(admin, Resources.configMaps, namespace, name));

      await eventually('cache equals server state', () => converged(informer, watcher, Resources.configMaps, namespace), 60_000);
      for (const name of deleted) {
        assert.ok(events.some((e) => e.op === 'delete' && e.name === name), `no delete seen for ${name}`);
        assert.equal(informer.store.getByName(namespace, name), undefined);
      }
    } finally {
      controller.abort();
      await running;
      await watcher.close();
    }
  });

  it('relists after its watch expires (410 Gone) because etcd was compacted while it was cut off', async () => {
    const plane = await testbed();
    const namespace = await newNamespace('reflector-gone');
    const type = Resources.podTemplates; // served without the watch cache: watches read etcd
    const names = Array.from({ length: 20 }, (_, i) => `pt-${i}`);
    await mapConcurrent(names, 8, (name) => create(admin, type, namespace, name));

    const proxy = await TcpProxy.start(plane.ports.apiserver, plane.host);
    const watcher = new KubeClient(await adminKubeConfig({ port: proxy.port }));
    const controller = new AbortController();
    const informer = new Informer({ client: watcher, type, namespace });
    const events = record(informer);
    const running = informer.run(controller.signal);
    try {
      await informer.waitForSync(controller.signal);
      const relistsBefore = informer.reflector.stats.relists;
      proxy.cut();
      await mapConcurrent(names.slice(0, 5), 5, (name) => remove(admin, type, namespace, name));
      for (let i = 0; i < 10; i++) await patchLabel(admin, type, namespace, 'pt-10', String(i));
      await create(admin, type, namespace, 'pt-new');
      await plane.compactEtcd();
      proxy.restore();

      await eventually('a relist after 410', () => informer.reflector.stats.relists > relistsBefore, 60_000);
      await eventually('cache equals server state', () => converged(informer, watcher, type, namespace), 30_000);
      for (const name of names.slice(0, 5)) {
        assert.ok(events.some((e) => e.op === 'delete' && e.name === name && e.finalStateUnknown === true), `delete of ${name} inferred from the relist`);
      }
    } finally {
      controller.abort();
      await running;
      await watcher.close();
      await proxy.close();
    }
  });

  it('restarts a watch that went silent (watchdog) and resumes from its last resourceVersion', async () => {
    const plane = await testbed();
    const namespace = await newNamespace('reflector-silent');
    await create(admin, Resources.configMaps, namespace, 'before');

    const proxy = await TcpProxy.start(plane.ports.apiserver, plane.host);
    const watcher = new KubeClient(await adminKubeConfig({ port: proxy.port }));
    const controller = new AbortController();
    const informer = new Informer({ client: watcher, type: Resources.configMaps, namespace, watchIdleTimeoutMs: 1_500 });
    const running = informer.run(controller.signal);
    try {
      await informer.waitForSync(controller.signal);
      const watchesBefore = informer.reflector.stats.watches;
      const listsBefore = informer.reflector.stats.lists;
      // The list's pooled connection plus the watch's own: silence both once the watch is up.
      await eventually('the watch connection is open', () => proxy.openConnections >= 2, 10_000);
      proxy.blackholeExisting();
      await create(admin, Resources.configMaps, namespace, 'during-silence');
      await eventually('the change arrives over a new watch', () => informer.store.getByName(namespace, 'during-silence') !== undefined, 20_000);
      assert.ok(informer.reflector.stats.watches > watchesBefore, 'a new watch was opened');
      assert.equal(informer.reflector.stats.lists, listsBefore, 'resumed from the last resourceVersion without relisting');
      assert.equal(objectKey(informer.store.getByName(namespace, 'before')!), `${namespace}/before`);
    } finally {
      controller.abort();
      await running;
      await watcher.close();
      await proxy.close();
    }
  });

  /** A lister-watcher on the real server that records the resourceVersion of each first list page. */
  function recording(lw: KubeListerWatcher, lists: string[], rewrite: (resourceVersion: string) => string = (rv) => rv): ListerWatcher<KubeObject> {
    return {
      list: (options) => {
        if (!options.continueToken) lists.push(rewrite(options.resourceVersion ?? ''));
        const resourceVersion = rewrite(options.resourceVersion ?? '');
        return lw.list({ ...options, ...(resourceVersion ? { resourceVersion } : {}) });
      },
      watch: (options, onEvent) => lw.watch(options, onEvent),
    };
  }

  function reflectorOn(listerWatcher: ListerWatcher<KubeObject>): { reflector: Reflector<KubeObject>; store: Store } {
    const store = new Store();
    const reflector = new Reflector({ name: 'test', listerWatcher, store, backoff: new ExponentialBackoff({ initialMs: 200, maxMs: 2_000, jitter: 0 }) });
    return { reflector, store };
  }

  it('relists after its watch expired at the last resourceVersion it saw, which the server serves though etcd was compacted past it', async () => {
    const plane = await testbed();
    const namespace = await newNamespace('reflector-relist-rv');
    const type = Resources.podTemplates; // served without the watch cache: watches read etcd
    await mapConcurrent(['pt-0', 'pt-1', 'pt-2'], 3, (name) => create(admin, type, namespace, name));
    const proxy = await TcpProxy.start(plane.ports.apiserver, plane.host);
    const watcher = new KubeClient(await adminKubeConfig({ port: proxy.port }));
    const lists: string[] = [];
    const { reflector, store } = reflectorOn(recording(new KubeListerWatcher({ client: watcher, type, namespace }), lists));
    const controller = new AbortController();
    const running = reflector.run(controller.signal);
    try {
      await eventually('synced', () => store.hasSynced, 20_000);
      await create(admin, type, namespace, 'pt-seen');
      await eventually('the watch saw pt-seen', () => store.getByName(namespace, 'pt-seen') !== undefined, 10_000);
      const lastSeen = (reflector.state as { resourceVersion: string }).resourceVersion;
      proxy.cut();
      await remove(admin, type, namespace, 'pt-0');
      // Enough revisions that the one after the last seen is compacted away too.
      for (let i = 0; i < 5; i++) await patchLabel(admin, type, namespace, 'pt-1', String(i));
      await plane.compactEtcd();
      proxy.restore();
      await eventually('a relist after 410', () => reflector.stats.relists > 0, 60_000);
      await eventually('cache equals server state', async () => {
        const server = await serverState(admin, type, namespace);
        return server.size === store.size && [...server].every(([name, rv]) => store.getByName(namespace, name)?.metadata?.resourceVersion === rv);
      }, 30_000);
      assert.deepEqual(lists, ['', lastSeen], 'the relist asked for a state not older than the last one seen, and got it');
    } finally {
      controller.abort();
      await running;
      await watcher.close();
      await proxy.close();
    }
  });

  it('falls back at once to the latest state when the server has not reached the resourceVersion asked ("too large resource version")', async () => {
    const namespace = await newNamespace('reflector-too-large');
    await create(admin, Resources.configMaps, namespace, 'cm-1');
    const lw = new KubeListerWatcher({ client: admin, type: Resources.configMaps, namespace });
    // What a relist sees after the API server was restored from an older etcd backup: our last
    // resourceVersion is ahead of anything it has.
    const lists: string[] = [];
    let watches = 0;
    const expiring: ListerWatcher<KubeObject> = {
      ...recording(lw, lists, (rv) => (rv ? '999999999' : rv)),
      watch: async (options, onEvent) => {
        if (watches++ === 0) throw new KubeApiError({ method: 'GET', path: '/', status: 410, body: '{"kind":"Status","code":410,"reason":"Expired"}' });
        return await lw.watch(options, onEvent);
      },
    };
    const { reflector, store } = reflectorOn(expiring);
    const controller = new AbortController();
    const running = reflector.run(controller.signal);
    try {
      await eventually('relisted and watching again', () => watches >= 2 && reflector.state.kind === 'watching', 30_000);
      assert.deepEqual(lists, ['', '999999999', ''], 'asked at the unavailable version once, then at the latest state');
      assert.ok(store.getByName(namespace, 'cm-1'));
    } finally {
      controller.abort();
      await running;
    }
  });

  it('syncs with a streaming list (WatchList): no list request, the state closed by the initial-events-end bookmark, then the same stream as the watch', async () => {
    const namespace = await newNamespace('reflector-stream');
    // kube-root-ca.crt comes from the controller-manager, some time after the namespace: counted below.
    await eventually('kube-root-ca.crt in the namespace', async () =>
      (await admin.json(`/api/v1/namespaces/${namespace}/configmaps/kube-root-ca.crt`).then(() => true, () => false)), 30_000);
    const names = Array.from({ length: 700 }, (_, i) => `cm-${i}`);
    await mapConcurrent(names, 16, (name) => create(admin, Resources.configMaps, namespace, name));
    const controller = new AbortController();
    const informer = new Informer({ client: admin, type: Resources.configMaps, namespace, streamingList: true });
    const events = record(informer);
    const running = informer.run(controller.signal);
    try {
      await informer.waitForSync(controller.signal);
      assert.deepEqual({ streams: informer.reflector.stats.streams, listPages: informer.reflector.stats.listPages }, { streams: 1, listPages: 0 });
      assert.equal(informer.store.size, names.length + 1, 'every ConfigMap (and kube-root-ca.crt)');
      events.length = 0;
      await create(admin, Resources.configMaps, namespace, 'late');
      await remove(admin, Resources.configMaps, namespace, 'cm-0');
      await eventually('both changes', () => events.length >= 2, 10_000);
      assert.deepEqual(events, [{ op: 'add', name: 'late' }, { op: 'delete', name: 'cm-0', finalStateUnknown: false }]);
      assert.equal(informer.reflector.stats.watches, 0, 'the changes came over the stream that listed');
      assert.ok(await converged(informer, admin, Resources.configMaps, namespace));
    } finally {
      controller.abort();
      await running;
    }
  });
});
