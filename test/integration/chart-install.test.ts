/**
 * The chart installed for real, as a user installs it on the testbed: `helm install crowsnest
 * deploy/helm/crowsnest -f values-testbed.yaml` (the file `make cluster` writes, from the same
 * function) into a namespace that enforces Pod Security `restricted`. The Crowsnest image comes
 * from the testbed's registry and runs on the real nodes: the operator as two replicas electing a
 * leader, the inventory and ports CronJobs as Jobs made from them (`kubectl create job --from`).
 *
 * One release for the whole file, shared by the scenarios in order: install → logaccess with real
 * pods → leader failover → the prober's injected agents and, at the same time, inventory delivery
 * and re-send → ports scan vs `ss -ltnup` → upgrade → uninstall, listing what is left. Its
 * in-cluster operator watches the whole cluster, so the release is gone (uninstalled in `after` if
 * a test failed first) before the next file runs.
 *
 * Report volumes: the testbed has no storage provisioner, so this file makes a `local`
 * PersistentVolume per report claim (testbed/volumes.ts), under a storage class of its own. That
 * keeps the chart's real setting (persistence on, as a cluster would run it, which the re-send
 * needs across Jobs) and lets the test read the report files from the volume's directory.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { testbedChartValues } from '../../testbed/images.ts';
import { createLocalVolume } from '../../testbed/volumes.ts';
import { countByKey, parseSs, type SsSocket } from '../../src/ports/testdata/ss.ts';
import { chart } from './helm.ts';
import { K8sCollectorReceiver } from '../helpers/k8s-collector-receiver.ts';
import { asToken, eventually, getObject, listObjects, requestToken, testbed } from './testbed.ts';

const RELEASE = 'crowsnest';
const OPERATOR = `${RELEASE}-operator`;
const LEASE = 'crowsnest-operator';
const REAL_NODES = ['crowsnest-real-0', 'crowsnest-real-1'];
/** A schedule that never comes (there is no 30 February): the tests start every Job themselves. */
const NEVER = '0 0 30 2 *';
const SETTLE_MS = 60_000;

interface Obj {
  metadata: { name: string; namespace?: string; uid: string; labels?: Record<string, string>; annotations?: Record<string, string>; ownerReferences?: Array<{ kind: string; name: string; uid: string }>; deletionTimestamp?: string };
}
interface Pod extends Obj {
  spec: { nodeName?: string; hostPID?: boolean };
  status: { phase?: string; podIP?: string; containerStatuses?: Array<{ ready: boolean }> };
}
interface Job extends Obj {
  status: { succeeded?: number; failed?: number; conditions?: Array<{ type: string; status: string }> };
}

const get = getObject;
const list = listObjects;

