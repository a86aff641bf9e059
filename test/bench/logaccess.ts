/**
 * logaccess benchmark (issue: 100 opted-in Deployments × 20 replicas, then a rolling restart of
 * all of them; then the same at 10,000 pods).
 *
 * The operator runs as its own process (`crowsnest operator --controllers logaccess`) so its RSS
 * is its own. This process watches pods and Roles with its own informers and timestamps:
 *   - for each workload, when its set of pod names last changed, and when its Role first named
 *     exactly that set afterwards → latency p50/p99;
 *   - Role versions that changed the pod list (effective changes) vs the operator's own count of
 *     writes (`crowsnest_logaccess_writes_total`) → writes per effective change;
 *   - the operator's `crowsnest_informer_lists_total` before and after the churn → LISTs during churn.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { type ControlPlane, freePort, ON_KWOK_NODES } from '../../testbed/controlplane.ts';
import { KubeClient } from '../../src/kube/client/client.ts';
import { Informer } from '../../src/kube/runtime/informer.ts';
import { type KubeObject, Resources } from '../../src/kube/objects/resources.ts';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const NAMESPACE = 'bench-logaccess';
const DEPLOYMENTS = 100;
/** Rounds with more replicas per Deployment than this roll out with maxSurge 100 %. */
const SURGE_ALL_ABOVE_REPLICAS = 20;
const ROUND_TIMEOUT_MS = 30 * 60_000;

interface PolicyRule { resources: string[]; resourceNames?: string[] }
interface RoleObject extends KubeObject { rules?: PolicyRule[] }

export interface LogAccessResult {
  readonly pods: number;
  readonly latencyP50Ms: number;
  readonly latencyP99Ms: number;
  readonly latencyMaxMs: number;
  readonly effectiveChanges: number;
  readonly writes: number;
  readonly listsDuringChurn: number;
  readonly rssMiB: number;
  readonly peakRssMiB: number;
  readonly churnSeconds: number;
}

/** Timeline of one workload as seen by the bench's own watches. */
interface Timeline {
  podNames: Set<string>;
  podSetChangedAt: number;
  roleNames: string;
  roleExactAt: number | undefined;
}

export async function benchLogAccess(plane: ControlPlane, log: (line: string) => void, onResult: (result: LogAccessResult) => void = () => {}): Promise<LogAccessResult[]> {
  await plane.request('POST', '/api/v1/namespaces', { metadata: { name: NAMESPACE } });
  await plane.waitForDefaultServiceAccount(NAMESPACE);
  const metricsPort = await freePort();
  const operator = spawn(join(repo, 'bin', 'crowsnest'), [
    'operator', '--kubeconfig', plane.kubeconfigPath, '--controllers', 'logaccess', '--leader-elect=false',
    '--metrics-bind-address', `127.0.0.1:${metricsPort}`, '--health-probe-bind-address', '0', '--log-level', 'warn', '--log-format', 'json',
    '--workers', '4',
  ], { stdio: ['ignore', 'ignore', 'inherit'] });
  const kc = new KubeConfig();
  kc.loadFromFile(plane.kubeconfigPath);
  const client = new KubeClient(kc);
  const stop = new AbortController();
  try {
    const watch = await startWatches(client, stop.signal);
    const results: LogAccessResult[] = [];
    // BENCH_LOGACCESS_REPLICAS=20 runs only the 2,000-pod round.
    const rounds = (process.env.BENCH_LOGACCESS_REPLICAS ?? '20,100').split(',').map(Number);
    for (const replicas of rounds) {
      log(`logaccess: ${DEPLOYMENTS} Deployments × ${replicas} replicas`);
      await applyDeployments(plane, replicas);
      await waitExact(watch, DEPLOYMENTS * replicas, ROUND_TIMEOUT_MS, log);
      const before = await scrape(metricsPort);
      for (const t of watch.timelines.values()) t.roleExactAt = undefined;
      watch.effectiveChanges = 0;
      const churnStart = Date.now();
      log('logaccess: rolling restart of every Deployment');
      await plane.kubectl(['-n', NAMESPACE, 'rollout', 'restart', 'deployment']);
      await waitRolledOut(plane, replicas, log);
      await waitExact(watch, DEPLOYMENTS * replicas, ROUND_TIMEOUT_MS, log);
      // Let late writes (if any) land before counting them.
      await new Promise((r) => setTimeout(r, 3_000));
      const after = await scrape(metricsPort);
      const latencies = [...watch.timelines.values()].map((t) => Math.max(0, (t.roleExactAt ?? Number.NaN) - t.podSetChangedAt)).sort((a, b) => a - b);
      const status = readFileSync(`/proc/${operator.pid}/status`, 'utf8');
      const result: LogAccessResult = {
        pods: DEPLOYMENTS * replicas,
        latencyP50Ms: percentile(latencies, 0.5),
        latencyP99Ms: percentile(latencies, 0.99),
        latencyMaxMs: latencies[latencies.length - 1] ?? Number.NaN,
        effectiveChanges: watch.effectiveChanges,
        writes: after.writes - before.writes,
        listsDuringChurn: after.lists - before.lists,
        rssMiB: kib(status, 'VmRSS') / 1024,
        peakRssMiB: kib(status, 'VmHWM') / 1024,
        churnSeconds: (Date.now() - churnStart) / 1000,
      };
      results.push(result);
      onResult(result);
    }
    return results;
  } finally {
    stop.abort();
    await client.close();
    await stopProcess(operator);
  }
}

