import { KubeConfig } from '@kubernetes/client-node';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { KubeClient } from '../kube/client/client.ts';
import { FakeClock } from '../kube/clock.ts';
import type { KubeObject } from '../kube/objects/resources.ts';
import { listType, RequestLimiter, type ListOptions, type TypeListResult } from './lister.ts';
import type { CollectableType } from './types.ts';

const pods: CollectableType = { group: '', version: 'v1', resource: 'pods', kind: 'Pod', namespaced: true, custom: false };
const deployments: CollectableType = { group: 'apps', version: 'v1', resource: 'deployments', kind: 'Deployment', namespaced: true, custom: false };
const namespacesType: CollectableType = { group: '', version: 'v1', resource: 'namespaces', kind: 'Namespace', namespaced: false, custom: false };
const nodes: CollectableType = { group: '', version: 'v1', resource: 'nodes', kind: 'Node', namespaced: false, custom: false };

interface SeenRequest {
  readonly path: string;
  readonly limit: string | null;
  readonly continue: string | null;
  readonly labelSelector: string | null;
}

interface Answer {
  readonly status?: number;
  readonly headers?: Record<string, string>;
  readonly body: unknown;
}

/** Answers the n-th request (`seen` holds every request so far, the current one last). */
type Handler = (request: SeenRequest, n: number) => Answer;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A fake API server on 127.0.0.1 and a KubeClient pointing at it. */
async function apiServer(handler: Handler): Promise<{ client: KubeClient; seen: SeenRequest[]; url: string }> {
  const seen: SeenRequest[] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const request: SeenRequest = {
      path: url.pathname,
      limit: url.searchParams.get('limit'),
      continue: url.searchParams.get('continue'),
      labelSelector: url.searchParams.get('labelSelector'),
    };
    seen.push(request);
    const answer = handler(request, seen.length - 1);
    res.writeHead(answer.status ?? 200, { 'content-type': 'application/json', ...answer.headers });
    res.end(JSON.stringify(answer.body));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = clientFor(url);
  cleanups.push(async () => {
    await client.close();
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
  });
  return { client, seen, url };
}

function clientFor(server: string): KubeClient {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server, skipTLSVerify: true }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return new KubeClient(kc);
}

function list(items: readonly Record<string, unknown>[], continueToken?: string): Answer {
  return { body: { kind: 'List', apiVersion: 'v1', metadata: { resourceVersion: '42', ...(continueToken ? { continue: continueToken } : {}) }, items } };
}

function status(code: number, reason: string, message: string, headers?: Record<string, string>): Answer {
  return { status: code, ...(headers ? { headers } : {}), body: { kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message } };
}

function item(name: string, namespace?: string, uid = `uid-${namespace ?? ''}-${name}`): Record<string, unknown> {
  return { metadata: { name, uid, ...(namespace ? { namespace } : {}) }, spec: { n: name } };
}

/** List options with a limiter that never waits and a clock that only moves when told. */
function listOptions(overrides: Partial<ListOptions> = {}): ListOptions & { clock: FakeClock } {
  const clock = overrides.clock instanceof FakeClock ? overrides.clock : new FakeClock();
  return {
    pageSize: 2,
    ignoreNamespaces: [],
    limiter: new RequestLimiter(10_000, 10_000, clock),
    signal: new AbortController().signal,
    ...overrides,
    clock,
  };
}

/** Fires every pending delay of `clock` as soon as one is scheduled. */
function autoAdvance(clock: FakeClock): void {
  const interval = setInterval(() => {
    if (clock.pendingTimers > 0) clock.advance(10 * 60_000);
  }, 2);
  cleanups.push(async () => clearInterval(interval));
}

/** Polls (real time, only to notice progress; correctness never depends on it) until `condition` holds. */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assert.fail(`timed out waiting for ${what}`);
}

async function collect(client: KubeClient, type: CollectableType, options: ListOptions): Promise<{ result: TypeListResult; objects: KubeObject[] }> {
  const objects: KubeObject[] = [];
  const result = await listType(client, type, options, (object) => {
    objects.push(object);
  });
  return { result, objects };
}

const names = (objects: readonly KubeObject[]): string[] => objects.map((o) => o.metadata?.name ?? '?');