/** `helm <args>` with the testbed's helm and admin kubeconfig. */
async function helm(args: readonly string[]): Promise<string> {
  const plane = await testbed();
  return await new Promise((resolve, reject) => {
    execFile(join(plane.binDir, 'helm'), [...args], { env: { ...process.env, KUBECONFIG: plane.kubeconfigPath, HELM_CACHE_HOME: join(plane.dir, 'helm', 'cache'), HELM_CONFIG_HOME: join(plane.dir, 'helm', 'config'), HELM_DATA_HOME: join(plane.dir, 'helm', 'data') }, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => (err ? reject(new Error(`helm ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout + stderr)));
  });
}

/** Runs `ss -H -ltnup` on this machine. */
async function ss(): Promise<SsSocket[]> {
  return await new Promise((resolve, reject) => {
    execFile('ss', ['-H', '-ltnup'], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout) => (err ? reject(err) : resolve(parseSs(stdout))));
  });
}

/** `ss` listings taken every 200 ms while a scan runs, each with the time it started and ended. */
class SsSampler {
  readonly samples: Array<{ startedMs: number; endedMs: number; sockets: SsSocket[] }> = [];
  private running = true;
  private readonly loop: Promise<void>;

  constructor() {
    this.loop = (async () => {
      while (this.running) {
        const startedMs = Date.now();
        const sockets = await ss();
        this.samples.push({ startedMs, endedMs: Date.now(), sockets });
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  /**
   * Differences between `sockets` (a scan taken at `atMs`) and the listings around it: a key's
   * count must lie between the least and the most any listing from 1 s before to 1 s after saw
   * (the pod's clock is this machine's), as in test/host/ports-scan.test.ts.
   */
  differences(sockets: ReadonlyArray<{ protocol: string; address: string; port: number }>, atMs: number): string[] {
    const before = this.samples.filter((s) => s.startedMs <= atMs - 1_000).at(-1);
    const afterIndex = this.samples.findIndex((s) => s.startedMs >= atMs + 1_000);
    assert.ok(before && afterIndex !== -1, `ss listings around the scan at ${new Date(atMs).toISOString()}`);
    const around = this.samples.slice(this.samples.indexOf(before), afterIndex + 1).map((s) => countByKey(s.sockets));
    const ours = countByKey(sockets);
    const keys = new Set([...ours.keys(), ...around.flatMap((counts) => [...counts.keys()])]);
    const differences: string[] = [];
    for (const key of keys) {
      const seen = around.map((counts) => counts.get(key) ?? 0);
      const count = ours.get(key) ?? 0;
      if (count < Math.min(...seen) || count > Math.max(...seen)) differences.push(`${key}: scan ${count}, ss ${Math.min(...seen)}..${Math.max(...seen)}`);
    }
    return differences.sort();
  }
}

/**
 * A receiver built for k8s-collector on the testbed's host address (pods reach it), recording
 * what it is sent: the CronJob logs in with the chart's keys and sends with the token.
 */
class InventoryReceiver {
  private readonly collector: K8sCollectorReceiver;
  constructor(keys: { accessKey: string; secretKey: string }) {
    this.collector = new K8sCollectorReceiver(keys);
  }

  get url(): string {
    return this.collector.url;
  }

  /** Chunks received, with the run they belong to. */
  get received(): Array<{ runId: string; final: boolean; objects: Array<{ kind: string; metadata: { name: string; namespace?: string } }> }> {
    return this.collector.chunks.map((c) => ({ runId: String(c.headers['x-crowsnest-run-id']), final: c.headers['x-crowsnest-chunk-final'] === 'true', objects: c.objects as never }));
  }

  /** Logins answered, with the keys they carried. */
  get logins(): K8sCollectorReceiver['logins'] {
    return this.collector.logins;
  }

  /** Down: the login answers 503, as a gateway does for a service that is down. */
  set up(up: boolean) {
    this.collector.loginUp = up;
  }

  async start(host: string): Promise<void> {
    await this.collector.start(host);
  }

  /** Run ids whose final chunk arrived, in arrival order. */
  completeRuns(): string[] {
    return this.received.filter((r) => r.final).map((r) => r.runId);
  }

  async stop(): Promise<void> {
    await this.collector.stop();
  }
}

describe('the chart installed for real on the testbed', () => {
  const suffix = randomBytes(3).toString('hex');
  const namespace = `cn-${suffix}`;
  const scanNamespace = `${namespace}-ports-scan`;
  const workloads = `cn-apps-${suffix}`;
  const storageClass = `crowsnest-test-${suffix}`;
  const volumes = { inventory: `${namespace}-inventory-reports`, ports: `${namespace}-ports-reports` };
  const volumeDirs = { inventory: '', ports: '' };
  const accessKey = `ak-${suffix}`;
  const receiver = new InventoryReceiver({ accessKey, secretKey: 'sk-test' });
  let valuesFile = '';
  let installed = false;

  /** The values of this release besides values-testbed.yaml. */
  const values = (): string[] => [
    'logaccess.createServiceAccountAndRoleBinding=true',
    'inventory.enabled=true', 'inventory.clusterId=testbed', `inventory.endpoint=${receiver.url}`,
    `inventory.accessKey=${accessKey}`, 'inventory.secretKey=sk-test', `inventory.schedule=${NEVER}`, 'inventory.backoffLimit=0',
    'inventory.reports.persistence.enabled=true', `inventory.reports.persistence.storageClass=${storageClass}`,
    // kwok nodes run nothing: the scans are of the real nodes.
    'ports.enabled=true', 'ports.nodeSelector=type!=kwok', `ports.schedule=${NEVER}`,
    `ports.reports.persistence.storageClass=${storageClass}`,
  ].flatMap((value) => ['--set', value]);

  const operatorPods = async (): Promise<Pod[]> =>
    (await list<Pod>(`/api/v1/namespaces/${namespace}/pods?labelSelector=${encodeURIComponent('app.kubernetes.io/component=operator')}`)).filter((p) => !p.metadata.deletionTimestamp);
  const leaseHolder = async (): Promise<string | undefined> =>
    (await get<{ spec: { holderIdentity?: string } }>(`/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases/${LEASE}`))?.spec.holderIdentity || undefined;

  before(async () => {
    const plane = await testbed();
    assert.ok(plane.images['crowsnest'], 'the Crowsnest image is in the testbed registry (make test-integration builds it first: make image)');
    await receiver.start(plane.host);
    // As a cluster admin would: the namespace first, enforcing the restricted profile.
    const created = await plane.request('POST', '/api/v1/namespaces', {
      metadata: { name: namespace, labels: { 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/warn': 'restricted', 'pod-security.kubernetes.io/audit': 'restricted' } },
    });
    assert.equal(created.status, 201, created.body);
    const apps = await plane.request('POST', '/api/v1/namespaces', { metadata: { name: workloads } });
    assert.equal(apps.status, 201, apps.body);
    volumeDirs.inventory = await createLocalVolume(plane, { name: volumes.inventory, node: REAL_NODES[0]!, storageClassName: storageClass, claim: { namespace, name: `${RELEASE}-inventory-reports` } });
    volumeDirs.ports = await createLocalVolume(plane, { name: volumes.ports, node: REAL_NODES[1]!, storageClassName: storageClass, claim: { namespace, name: `${RELEASE}-ports-reports` } });
    valuesFile = join(plane.dir, `values-testbed-${suffix}.yaml`);
    await writeFile(valuesFile, testbedChartValues(plane.images, plane.imageDigests)!);
    await plane.waitForDefaultServiceAccount(namespace);
    await plane.waitForDefaultServiceAccount(workloads);
  });

  after(async () => {
    const plane = await testbed();
    if (installed) await helm(['uninstall', RELEASE, '--namespace', namespace, '--wait', '--timeout', '2m']).catch(() => {});
    // The operator pods must be gone before other files run their own logaccess controllers.
    await eventually('the operator pods are gone', async () => (await list<Pod>(`/api/v1/namespaces/${namespace}/pods`)).length === 0, SETTLE_MS).catch(() => {});
    await receiver.stop();
    for (const ns of [namespace, workloads]) await plane.request('DELETE', `/api/v1/namespaces/${ns}`);
    // Settled before the next file: a logaccess controller there would see these pods go.
    await eventually('the test namespaces are gone', async () =>
      (await get(`/api/v1/namespaces/${namespace}`)) === undefined && (await get(`/api/v1/namespaces/${workloads}`)) === undefined, SETTLE_MS).catch(() => {});
    for (const pv of Object.values(volumes)) await plane.request('DELETE', `/api/v1/persistentvolumes/${pv}`);
    await rm(valuesFile, { force: true });
  });

  it('installs with helm install -f values-testbed.yaml under Pod Security restricted: two operator pods on the real nodes, one leading', async () => {
    const plane = await testbed();
    const started = Date.now();
    const out = await helm(['install', RELEASE, chart, '--namespace', namespace, '-f', valuesFile, ...values(), '--wait', '--timeout', '3m']);
    installed = true;
    const readyMs = Date.now() - started;
    assert.match(out, /STATUS: deployed/);
    assert.doesNotMatch(out, /would violate PodSecurity/, 'no Pod Security warning for any pod template');

    const pods = await operatorPods();
    assert.equal(pods.length, 2);
    for (const pod of pods) {
      assert.ok(REAL_NODES.includes(pod.spec.nodeName ?? ''), `${pod.metadata.name} runs on a real node, not ${pod.spec.nodeName}`);
      assert.equal(pod.status.phase, 'Running');
      assert.match(pod.status.podIP ?? '', /^198\.18\./);
    }
    await eventually('one replica holds the Lease', async () => pods.map((p) => p.metadata.name).includes((await leaseHolder()) ?? ''), 30_000);

    // The namespace enforces restricted; the API server says whether any existing pod would violate it.
    const check = await plane.kubectl(['label', '--dry-run=server', '--overwrite', 'namespace', namespace, 'pod-security.kubernetes.io/enforce=restricted']);
    assert.doesNotMatch(check, /[Ww]arning|violate/, check);
    const scan = await get<Obj>(`/api/v1/namespaces/${scanNamespace}`);
    assert.equal(scan?.metadata.labels?.['pod-security.kubernetes.io/enforce'], 'privileged', 'the scan namespace is privileged by design (hostPID)');

    const pulls = (await list<{ reason: string; message: string; involvedObject: { name: string } }>(`/api/v1/namespaces/${namespace}/events`))
      .filter((e) => e.reason === 'Pulled' && /Successfully pulled/.test(e.message)).map((e) => `${e.involvedObject.name}: ${/in ([\d.]+m?s)/.exec(e.message)?.[1] ?? e.message}`);
    console.log(`# helm install --wait until the operator is ready: ${(readyMs / 1000).toFixed(1)} s; image pulls: ${pulls.join(', ') || 'none (cached)'}`);
  });

  it('logaccess: a Role follows an opted-in Deployment of real pods as it scales, and its ServiceAccount token reads their real logs', async () => {
    const plane = await testbed();
    const deployment = (name: string, optIn: boolean): unknown => ({
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name },
      spec: {
        replicas: 1, selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name, ...(optIn ? { 'podlogreader-affiliate': 'enable' } : {}) } },
          spec: {
            terminationGracePeriodSeconds: 1,
            containers: [{ name: 'main', image: plane.images['test']!, command: ['/bin/sh', '-c', 'echo "hello from $(hostname)"; exec sleep 3600'] }],
          },
        },
      },
    });
    for (const name of ['web', 'other']) {
      const res = await plane.request('POST', `/apis/apps/v1/namespaces/${workloads}/deployments`, deployment(name, name === 'web'));
      assert.equal(res.status, 201, res.body);
    }
    for (const replicas of [3, 1]) {
      await plane.kubectl(['-n', workloads, 'scale', 'deployment/web', `--replicas=${replicas}`]);
      await roleFollows(workloads, replicas);
    }

    // The ServiceAccount the operator created: its token reads what the container printed.
    const pods = await runningPods(workloads, 'web');
    const token = await requestToken(workloads, 'podlogreader-web');
    for (const pod of pods) {
      let log = { status: 0, body: '' };
      await eventually(`the log of ${pod.metadata.name} through the token`, async () => { log = await asToken(token, 'GET', `/api/v1/namespaces/${workloads}/pods/${pod.metadata.name}/log`); return log.status === 200; }, 20_000)
        .catch(() => assert.fail(`GET log of ${pod.metadata.name} with the ServiceAccount's token: ${log.status} ${log.body}`));
      assert.equal(log.body, `hello from ${pod.metadata.name}\n`, 'the container\'s own output, from the node\'s kubelet');
      assert.ok(REAL_NODES.includes(pod.spec.nodeName ?? ''));
    }
    const [other] = await runningPods(workloads, 'other');
    const denied = await asToken(token, 'GET', `/api/v1/namespaces/${workloads}/pods/${other!.metadata.name}/log`);
    assert.equal(denied.status, 403, `the log of another workload's pod: ${denied.body}`);
  });

  it('fails over when the leader pod is deleted: another replica takes the Lease within seconds and keeps the Role following', async () => {
    const plane = await testbed();
    const leader = await leaseHolder();
    const pods = await operatorPods();
    assert.ok(leader && pods.some((p) => p.metadata.name === leader), `the Lease holder ${leader} is one of ${pods.map((p) => p.metadata.name).join(', ')}`);
    const standby = pods.find((p) => p.metadata.name !== leader)!.metadata.name;

    const deletedAt = Date.now();
    const deleted = await plane.request('DELETE', `/api/v1/namespaces/${namespace}/pods/${leader}`);
    assert.equal(deleted.status, 200, deleted.body);
    // SIGTERM makes the leader release the Lease: a replica takes it within a retry period or two
    // (2 s each, jittered), not after the 15 s lease expires. Usually the standby; the
    // replacement pod can win the race when it starts within that retry period (image cached).
    let holder: string | undefined;
    await eventually('another replica holds the Lease', async () => {
      holder = await leaseHolder();
      return holder !== undefined && holder !== leader;
    }, 45_000);
    const takeoverMs = Date.now() - deletedAt;
    assert.ok(takeoverMs < 15_000, `takeover took ${takeoverMs} ms`);
    console.log(`# operator leader failover after deleting the leader pod: ${takeoverMs} ms, to the ${holder === standby ? 'standby' : 'replacement pod'}`);

    await plane.kubectl(['-n', workloads, 'scale', 'deployment/web', '--replicas=2']);
    await roleFollows(workloads, 2);
    await eventually('the Deployment has two ready operators again', async () => (await operatorPods()).filter((p) => p.status.containerStatuses?.every((c) => c.ready)).length === 2, SETTLE_MS);
  });

  // Independent of each other, so at once: the prober's pods and agents come up while the
  // inventory Jobs run (most of whose time is the run that waits out the endpoint being down).
  describe('the prober and inventory scenarios, at once', { concurrency: true }, () => {
    it('prober: the operator keeps its own webhook certificate, injects the agent into a NetworkProber\'s pods, and the agents report their pairs', async () => {
      const plane = await testbed();
      // Self-managed: the leader created the Secret and set the chart's webhook configuration's caBundle.
      await eventually('the webhook configuration carries the CA of the operator\'s Secret', async () => {
        const secret = await get<{ data?: Record<string, string> }>(`/api/v1/namespaces/${namespace}/secrets/${RELEASE}-webhook-cert`);
        const configuration = await get<{ webhooks: Array<{ clientConfig: { caBundle?: string } }> }>(`/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${RELEASE}-prober`);
        return secret?.data?.['ca.crt'] !== undefined && configuration?.webhooks[0]?.clientConfig.caBundle === secret.data['ca.crt'];
      }, SETTLE_MS);
      // The seed's sample, with only its apiVersion changed (and its docker.io agentImage dropped: ours is the default).
      const prober = await plane.request('POST', `/apis/crowsnest.dev/v1alpha1/namespaces/${workloads}/networkprobers`, {
        apiVersion: 'crowsnest.dev/v1alpha1', kind: 'NetworkProber', metadata: { name: 'networkprober-sample' },
        spec: { podSelector: { matchLabels: { app: 'net-prober' } }, httpPort: '9090', pollingPeriod: '2s', httpPrometheusPort: '1222' },
      });
      assert.equal(prober.status, 201, prober.body);
      const created = await plane.request('POST', `/apis/apps/v1/namespaces/${workloads}/deployments`, {
        apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'net-prober' },
        spec: {
          replicas: 2, selector: { matchLabels: { app: 'net-prober' } },
          template: {
            metadata: { labels: { app: 'net-prober' } },
            spec: {
              terminationGracePeriodSeconds: 1,
              // One pod per real node, so pairs cross nodes.
              topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'DoNotSchedule', labelSelector: { matchLabels: { app: 'net-prober' } } }],
              containers: [{ name: 'main', image: plane.images['test']!, command: ['sleep', '3600'] }],
            },
          },
        },
      });
      assert.equal(created.status, 201, created.body);
      let pods: Pod[] = [];
      await eventually('two ready pods, each with the agent', async () => {
        pods = (await list<Pod>(`/api/v1/namespaces/${workloads}/pods?labelSelector=app%3Dnet-prober`))
          .filter((p) => !p.metadata.deletionTimestamp && p.status.phase === 'Running' && p.status.containerStatuses?.every((c) => c.ready));
        return pods.length === 2;
      }, 120_000);
      const operatorImage = (await get<{ spec: { template: { spec: { containers: Array<{ image: string }> } } } }>(`/apis/apps/v1/namespaces/${namespace}/deployments/${OPERATOR}`))?.spec.template.spec.containers[0]?.image;
      assert.ok(operatorImage?.startsWith(plane.images['crowsnest']!), `the operator runs the testbed's image: ${operatorImage}`);
      for (const pod of pods) {
        const full = await get<{ metadata: { annotations?: Record<string, string> }; spec: { initContainers?: Array<{ name: string; restartPolicy?: string; image: string }> } }>(`/api/v1/namespaces/${workloads}/pods/${pod.metadata.name}`);
        const agent = full?.spec.initContainers?.find((c) => c.name === 'net-prober');
        assert.equal(agent?.restartPolicy, 'Always', 'a native sidecar');
        assert.equal(agent?.image, operatorImage, 'the chart\'s own image, as the operator runs it (digest pinned)');
        assert.equal(full?.metadata.annotations?.['netprober-container-deployed'], 'true');
      }
      assert.deepEqual(new Set(pods.map((p) => p.spec.nodeName)), new Set(REAL_NODES), 'one pod on each real node');
      await eventually('the NetworkProber is Ready with 2 pods and 2 reachable pairs', async () => {
        const status = (await get<{ status?: { injectedPods?: number; reachablePairs?: number; unreachablePairs?: number; conditions?: Array<{ type: string; status: string }> } }>(
          `/apis/crowsnest.dev/v1alpha1/namespaces/${workloads}/networkprobers/networkprober-sample`))?.status;
        return status?.injectedPods === 2 && status.reachablePairs === 2 && status.unreachablePairs === 0 && status.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
      }, 90_000);
      // The operator's own namespace is never injected: its pods were created through the same API server.
      for (const pod of await operatorPods()) assert.ok(!JSON.stringify(pod).includes('net-prober'), `${pod.metadata.name} has no agent`);
      const deleted = await plane.request('DELETE', `/apis/apps/v1/namespaces/${workloads}/deployments/net-prober`);
      assert.equal(deleted.status, 200, deleted.body);
    });

    it('inventory: a Job from the CronJob delivers a snapshot from a real pod; with the endpoint down the snapshot stays on the report volume and the next run re-sends it', async () => {
      const plane = await testbed();
      const cronJob = `${RELEASE}-inventory`;
      const runJob = async (name: string): Promise<Job> => {
        await plane.kubectl(['-n', namespace, 'create', 'job', name, `--from=cronjob/${cronJob}`]);
        return await jobFinished(namespace, name);
      };
      const delivered = await runJob('inventory-1');
      assert.equal(delivered.status.succeeded, 1, JSON.stringify(delivered.status));
      const [first] = receiver.completeRuns();
      assert.ok(first, 'a complete run arrived');
      const objects = receiver.received.filter((r) => r.runId === first).flatMap((r) => r.objects);
      assert.ok(objects.some((o) => o.kind === 'Deployment' && o.metadata.namespace === workloads && o.metadata.name === 'web'), 'the snapshot holds this cluster\'s objects');
      assert.ok(receiver.logins.length > 0 && receiver.logins.every((l) => l.status === 200), 'logged in with the keys from the chart\'s Secret');
      assert.ok((await podsOfJob(namespace, 'inventory-1')).every((p) => REAL_NODES.includes(p.spec.nodeName ?? '')));
      assert.deepEqual(await deliveredRuns(volumeDirs.inventory), [first], 'the run\'s summary is on the volume, saying it was delivered');
      assert.deepEqual(await undelivered(volumeDirs.inventory), [], 'nothing kept after a delivery');

      receiver.up = false;
      const failed = await runJob('inventory-2');
      assert.equal(failed.status.failed, 1, JSON.stringify(failed.status));
      const kept = await undelivered(volumeDirs.inventory);
      assert.equal(kept.length, 1, 'the snapshot of the failed run is on the volume');
      assert.ok(!receiver.completeRuns().includes(kept[0]!.runId));

      receiver.up = true;
      const resent = await runJob('inventory-3');
      assert.equal(resent.status.succeeded, 1, JSON.stringify(resent.status));
      const runs = receiver.completeRuns();
      assert.equal(runs.length, 3, `runs received: ${runs.join(', ')}`);
      assert.equal(runs[1], kept[0]!.runId, 'the kept snapshot is sent first, under its own run id');
      assert.deepEqual(await undelivered(volumeDirs.inventory), [], 'and is removed from the volume once delivered');
      assert.deepEqual((await deliveredRuns(volumeDirs.inventory)).sort(), [...runs].sort(), 'every run\'s summary now says delivered');
    });
  });

  it('ports: a Job from the CronJob scans every real node with a hostPID pod, and each node\'s report matches ss -ltnup on this machine', async () => {
    const plane = await testbed();
    // A listener of our own, so the comparison is known to see this process's sockets.
    const ours: TcpServer = createTcpServer();
    await new Promise<void>((resolve) => ours.listen(0, '127.0.0.1', resolve));
    const ourPort = (ours.address() as { port: number }).port;
    try {
      let differences: string[] = [];
      for (let attempt = 1; attempt <= 2; attempt++) {
        const sampler = new SsSampler();
        const job = `ports-${attempt}`;
        try {
          await new Promise((r) => setTimeout(r, 1_200)); // a listing from before the Job
          await plane.kubectl(['-n', namespace, 'create', 'job', job, `--from=cronjob/${RELEASE}-ports`]);
          const finished = await jobFinished(namespace, job);
          assert.equal(finished.status.succeeded, 1, `${JSON.stringify(finished.status)}\n${await plane.kubectl(['-n', namespace, 'logs', `job/${job}`]).catch((e: Error) => e.message)}`);
          await new Promise((r) => setTimeout(r, 1_200)); // and from after
        } finally {
          await sampler.stop();
        }
        const report = await newestPortsReport(volumeDirs.ports);
        assert.deepEqual(report.failed, []);
        assert.deepEqual(report.nodes.map((n) => n.node), REAL_NODES, 'one scan per real node, none of the kwok nodes');
        const ssUsers = sampler.samples.at(-1)!.sockets.find((s) => s.port === ourPort)?.users ?? [];
        differences = [];
        for (const node of report.nodes) {
          const mine = node.ports.filter((p) => p.protocol === 'tcp' && p.address === '127.0.0.1' && p.port === ourPort);
          assert.equal(mine.length, 1, `${node.node} lists our listener 127.0.0.1:${ourPort}`);
          assert.equal(mine[0]!.pid, process.pid, 'with our pid, seen through the host PID namespace');
          assert.equal(mine[0]!.process, ssUsers[0]?.command, 'and the process name ss shows');
          differences.push(...sampler.differences(node.ports, Date.parse(node.scannedAt)).map((d) => `${node.node}: ${d}`));
        }
        if (differences.length === 0) {
          console.log(`# ports scan Job: ${report.nodes.map((n) => `${n.node} ${n.ports.length} sockets`).join(', ')}, in ${(report.durationMs / 1000).toFixed(1)} s`);
          break;
        }
      }
      assert.deepEqual(differences, [], 'each real node\'s report lists what ss -ltnup lists');
      assert.deepEqual(await list(`/api/v1/namespaces/${scanNamespace}/pods`), [], 'no scan pod left');
    } finally {
      ours.close();
    }
  });

  it('helm upgrade changes the operator replicas and the inventory schedule in place, keeping the report volumes', async () => {
    const claimsBefore = await claimUids(namespace);
    const out = await helm(['upgrade', RELEASE, chart, '--namespace', namespace, '-f', valuesFile, ...values(),
      '--set', 'operator.replicas=1', '--set', 'inventory.schedule=0 0 31 2 *', '--wait', '--timeout', '3m']);
    assert.match(out, /REVISION: 2/);
    const deployment = await get<{ spec: { replicas: number }; status: { readyReplicas?: number } }>(`/apis/apps/v1/namespaces/${namespace}/deployments/${OPERATOR}`);
    assert.equal(deployment?.spec.replicas, 1);
    await eventually('one operator pod, leading', async () => {
      const pods = await operatorPods();
      return pods.length === 1 && (await leaseHolder()) === pods[0]!.metadata.name;
    }, SETTLE_MS);
    const cronJob = await get<{ spec: { schedule: string } }>(`/apis/batch/v1/namespaces/${namespace}/cronjobs/${RELEASE}-inventory`);
    assert.equal(cronJob?.spec.schedule, '0 0 31 2 *');
    assert.deepEqual(await claimUids(namespace), claimsBefore, 'the same report claims, not new ones');
    // Still at work after the upgrade.
    await (await testbed()).kubectl(['-n', workloads, 'scale', 'deployment/web', '--replicas=1']);
    await roleFollows(workloads, 1);
  });

  it('helm uninstall leaves nothing behind but what is kept on purpose: the two report claims, the operator\'s Lease and its webhook certificate', async () => {
    const plane = await testbed();
    const claims = await claimUids(namespace);
    const manifest = await helm(['get', 'manifest', RELEASE, '--namespace', namespace]);
    const out = await helm(['uninstall', RELEASE, '--namespace', namespace, '--wait', '--timeout', '2m']);
    installed = false;
    assert.match(out, /These resources were kept due to the resource policy:\s*\[PersistentVolumeClaim\] crowsnest-inventory-reports\s*\[PersistentVolumeClaim\] crowsnest-ports-reports/);
    await eventually('the release\'s pods are gone', async () => (await list(`/api/v1/namespaces/${namespace}/pods`)).length === 0, SETTLE_MS);
    await eventually('the scan namespace is gone', async () => (await get(`/api/v1/namespaces/${scanNamespace}`)) === undefined, SETTLE_MS);

    // Of every object the release made, only the claims it keeps on purpose remain.
    const fromManifest = (await plane.kubectl(['get', '-f', '-', '-o', 'name', '--ignore-not-found'], { input: manifest })).trim().split('\n').filter(Boolean).sort();
    assert.deepEqual(fromManifest, ['persistentvolumeclaim/crowsnest-inventory-reports', 'persistentvolumeclaim/crowsnest-ports-reports']);

    // Cluster-scoped: nothing labelled as this release's (the policies and webhooks among them).
    const byRelease = encodeURIComponent(`app.kubernetes.io/instance=${RELEASE}`);
    const clusterScoped = [
      '/apis/rbac.authorization.k8s.io/v1/clusterroles', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings',
      '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies', '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings',
      '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations',
      '/api/v1/namespaces',
    ];
    const leftCluster: string[] = [];
    for (const path of clusterScoped) {
      for (const item of await list<Obj>(`${path}?labelSelector=${byRelease}`)) leftCluster.push(`${path.split('/').at(-1)}/${item.metadata.name}`);
    }
    assert.deepEqual(leftCluster, [], 'cluster-scoped objects of the release');

    // In the release namespace: every type that can be listed, except Events (they expire) and what
    // every namespace has (ServiceAccount default, ConfigMap kube-root-ca.crt).
    const types = (await plane.kubectl(['api-resources', '--namespaced', '--verbs=list', '-o', 'name'])).trim().split('\n')
      .filter((t) => t !== 'events' && t !== 'events.events.k8s.io');
    const left = (await plane.kubectl(['-n', namespace, 'get', types.join(','), '-o', 'name', '--ignore-not-found'])).trim().split('\n').filter(Boolean)
      .filter((name) => name !== 'serviceaccount/default' && name !== 'configmap/kube-root-ca.crt').sort();
    // The Lease and the webhook certificate are the operator's runtime state, made by it and not
    // by helm: a reinstall continues with them (the same CA, so no agent loses trust).
    assert.deepEqual(left, [
      'lease.coordination.k8s.io/crowsnest-operator',
      'persistentvolumeclaim/crowsnest-inventory-reports',
      'persistentvolumeclaim/crowsnest-ports-reports',
      'secret/crowsnest-webhook-cert',
    ]);
    console.log(`# left after helm uninstall: ${left.join(', ')}`);
    assert.deepEqual(await claimUids(namespace), claims, 'the claims are the release\'s, untouched');

    // Kept so that a reinstall finds its history: the same release name takes the claims back.
    await helm(['install', RELEASE, chart, '--namespace', namespace, '-f', valuesFile, ...values(), '--set', 'operator.replicas=0']);
    installed = true;
    assert.deepEqual(await claimUids(namespace), claims, 'the reinstalled release adopted the kept claims');
    assert.match(await helm(['get', 'manifest', RELEASE, '--namespace', namespace]), /name: crowsnest-ports-reports/);
    await helm(['uninstall', RELEASE, '--namespace', namespace, '--wait', '--timeout', '2m']);
    installed = false;
    assert.ok((await readdir(volumeDirs.ports)).some((name) => /^ports-.*\.json$/.test(name)), 'the report history is still on the volume');
  });
});

