/**
 * The API server stops answering or goes away (issue 10, items 1, 9 and 14): a stopped
 * (SIGSTOP) server is named in the error with what happened; a run whose server is killed
 * (SIGKILL) and restarted in the middle waits it out and completes; and the logaccess
 * controller converges after outages of 5, 15 and 60 s, measured (reported as test diagnostics).
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it, type TestContext } from 'node:test';
import { Registry } from 'prom-client';
import { KubeClient } from '../../../src/kube/client/client.ts';
import { mapConcurrent } from '../../../src/kube/concurrency.ts';
import { EventRecorder } from '../../../src/kube/objects/events.ts';
import { silentLogger } from '../../../src/kube/logger-type.ts';
import { MAX_BACKOFF_MS } from '../../../src/kube/runtime/reflector.ts';
import { DEFAULT_LOGACCESS_OPTIONS } from '../../../src/logaccess/desired.ts';
import { KubeConfig } from '@kubernetes/client-node';
import { installChartOperator } from '../helm.ts';
import { runLogAccess } from '../logaccess-run.ts';
import { TcpProxy } from '../tcp-proxy.ts';
import { eventually, newNamespace, testbed } from '../testbed.ts';
import { ApiServerProxy, crowsnest, removeTempDirs, startCrowsnest, tempDir } from './helpers.ts';

/** The API server's pid, from the state file the control plane keeps. */
async function apiServerPid(): Promise<number> {
  const plane = await testbed();
  const state = JSON.parse(await readFile(join(plane.dir, 'testbed-state.json'), 'utf8')) as { pids: Record<string, number> };
  const pid = state.pids['kube-apiserver'];
  assert.ok(pid, 'kube-apiserver pid');
  return pid;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('the API server stops or goes away', () => {
  after(removeTempDirs);

  // The outage is our controller's alone: a relay between it and the API server drops every
  // connection and refuses new ones (what a dead API server looks like from the client), while
  // kube-controller-manager stays connected and replaces the deleted pod at once. (Killing the
  // API server for a minute would leave the whole testbed backing off for another minute.)
  it('logaccess converges within the 30 s backoff cap after outages of 5, 15 and 60 s', { timeout: 600_000 }, async (t: TestContext) => {
    const plane = await testbed();
    const operatorNamespace = await newNamespace('faults-outage-op');
    const operator = await installChartOperator('outage', operatorNamespace);
    const namespace = await newNamespace('faults-outage');
    await plane.waitForDefaultServiceAccount(namespace);
    const created = await plane.request('POST', `/apis/apps/v1/namespaces/${namespace}/deployments`, {
      metadata: { name: 'web' },
      spec: { replicas: 3, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web', 'podlogreader-affiliate': 'enable' } }, spec: { containers: [{ name: 'c', image: 'localhost/web' }] } } },
    });
    assert.equal(created.status, 201, created.body);

    const relay = await TcpProxy.start(plane.ports.apiserver, plane.host);
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromOptions({
      clusters: [{ name: 'relay', server: `https://127.0.0.1:${relay.port}`, caData: (await readFile(plane.pki.caCert)).toString('base64') }],
      users: [{ name: 'operator', token: operator.token }],
      contexts: [{ name: 'relay', cluster: 'relay', user: 'operator' }],
      currentContext: 'relay',
    });
    const client = new KubeClient(kubeConfig);
    const stop = new AbortController();
    const controller = runLogAccess(
      { client, logger: silentLogger, registry: new Registry(), recorder: new EventRecorder({ client, reportingInstance: 'outage-test' }), workers: 2 },
      DEFAULT_LOGACCESS_OPTIONS,
      stop.signal,
    );
    const rolePods = async (): Promise<string[] | undefined> => {
      const res = await plane.request('GET', `/apis/rbac.authorization.k8s.io/v1/namespaces/${namespace}/roles/podlogreader-web`).catch(() => undefined);
      if (res?.status !== 200) return undefined;
      const rules = (JSON.parse(res.body) as { rules?: { resources: string[]; resourceNames?: string[] }[] }).rules ?? [];
      return [...(rules.find((r) => r.resources.includes('pods/log'))?.resourceNames ?? [])].sort();
    };
    const currentPods = async (): Promise<string[]> => {
      const res = await plane.request('GET', `/api/v1/namespaces/${namespace}/pods?labelSelector=app%3Dweb`);
      return (JSON.parse(res.body) as { items: { metadata: { name: string; deletionTimestamp?: string } }[] }).items
        .filter((pod) => !pod.metadata.deletionTimestamp).map((pod) => pod.metadata.name).sort();
    };
    const exact = async (): Promise<boolean> => JSON.stringify(await rolePods()) === JSON.stringify(await currentPods());

    const measured: { outageS: number; deletedPodGoneS: number; exactS: number }[] = [];
    try {
      await eventually('the Role lists the 3 pods', async () => (await rolePods())?.length === 3 && (await exact()), 60_000);
      for (const outageS of [5, 15, 60]) {
        relay.cut();
        // A pod of the Role goes while the controller cannot see it; its replacement comes.
        const listed = new Set(await rolePods());
        const victim = (await currentPods()).find((name) => listed.has(name));
        assert.ok(victim, 'a pod listed in the Role');
        const deleted = await plane.request('DELETE', `/api/v1/namespaces/${namespace}/pods/${victim}?gracePeriodSeconds=0`);
        assert.equal(deleted.status, 200, deleted.body);
        await sleep(outageS * 1_000);
        relay.restore();
        const back = Date.now();
        let deletedPodGoneS = Number.NaN;
        await eventually(`pod ${victim} leaves the Role after a ${outageS} s outage`, async () => {
          const names = await rolePods();
          if (names === undefined || names.includes(victim)) return false;
          deletedPodGoneS = (Date.now() - back) / 1_000;
          return true;
        }, 120_000);
        await eventually(`the Role is exact again after a ${outageS} s outage`, async () => (await currentPods()).length === 3 && (await exact()), 120_000)
          .catch(async (err: Error) => {
            throw new Error(`${err.message}: the Role lists ${JSON.stringify(await rolePods())}, the pods are ${JSON.stringify(await currentPods())}`);
          });
        const exactS = (Date.now() - back) / 1_000;
        measured.push({ outageS, deletedPodGoneS, exactS });
        t.diagnostic(`outage ${outageS} s: the deleted pod left the Role ${deletedPodGoneS.toFixed(1)} s after the API server was reachable again; the Role was exact (replacement included) after ${exactS.toFixed(1)} s`);
      }
    } finally {
      stop.abort();
      await controller.catch(() => {});
      await client.close();
      await relay.close();
    }
    // Worst case: a wait of the cap just begun when the server came back, plus a relist and a write.
    for (const { outageS, exactS } of measured) {
      assert.ok(exactS <= MAX_BACKOFF_MS / 1_000 + 5, `after a ${outageS} s outage the Role was exact only after ${exactS.toFixed(1)} s`);
    }
  });

  it('stopped (SIGSTOP): the error names the server and that it does not answer', async () => {
    const plane = await testbed();
    const pid = await apiServerPid();
    process.kill(pid, 'SIGSTOP');
    try {
      const run = await crowsnest(['version'], { KUBECONFIG: plane.kubeconfigPath });
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, new RegExp(`^server: unavailable \\(API server ${plane.host.replaceAll('.', '\\.')}:${plane.ports.apiserver}: no answer within 5s \\(the server or the network path to it is stuck\\)\\)$`, 'm'));
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  });

  it('killed (SIGKILL) during a run and back seconds later: the run waits it out and delivers everything, exit 0', async () => {
    const plane = await testbed();
    const namespace = await newNamespace('faults-kill');
    await mapConcurrent(Array.from({ length: 40 }, (_, i) => i), 8, async (i) => {
      await plane.request('POST', `/api/v1/namespaces/${namespace}/configmaps`, { metadata: { name: `cm-${i}` } });
    });
    // kube-root-ca.crt, which kube-controller-manager adds to every namespace, is the 41st.
    await eventually('40 ConfigMaps and kube-root-ca.crt', async () =>
      (JSON.parse((await plane.request('GET', `/api/v1/namespaces/${namespace}/configmaps`)).body) as { items: unknown[] }).items.length === 41, 30_000);
    const dir = await tempDir();
    // Through a relay that shows when listing has begun (and passes on the outage as dropped
    // connections). One object per page at 10 requests/s: about 4 s of listing to interrupt.
    const relay = await ApiServerProxy.start();
    try {
      const run = startCrowsnest(['inventory', 'collect', 'faults', '--resources', 'configmaps', '--namespaces', namespace, '--page-size', '1', '--qps', '10', '--burst', '1', '--report-dir', dir, '--output', 'json', '--log-level', 'error'], { KUBECONFIG: await relay.kubeconfig(dir) });
      await eventually('listing has begun', () => relay.requests.some((r) => r.path.includes('/configmaps')), 30_000);
      await plane.killApiServer();
      await sleep(2_000);
      await plane.startApiServer();
      const result = await run.exit;
      assert.equal(result.code, 0, result.stderr);
      const summary = JSON.parse(result.stdout) as { objects: number; types: { retries: number }[] };
      assert.equal(summary.objects, 41);
      assert.ok(summary.types[0]!.retries >= 1, 'the outage was retried through');
    } finally {
      await relay.stop();
    }
    // A restarted API server refuses requests until its authorizer has synced, and
    // kube-controller-manager backs off meanwhile: later tests need it working again.
    const probe = await newNamespace('faults-kill-after');
    await plane.waitForDefaultServiceAccount(probe);
  });
});