function emptyResult(type: string, apiVersion: string, kind: string): TypeListResult {
  return { type, apiVersion, kind, objects: 0, dropped: 0, pages: 0, filtered: 0, retries: 0, restarts: 0 };
}

describe('listType: paging', () => {
  it('follows continue tokens through every page, passing the page size', async () => {
    const { client, seen } = await apiServer((req) => {
      if (req.continue === null) return list([item('p1', 'a'), item('p2', 'a')], 'tok-1');
      if (req.continue === 'tok-1') return list([item('p3', 'a'), item('p4', 'b')], 'tok-2');
      return list([item('p5', 'b')]);
    });
    const { result, objects } = await collect(client, pods, listOptions());

    assert.deepEqual(seen, [
      { path: '/api/v1/pods', limit: '2', continue: null, labelSelector: null },
      { path: '/api/v1/pods', limit: '2', continue: 'tok-1', labelSelector: null },
      { path: '/api/v1/pods', limit: '2', continue: 'tok-2', labelSelector: null },
    ]);
    assert.deepEqual(names(objects), ['p1', 'p2', 'p3', 'p4', 'p5']);
    assert.deepEqual(result, { ...emptyResult('pods', 'v1', 'Pod'), objects: 5, pages: 3 });
  });

  it('sets apiVersion and kind on core items, first, keeping the rest as served', async () => {
    const { client } = await apiServer(() => list([item('p1', 'a')]));
    const { objects } = await collect(client, pods, listOptions());
    assert.deepEqual(objects, [{ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p1', uid: 'uid-a-p1', namespace: 'a' }, spec: { n: 'p1' } }]);
    assert.deepEqual(Object.keys(objects[0] ?? {}), ['apiVersion', 'kind', 'metadata', 'spec']);
  });

  it('lists a group type at /apis/<group>/<version> and sets group/version as apiVersion', async () => {
    const { client, seen } = await apiServer(() => list([item('web', 'shop')]));
    const { result, objects } = await collect(client, deployments, listOptions({ pageSize: 500 }));
    assert.deepEqual(seen.map((s) => [s.path, s.limit]), [['/apis/apps/v1/deployments', '500']]);
    assert.equal(objects[0]?.apiVersion, 'apps/v1');
    assert.equal(objects[0]?.kind, 'Deployment');
    assert.deepEqual(result, { ...emptyResult('deployments.apps', 'apps/v1', 'Deployment'), objects: 1, pages: 1 });
  });

  it('passes the label selector on every page', async () => {
    const { client, seen } = await apiServer((req) => (req.continue ? list([item('p2', 'a')]) : list([item('p1', 'a')], 'tok')));
    await collect(client, pods, listOptions({ labelSelector: 'team=web,tier!=test' }));
    assert.deepEqual(seen.map((s) => s.labelSelector), ['team=web,tier!=test', 'team=web,tier!=test']);
  });

  it('handles an empty list as one page and no objects', async () => {
    const { client } = await apiServer(() => ({ body: { kind: 'PodList', metadata: {} } }));
    const { result, objects } = await collect(client, pods, listOptions());
    assert.deepEqual(objects, []);
    assert.deepEqual(result, { ...emptyResult('pods', 'v1', 'Pod'), pages: 1 });
  });

  it('calls afterPage after each page was handed on', async () => {
    const { client } = await apiServer((req) => (req.continue ? list([item('p2', 'a')]) : list([item('p1', 'a')], 'tok')));
    const events: string[] = [];
    const result = await listType(client, pods, listOptions({ afterPage: async (type, page) => void events.push(`page ${type.resource} ${page}`) }), (object) => {
      events.push(`emit ${object.metadata?.name}`);
    });
    assert.deepEqual(events, ['emit p1', 'page pods 1', 'emit p2', 'page pods 2']);
    assert.equal(result.pages, 2);
  });
});

describe('listType: namespaces and filters', () => {
  it('lists a namespaced type once per namespace when namespaces are given', async () => {
    const { client, seen } = await apiServer((req) => list([item('p', req.path.split('/')[4])]));
    const { result, objects } = await collect(client, pods, listOptions({ namespaces: ['shop', 'web'] }));
    assert.deepEqual(seen.map((s) => s.path), ['/api/v1/namespaces/shop/pods', '/api/v1/namespaces/web/pods']);
    assert.deepEqual(objects.map((o) => `${o.metadata?.namespace}/${o.metadata?.name}`), ['shop/p', 'web/p']);
    assert.equal(result.objects, 2);
    assert.equal(result.pages, 2);
  });

  it('lists a cluster-scoped type once even when namespaces are given', async () => {
    const { client, seen } = await apiServer(() => list([item('node-1')]));
    const { result } = await collect(client, nodes, listOptions({ namespaces: ['shop', 'web'] }));
    assert.deepEqual(seen.map((s) => s.path), ['/api/v1/nodes']);
    assert.equal(result.objects, 1);
  });

  it('skips objects in ignored namespaces and counts them as filtered', async () => {
    const { client } = await apiServer(() => list([item('a', 'shop'), item('b', 'kube-system'), item('c', 'scratch'), item('d', 'shop')]));
    const { result, objects } = await collect(client, pods, listOptions({ pageSize: 10, ignoreNamespaces: ['kube-system', 'scratch'] }));
    assert.deepEqual(names(objects), ['a', 'd']);
    assert.equal(result.objects, 2);
    assert.equal(result.filtered, 2);
  });

  it('skips Namespace objects that are ignored or outside the listed namespaces', async () => {
    const all = () => list([item('default'), item('kube-system'), item('shop'), item('web')]);
    {
      const { client } = await apiServer(all);
      const { result, objects } = await collect(client, namespacesType, listOptions({ pageSize: 10, ignoreNamespaces: ['kube-system'] }));
      assert.deepEqual(names(objects), ['default', 'shop', 'web']);
      assert.equal(result.filtered, 1);
    }
    {
      const { client, seen } = await apiServer(all);
      const { result, objects } = await collect(client, namespacesType, listOptions({ pageSize: 10, namespaces: ['shop', 'web'], ignoreNamespaces: ['web'] }));
      assert.deepEqual(seen.map((s) => s.path), ['/api/v1/namespaces']);
      assert.deepEqual(names(objects), ['shop']);
      assert.equal(result.filtered, 3);
    }
  });

  it('counts objects the sink refuses as dropped, not as objects', async () => {
    const { client } = await apiServer(() => list([item('keep-1', 'a'), item('drop', 'a'), item('keep-2', 'a')]));
    const result = await listType(client, pods, listOptions({ pageSize: 10 }), async (object) => object.metadata?.name !== 'drop');
    assert.equal(result.objects, 2);
    assert.equal(result.dropped, 1);
  });

  it('propagates a failing sink', async () => {
    const { client } = await apiServer(() => list([item('p1', 'a')]));
    await assert.rejects(
      listType(client, pods, listOptions(), () => {
        throw new Error('disk full');
      }),
      /disk full/,
    );
  });
});

describe('listType: retries', () => {
  it('honours Retry-After of a 429 on the injected clock, then continues', async () => {
    const { client, seen } = await apiServer((_req, n) =>
      n === 0 ? status(429, 'TooManyRequests', 'slow down', { 'retry-after': '7' }) : list([item('p1', 'a')]),
    );
    const options = listOptions();
    let settled = false;
    const listing = collect(client, pods, options).finally(() => (settled = true));
    await until(() => options.clock.pendingTimers === 1, 'the Retry-After delay');
    options.clock.advance(6_999);
    assert.equal(options.clock.pendingTimers, 1, 'still waiting 1 ms before Retry-After passed');
    assert.equal(seen.length, 1);
    assert.equal(settled, false);
    options.clock.advance(1);

    const { result, objects } = await listing;
    assert.equal(seen.length, 2);
    assert.deepEqual(names(objects), ['p1']);
    assert.deepEqual(result, { ...emptyResult('pods', 'v1', 'Pod'), objects: 1, pages: 1, retries: 1 });
  });

  it('caps a long Retry-After at maxRetryAfterMs', async () => {
    const { client } = await apiServer((_req, n) => (n === 0 ? status(429, 'TooManyRequests', 'later', { 'retry-after': '3600' }) : list([])));
    const options = listOptions({ maxRetryAfterMs: 2_000 });
    const listing = collect(client, pods, options);
    await until(() => options.clock.pendingTimers === 1, 'the Retry-After delay');
    options.clock.advance(2_000);
    assert.equal(options.clock.pendingTimers, 0);
    assert.equal((await listing).result.retries, 1);
  });

  it('ends the type with an error after maxAttempts of 5xx, keeping the objects of earlier pages', async () => {
    const { client, seen } = await apiServer((req) =>
      req.continue === null ? list([item('p1', 'a'), item('p2', 'a')], 'tok') : status(500, 'InternalError', 'etcdserver: request timed out'),
    );
    const options = listOptions({ maxAttempts: 3 });
    autoAdvance(options.clock);
    const { result, objects } = await collect(client, pods, options);

    assert.deepEqual(names(objects), ['p1', 'p2']);
    assert.deepEqual(seen.map((s) => s.continue), [null, 'tok', 'tok', 'tok']);
    assert.deepEqual(result, {
      ...emptyResult('pods', 'v1', 'Pod'),
      objects: 2,
      pages: 1,
      retries: 2,
      error: 'HTTP 500: InternalError: etcdserver: request timed out',
    });
  });

  it('retries a 5xx and then succeeds, counting the retry', async () => {
    const { client } = await apiServer((_req, n) => (n < 2 ? status(503, 'ServiceUnavailable', 'apiserver is shutting down') : list([item('p1', 'a')])));
    const options = listOptions();
    autoAdvance(options.clock);
    const { result } = await collect(client, pods, options);
    assert.deepEqual(result, { ...emptyResult('pods', 'v1', 'Pod'), objects: 1, pages: 1, retries: 2 });
  });

  it('retries a refused connection and reports it when every attempt fails', async () => {
    const { url } = await apiServer(() => list([]));
    await cleanups.pop()?.(); // close the server: its port now refuses connections
    const client = clientFor(url);
    cleanups.push(() => client.close());
    const options = listOptions({ maxAttempts: 2 });
    autoAdvance(options.clock);
    const { result } = await collect(client, pods, options);
    assert.equal(result.retries, 1);
    assert.equal(result.objects, 0);
    assert.match(result.error ?? '', /ECONNREFUSED/);
  });

  it('ends the type at once on 403, with the forbidden message', async () => {
    const { client, seen } = await apiServer(() =>
      status(403, 'Forbidden', 'secrets is forbidden: User "system:serviceaccount:crowsnest:collector" cannot list resource "secrets" in API group "" at the cluster scope'),
    );
    const options = listOptions();
    const { result, objects } = await collect(client, { ...pods, resource: 'secrets', kind: 'Secret' }, options);
    assert.equal(seen.length, 1);
    assert.deepEqual(objects, []);
    assert.deepEqual(result, {
      ...emptyResult('secrets', 'v1', 'Secret'),
      error: 'HTTP 403: Forbidden: secrets is forbidden: User "system:serviceaccount:crowsnest:collector" cannot list resource "secrets" in API group "" at the cluster scope',
    });
    assert.equal(options.clock.pendingTimers, 0);
  });

  it('names the namespace whose list failed', async () => {
    const { client } = await apiServer((req) => (req.path.includes('/web/') ? status(403, 'Forbidden', 'no') : list([item('p', 'shop')])));
    const { result } = await collect(client, pods, listOptions({ namespaces: ['shop', 'web'] }));
    assert.equal(result.objects, 1);
    assert.equal(result.error, 'namespace web: HTTP 403: Forbidden: no');
  });

  it('stops with the abort when the signal aborts during a retry wait', async () => {
    const { client, seen } = await apiServer(() => status(500, 'InternalError', 'down'));
    const controller = new AbortController();
    const options = listOptions({ signal: controller.signal, maxAttempts: 10 });
    const listing = collect(client, pods, options);
    await until(() => options.clock.pendingTimers === 1, 'the backoff delay');
    controller.abort();
    await assert.rejects(listing);
    assert.equal(seen.length, 1);
  });
});

describe('listType: expired continue tokens', () => {
  it('restarts from the first page on 410 and hands on no object twice', async () => {
    let expired = false;
    const { client, seen } = await apiServer((req) => {
      if (req.continue === null) return list([item('p1', 'a'), item('p2', 'a')], expired ? 'fresh' : 'stale');
      if (req.continue === 'stale') {
        expired = true;
        return status(410, 'Expired', 'The provided continue parameter is too old to display a consistent list result.');
      }
      return list([item('p3', 'a')]);
    });
    const { result, objects } = await collect(client, pods, listOptions());

    assert.deepEqual(seen.map((s) => s.continue), [null, 'stale', null, 'fresh']);
    assert.deepEqual(names(objects), ['p1', 'p2', 'p3']);
    assert.deepEqual(result, { ...emptyResult('pods', 'v1', 'Pod'), objects: 3, pages: 3, restarts: 1 });
  });

  it('recognises objects already handed on by uid, even when they moved pages', async () => {
    let expired = false;
    const { client } = await apiServer((req) => {
      if (req.continue === null) {
        // after the restart p1 is gone and p2 leads the first page
        return expired ? list([item('p2', 'a'), item('p3', 'a')], 'fresh') : list([item('p1', 'a'), item('p2', 'a')], 'stale');
      }
      if (req.continue === 'stale') {
        expired = true;
        return status(410, 'Expired', 'too old');
      }
      return list([item('p4', 'a')]);
    });
    const { result, objects } = await collect(client, pods, listOptions());
    assert.deepEqual(names(objects), ['p1', 'p2', 'p3', 'p4']);
    assert.equal(result.objects, 4);
  });

  it('gives up after maxRestarts expired tokens', async () => {
    const { client, seen } = await apiServer((req) => (req.continue === null ? list([item('p1', 'a')], 'tok') : status(410, 'Expired', 'too old')));
    const { result, objects } = await collect(client, pods, listOptions({ maxRestarts: 2 }));
    assert.equal(seen.length, 6);
    assert.deepEqual(names(objects), ['p1']);
    assert.deepEqual(result, { ...emptyResult('pods', 'v1', 'Pod'), objects: 1, pages: 3, restarts: 2, error: 'HTTP 410: Expired: too old' });
  });

  it('does not restart on 410 for the first page', async () => {
    const { client, seen } = await apiServer(() => status(410, 'Gone', 'gone'));
    const { result } = await collect(client, pods, listOptions());
    assert.equal(seen.length, 1);
    assert.equal(result.restarts, 0);
    assert.equal(result.error, 'HTTP 410: Gone: gone');
  });
});

describe('RequestLimiter', () => {
  it('lets a burst through at once, then spaces requests by qps on its clock', async () => {
    const clock = new FakeClock();
    const limiter = new RequestLimiter(2, 2, clock);
    const signal = new AbortController().signal;
    await limiter.acquire(signal);
    await limiter.acquire(signal);
    assert.equal(clock.pendingTimers, 0);
    let third = false;
    const waiting = limiter.acquire(signal).then(() => (third = true));
    assert.equal(clock.pendingTimers, 1);
    clock.advance(499);
    await Promise.resolve();
    assert.equal(third, false);
    clock.advance(1);
    await waiting;
    assert.equal(third, true);
  });
});

describe('KubeClient.listPages (the pager behind node and CRD lists)', () => {
  it('follows continue tokens with limit 500 and the caller\'s query, yielding each page', async () => {
    const { client, seen } = await apiServer((request) =>
      request.continue === null ? list([item('a'), item('b')], 'tok-1') : request.continue === 'tok-1' ? list([item('c')], 'tok-2') : list([]),
    );
    const pages: string[][] = [];
    for await (const items of client.listPages<{ metadata: { name: string } }>('/api/v1/nodes', { query: { labelSelector: 'pool=a' } })) {
      pages.push(items.map((i) => i.metadata.name));
    }
    assert.deepEqual(pages, [['a', 'b'], ['c'], []]);
    assert.deepEqual(seen.map((r) => [r.limit, r.continue, r.labelSelector]), [['500', null, 'pool=a'], ['500', 'tok-1', 'pool=a'], ['500', 'tok-2', 'pool=a']]);
  });

  it('throws the API error of a failing page (a 410 included), after yielding the pages before it', async () => {
    const { client } = await apiServer((request) => (request.continue === null ? list([item('a')], 'tok') : status(410, 'Expired', 'continue token expired')));
    const pages: unknown[][] = [];
    await assert.rejects(async () => {
      for await (const items of client.listPages('/api/v1/nodes')) pages.push(items);
    }, /410/);
    assert.equal(pages.length, 1);
  });
});
