/**
 * The informer over its real list/watch client, against a scripted HTTP server on loopback: what
 * goes over the wire (query, Accept header) and what comes back into the cache and the metrics.
 * The server scripts only the protocol's framing; how a real API server behaves (paging, 410s,
 * compaction, bookmarks) is tested on the testbed (test/integration/reflector.test.ts).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { KubeClient } from '../client/client.ts';
import { Informer } from './informer.ts';
import { type KubeObject, Resources } from '../objects/resources.ts';

interface Seen {
  readonly query: URLSearchParams;
  readonly accept: string;
}

/** An HTTP server answering list and watch requests of one collection with what the test scripts. */
class ScriptedApiServer {
  readonly requests: Seen[] = [];
  list: (query: URLSearchParams) => { status?: number; body: unknown } = () => ({ body: { metadata: { resourceVersion: '1' }, items: [] } });
  /** Lines written on a watch; the response stays open afterwards until the client goes. */
  watch: (query: URLSearchParams) => { status?: number; lines: string[] } = () => ({ lines: [] });
  private readonly server: Server;
  private readonly open = new Set<ServerResponse>();

  constructor() {
    this.server = createServer((req, res) => this.answer(req, res));
  }

  async start(): Promise<KubeClient> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    const port = (this.server.address() as AddressInfo).port;
    const kc = new KubeConfig();
    kc.loadFromOptions({ clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }], users: [{ name: 'u', token: 't' }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x' });
    return new KubeClient(kc);
  }

  async stop(): Promise<void> {
    for (const res of this.open) res.destroy();
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private answer(req: IncomingMessage, res: ServerResponse): void {
    const query = new URL(req.url ?? '/', 'http://x').searchParams;
    this.requests.push({ query, accept: req.headers.accept ?? '' });
    if (query.get('watch') === 'true') {
      const { status = 200, lines } = this.watch(query);
      res.writeHead(status, { 'content-type': 'application/json' });
      if (status !== 200) {
        res.end(JSON.stringify({ kind: 'Status', code: status, reason: 'Invalid', message: 'sendInitialEvents is forbidden' }));
        return;
      }
      this.open.add(res);
      res.on('close', () => this.open.delete(res));
      for (const line of lines) res.write(`${line}\n`);
      return;
    }
    const { status = 200, body } = this.list(query);
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }
}

function pod(name: string, resourceVersion: string): KubeObject & { spec: unknown } {
  return { metadata: { namespace: 'ns', name, uid: `uid-${name}`, resourceVersion, managedFields: [{ manager: 'kubectl' }] }, spec: { containers: [] } };
}

async function metric(registry: Registry, name: string, informer: string): Promise<number | undefined> {
  const values = (await registry.getSingleMetric(name)?.get())?.values ?? [];
  return values.find((v) => v.labels['informer'] === informer)?.value;
}

async function until(what: string, condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('Informer', () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup();
  });

  async function start(options: { metadataOnly?: boolean; streamingList?: boolean } = {}) {
    const server = new ScriptedApiServer();
    const client = await server.start();
    const registry = new Registry();
    const informer = new Informer({ client, type: Resources.pods, registry, ...options });
    const stop = new AbortController();
    let running: Promise<void> | undefined;
    cleanups.push(async () => {
      stop.abort();
      await running;
      await client.close();
      await server.stop();
    });
    return { server, informer, registry, run: () => (running = informer.run(stop.signal)), signal: stop.signal };
  }

  it('syncs from the list, then follows the watch; a handler added later gets what is cached replayed first', async () => {
    const t = await start();
    t.server.list = () => ({ body: { metadata: { resourceVersion: '10' }, items: [pod('a', '5'), pod('b', '6')] } });
    t.server.watch = () => ({ lines: [JSON.stringify({ type: 'ADDED', object: pod('c', '11') })] });
    t.run();
    await t.informer.waitForSync(t.signal);
    await until('the watched pod', () => t.informer.store.size === 3);
    assert.equal(t.informer.store.getByName('ns', 'a')?.kind, 'Pod', 'list items get their kind');
    assert.equal(t.informer.store.getByName('ns', 'a')?.metadata?.managedFields, undefined, 'managedFields are dropped');

    const replayed: string[] = [];
    t.informer.addEventHandler({ onAdd: (o) => replayed.push(o.metadata!.name!) });
    assert.deepEqual(replayed.sort(), ['a', 'b', 'c']);
    assert.equal(t.server.requests.find((r) => r.query.get('watch') === 'true')?.query.get('resourceVersion'), '10');
  });