/** Waits until the Role of `web` names exactly its `replicas` running pods (and nothing else). */
async function roleFollows(namespace: string, replicas: number): Promise<void> {
  let seen = '';
  await eventually(`Role podlogreader-web names the ${replicas} pods of web`, async () => {
    const [role, pods] = await Promise.all([
      get<{ rules?: Array<{ resources?: string[]; verbs: string[]; resourceNames?: string[] }> }>(`/apis/rbac.authorization.k8s.io/v1/namespaces/${namespace}/roles/podlogreader-web`),
      list<Pod>(`/api/v1/namespaces/${namespace}/pods?labelSelector=app%3Dweb`),
    ]);
    const names = (role?.rules ?? []).find((r) => r.resources?.includes('pods/log'))?.resourceNames ?? [];
    const podNames = pods.map((p) => p.metadata.name);
    seen = `Role: ${[...names].sort().join(',') || '(none)'}; pods: ${podNames.sort().join(',')}`;
    return pods.length === replicas && names.length === replicas && podNames.every((n) => names.includes(n));
  }, SETTLE_MS).catch((err: Error) => assert.fail(`${err.message} (${seen})`));
}

async function runningPods(namespace: string, app: string): Promise<Pod[]> {
  let pods: Pod[] = [];
  await eventually(`the pods of ${app} run`, async () => {
    pods = (await list<Pod>(`/api/v1/namespaces/${namespace}/pods?labelSelector=app%3D${app}`)).filter((p) => !p.metadata.deletionTimestamp);
    return pods.length > 0 && pods.every((p) => p.status.phase === 'Running' && p.status.containerStatuses?.every((c) => c.ready));
  }, SETTLE_MS);
  return pods;
}