async function applyDeployments(plane: ControlPlane, replicas: number): Promise<void> {
  const items = Array.from({ length: DEPLOYMENTS }, (_, i) => ({
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: `app-${i}`, namespace: NAMESPACE },
    spec: {
      replicas,
      // Large rounds replace all pods of a Deployment in one surge: on 2 cores the testbed's
      // controller-manager, scheduler and kwok, not the operator, bound how fast a 25 % step
      // rollout of 10,000 pods can go (it did not finish in 15 minutes).
      strategy: { type: 'RollingUpdate', rollingUpdate: replicas > SURGE_ALL_ABOVE_REPLICAS ? { maxSurge: '100%', maxUnavailable: 0 } : { maxSurge: '25%', maxUnavailable: '25%' } },
      selector: { matchLabels: { app: `app-${i}` } },
      template: { metadata: { labels: { app: `app-${i}`, 'podlogreader-affiliate': 'enable' } }, spec: { ...ON_KWOK_NODES, containers: [{ name: 'c', image: 'nginx' }] } },
    },
  }));
  await plane.kubectl(['apply', '--server-side', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items }) });
}

async function waitRolledOut(plane: ControlPlane, replicas: number, log: (line: string) => void): Promise<void> {
  const deadline = Date.now() + ROUND_TIMEOUT_MS;
  for (;;) {
    const list = JSON.parse((await plane.request('GET', `/apis/apps/v1/namespaces/${NAMESPACE}/deployments`)).body) as { items: Array<{ metadata: { generation: number }; status: { observedGeneration?: number; updatedReplicas?: number; replicas?: number; availableReplicas?: number } }> };
    const done = list.items.filter((d) => d.status.observedGeneration === d.metadata.generation && d.status.updatedReplicas === replicas && d.status.replicas === replicas && d.status.availableReplicas === replicas).length;
    if (done === DEPLOYMENTS) return;
    if (Date.now() > deadline) throw new Error(`rollout did not finish: ${done}/${DEPLOYMENTS}`);
    log(`logaccess: rolled out ${done}/${DEPLOYMENTS}`);
    await new Promise((r) => setTimeout(r, 5_000));
  }
}

interface Watches {
  readonly timelines: Map<string, Timeline>;
  effectiveChanges: number;
  readonly pods: Informer;
  readonly replicaSets: Informer;
}

async function startWatches(client: KubeClient, signal: AbortSignal): Promise<Watches> {
  const pods = new Informer({ client, type: Resources.pods, namespace: NAMESPACE, labelSelector: 'podlogreader-affiliate=enable' });
  const replicaSets = new Informer({ client, type: Resources.replicaSets, namespace: NAMESPACE });
  const roles = new Informer<RoleObject>({ client, type: Resources.roles, namespace: NAMESPACE });
  const watches: Watches = { timelines: new Map(), effectiveChanges: 0, pods, replicaSets };
  const timeline = (workload: string): Timeline => {
    let t = watches.timelines.get(workload);
    if (!t) { t = { podNames: new Set(), podSetChangedAt: Date.now(), roleNames: '', roleExactAt: undefined }; watches.timelines.set(workload, t); }
    return t;
  };
  const workloadOf = (pod: KubeObject): string | undefined => pod.metadata?.labels?.['app'];
  const checkExact = (t: Timeline): void => {
    if (t.roleExactAt === undefined && t.roleNames === [...t.podNames].sort().join(',')) t.roleExactAt = Date.now();
  };
  const onPodSetChange = (pod: KubeObject, add: boolean): void => {
    const workload = workloadOf(pod);
    if (!workload) return;
    const t = timeline(workload);
    const name = pod.metadata!.name!;
    if (add === t.podNames.has(name)) return;
    if (add) t.podNames.add(name);
    else t.podNames.delete(name);
    t.podSetChangedAt = Date.now();
    t.roleExactAt = undefined;
    checkExact(t);
  };
  pods.on({ onAdd: (p) => onPodSetChange(p, true), onDelete: (p) => onPodSetChange(p, false) });
  const onRole = (role: RoleObject): void => {
    const workload = role.metadata?.name?.replace(/^podlogreader-/, '');
    if (!workload) return;
    const t = timeline(workload);
    const names = [...(role.rules?.find((r) => r.resources.includes('pods/log'))?.resourceNames ?? [])].sort().join(',');
    if (names !== t.roleNames) watches.effectiveChanges++;
    t.roleNames = names;
    checkExact(t);
  };
  roles.on({ onAdd: onRole, onUpdate: (_old, r) => onRole(r), onDelete: (r) => onRole({ ...r, rules: [] }) });
  for (const informer of [pods, replicaSets, roles]) void informer.run(signal);
  await Promise.all([pods, replicaSets, roles].map((i) => i.waitForSync(signal)));
  return watches;
}

async function waitExact(watch: Watches, pods: number, timeoutMs: number, log: (line: string) => void): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastLog = 0;
  for (;;) {
    const timelines = [...watch.timelines.values()];
    const podCount = timelines.reduce((n, t) => n + t.podNames.size, 0);
    const exact = timelines.filter((t) => t.roleNames === [...t.podNames].sort().join(',')).length;
    if (podCount === pods && timelines.length >= DEPLOYMENTS && exact === timelines.length) return;
    if (Date.now() > deadline) throw new Error(`Roles not exact: ${exact}/${timelines.length}, pods ${podCount}/${pods}`);
    if (Date.now() - lastLog > 10_000) {
      log(`logaccess: pods ${podCount}/${pods}, Roles exact ${exact}/${timelines.length}`);
      lastLog = Date.now();
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function scrape(port: number): Promise<{ writes: number; lists: number }> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const sum = (name: string): number => text.split('\n').filter((l) => l.startsWith(name)).reduce((n, l) => n + Number(l.split(' ').pop()), 0);
  return { writes: sum('crowsnest_logaccess_writes_total'), lists: sum('crowsnest_informer_lists_total') };
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
}

function kib(status: string, field: string): number {
  return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
}
