import { KubeConfig } from '@kubernetes/client-node';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { useScratchDir } from '../../test/helpers/scratch.ts';
import { KubeClient } from '../kube/client/client.ts';
import { FakeClock } from '../kube/clock.ts';
import { silentLogger, type Logger } from '../kube/logger-type.ts';
import {
  collectInventory,
  customResourcesSkip,
  interruptMessage,
  type CollectOptions,
  type RunPhase,
  type SinkOptions,
} from './collect.ts';
import type { RunSummary } from './summary.ts';
import { snapshotStem } from './snapshot-writer.ts';
import { DEFAULT_TYPE_SELECTORS } from './types.ts';

const CRD_PATH = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';
const WIDGETS = '/apis/example.test/v1/widgets';

interface FakeCluster {
  /** Answer to the CRD list: 200 with the Widget CRD, or this status. */
  crdStatus: number;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const scratch = useScratchDir('crowsnest-collect-');

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/**
 * A fake API server: the core group serves ConfigMaps (two of them), the group example.test
 * serves Widgets (one), and a CustomResourceDefinition says Widgets are custom resources —
 * unless listing CRDs is refused.
 */
async function fakeCluster(cluster: FakeCluster): Promise<KubeClient> {
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (path === '/apis') {
      return json(res, 200, { kind: 'APIGroupList', groups: [{ name: 'example.test', preferredVersion: { groupVersion: 'example.test/v1', version: 'v1' } }] });
    }
    if (path === '/api/v1') {
      return json(res, 200, { groupVersion: 'v1', resources: [{ name: 'configmaps', namespaced: true, kind: 'ConfigMap', verbs: ['get', 'list'] }] });
    }
    if (path === '/apis/example.test/v1') {
      return json(res, 200, { groupVersion: 'example.test/v1', resources: [{ name: 'widgets', namespaced: false, kind: 'Widget', verbs: ['get', 'list'] }] });
    }
    if (path === CRD_PATH) {
      if (cluster.crdStatus !== 200) {
        return json(res, cluster.crdStatus, { kind: 'Status', apiVersion: 'v1', status: 'Failure', code: cluster.crdStatus, reason: 'Forbidden', message: 'customresourcedefinitions is forbidden' });
      }
      return json(res, 200, { kind: 'PartialObjectMetadataList', items: [{ metadata: { name: 'widgets.example.test' } }], metadata: {} });
    }
    if (path === '/api/v1/configmaps') {
      return json(res, 200, { kind: 'ConfigMapList', metadata: {}, items: [{ metadata: { name: 'a', namespace: 'x', uid: 'u-a' } }, { metadata: { name: 'b', namespace: 'x', uid: 'u-b' } }] });
    }
    if (path === WIDGETS) {
      return json(res, 200, { kind: 'WidgetList', metadata: {}, items: [{ metadata: { name: 'w', uid: 'u-w' } }] });
    }
    json(res, 404, { kind: 'Status', code: 404, reason: 'NotFound', message: `${path} not found` });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  const client = new KubeClient(kc);
  cleanups.push(async () => {
    await client.close();
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
  });
  return client;
}

/** An endpoint that accepts the request body but never answers. */
async function silentEndpoint(): Promise<{ url: string; requests: () => number }> {
  let requests = 0;
  const server = createServer((req) => {
    requests++;
    req.resume();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(async () => {
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/inventory`, requests: () => requests };
}

function collectOptions(sink: SinkOptions, overrides: Partial<CollectOptions> = {}): CollectOptions {
  return {
    clusterId: 'c',
    runId: 'run-1',
    selectors: { base: [...DEFAULT_TYPE_SELECTORS], add: [], remove: [] },
    ignoreNamespaces: [],
    pageSize: 100,
    concurrency: 2,
    qps: 1000,
    burst: 1000,
    maxObjectBytes: 0,
    redaction: { enabled: true, secretValueDigest: false },
    sink,
    logger: silentLogger,
    signal: new AbortController().signal,
    clock: new FakeClock(Date.parse('2026-03-01T10:00:00Z')),
    ...overrides,
  };
}

const dirSink = (dir: string, keepLast = 0): SinkOptions => ({ kind: 'dir', dir, format: 'ndjson', gzip: false, retention: { keepLast, maxAgeMs: 0, maxUndelivered: 0 } });
const STEM = snapshotStem('c', new Date('2026-03-01T10:00:00Z'), 'run-1');

/** A logger that keeps its lines. */
function recordingLogger(): Logger & { lines: { level: string; msg: string; fields: object }[] } {
  const lines: { level: string; msg: string; fields: object }[] = [];
  const at = (level: string) => (fields: object, msg = ''): void => void lines.push({ level, msg, fields });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

async function summaryOnDisk(dir: string): Promise<RunSummary> {
  return JSON.parse(await readFile(join(dir, `${STEM}.summary.json`), 'utf8')) as RunSummary;
}

describe('collectInventory: custom resources when CRDs cannot be listed', () => {
  it('collects CRD-served types by the customresources keyword when CRDs can be listed', async () => {
    const client = await fakeCluster({ crdStatus: 200 });
    const summary = await collectInventory(client, collectOptions(dirSink(await scratch.fresh())));
    assert.equal(summary.result, 'success');
    assert.deepEqual(summary.types.map((t) => [t.type, t.objects]), [['configmaps', 2], ['widgets.example.test', 1]]);
    assert.deepEqual(summary.skippedTypes, []);
    assert.deepEqual(summary.warnings, []);
  });

  it('reports custom resources as skipped, and the run as partial, when listing CRDs is refused', async () => {
    const client = await fakeCluster({ crdStatus: 403 });
    const dir = await scratch.fresh();
    const summary = await collectInventory(client, collectOptions(dirSink(dir)));
    assert.deepEqual(summary.types.map((t) => t.type), ['configmaps'], 'widgets are not known to be custom');
    assert.equal(summary.skippedTypes.length, 1);
    assert.equal(summary.skippedTypes[0]?.type, 'customresources');
    assert.match(summary.skippedTypes[0]?.reason ?? '', /^listing CustomResourceDefinitions failed: HTTP 403: Forbidden: customresourcedefinitions is forbidden$/);
    assert.equal(summary.result, 'partial');
    assert.deepEqual(summary.warnings, [], 'said once, as a skipped type');
    assert.equal((await summaryOnDisk(dir)).result, 'partial');
  });

  it('stays a success when custom resources were not asked for', async () => {
    const client = await fakeCluster({ crdStatus: 403 });
    const summary = await collectInventory(client, collectOptions(dirSink(await scratch.fresh()), {
      selectors: { base: [...DEFAULT_TYPE_SELECTORS], add: [], remove: ['customresources'] },
    }));
    assert.equal(summary.result, 'success');
    assert.deepEqual(summary.skippedTypes, []);
    assert.equal(summary.warnings.length, 1);
    assert.match(summary.warnings[0] ?? '', /^listing CustomResourceDefinitions failed: HTTP 403/);
  });
});

describe('customResourcesSkip', () => {
  const reason = 'listing CustomResourceDefinitions failed: HTTP 403';
  const cases: { name: string; base: string[]; add?: string[]; remove?: string[]; unknown?: string; skipped: boolean }[] = [
    { name: 'the default set, CRDs unknown', base: [...DEFAULT_TYPE_SELECTORS], unknown: reason, skipped: true },
    { name: 'customresources added to an explicit list', base: ['pods'], add: ['customresources'], unknown: reason, skipped: true },
    { name: 'CRDs known', base: [...DEFAULT_TYPE_SELECTORS], skipped: false },
    { name: 'customresources removed', base: [...DEFAULT_TYPE_SELECTORS], remove: ['customresources'], unknown: reason, skipped: false },
    { name: 'everything removed', base: [...DEFAULT_TYPE_SELECTORS], remove: ['*'], unknown: reason, skipped: false },
    { name: 'not asked for', base: ['pods', 'deployments.apps'], unknown: reason, skipped: false },
    { name: '"*", which lists CRD-served types without knowing they are', base: ['*', 'customresources'], unknown: reason, skipped: false },
  ];
  for (const c of cases) {
    it(`${c.skipped ? 'skips' : 'does not skip'}: ${c.name}`, () => {
      const skip = customResourcesSkip({ base: c.base, add: c.add ?? [], remove: c.remove ?? [] }, c.unknown);
      assert.deepEqual(skip, c.skipped ? { type: 'customresources', reason } : undefined);
    });
  }
});

describe('collectInventory: after delivery', () => {
  it('keeps the result when the summary cannot be written, and says so in the warnings', async () => {
    const client = await fakeCluster({ crdStatus: 200 });
    const dir = await scratch.fresh();
    await mkdir(join(dir, `${STEM}.summary.json`)); // a directory where the summary file goes
    const logger = recordingLogger();
    const summary = await collectInventory(client, collectOptions(dirSink(dir), { logger }));
    assert.equal(summary.result, 'success');
    assert.equal(summary.sink.delivered, true);
    assert.equal(summary.warnings.length, 1);
    assert.match(summary.warnings[0] ?? '', /^the run summary could not be written: .*EEXIST/);
    assert.ok(logger.lines.some((line) => line.level === 'error' && /run summary not written/.test(line.msg)));
    assert.ok((await readdir(dir)).includes(`${STEM}.ndjson`), 'the snapshot is kept');
  });

  it('keeps the result when pruning fails, and records it in the summary on disk too', async () => {
    const client = await fakeCluster({ crdStatus: 200 });
    const dir = await scratch.fresh();
    // An old "snapshot" that is a directory: removing it fails.
    await mkdir(join(dir, 'inventory-c-20200101T000000.000Z-00000000.ndjson'));
    const summary = await collectInventory(client, collectOptions(dirSink(dir, 1)));
    assert.equal(summary.result, 'success');
    assert.equal(summary.warnings.length, 1);
    assert.match(summary.warnings[0] ?? '', /^retention: removing old snapshots failed: /);
    assert.deepEqual((await summaryOnDisk(dir)).warnings, summary.warnings);
  });
});

describe('collectInventory: endpoint', () => {
  it('counts a delivered upload as delivered even when its spool file cannot be removed', async () => {
    const client = await fakeCluster({ crdStatus: 200 });
    const dir = await scratch.fresh();
    const spool = join(dir, `${STEM}.ndjson.gz`);
    // Answers the (only, so final) chunk after putting a directory where the spool file was.
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', async () => {
        await rm(spool);
        await mkdir(spool);
        res.writeHead(204).end();
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanups.push(async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    });
    const summary = await collectInventory(client, collectOptions({
      kind: 'endpoint',
      dir,
      retention: { keepLast: 0, maxAgeMs: 0, maxUndelivered: 0 },
      endpoint: { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, chunkBytes: 1 << 20, timeoutMs: 10_000, maxAttempts: 1, retryInitialMs: 10, userAgent: 'test' },
    }));
    assert.equal(summary.result, 'success');
    assert.equal(summary.sink.delivered, true);
    assert.equal(summary.sink.error, undefined);
    assert.equal(summary.warnings.length, 1);
    assert.match(summary.warnings[0] ?? '', /^the uploaded snapshot's spool file .* could not be removed: /);
  });
});

describe('collectInventory: interruption', () => {
  it('leaves nothing behind when interrupted while listing, and reports the phase', async () => {
    const client = await fakeCluster({ crdStatus: 200 });
    const dir = await scratch.fresh();
    const controller = new AbortController();
    const phases: RunPhase[] = [];
    const run = collectInventory(client, collectOptions(dirSink(dir), {
      signal: controller.signal,
      onPhase: (phase) => phases.push(phase),
      afterPage: async () => {
        controller.abort(new Error('interrupted by SIGTERM'));
      },
    }));
    await assert.rejects(run);
    assert.deepEqual(phases, ['collecting']);
    assert.deepEqual(await readdir(dir), []);
  });

  it('keeps the complete snapshot and writes the summary when interrupted during the upload', async () => {
    const client = await fakeCluster({ crdStatus: 200 });
    const endpoint = await silentEndpoint();
    const dir = await scratch.fresh();
    const controller = new AbortController();
    const phases: RunPhase[] = [];
    const run = collectInventory(client, collectOptions({
      kind: 'endpoint',
      dir,
      retention: { keepLast: 0, maxAgeMs: 0, maxUndelivered: 0 },
      endpoint: { url: endpoint.url, chunkBytes: 1 << 20, timeoutMs: 60_000, maxAttempts: 3, retryInitialMs: 10, userAgent: 'test' },
    }, { signal: controller.signal, onPhase: (phase) => phases.push(phase) }));
    for (let i = 0; i < 2000 && endpoint.requests() === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(endpoint.requests(), 1);
    assert.deepEqual(phases, ['collecting', 'delivering']);
    controller.abort(new Error('interrupted by SIGTERM'));
    const summary = await run;
    assert.deepEqual(phases, ['collecting', 'delivering', 'finishing']);
    assert.equal(summary.result, 'failure');
    assert.equal(summary.sink.delivered, false);
    assert.equal(summary.sink.error, 'upload interrupted (interrupted by SIGTERM)');
    assert.equal(summary.sink.path, join(dir, `${STEM}.ndjson.gz`));
    assert.deepEqual((await readdir(dir)).sort(), [`${STEM}.ndjson.gz`, `${STEM}.summary.json`]);
    assert.equal((await summaryOnDisk(dir)).result, 'failure');
  });
});

describe('interruptMessage', () => {
  it('says an incomplete snapshot is not kept only while collecting', () => {
    assert.equal(interruptMessage('collecting', 'dir'), 'interrupted: stopping; an incomplete snapshot is not kept');
    assert.equal(interruptMessage('collecting', 'endpoint'), 'interrupted: stopping; an incomplete snapshot is not kept');
    assert.equal(interruptMessage('collecting', 'stdout'), 'interrupted: stopping; the dry-run output is incomplete');
    for (const phase of ['delivering', 'finishing'] as const) {
      for (const sink of ['dir', 'endpoint', 'stdout'] as const) {
        assert.doesNotMatch(interruptMessage(phase, sink), /not kept|discarded|incomplete/, `${phase} ${sink}`);
      }
    }
    assert.match(interruptMessage('delivering', 'endpoint'), /kept in the report directory/);
    assert.match(interruptMessage('finishing', 'endpoint'), /already written or sent/);
  });
});
