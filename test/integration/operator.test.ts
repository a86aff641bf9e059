/**
 * `crowsnest operator` against the testbed: as real processes, one replica leads, a standby takes
 * over within the lease duration when the leader is killed, and a SIGTERMed leader drains,
 * releases its Lease at once and exits 0; in this process (runOperator, with what a capability
 * would register: a webhook, a controller), admission webhooks are served by every replica,
 * leader and standby, each ready only once its certificate is there, and controllers run only on
 * the leader, a new leader reconciling everything its caches hold.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { done } from '../../src/kube/runtime/controller.ts';
import type { Manager } from '../../src/kube/runtime/manager.ts';
import { type KubeObject, objectKey, Resources } from '../../src/kube/objects/resources.ts';
import { mutate } from '../../src/kube/webhook/review.ts';
import type { OperatorOptions } from '../../src/operator/options.ts';
import { runOperator } from '../../src/operator/run.ts';
import { freePort } from '../../testbed/controlplane.ts';
import { issueServingCertificate } from '../../testbed/webhook.ts';
import { eventually, newNamespace, testbed } from './testbed.ts';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const LEASE_MS = 6_000;
const RENEW_MS = 4_000;
const RETRY_MS = 1_000;

interface Replica {
  readonly identity: string;
  readonly process: ChildProcess;
  readonly metricsPort: number;
  readonly healthPort: number;
  readonly webhookPort: number;
  readonly output: string[];
  readonly exited: Promise<number | null>;
}

const replicas: Replica[] = [];

async function startReplica(identity: string, namespace: string): Promise<Replica> {
  const plane = await testbed();
  const metricsPort = await freePort();
  const healthPort = await freePort();
  const webhookPort = await freePort();
  const child = spawn(join(repo, 'bin', 'crowsnest'), [
    'operator',
    '--kubeconfig', plane.kubeconfigPath,
    // Leader election is under test. An operator without a controller refuses to start (exit 2),
    // so the leader runs logaccess: it finds the Roles of earlier tests' workloads as they are.
    '--controllers', 'logaccess',
    '--log-format', 'json',
    '--identity', identity,
    '--leader-election-namespace', namespace,
    '--lease-duration', `${LEASE_MS}ms`,
    '--renew-deadline', `${RENEW_MS}ms`,
    '--retry-period', `${RETRY_MS}ms`,
    '--metrics-bind-address', `127.0.0.1:${metricsPort}`,
    '--health-probe-bind-address', `127.0.0.1:${healthPort}`,
    '--webhook-port', String(webhookPort),
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  child.stdout!.on('data', (c: Buffer) => output.push(c.toString()));
  child.stderr!.on('data', (c: Buffer) => output.push(c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const replica = { identity, process: child, metricsPort, healthPort, webhookPort, output, exited };
  replicas.push(replica);
  await eventually(`${identity} serves /healthz`, async () => (await fetch(`http://127.0.0.1:${healthPort}/healthz`).catch(() => undefined))?.status === 200, 20_000);
  return replica;
}

/** This process's environment without what marks a pod (the tests may themselves run in one). */
function withoutPodEnvironment(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of Object.keys(env)) if (name.startsWith('KUBERNETES_') || name === 'POD_NAMESPACE' || name.startsWith('CROWSNEST_')) delete env[name];
  return env;
}

async function holder(namespace: string): Promise<string | undefined> {
  const plane = await testbed();
  const res = await plane.request('GET', `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases/crowsnest-operator`);
  if (res.status !== 200) return undefined;
  return (JSON.parse(res.body) as { spec: { holderIdentity?: string } }).spec.holderIdentity || undefined;
}

async function leaderGauge(replica: Replica): Promise<number | undefined> {
  const res = await fetch(`http://127.0.0.1:${replica.metricsPort}/metrics`).catch(() => undefined);
  if (res?.status !== 200) return undefined;
  const match = /^crowsnest_leader_election_master_status\{name="crowsnest-operator"\} (\d+)/m.exec(await res.text());
  return match ? Number(match[1]) : undefined;
}

