/**
 * `crowsnest operator` as real processes against the testbed: one replica leads, a standby takes
 * over within the lease duration when the leader is killed, and a SIGTERMed leader drains,
 * releases its Lease at once and exits 0.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../testbed/controlplane.ts';
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
  readonly output: string[];
  readonly exited: Promise<number | null>;
}

const replicas: Replica[] = [];

async function startReplica(identity: string, namespace: string): Promise<Replica> {
  const plane = await testbed();
  const metricsPort = await freePort();
  const healthPort = await freePort();
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
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  child.stdout!.on('data', (c: Buffer) => output.push(c.toString()));
  child.stderr!.on('data', (c: Buffer) => output.push(c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const replica = { identity, process: child, metricsPort, healthPort, output, exited };
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
  if (!res || res.status !== 200) return undefined;
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
