/**
 * `crowsnest inventory collect` against the testbed: a CRD with objects, Secrets (a Helm release
 * among them) in three namespaces, selected by a label; a real HTTP receiver (node:http) that
 * checks gzip and can fail on purpose; a real aggregated API whose backend does not exist; etcd
 * compacted under a paged list.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { mkdtemp, readdir, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { main, type CliIO } from '../../src/cli/main.ts';
import { KubeClient } from '../../src/kube/client/client.ts';
import { silentLogger } from '../../src/kube/logger-type.ts';
import { collectInventory } from '../../src/inventory/collect.ts';
import type { RunSummary } from '../../src/inventory/summary.ts';
import { UNCACHED_RESOURCE } from '../../testbed/controlplane.ts';
import { mapConcurrent } from '../../src/kube/concurrency.ts';
import { adminKubeConfig, eventually, newNamespace, testbed } from './testbed.ts';
import { K8sCollectorReceiver } from '../helpers/k8s-collector-receiver.ts';

interface Received {
  headers: IncomingHttpHeaders;
  /** Decompressed body. */
  text: string;
  status: number;
}

/** An HTTP endpoint that records every request and answers with the next scripted status (then 204). */
class Receiver {
  readonly requests: Received[] = [];
  script: number[] = [];
  private server: Server | undefined;
  port = 0;

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const raw = Buffer.concat(chunks);
        const text = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw).toString('utf8') : raw.toString('utf8');
        const status = this.script.shift() ?? 204;
        this.requests.push({ headers: req.headers, text, status });
        res.writeHead(status).end(status === 204 ? undefined : 'scripted failure');
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/v1/inventory`;
  }

  async stop(): Promise<void> {
    await new Promise((resolve) => this.server?.close(resolve));
  }
}

/** Runs the CLI in this process; returns exit code and what it printed. */
async function runCli(args: readonly string[], env: Record<string, string | undefined> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const plane = await testbed();
  let stdout = '';
  let stderr = '';
  const io: CliIO = {
    stdout: (text) => { stdout += text; },
    stderr: (text) => { stderr += text; },
    env: { KUBECONFIG: plane.kubeconfigPath, ...env },
    stderrIsTTY: false,
  };
  const code = await main([...args, '--log-level', 'error'], io);
  return { code, stdout, stderr };
}

/** Every file under `dir`, decompressed when gzip, concatenated: "does X appear anywhere". */
async function everythingWritten(dir: string): Promise<string> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const parts = await Promise.all(names.map(async (name) => {
    const data = await readFile(join(dir, name));
    return data[0] === 0x1f && data[1] === 0x8b ? gunzipSync(data).toString('utf8') : data.toString('utf8');
  }));
  return parts.join('\n');
}

/** An object as the inventory sends it: the fields these tests read. */
interface SentObject {
  apiVersion?: string;
  kind?: string;
  type?: string;
  metadata: { name: string; uid: string; managedFields?: unknown };
  data?: Record<string, string>;
  helmRelease?: { chart: string; status: string; revision: number };
}

function objectsOf(text: string): SentObject[] {
  const trimmed = text.trim();
  if (trimmed.startsWith('{"objects":')) return (JSON.parse(trimmed) as { objects: SentObject[] }).objects;
  return trimmed.split('\n').filter(Boolean).map((line) => JSON.parse(line) as SentObject);
}

async function snapshotObjects(dir: string): Promise<SentObject[]> {
  const names = (await readdir(dir)).filter((name) => /\.(nd)?json(\.gz)?$/.test(name) && !name.endsWith('.summary.json'));
  assert.equal(names.length, 1, `one snapshot expected in ${dir}, found ${names.join(', ')}`);
  const data = await readFile(join(dir, names[0]!));
  return objectsOf(data[0] === 0x1f ? gunzipSync(data).toString('utf8') : data.toString('utf8'));
}

async function summaryOf(dir: string): Promise<RunSummary> {
  const names = (await readdir(dir)).filter((name) => name.endsWith('.summary.json'));
  assert.equal(names.length, 1, `one summary expected in ${dir}`);
  return JSON.parse(await readFile(join(dir, names[0]!), 'utf8')) as RunSummary;
}

/** A Helm v3 release Secret as Helm writes it: data.release = base64(base64(gzip(release JSON))). */
function helmReleaseSecret(namespace: string, label: Record<string, string>, password: string): unknown {
  const release = {
    name: 'shop',
    namespace,
    version: 3,
    info: { status: 'deployed', first_deployed: '2026-11-01T10:00:00Z', last_deployed: '2026-11-20T10:00:00Z' },
    chart: { metadata: { name: 'shop-chart', version: '1.4.2', appVersion: '2.0.0' }, values: { db: { password } } },
    config: { db: { password } },
    manifest: `apiVersion: v1\nkind: Secret\nstringData:\n  password: ${password}\n`,
  };
  const helmEncoded = gzipSync(Buffer.from(JSON.stringify(release))).toString('base64');
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'helm.sh/release.v1',
    metadata: { name: 'sh.helm.release.v1.shop.v3', namespace, labels: { ...label, owner: 'helm', name: 'shop', status: 'deployed', version: '3' } },
    data: { release: Buffer.from(helmEncoded).toString('base64') },
  };
}

describe('inventory collect', () => {
  const runLabel = `run-${randomBytes(3).toString('hex')}`;
  const selector = `crowsnest-inventory-test=${runLabel}`;
  const label = { 'crowsnest-inventory-test': runLabel };
  const secretValue = `s3cr3t-${randomBytes(6).toString('hex')}`;
  const helmPassword = `helm-pw-${randomBytes(6).toString('hex')}`;
  const crdGroup = 'inventory.crowsnest.test';
  const namespaces: string[] = [];
  /** uid → `kind namespace/name` of every object the snapshot must contain. */
  const expected = new Map<string, string>();
  const receiver = new Receiver();
  const receivers: K8sCollectorReceiver[] = [];
  const workDirs: string[] = [];
  let client: KubeClient;

  const reportDir = async (): Promise<string> => {
    const dir = await mkdtemp(join(tmpdir(), 'crowsnest-inventory-'));
    workDirs.push(dir);
    return dir;
  };

  const create = async (path: string, body: unknown): Promise<SentObject> => client.json(path, { method: 'POST', body });

  before(async () => {
    const plane = await testbed();
    client = new KubeClient(await adminKubeConfig());
    await receiver.start();
    await create('/apis/apiextensions.k8s.io/v1/customresourcedefinitions', {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: `widgets.${crdGroup}` },
      spec: {
        group: crdGroup,
        scope: 'Namespaced',
        names: { plural: 'widgets', singular: 'widget', kind: 'Widget', listKind: 'WidgetList' },
        versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', properties: { spec: { type: 'object', properties: { size: { type: 'integer' } } } } } } }],
      },
    }).catch((err: unknown) => {
      if (!String(err).includes('409')) throw err; // a rerun against a kept cluster
    });
    await eventually('the Widget CRD to be served', async () => {
      const out = await plane.request('GET', `/apis/${crdGroup}/v1/widgets`);
      return out.status === 200;
    });
    for (const prefix of ['inv-a', 'inv-b', 'inv-c']) namespaces.push(await newNamespace(prefix));
    for (const namespace of namespaces) {
      const made = await Promise.all([
        create(`/api/v1/namespaces/${namespace}/configmaps`, { metadata: { name: 'settings', labels: label, annotations: { 'kubectl.kubernetes.io/last-applied-configuration': `{"secret":"${secretValue}"}` } }, data: { mode: 'fast' } }),
        create(`/api/v1/namespaces/${namespace}/secrets`, { metadata: { name: 'db', labels: label }, stringData: { password: secretValue, user: 'app' } }),
        create(`/api/v1/namespaces/${namespace}/secrets`, helmReleaseSecret(namespace, label, helmPassword)),
        create(`/apis/${crdGroup}/v1/namespaces/${namespace}/widgets`, { apiVersion: `${crdGroup}/v1`, kind: 'Widget', metadata: { name: 'gear', labels: label }, spec: { size: 3 } }),
        create(`/api/v1/namespaces/${namespace}/serviceaccounts`, { metadata: { name: 'worker', labels: label } }),
        // Not labelled: the selector must leave it out.
        create(`/api/v1/namespaces/${namespace}/configmaps`, { metadata: { name: 'unlabelled' }, data: { x: '1' } }),
      ]);
      for (const object of made.slice(0, 5)) expected.set(object['metadata'].uid, `${object['kind'] ?? ''} ${namespace}/${object['metadata'].name}`);
    }
  });

  after(async () => {
    await receiver.stop();
    for (const collector of receivers) await collector.stop();
    await client.close();
    await Promise.all(workDirs.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  const baseArgs = (): string[] => ['inventory', 'collect', 'itest', '--label-selector', selector, '--add-types', 'secrets', '--namespaces', namespaces.join(',')];

  it('logs in as k8s-collector did and sends every selected object exactly once, gzip-chunked with the token and run headers, and no secret value anywhere', async () => {
    const dir = await reportDir();
    const collector = await new K8sCollectorReceiver({ accessKey: 'ak-123', secretKey: 'sk-456' }).start();
    receivers.push(collector);
    const run = await runCli([...baseArgs(), '--endpoint', collector.url, '--report-dir', dir, '--chunk-size', '1Ki', '--output', 'json'], {
      INFRALIGHT_ACCESS_KEY: 'ak-123',
      CROWSNEST_SECRET_KEY: 'sk-456',
    });
    assert.equal(run.code, 0, run.stderr + run.stdout);
    const requests = collector.chunks;
    assert.ok(requests.length >= 3, `small chunks should need several requests, got ${requests.length}`);
    assert.deepEqual(collector.logins.map((l) => [l.at, l.status, l.body]), [['sink', 200, { accessKey: 'ak-123', secretKey: 'sk-456' }]], 'one login for the whole run');
    assert.deepEqual(collector.refused, []);

    const runIds = new Set(requests.map((r) => r.headers['x-crowsnest-run-id']));
    assert.equal(runIds.size, 1);
    requests.forEach((request, index) => {
      assert.equal(request.headers['content-encoding'], 'gzip');
      assert.equal(request.headers['content-type'], 'application/json');
      assert.ok(!JSON.stringify(request.headers).includes('ak-123') && !JSON.stringify(request.headers).includes('sk-456'), 'a key travelled with a chunk');
      assert.equal(request.headers['x-crowsnest-cluster-id'], 'itest');
      assert.equal(request.headers['x-crowsnest-chunk-index'], String(index));
      assert.equal(request.headers['x-crowsnest-chunk-final'], String(index === requests.length - 1));
    });

    const received = requests.flatMap((request) => objectsOf(request.text));
    const uids = received.map((object) => object['metadata'].uid as string);
    assert.equal(new Set(uids).size, uids.length, 'an object arrived twice');
    assert.deepEqual(new Set(uids), new Set(expected.keys()), 'the received objects differ from the labelled ones');
    for (const object of received) {
      assert.ok(object['apiVersion'] && object['kind'], `apiVersion/kind missing on ${object['metadata'].name}`);
      assert.equal(object['metadata'].managedFields, undefined);
    }
    const widget = received.find((object) => object['kind'] === 'Widget');
    assert.equal(widget?.['apiVersion'], `${crdGroup}/v1`);
    const helm = received.find((object) => object['type'] === 'helm.sh/release.v1');
    assert.equal(helm?.['helmRelease']?.chart, 'shop-chart');
    assert.equal(helm?.['helmRelease']?.status, 'deployed');
    assert.equal(helm?.['helmRelease']?.revision, 3);
    const plain = received.find((object) => object['kind'] === 'Secret' && object['metadata'].name === 'db');
    assert.deepEqual(Object.keys(plain?.['data'] ?? {}).sort(), ['password', 'user'], 'secret keys are kept');

    const everything = requests.map((r) => r.text).join('\n') + run.stdout + run.stderr + (await everythingWritten(dir));
    for (const value of [secretValue, helmPassword, Buffer.from(secretValue).toString('base64'), Buffer.from(helmPassword).toString('base64')]) {
      assert.ok(!everything.includes(value), `a secret value leaked: ${value}`);
    }

    const summary = JSON.parse(run.stdout) as RunSummary;
    assert.equal(summary['result'], 'success');
    assert.equal(summary['objects'], expected.size);
    assert.equal(summary['sink'].delivered, true);
    assert.equal(summary['sink'].chunks, requests.length);
    // On success the spool is removed; the summary stays for history.
    assert.deepEqual((await readdir(dir)).filter((name) => !name.endsWith('.summary.json')), []);
  });

  it('keeps the snapshot when the login refuses the keys or is down, and delivers both with the next run on one login', async () => {
    const dir = await reportDir();
    const collector = await new K8sCollectorReceiver({ accessKey: 'ak-right', secretKey: 'sk-right' }).start();
    receivers.push(collector);
    const args = [...baseArgs(), '--endpoint', collector.url, '--report-dir', dir, '--upload-attempts', '1', '--output', 'json'];
    const wrong = await runCli(args, { CROWSNEST_ACCESS_KEY: 'ak-right', CROWSNEST_SECRET_KEY: 'sk-wrong' });
    assert.equal(wrong.code, 1, wrong.stderr + wrong.stdout);
    const refused = JSON.parse(wrong.stdout) as RunSummary;
    assert.equal(refused.sink.delivered, false);
    assert.match(refused.sink.error ?? '', /^login at 127\.0\.0\.1:\d+ refused: HTTP 401: .* \(check the access and secret keys\)$/);
    assert.equal(collector.chunks.length, 0);

    collector.loginUp = false;
    const down = await runCli(args, { CROWSNEST_ACCESS_KEY: 'ak-right', CROWSNEST_SECRET_KEY: 'sk-right' });
    assert.equal(down.code, 1, down.stderr + down.stdout);
    assert.match((JSON.parse(down.stdout) as RunSummary).sink.error ?? '', /^login at 127\.0\.0\.1:\d+ unreachable after 1 attempts: HTTP 503/);
    const kept = (await readdir(dir)).filter((name) => name.endsWith('.ndjson.gz'));
    assert.equal(kept.length, 2, `both snapshots kept: ${kept.join(', ')}`);

    collector.loginUp = true;
    collector.logins.length = 0;
    const next = await runCli(args, { CROWSNEST_ACCESS_KEY: 'ak-right', CROWSNEST_SECRET_KEY: 'sk-right' });
    assert.equal(next.code, 0, next.stderr + next.stdout);
    const summary = JSON.parse(next.stdout) as RunSummary;
    assert.deepEqual(summary.resent?.map((r) => r.delivered), [true, true]);
    assert.equal(collector.logins.length, 1, 'the kept snapshots and the run\'s own share one token');
    const runs = new Set(collector.chunks.map((c) => c.headers['x-crowsnest-run-id']));
    assert.deepEqual(runs, new Set([refused.runId, (JSON.parse(down.stdout) as RunSummary).runId, summary.runId]));
    assert.deepEqual((await readdir(dir)).filter((name) => name.endsWith('.ndjson.gz')), [], 'delivered snapshots are removed');
  });

  it('logs in at the login endpoint when loginEndpoint is in the config directory (later k8s-collector)', async () => {
    const dir = await reportDir();
    const config = await reportDir();
    const collector = await new K8sCollectorReceiver({ accessKey: 'ak-1', secretKey: 'sk-1' }).start();
    receivers.push(collector);
    await writeFile(join(config, 'endpoint'), `${collector.url}/\n`);
    await writeFile(join(config, 'loginEndpoint'), collector.loginUrl);
    const run = await runCli([...baseArgs(), '-config', config, '--report-dir', dir], { INFRALIGHT_ACCESS_KEY: 'ak-1', INFRALIGHT_SECRET_KEY: 'sk-1' });
    assert.equal(run.code, 0, run.stderr + run.stdout);
    assert.deepEqual(collector.logins.map((l) => l.at), ['account']);
    assert.equal(collector.chunks.flatMap((c) => c.objects).length, expected.size);
  });

  it('retries a chunk the endpoint answered with 500, and succeeds on the 204', async () => {
    const dir = await reportDir();
    receiver.requests.length = 0;
    receiver.script = [500];
    const run = await runCli([...baseArgs(), '--endpoint', receiver.url, '--report-dir', dir, '--output', 'json']);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(receiver.requests.map((r) => r.status), [500, 204]);
    assert.equal(receiver.requests[0]!.text, receiver.requests[1]!.text, 'the retry resends the same chunk');
    const summary = JSON.parse(run.stdout) as RunSummary;
    assert.equal(summary['sink'].retries, 1);
  });

  it('keeps the snapshot in the report directory and exits 1 when the endpoint stays down', async () => {
    const dir = await reportDir();
    const down = new Receiver();
    await down.start();
    const url = down.url;
    await down.stop(); // nothing listens there any more
    const run = await runCli([...baseArgs(), '--endpoint', url, '--report-dir', dir, '--upload-attempts', '2']);
    assert.equal(run.code, 1, run.stderr + run.stdout);
    assert.match(run.stdout, /NOT delivered/);
    const kept = await snapshotObjects(dir);
    assert.deepEqual(new Set(kept.map((object) => object['metadata'].uid)), new Set(expected.keys()));
    const summary = await summaryOf(dir);
    assert.equal(summary['result'], 'failure');
    assert.equal(summary['sink'].delivered, false);
    assert.match(summary['sink'].error!, /unreachable/);
  });

  it('sends a snapshot kept while the endpoint was down with the next run, under its own run id', async () => {
    const dir = await reportDir();
    const down = new Receiver();
    await down.start();
    await down.stop();
    const failed = await runCli([...baseArgs(), '--endpoint', down.url, '--report-dir', dir, '--upload-attempts', '1']);
    assert.equal(failed.code, 1, failed.stderr);
    const keptSummary = await summaryOf(dir);
    const keptRunId = keptSummary['runId'] as string;
    const keptPath = keptSummary['sink'].path as string;

    receiver.requests.length = 0;
    const next = await runCli([...baseArgs(), '--endpoint', receiver.url, '--report-dir', dir, '--output', 'json']);
    assert.equal(next.code, 0, next.stderr);
    const summary = JSON.parse(next.stdout) as RunSummary;
    assert.deepEqual(summary['resent']!.map((r: { runId: string; delivered: boolean }) => [r.runId, r.delivered]), [[keptRunId, true]]);
    const runIds = receiver.requests.map((r) => r.headers['x-crowsnest-run-id']);
    assert.equal(runIds[0], keptRunId, 'the kept snapshot goes first');
    assert.deepEqual(new Set(runIds), new Set([keptRunId, summary['runId']]));
    const keptObjects = receiver.requests.filter((r) => r.headers['x-crowsnest-run-id'] === keptRunId).flatMap((r) => (JSON.parse(r.text) as { objects: SentObject[] }).objects);
    assert.deepEqual(new Set(keptObjects.map((o) => o['metadata'].uid)), new Set(expected.keys()));
    await assert.rejects(readFile(keptPath), /ENOENT/, 'the delivered snapshot file is removed');
    const summaries = await Promise.all((await readdir(dir)).filter((n) => n.endsWith('.summary.json')).map(async (n) => JSON.parse(await readFile(join(dir, n), 'utf8')) as RunSummary));
    const old = summaries.find((s) => s['runId'] === keptRunId)!;
    assert.equal(old['sink'].delivered, true);
    assert.ok(old['sink'].resentAt, 'the old summary says when it was re-sent');
    assert.equal(old['result'], 'success');
  });

  it('writes one snapshot file in the chosen format and a summary, atomically named by time and cluster', async () => {
    for (const [format, gzip, pattern] of [['ndjson', true, /^inventory-itest-\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{8}\.ndjson\.gz$/], ['json', false, /^inventory-itest-\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{8}\.json$/]] as const) {
      const dir = await reportDir();
      const run = await runCli([...baseArgs(), '--report-dir', dir, '--format', format, ...(gzip ? [] : ['--no-gzip'])]);
      assert.equal(run.code, 0, run.stderr);
      const names = await readdir(dir);
      assert.equal(names.filter((name) => pattern.test(name)).length, 1, `${format}: ${names.join(', ')}`);
      assert.ok(!names.some((name) => name.endsWith('.tmp')), 'no temporary file left');
      assert.equal((await snapshotObjects(dir)).length, expected.size);
      assert.equal((await summaryOf(dir))['objects'], expected.size);
    }
  });

  it('--dry-run prints {"objects":[…]} and neither writes nor sends (seed flags accepted)', async () => {
    const plane = await testbed();
    const dir = await reportDir();
    receiver.requests.length = 0;
    const run = await runCli(['inventory', 'collect', 'itest', '-external', plane.kubeconfigPath, '-dry-run', '--label-selector', selector, '--namespaces', namespaces.join(','), '--add-types', 'secrets', '--endpoint', receiver.url, '--report-dir', dir]);
    assert.equal(run.code, 0, run.stderr);
    const printed = objectsOf(run.stdout);
    assert.equal(printed.length, expected.size);
    assert.ok(!run.stdout.includes(secretValue));
    assert.equal(receiver.requests.length, 0);
    assert.deepEqual(await readdir(dir).catch(() => []), []);
    assert.match(run.stderr, /dry run/);
  });

  it('skips an API group whose discovery fails, reports it, and collects the rest (exit 3)', async () => {
    const dir = await reportDir();
    const apiService = `/apis/apiregistration.k8s.io/v1/apiservices/v1.broken.${crdGroup}`;
    await create('/apis/apiregistration.k8s.io/v1/apiservices', {
      apiVersion: 'apiregistration.k8s.io/v1',
      kind: 'APIService',
      metadata: { name: `v1.broken.${crdGroup}` },
      spec: { group: `broken.${crdGroup}`, version: 'v1', service: { namespace: 'default', name: 'no-such-service', port: 443 }, insecureSkipTLSVerify: true, groupPriorityMinimum: 100, versionPriority: 10 },
    });
    try {
      const plane = await testbed();
      await eventually('the broken group to be listed in /apis', async () => (await plane.request('GET', '/apis')).body.includes(`broken.${crdGroup}`));
      const run = await runCli([...baseArgs(), '--report-dir', dir, '--output', 'json']);
      assert.equal(run.code, 3, run.stderr);
      const summary = JSON.parse(run.stdout) as RunSummary;
      assert.equal(summary['result'], 'partial');
      assert.deepEqual(summary['failedGroups'].map((group: { groupVersion: string }) => group.groupVersion), [`broken.${crdGroup}/v1`]);
      assert.match(summary['failedGroups'][0]!.reason, /503|unavailable/i);
      assert.equal(summary['objects'], expected.size, 'the other groups are still collected');
    } finally {
      await client.send(apiService, { method: 'DELETE' });
    }
  });

  it('rejects a bad cluster id and a bad config file with a clear message and exit 2', async () => {
    const badId = await runCli(['inventory', 'collect', 'Prod_Cluster!']);
    assert.equal(badId.code, 2);
    assert.match(badId.stderr, /invalid cluster id "Prod_Cluster!".*\^\[a-z0-9-_\]\+\$/);

    const missing = await runCli(['inventory', 'collect'], { CLUSTER_ID: '' });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cluster id is required/);

    const configDir = await reportDir();
    await writeFile(join(configDir, 'pageSize'), 'lots\n');
    const badConfig = await runCli(['inventory', 'collect', 'itest', '--config', configDir]);
    assert.equal(badConfig.code, 2);
    assert.match(badConfig.stderr, new RegExp(`invalid value "lots" for --page-size \\(from ${join(configDir, 'pageSize')}\\)`));

    const badType = await runCli(['inventory', 'collect', 'itest', '--add-types', 'pods/log']);
    assert.equal(badType.code, 2);
    assert.match(badType.stderr, /subresources/);

    const noDir = await runCli(['inventory', 'collect', 'itest', '--config', join(configDir, 'absent')]);
    assert.equal(noDir.code, 2);
    assert.match(noDir.stderr, /does not exist/);
  });

  it('reads its settings from a config directory laid out like a mounted ConfigMap', async () => {
    const configDir = await reportDir();
    const out = await reportDir();
    // A ConfigMap volume: real files under ..data, keys are symlinks to them.
    await mkdir(join(configDir, '..data'));
    const keys: Record<string, string> = { labelSelector: selector, addTypes: '- secrets\n', namespaces: namespaces.join('\n'), reportDir: out, removeTypes: 'customresources' };
    const { symlink } = await import('node:fs/promises');
    for (const [key, value] of Object.entries(keys)) {
      await writeFile(join(configDir, '..data', key), value);
      await symlink(join('..data', key), join(configDir, key));
    }
    const run = await runCli(['inventory', 'collect', 'itest', '-config', configDir]);
    assert.equal(run.code, 0, run.stderr);
    const objects = await snapshotObjects(out);
    assert.equal(objects.length, expected.size - namespaces.length, 'widgets are removed with customresources');
    assert.ok(!objects.some((object) => object['kind'] === 'Widget'));
  });

  it('runs k8s-collector\'s documented command line: -external <kubeconfig> -config <dir> -debug <clusterId> (Go flag syntax), with its collector.* ConfigMap keys', async () => {
    const plane = await testbed();
    const configDir = await reportDir();
    const out = await reportDir();
    // The tool's own keys where it had them: a per-type switch and its page size.
    const keys: Record<string, string> = {
      labelSelector: selector, 'collector.resources.secrets': 'true', 'collector.PageSize': '2', namespaces: namespaces.join('\n'), reportDir: out, removeTypes: 'customresources',
    };
    for (const [key, value] of Object.entries(keys)) await writeFile(join(configDir, key), value);
    // -debug is a switch: `mycluster` after it is the cluster id, not the switch's value.
    const run = await runCli(['inventory', 'collect', '-external', plane.kubeconfigPath, '-config', configDir, '-debug', 'seed-cluster'], { KUBECONFIG: '/nonexistent' });
    assert.equal(run.code, 0, run.stderr);
    assert.equal((await summaryOf(out)).clusterId, 'seed-cluster');
    assert.equal((await snapshotObjects(out)).length, expected.size - namespaces.length);
  });
});

describe('inventory paging', () => {
  it('pages through more than 2,000 objects and restarts a type whose continue token expired, delivering each object once', async () => {
    const plane = await testbed();
    const client = new KubeClient(await adminKubeConfig());
    const namespace = await newNamespace('inv-paging');
    const count = 2_100;
    // PodTemplates: the testbed serves them without the watch cache, so lists page through etcd
    // and a compaction really expires the continue token (cached lists would not notice).
    const template = (name: string): unknown => ({ metadata: { name }, template: { spec: { containers: [{ name: 'c', image: 'busybox' }] } } });
    await mapConcurrent(Array.from({ length: count }, (_, i) => i), 32, async (i) => {
      await client.json(`/api/v1/namespaces/${namespace}/${UNCACHED_RESOURCE}`, { method: 'POST', body: template(`pt-${i}`) });
    });
    const dir = await mkdtemp(join(tmpdir(), 'crowsnest-inventory-paging-'));
    try {
      let compacted = false;
      const summary = await collectInventory(client, {
        clusterId: 'paging',
        runId: 'paging-run',
        selectors: { base: [UNCACHED_RESOURCE], add: [], remove: [] },
        namespaces: [namespace],
        ignoreNamespaces: [],
        pageSize: 500,
        concurrency: 2,
        qps: 100,
        burst: 100,
        maxObjectBytes: 0,
        redaction: { enabled: true, secretValueDigest: false },
        sink: { kind: 'dir', dir, format: 'ndjson', gzip: true, retention: { keepLast: 0, maxAgeMs: 0, maxUndelivered: 0 } },
        logger: silentLogger,
        signal: new AbortController().signal,
        // After the second page, compact etcd past the list's resourceVersion: the continue
        // token now points at history that no longer exists.
        afterPage: async (_type, page) => {
          if (page === 2 && !compacted) {
            compacted = true;
            await client.json(`/api/v1/namespaces/${namespace}/${UNCACHED_RESOURCE}`, { method: 'POST', body: template('written-after-page-2') });
            await plane.compactEtcd();
          }
        },
      });
      const type = summary.types.find((t) => t.type === UNCACHED_RESOURCE)!;
      assert.equal(type.error, undefined);
      assert.ok(type.restarts >= 1, `expected a restart after the 410, got ${type.restarts} (pages ${type.pages})`);
      const objects = await snapshotObjects(dir);
      const names = objects.map((object) => object['metadata'].name as string);
      assert.equal(new Set(names).size, names.length, 'an object was written twice after the restart');
      for (let i = 0; i < count; i++) assert.ok(names.includes(`pt-${i}`), `pt-${i} missing`);
      assert.ok(type.pages >= 5, `2,100 objects at 500 per page take at least 5 pages, got ${type.pages}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
      await client.close();
    }
  });
});
