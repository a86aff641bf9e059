/**
 * `crowsnest inventory collect` as a real process against the testbed's API server, with faults
 * injected around it (issue 10): endpoints that fail, reset, never listen, answer forever or
 * trickle; a proxy answering 429 with Retry-After for the API server; runs killed mid-upload;
 * outages longer than retention; runs in the same second; report directories that cannot be
 * written; input that would produce nothing. Each asserts what a CronJob's owner relies on: the
 * exit code, the summary, and that nothing is lost or left half-written.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RunSummary } from '../../../src/inventory/summary.ts';
import { mapConcurrent } from '../../../src/kube/concurrency.ts';
import { LABEL_SELECTOR_CASES } from '../../helpers/label-selectors.ts';
import { eventually, newNamespace, serviceAccountToken, testbed } from '../testbed.ts';
import { ApiServerProxy, crowsnest, type EndpointAnswer, filesIn, MisbehavingEndpoint, removeTempDirs, startCrowsnest, summariesIn, tempDir } from './helpers.ts';

const CONFIG_MAPS = 30;
const MiB = 1024 * 1024;

describe('inventory collect under faults (a real process)', () => {
  let namespace = '';
  let kubeconfig = '';
  const endpoints: MisbehavingEndpoint[] = [];
  let proxy: ApiServerProxy;

  /** A short run: this namespace's ConfigMaps only. */
  const collect = (dir: string, extra: readonly string[] = [], env: Record<string, string> = {}) =>
    crowsnest(['inventory', 'collect', 'faults', '--resources', 'configmaps', '--namespaces', namespace, '--report-dir', dir, '--output', 'json', '--log-format', 'json', '--log-level', 'warn', ...extra], { KUBECONFIG: kubeconfig, ...env });
  const endpoint = async (answer: (n: number) => EndpointAnswer): Promise<MisbehavingEndpoint> => {
    const started = await MisbehavingEndpoint.start(answer);
    endpoints.push(started);
    return started;
  };
  const summaryOf = (stdout: string): RunSummary => JSON.parse(stdout) as RunSummary;

  before(async () => {
    const plane = await testbed();
    kubeconfig = plane.kubeconfigPath;
    namespace = await newNamespace('faults-inv');
    await mapConcurrent(Array.from({ length: CONFIG_MAPS }, (_, i) => i), 8, async (i) => {
      const res = await plane.request('POST', `/api/v1/namespaces/${namespace}/configmaps`, { metadata: { name: `cm-${i}` }, data: { i: String(i) } });
      assert.equal(res.status, 201, res.body);
    });
    // kube-root-ca.crt, which kube-controller-manager adds to every namespace, is the one more.
    await eventually('the namespace holds its ConfigMaps and kube-root-ca.crt', async () =>
      (JSON.parse((await plane.request('GET', `/api/v1/namespaces/${namespace}/configmaps`)).body) as { items: unknown[] }).items.length === CONFIG_MAPS + 1, 30_000);
    proxy = await ApiServerProxy.start();
  });
  after(async () => {
    for (const started of endpoints.splice(0)) await started.stop();
    await proxy?.stop();
    await removeTempDirs();
  });

  // Item 1. Before the CLI held its process open, every wait below ended the run with exit 13.
  // Its cases run at once: each has its own report directory and endpoint, and only the 429 case
  // goes through the shared proxy (its rule is that case's alone).
  describe('a wait inside the run never ends it early', { concurrency: true }, () => {
    it('an endpoint answering 500 once, then 204: retried, delivered, exit 0', async () => {
      const dir = await tempDir();
      const target = await endpoint((n) => (n === 0 ? 500 : 204));
      const run = await collect(dir, ['--endpoint', target.url]);
      assert.equal(run.code, 0, run.stderr);
      const summary = summaryOf(run.stdout);
      assert.deepEqual([summary['result'], summary['sink'].delivered, summary['sink'].retries, summary['objects']], ['success', true, 1, CONFIG_MAPS + 1]);
      assert.deepEqual((await filesIn(dir)).temporary, []);
    });

    it('an endpoint that resets the connection once: retried, delivered, exit 0', async () => {
      const dir = await tempDir();
      const target = await endpoint((n) => (n === 0 ? 'reset' : 204));
      const run = await collect(dir, ['--endpoint', target.url]);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(summaryOf(run.stdout)['sink'].delivered, true);
    });

    it('an endpoint where nothing listens: retried, then kept with its summary, exit 1', async () => {
      const dir = await tempDir();
      const run = await collect(dir, ['--endpoint', await MisbehavingEndpoint.refusing(), '--upload-attempts', '2']);
      assert.equal(run.code, 1, run.stderr);
      const summary = summaryOf(run.stdout);
      assert.equal(summary['result'], 'failure');
      assert.match(summary['sink'].error!, /^endpoint 127\.0\.0\.1:\d+ unreachable for chunk 0 after 2 attempts: connection refused \(ECONNREFUSED\)/);
      const files = await filesIn(dir);
      assert.deepEqual(files.temporary, []);
      assert.equal(files.names.length, 2, files.names.join(', '));
    });

    it('the API server (through a proxy) answering 429 with Retry-After: 1: the page is asked again, exit 0', async () => {
      const dir = await tempDir();
      const proxyKubeconfig = await proxy.kubeconfig(dir);
      let refused = 0;
      proxy.rule = ({ path }) => (path.includes('/configmaps') && refused++ === 0
        ? { status: 429, headers: { 'retry-after': '1' }, body: { kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 429, reason: 'TooManyRequests', message: 'too many requests' } }
        : 'forward');
      try {
        const run = await collect(dir, [], { KUBECONFIG: proxyKubeconfig });
        assert.equal(run.code, 0, run.stderr);
        const summary = summaryOf(run.stdout);
        assert.equal(summary['objects'], CONFIG_MAPS + 1);
        assert.equal(summary['types'][0]!.retries, 1);
        assert.ok(run.durationMs >= 1_000, 'the Retry-After was waited for');
      } finally {
        proxy.rule = () => 'forward';
      }
    });

    it('one object per page (--page-size 1) under a rate limit (--qps 50 --burst 10): every object, exit 0', async () => {
      const dir = await tempDir();
      const run = await collect(dir, ['--page-size', '1', '--qps', '50', '--burst', '10']);
      assert.equal(run.code, 0, run.stderr);
      const summary = summaryOf(run.stdout);
      assert.equal(summary['objects'], CONFIG_MAPS + 1);
      assert.equal(summary['types'][0]!.pages, CONFIG_MAPS + 1);
      assert.deepEqual((await filesIn(dir)).temporary, []);
    });
  });

  // Item 5.
  describe('answers that cannot be trusted are read only as far as needed', () => {
    it('an endpoint answering 200 with an endless body: delivered at once, the body not read', async () => {
      const dir = await tempDir();
      const target = await endpoint(() => ({ status: 200, body: 'endless' }));
      const run = await collect(dir, ['--endpoint', target.url]);
      assert.equal(run.code, 0, run.stderr);
      assert.ok(run.durationMs < 15_000, `took ${run.durationMs} ms`);
      assert.ok(target.bodyBytesSent < 32 * MiB, `${Math.round(target.bodyBytesSent / MiB)} MiB of the answer were taken`);
    });

    it('an endpoint answering 500 with an endless body: its start is quoted, the run fails after its attempts, exit 1', async () => {
      const dir = await tempDir();
      const target = await endpoint(() => ({ status: 500, body: 'endless' }));
      const run = await collect(dir, ['--endpoint', target.url, '--upload-attempts', '1']);
      assert.equal(run.code, 1, run.stderr);
      assert.match(summaryOf(run.stdout)['sink'].error!, /HTTP 500: x{200}…$/);
      assert.ok(target.bodyBytesSent < 32 * MiB, `${Math.round(target.bodyBytesSent / MiB)} MiB of the answer were taken`);
    });

    it('an endpoint whose error body trickles in forever: the request timeout ends it, exit 1', async () => {
      const dir = await tempDir();
      const target = await endpoint(() => ({ status: 503, body: 'trickle' }));
      const run = await collect(dir, ['--endpoint', target.url, '--upload-attempts', '1', '--timeout', '2s']);
      assert.equal(run.code, 1, run.stderr);
      assert.ok(run.durationMs < 15_000, `took ${run.durationMs} ms`);
    });
  });

  // Items 1, 2 and 3: nothing the endpoint did not get is lost.
  describe('undelivered snapshots are kept until delivered', () => {
    it('a run killed (SIGKILL) mid-upload leaves its snapshot with a summary, and the next run delivers it', async () => {
      const dir = await tempDir();
      const silent = await endpoint(() => 'silent');
      const killed = startCrowsnest(['inventory', 'collect', 'faults', '--resources', 'configmaps', '--namespaces', namespace, '--report-dir', dir, '--endpoint', silent.url], { KUBECONFIG: kubeconfig });
      for (let i = 0; i < 600 && silent.requests.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 50));
      killed.child.kill('SIGKILL');
      await killed.exit;
      const [kept] = await summariesIn(dir);
      assert.equal(kept?.['sink'].delivered, false, 'the summary written before the snapshot appeared');

      const good = await endpoint(() => 204);
      const next = await collect(dir, ['--endpoint', good.url]);
      assert.equal(next.code, 0, next.stderr);
      assert.deepEqual(summaryOf(next.stdout)['resent']!.map((r: { runId: string; delivered: boolean }) => [r.runId, r.delivered]), [[kept!['runId'], true]]);
      assert.equal(good.requests[0]!.runId, kept!['runId'], 'the kept snapshot went first');
    });

    it('an outage longer than retention (--keep-last 1, --max-age 1s): every undelivered snapshot is kept, then all are sent, oldest first', async () => {
      const dir = await tempDir();
      const down = await MisbehavingEndpoint.refusing();
      const failedRunIds: string[] = [];
      for (let i = 0; i < 3; i++) {
        const run = await collect(dir, ['--endpoint', down, '--upload-attempts', '1', '--keep-last', '1', '--max-age', '1s']);
        assert.equal(run.code, 1, run.stderr);
        failedRunIds.push(summaryOf(run.stdout)['runId'] as string);
      }
      assert.equal((await filesIn(dir)).names.filter((name) => name.endsWith('.ndjson.gz')).length, 3, 'retention for delivered runs took none of them');
      const last = summaryOf((await collect(dir, ['--endpoint', down, '--upload-attempts', '1', '--keep-last', '1'])).stdout);
      failedRunIds.push(last['runId'] as string);
      assert.equal(last['retention']!.undeliveredKept, 4);

      const good = await endpoint(() => 204);
      const run = await collect(dir, ['--endpoint', good.url, '--keep-last', '1']);
      assert.equal(run.code, 0, run.stderr);
      const resent = summaryOf(run.stdout)['resent'] as { runId: string; delivered: boolean }[];
      assert.deepEqual(resent.map((r) => [r.runId, r.delivered]), failedRunIds.map((id) => [id, true]), 'oldest first, every one');
      assert.deepEqual([...new Set(good.requests.map((r) => r.runId))], [...failedRunIds, summaryOf(run.stdout)['runId']]);
    });

    it('a bound on undelivered snapshots (--max-undelivered 1): the older one is deleted with a warning in the summary', async () => {
      const dir = await tempDir();
      const down = await MisbehavingEndpoint.refusing();
      await collect(dir, ['--endpoint', down, '--upload-attempts', '1']);
      const run = await collect(dir, ['--endpoint', down, '--upload-attempts', '1', '--max-undelivered', '1']);
      const summary = summaryOf(run.stdout);
      assert.equal(summary['retention']!.undeliveredKept, 1);
      assert.equal(summary['retention']!.undeliveredDeleted.length, 2, 'its snapshot and summary');
      assert.ok(summary['warnings'].some((w: string) => /never delivered were deleted, because more than --max-undelivered/.test(w)), summary['warnings'].join('\n'));
      assert.match(run.stderr, /undelivered snapshots deleted/);
    });

    it('two runs started at the same moment keep a snapshot each', async () => {
      const dir = await tempDir();
      const down = await MisbehavingEndpoint.refusing();
      const runs = await Promise.all([0, 1].map(() => collect(dir, ['--endpoint', down, '--upload-attempts', '1'])));
      for (const run of runs) assert.equal(run.code, 1, run.stderr);
      const snapshots = (await filesIn(dir)).names.filter((name) => name.endsWith('.ndjson.gz'));
      assert.equal(snapshots.length, 2, snapshots.join(', '));
      const paths = runs.map((run) => summaryOf(run.stdout)['sink'].path as string).sort();
      assert.deepEqual(paths, snapshots.map((name) => join(dir, name)));
    });
  });

  // Items 4, 8 and 9: refused before any work, saying what is wrong.
  describe('refused before any work (exit 2), or failing with the reason (exit 1)', () => {
    it('a report directory that cannot be written: exit 2 before anything is listed', async () => {
      const dir = await tempDir();
      const proxyKubeconfig = await proxy.kubeconfig(dir);
      const before = proxy.requests.length;
      for (const reportDir of ['/proc/nope/reports', '/proc/self']) {
        const run = await crowsnest(['inventory', 'collect', 'faults', '--report-dir', reportDir], { KUBECONFIG: proxyKubeconfig });
        assert.equal(run.code, 2, run.stderr);
        assert.match(run.stderr, new RegExp(`^error: report directory ${reportDir}: .*nothing was collected$`, 'm'));
      }
      assert.equal(proxy.requests.length, before, 'not a single request');
    });

    const typos: [string[], RegExp][] = [
      [['--resources', 'configmaps,podz'], /^error: --resources "podz" matches no resource type this cluster serves \(did you mean "pods"\?\); nothing was collected$/m],
      [['--add-types', 'deploymnets.apps'], /--add-types "deploymnets\.apps" .*did you mean "deployments\.apps"/],
      [['--resources', 'aps/*'], /--resources "aps\/\*" .*did you mean "apps\/\*"/],
      [['--remove-types', 'secret'], /--remove-types "secret" .*did you mean "secrets"/],
    ];
    for (const [args, message] of typos) {
      it(`a type selector that matches nothing served (${args.join(' ')}): exit 2 with the nearest real one, nothing written`, async () => {
        const dir = await tempDir();
        const run = await crowsnest(['inventory', 'collect', 'faults', '--report-dir', dir, ...args], { KUBECONFIG: kubeconfig });
        assert.equal(run.code, 2, run.stderr);
        assert.match(run.stderr, message);
        assert.deepEqual((await filesIn(dir)).names, []);
      });
    }

    it('label selectors: refused exactly when the API server would refuse them', async () => {
      const plane = await testbed();
      for (const [selector, valid] of LABEL_SELECTOR_CASES) {
        const res = await plane.request('GET', `/api/v1/namespaces/${namespace}/configmaps?limit=1&labelSelector=${encodeURIComponent(selector)}`);
        assert.equal(res.status === 200, valid, `${JSON.stringify(selector)}: the API server answered ${res.status} ${res.body.slice(0, 200)}`);
      }
      const run = await collect(await tempDir(), ['--label-selector', 'tier in (web']);
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, /^error: invalid value "tier in \(web" for --label-selector: /m);
    });

    it('an API server where nothing listens: exit 1, naming host:port and ECONNREFUSED', async () => {
      const dir = await tempDir();
      const closed = await MisbehavingEndpoint.refusing();
      const port = new URL(closed).port;
      const plane = await testbed();
      const config = JSON.parse(await readFile(plane.kubeconfigPath, 'utf8')) as { clusters: { cluster: { server: string } }[] };
      config.clusters[0]!.cluster.server = `https://127.0.0.1:${port}`;
      const path = join(dir, 'kubeconfig');
      await writeFile(path, JSON.stringify(config));
      const run = await crowsnest(['inventory', 'collect', 'faults', '--report-dir', dir], { KUBECONFIG: path });
      assert.equal(run.code, 1, run.stderr);
      assert.match(run.stderr, new RegExp(`^error: API server 127\\.0\\.0\\.1:${port}: connection refused \\(ECONNREFUSED\\)`, 'm'));
    });

    it('a token allowed nothing but discovery: every type reported as forbidden, exit 3, no crash', async () => {
      const dir = await tempDir();
      const token = await serviceAccountToken(namespace, 'nobody');
      const run = await collect(dir, [], { KUBECONFIG: await proxy.kubeconfig(dir, token) });
      assert.equal(run.code, 3, run.stderr);
      const summary = summaryOf(run.stdout);
      assert.equal(summary['result'], 'partial');
      assert.match(summary['skippedTypes'].find((t: { type: string }) => t.type === 'configmaps')!.reason, /403: Forbidden/);
    });
  });
});