/** Waits until Job `name` has succeeded or failed. */
async function jobFinished(namespace: string, name: string): Promise<Job> {
  let job: Job | undefined;
  await eventually(`Job ${name} finishes`, async () => {
    job = await get<Job>(`/apis/batch/v1/namespaces/${namespace}/jobs/${name}`);
    return job?.status.conditions?.some((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True') ?? false;
  }, 120_000);
  return job!;
}

async function podsOfJob(namespace: string, job: string): Promise<Pod[]> {
  return await list<Pod>(`/api/v1/namespaces/${namespace}/pods?labelSelector=${encodeURIComponent(`job-name=${job}`)}`);
}

/** Run ids of the summaries on the report volume that say the endpoint got the snapshot. */
async function deliveredRuns(dir: string): Promise<string[]> {
  const runs: string[] = [];
  for (const name of (await readdir(dir)).filter((n) => n.endsWith('.summary.json')).sort()) {
    const summary = JSON.parse(await readFile(join(dir, name), 'utf8')) as { runId: string; sink: { kind: string; delivered: boolean } };
    if (summary.sink.kind === 'endpoint' && summary.sink.delivered) runs.push(summary.runId);
  }
  return runs;
}

/** Snapshots on the report volume whose summary says the endpoint has not got them. */
async function undelivered(dir: string): Promise<Array<{ runId: string; snapshot: string }>> {
  const kept: Array<{ runId: string; snapshot: string }> = [];
  for (const name of (await readdir(dir)).filter((n) => n.endsWith('.summary.json')).sort()) {
    const summary = JSON.parse(await readFile(join(dir, name), 'utf8')) as { apiVersion: string; runId: string; sink: { kind: string; delivered: boolean; path?: string } };
    assert.equal(summary.apiVersion, 'crowsnest.dev/v1alpha1');
    if (summary.sink.kind === 'endpoint' && !summary.sink.delivered) {
      const snapshot = name.replace(/\.summary\.json$/, '.ndjson.gz');
      assert.ok((await readdir(dir)).includes(snapshot), `${snapshot} is kept beside its summary`);
      kept.push({ runId: summary.runId, snapshot });
    }
  }
  return kept;
}

interface PortsReport {
  apiVersion: string;
  nodes: Array<{ node: string; scannedAt: string; ports: Array<{ protocol: string; address: string; port: number; pid?: number; process?: string }> }>;
  failed: Array<{ node: string; reason: string }>;
  durationMs: number;
}

async function newestPortsReport(dir: string): Promise<PortsReport> {
  const name = (await readdir(dir)).filter((n) => /^ports-.*\.json$/.test(n)).sort().at(-1);
  assert.ok(name, `a ports report in ${dir}`);
  const report = JSON.parse(await readFile(join(dir, name), 'utf8')) as PortsReport;
  assert.equal(report.apiVersion, 'crowsnest.dev/v1alpha1');
  return report;
}

async function claimUids(namespace: string): Promise<Record<string, string>> {
  return Object.fromEntries((await list<Obj>(`/api/v1/namespaces/${namespace}/persistentvolumeclaims`)).map((c) => [c.metadata.name, c.metadata.uid]));
}