  it('counts watch lines that are not events in crowsnest_informer_malformed_watch_lines_total, and applies the events around them', async () => {
    const t = await start();
    t.server.watch = () => ({
      lines: [
        JSON.stringify({ type: 'ADDED', object: pod('a', '2') }),
        '<html><body>502 Bad Gateway</body></html>',
        '{"type":',
        JSON.stringify({ type: 'ADDED', object: pod('b', '3') }),
      ],
    });
    assert.equal(await metric(t.registry, 'crowsnest_informer_malformed_watch_lines_total', 'pods'), 0, 'exported at zero before any');
    t.run();
    await until('both pods', () => t.informer.store.size === 2);
    assert.equal(await metric(t.registry, 'crowsnest_informer_malformed_watch_lines_total', 'pods'), 2);
  });

  it('metadata-only: asks for PartialObjectMetadata, caches objects as the type, and takes an empty list sent as items: null', async () => {
    const t = await start({ metadataOnly: true });
    t.server.list = () => ({ body: { kind: 'PartialObjectMetadataList', apiVersion: 'meta.k8s.io/v1', metadata: { resourceVersion: '10' }, items: null } });
    t.server.watch = () => ({ lines: [JSON.stringify({ type: 'ADDED', object: { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: pod('a', '11').metadata } })] });
    t.run();
    await t.informer.waitForSync(t.signal);
    await until('the watched pod', () => t.informer.store.size === 1);
    const cached = t.informer.store.getByName('ns', 'a')!;
    assert.deepEqual([cached.apiVersion, cached.kind], ['v1', 'Pod']);
    const [list, watch] = t.server.requests;
    assert.match(list!.accept, /^application\/json;as=PartialObjectMetadataList;g=meta\.k8s\.io;v=v1/);
    assert.match(watch!.accept, /^application\/json;as=PartialObjectMetadata;g=meta\.k8s\.io;v=v1/);
  });

  it('streaming list: asks for the initial events on the watch, and is synced at the bookmark that ends them', async () => {
    const t = await start({ streamingList: true });
    t.server.watch = () => ({
      lines: [
        JSON.stringify({ type: 'ADDED', object: pod('a', '5') }),
        JSON.stringify({ type: 'ADDED', object: pod('b', '6') }),
        JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Pod', apiVersion: 'v1', metadata: { resourceVersion: '10', annotations: { 'k8s.io/initial-events-end': 'true' } } } }),
        JSON.stringify({ type: 'DELETED', object: pod('a', '11') }),
      ],
    });
    t.run();
    await t.informer.waitForSync(t.signal);
    await until('the delete after the sync', () => t.informer.store.size === 1);
    const [stream] = t.server.requests;
    assert.deepEqual(
      Object.fromEntries(['watch', 'sendInitialEvents', 'resourceVersionMatch', 'allowWatchBookmarks', 'resourceVersion'].map((k) => [k, stream!.query.get(k)])),
      { watch: 'true', sendInitialEvents: 'true', resourceVersionMatch: 'NotOlderThan', allowWatchBookmarks: 'true', resourceVersion: null },
    );
    assert.equal(t.server.requests.length, 1, 'no list request: the one stream both listed and watches');
    assert.equal(await metric(t.registry, 'crowsnest_informer_lists_total', 'pods'), 1);
  });

  it('streaming list refused by the server (422): syncs with a paged list instead', async () => {
    const t = await start({ streamingList: true });
    t.server.watch = (query) => (query.get('sendInitialEvents') ? { status: 422, lines: [] } : { lines: [] });
    t.server.list = () => ({ body: { metadata: { resourceVersion: '10' }, items: [pod('a', '5')] } });
    t.run();
    await t.informer.waitForSync(t.signal);
    assert.deepEqual(t.server.requests.slice(0, 2).map((r) => (r.query.get('watch') ? 'stream' : 'list')), ['stream', 'list']);
    assert.equal(t.informer.store.size, 1);
  });
});