describe('crowsnest operator leader election', () => {
  after(async () => {
    for (const r of replicas) if (r.process.exitCode === null) r.process.kill('SIGKILL');
    await Promise.all(replicas.map((r) => r.exited));
  });

  it('runs one leader; when the leader is killed, the standby takes over as soon as the lease expires', async () => {
    const namespace = await newNamespace('leader');
    const a = await startReplica('replica-a', namespace);
    await eventually('replica-a leads', async () => (await holder(namespace)) === 'replica-a', 20_000);
    const b = await startReplica('replica-b', namespace);
    await eventually('metrics show a leading and b standing by', async () => (await leaderGauge(a)) === 1 && (await leaderGauge(b)) === 0, 10_000);
    assert.equal(await holder(namespace), 'replica-a', 'the standby did not steal a live lease');
    assert.equal(await listening(a.webhookPort), false, 'no capability registered a webhook: no webhook server');

    a.process.kill('SIGKILL');
    const killedAt = Date.now();
    await a.exited;
    await eventually('replica-b takes over', async () => (await holder(namespace)) === 'replica-b', LEASE_MS * 3);
    const takeoverMs = Date.now() - killedAt;
    // client-go's bound: the standby polls every retry period × (1 + up to 1.2 jitter), so it may
    // see the last renewal up to one such poll after the kill, and take over up to one poll after
    // the lease then expires; plus a little request latency.
    const maxPollMs = RETRY_MS * (1 + 1.2);
    assert.ok(takeoverMs <= LEASE_MS + 2 * maxPollMs + 500, `takeover took ${takeoverMs} ms, lease is ${LEASE_MS} ms`);
    await eventually('replica-b reports leading', async () => (await leaderGauge(b)) === 1, 5_000);
    console.log(`# leader takeover after SIGKILL: ${takeoverMs} ms (lease ${LEASE_MS} ms, retry ${RETRY_MS} ms)`);
  });

  it('without leader election by default when run by hand: controllers start at once, no Lease is made, SIGTERM exits 0', async () => {
    const plane = await testbed();
    // As a person at a terminal runs it: no pod environment, no Lease flags, against a cluster
    // that has no crowsnest-system namespace.
    assert.equal((await plane.request('GET', '/api/v1/namespaces/crowsnest-system')).status, 404);
    const healthPort = await freePort();
    const child = spawn(join(repo, 'bin', 'crowsnest'), [
      'operator', '--kubeconfig', plane.kubeconfigPath, '--log-format', 'json',
      '--metrics-bind-address', '0', '--health-probe-bind-address', `127.0.0.1:${healthPort}`,
    ], { stdio: ['ignore', 'pipe', 'pipe'], env: withoutPodEnvironment() });
    const output: string[] = [];
    child.stdout!.on('data', (c: Buffer) => output.push(c.toString()));
    child.stderr!.on('data', (c: Buffer) => output.push(c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      // Ready means every controller's caches synced: it runs without waiting for any Lease.
      await eventually('the operator is ready', async () => (await fetch(`http://127.0.0.1:${healthPort}/readyz`).catch(() => undefined))?.status === 200, 30_000)
        .catch((err: Error) => { throw new Error(`${err.message}\n${output.join('')}`); });
      assert.match(output.join(''), /"leaderElection":"off".*"msg":"starting crowsnest operator"/);
      assert.doesNotMatch(output.join(''), /lease/i);
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exited, 0, output.join(''));
  });

  it('with leader election in a namespace that does not exist: exits 1 at once, naming --leader-election-namespace and --no-leader-elect', async () => {
    const plane = await testbed();
    const started = Date.now();
    const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(join(repo, 'bin', 'crowsnest'), [
        'operator', '--kubeconfig', plane.kubeconfigPath, '--leader-elect', '--log-format', 'json',
        '--metrics-bind-address', '0', '--health-probe-bind-address', '0',
      ], { stdio: ['ignore', 'ignore', 'pipe'], env: withoutPodEnvironment() });
      let stderr = '';
      child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, stderr });
      });
    });
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /^error: the leader election namespace "crowsnest-system" does not exist: create it, name an existing one with --leader-election-namespace, or run a single operator without leader election \(--no-leader-elect\)$/m);
    assert.ok(Date.now() - started < 15_000, `took ${Date.now() - started} ms`);
  });

  it('a leader stopped with SIGTERM releases its Lease so the standby takes over at once, and exits 0', async () => {
    const namespace = await newNamespace('leader-term');
    const a = await startReplica('replica-c', namespace);
    await eventually('replica-c leads', async () => (await holder(namespace)) === 'replica-c', 20_000);
    const b = await startReplica('replica-d', namespace);
    await eventually('replica-d is standing by', async () => (await leaderGauge(b)) === 0, 10_000);

    a.process.kill('SIGTERM');
    const stoppedAt = Date.now();
    assert.equal(await a.exited, 0, a.output.join(''));
    await eventually('replica-d takes over', async () => (await holder(namespace)) === 'replica-d', LEASE_MS * 2);
    const takeoverMs = Date.now() - stoppedAt;
    assert.ok(takeoverMs < LEASE_MS, `a released lease is taken in one retry period, not after expiry (${takeoverMs} ms)`);
    assert.match(a.output.join(''), /operator stopped/);
    console.log(`# leader takeover after SIGTERM: ${takeoverMs} ms`);
  });
});

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
async function listening(port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('crowsnest operator in this process, with what a capability would register', () => {
  const stops: Array<() => Promise<void>> = [];
  after(async () => {
    for (const stop of stops.splice(0).reverse()) await stop();
  });

  interface InProcessReplica {
    readonly identity: string;
    readonly healthPort: number;
    readonly certDir: string;
    /** Stops it (SIGTERM's path: drain, release the Lease); later calls do nothing. */
    stop(): Promise<void>;
  }

  /** Runs `runOperator` in this process with no catalog controllers, and what `register` adds. */
  async function startInProcess(identity: string, namespace: string, webhookPort: number, register: (manager: Manager) => void): Promise<InProcessReplica> {
    const plane = await testbed();
    const certDir = await mkdtemp(join(tmpdir(), `crowsnest-webhook-${identity}-`));
    const healthPort = await freePort();
    const options: OperatorOptions = {
      kubeconfig: plane.kubeconfigPath, controllers: [],
      metricsBindAddress: '0', healthProbeBindAddress: `127.0.0.1:${healthPort}`,
      webhookPort, webhookCertDir: certDir,
      leaderElect: true, leaderElectionNamespace: namespace, leaderElectionId: 'crowsnest-operator',
      leaseDurationMs: LEASE_MS, renewDeadlineMs: RENEW_MS, retryPeriodMs: RETRY_MS,
      workers: 1, shutdownTimeoutMs: 5_000, identity,
      logaccess: { namePrefix: 'podlogreader-', allowPodList: true, createServiceAccountAndRoleBinding: false, adoptPodlogreader: true },
      webhookCertificate: { mode: 'cert-manager', namespace, secret: 'unused', hosts: [] },
      prober: {
        namespace, webhookConfiguration: 'unused',
        peerPort: 9444, peersUrl: 'https://unused:9444', agentImage: undefined, agentResources: {},
      },
      guard: { namespace, port: 9445, url: 'https://unused:9445', logAgentServiceAccount: `${namespace}/unused`, reportIntervalMs: 10_000 },
    };
    const shutdown = new AbortController();
    let exitCode: number | undefined;
    const running = runOperator(options, {
      logger: pino({ level: 'silent' }),
      registry: new Registry(),
      shutdownSignal: shutdown.signal,
      exit: (code) => { exitCode = code; },
      register,
    });
    let stopped: Promise<void> | undefined;
    const stop = (): Promise<void> => (stopped ??= (async () => {
      shutdown.abort();
      assert.equal(await running, 0);
      assert.equal(exitCode, undefined, 'stopped without a forced exit');
      await rm(certDir, { recursive: true, force: true });
    })());
    stops.push(stop);
    return { identity, healthPort, certDir, stop };
  }

  /** A test webhook that labels ConfigMaps with the replica's identity, as a capability would register it. */
  function labellingWebhook(identity: string, served: string[]): (manager: Manager) => void {
    return (manager) => manager.addWebhook({
      name: `label-${identity}`,
      path: '/label-configmaps',
      failurePolicy: 'Fail',
      review: (request) => {
        served.push(identity);
        const object = structuredClone(request.object) as KubeObject;
        object.metadata = { ...object.metadata, labels: { ...object.metadata?.labels, [`served-by-${identity}`]: 'true' } };
        return mutate(object);
      },
    });
  }

  async function readyz(replica: InProcessReplica): Promise<{ status: number; body: string }> {
    const res = await fetch(`http://127.0.0.1:${replica.healthPort}/readyz?verbose`).catch(() => undefined);
    return res ? { status: res.status, body: await res.text() } : { status: 0, body: '' };
  }

  it('serves webhooks on every replica, leader and standby alike, each ready only once its serving certificate is there', async () => {
    const plane = await testbed();
    const namespace = await newNamespace('op-webhook');
    // The API server calls the webhooks at the address it has itself; the servers listen on every interface.
    const host = new URL(plane.server).hostname;
    const ca = { cert: plane.pki.caCert, key: plane.pki.caKey };
    const ports = { leader: await freePort(), standby: await freePort() };
    const served = { leader: [] as string[], standby: [] as string[] };
    const leader = await startInProcess('webhook-leader', namespace, ports.leader, labellingWebhook('webhook-leader', served.leader));
    await issueServingCertificate(ca, leader.certDir, { name: 'tls', hosts: [host, '127.0.0.1'] });
    await eventually('webhook-leader leads', async () => (await holder(namespace)) === 'webhook-leader', 20_000);
    await eventually('webhook-leader is ready', async () => (await readyz(leader)).status === 200, 20_000);

    const standby = await startInProcess('webhook-standby', namespace, ports.standby, labellingWebhook('webhook-standby', served.standby));
    await eventually('the standby is up and not ready: it has no certificate', async () => {
      const { status, body } = await readyz(standby);
      return status === 500 && body.includes('[-]webhook-certificate failed') && body.includes('[+]informers-synced ok');
    }, 20_000);
    await issueServingCertificate(ca, standby.certDir, { name: 'tls', hosts: [host, '127.0.0.1'] });
    await eventually('the standby is ready once its certificate was written', async () => (await readyz(standby)).status === 200, 30_000);
    assert.equal(await holder(namespace), 'webhook-leader', 'the standby still stands by');

    const configurations = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations';
    const caBundle = (await readFile(plane.pki.caCert)).toString('base64');
    const webhook = (name: string, port: number) => ({
      name: `${name}.operator-test.crowsnest.dev`,
      clientConfig: { url: `https://${host}:${port}/label-configmaps`, caBundle },
      rules: [{ apiGroups: [''], apiVersions: ['v1'], resources: ['configmaps'], operations: ['CREATE'], scope: 'Namespaced' }],
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } },
      sideEffects: 'None', admissionReviewVersions: ['v1'], failurePolicy: 'Fail', timeoutSeconds: 5, reinvocationPolicy: 'Never',
    });
    const created = await plane.request('POST', configurations, {
      apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', metadata: { name: namespace },
      webhooks: [webhook('leader', ports.leader), webhook('standby', ports.standby)],
    });
    assert.equal(created.status, 201, created.body);
    stops.push(async () => void (await plane.request('DELETE', `${configurations}/${namespace}`)));

    // The configuration reaches the API server's admission plugin eventually: create until it is applied.
    let labels: Record<string, string> = {};
    let attempt = 0;
    await eventually('a ConfigMap created in the namespace is labelled by both replicas', async () => {
      const res = await plane.request('POST', `/api/v1/namespaces/${namespace}/configmaps`, { metadata: { name: `cm-${attempt++}` } });
      assert.equal(res.status, 201, res.body);
      labels = (JSON.parse(res.body) as KubeObject).metadata?.labels ?? {};
      return labels['served-by-webhook-leader'] === 'true' && labels['served-by-webhook-standby'] === 'true';
    }, 30_000);
    assert.ok(served.standby.length > 0 && served.leader.length > 0);
  });

  it('runs controllers only on the leader; a new leader looks at every cached object once (its handlers replay the caches)', async () => {
    const plane = await testbed();
    const namespace = await newNamespace('op-controllers');
    const configMaps = `/api/v1/namespaces/${namespace}/configmaps`;
    for (const name of ['cm-0', 'cm-1', 'cm-2']) assert.equal((await plane.request('POST', configMaps, { metadata: { name } })).status, 201);
    const reconciled: Record<string, string[]> = { 'ctl-a': [], 'ctl-b': [] };
    const countingController = (identity: string) => (manager: Manager): void => {
      const informer = manager.informer({ type: Resources.configMaps, namespace });
      const controller = manager.addController({ name: 'test-configmaps', reconcile: async (key) => { reconciled[identity]!.push(key); return done; } });
      controller.watch(informer, { onAdd: (o) => controller.enqueue(objectKey(o)), onUpdate: (_old, o) => controller.enqueue(objectKey(o)) });
    };
    const keys = (...names: string[]): string[] => names.map((n) => `${namespace}/${n}`);
    const seen = (identity: string): string[] => [...new Set(reconciled[identity]!.filter((k) => k !== `${namespace}/kube-root-ca.crt`))].sort();

    const a = await startInProcess('ctl-a', namespace, await freePort(), countingController('ctl-a'));
    await eventually('ctl-a leads', async () => (await holder(namespace)) === 'ctl-a', 20_000);
    await eventually('ctl-a reconciled the ConfigMaps there were', () => seen('ctl-a').length === 3, 20_000);
    const b = await startInProcess('ctl-b', namespace, await freePort(), countingController('ctl-b'));
    await eventually('ctl-b is ready: its cache synced', async () => (await fetch(`http://127.0.0.1:${b.healthPort}/readyz`).catch(() => undefined))?.status === 200, 20_000);

    assert.equal((await plane.request('POST', configMaps, { metadata: { name: 'cm-3' } })).status, 201);
    await eventually('the leader reconciled the new ConfigMap', () => seen('ctl-a').includes(`${namespace}/cm-3`), 20_000);
    assert.deepEqual(seen('ctl-b'), [], 'the standby caches, but reconciles nothing');

    await a.stop();
    await eventually('ctl-b leads', async () => (await holder(namespace)) === 'ctl-b', LEASE_MS * 2);
    await eventually('the new leader reconciled every cached ConfigMap', () => seen('ctl-b').length === 4, 20_000);
    assert.deepEqual(seen('ctl-b'), keys('cm-0', 'cm-1', 'cm-2', 'cm-3'));
  });
});
