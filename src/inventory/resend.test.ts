import { strict as assert } from 'node:assert';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../kube/logger-type.ts';
import { resendKeptSnapshots } from './resend.ts';

const endpointDefaults = { chunkBytes: 1 << 20, timeoutMs: 5_000, maxAttempts: 1, retryInitialMs: 1, userAgent: 'test' };

/** A kept run: its gzip NDJSON snapshot and a summary saying the endpoint never got it. */
async function keptRun(dir: string, stamp: string, runId: string, path = join(dir, `inventory-c1-${stamp}.ndjson.gz`), apiVersion = 'crowsnest.dev/v1alpha1'): Promise<string> {
  await writeFile(path, gzipSync(`{"kind":"ConfigMap","metadata":{"name":"${runId}"}}\n`));
  const summary = {
    apiVersion, kind: 'InventoryRunSummary', runId, result: 'failure', skippedTypes: [], failedGroups: [], dropped: { count: 0, objects: [] },
    sink: { kind: 'endpoint', delivered: false, path, error: 'endpoint unreachable' },
  };
  await writeFile(join(dir, `inventory-c1-${stamp}.summary.json`), JSON.stringify(summary));
  return path;
}

describe('resendKeptSnapshots', () => {
  let server: Server;
  let url = '';
  const received: string[] = [];
  let answer = 204;
  before(async () => {
    server = createServer((req, res) => {
      received.push(String(req.headers['x-crowsnest-run-id']));
      req.resume();
      req.on('end', () => res.writeHead(answer).end());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
  });
  after(() => server.close());

  it('sends kept snapshots oldest first under their run ids, removes them and marks their summaries delivered', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'resend-'));
    try {
      received.length = 0;
      answer = 204;
      const newer = await keptRun(dir, '20261123T120000Z', 'run-b');
      const older = await keptRun(dir, '20261123T110000Z', 'run-a');
      const results = await resendKeptSnapshots({ dir, clusterId: 'c1', endpoint: { ...endpointDefaults, url }, signal: new AbortController().signal, logger: silentLogger });
      assert.deepEqual(results.map((r) => [r.runId, r.delivered]), [['run-a', true], ['run-b', true]]);
      assert.deepEqual(received, ['run-a', 'run-b']);
      for (const path of [older, newer]) await assert.rejects(stat(path), /ENOENT/);
      const summary = JSON.parse(await readFile(join(dir, 'inventory-c1-20261123T110000Z.summary.json'), 'utf8')) as { result: string; sink: { delivered: boolean; path?: string; resentAt?: string } };
      assert.equal(summary.result, 'success');
      assert.equal(summary.sink.delivered, true);
      assert.equal(summary.sink.path, undefined);
      assert.ok(summary.sink.resentAt);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('resends a snapshot kept by an earlier version, whose summary says apiVersion crowsnest.io/v1alpha1', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'resend-'));
    try {
      received.length = 0;
      answer = 204;
      const kept = await keptRun(dir, '20261123T110000Z', 'run-old', undefined, 'crowsnest.io/v1alpha1');
      const results = await resendKeptSnapshots({ dir, clusterId: 'c1', endpoint: { ...endpointDefaults, url }, signal: new AbortController().signal, logger: silentLogger });
      assert.deepEqual(results.map((r) => [r.runId, r.delivered]), [['run-old', true]]);
      assert.deepEqual(received, ['run-old']);
      await assert.rejects(stat(kept), /ENOENT/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('stops at the first failure and keeps what it could not send', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'resend-'));
    try {
      received.length = 0;
      answer = 503;
      const first = await keptRun(dir, '20261123T110000Z', 'run-a');
      const second = await keptRun(dir, '20261123T120000Z', 'run-b');
      const results = await resendKeptSnapshots({ dir, clusterId: 'c1', endpoint: { ...endpointDefaults, url }, signal: new AbortController().signal, logger: silentLogger });
      assert.deepEqual(results.map((r) => [r.runId, r.delivered]), [['run-a', false]]);
      assert.match(results[0]!.error ?? '', /503/);
      assert.deepEqual(received, ['run-a'], 'a down endpoint is not asked again per file');
      await stat(first);
      await stat(second);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('never sends a file a summary points to outside the report directory, nor another cluster\'s', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'resend-'));
    const elsewhere = await mkdtemp(join(tmpdir(), 'resend-elsewhere-'));
    try {
      received.length = 0;
      answer = 204;
      await keptRun(dir, '20261123T110000Z', 'run-outside', join(elsewhere, 'inventory-c1-20261123T110000Z.ndjson.gz'));
      await writeFile(join(dir, 'inventory-c2-20261123T110000Z.summary.json'), JSON.stringify({ kind: 'InventoryRunSummary', runId: 'other', sink: { kind: 'endpoint', delivered: false, path: join(dir, 'inventory-c2-20261123T110000Z.ndjson.gz') } }));
      const results = await resendKeptSnapshots({ dir, clusterId: 'c1', endpoint: { ...endpointDefaults, url }, signal: new AbortController().signal, logger: silentLogger });
      assert.deepEqual(results, []);
      assert.deepEqual(received, []);
    } finally {
      await rm(dir, { recursive: true, force: true });
      await rm(elsewhere, { recursive: true, force: true });
    }
  });
});
