/**
 * Admission latency of the prober webhook (issue: 1,000 pod creates at 100/s; p50/p99 as the API
 * server measures the webhook; target p99 < 5 ms).
 *
 * The webhook runs as in production: `crowsnest operator --controllers prober` in a process of its
 * own (self-managed certificate, the chart's MutatingWebhookConfiguration pointed at it by URL),
 * never in the bench process, whose event loop is busy with the testbed. The creates come from a
 * third process (prober-load.ts). Three passes of the same creates, each in its own namespace:
 * - **no webhook**: a namespace no webhook configuration selects; the API server's own cost of a
 *   pod create on this machine.
 * - **floor webhook**: our webhook server with a handler that allows everything unchanged
 *   (floor-webhook.ts), in its own process with the operator's V8 flags, behind a copy of the
 *   chart's configuration. What any webhook served this way costs: TLS, HTTP, the AdmissionReview
 *   JSON, the API server's call.
 * - **prober webhook**: the operator's, with a NetworkProber selecting every pod.
 *
 * The API server's histogram (`apiserver_admission_webhook_admission_duration_seconds`) starts at
 * a 5 ms bucket: it says how many calls took at most 5 ms — the target itself — but its quantiles
 * below that are interpolated. Our server's histogram (`crowsnest_webhook_request_duration_seconds`,
 * from 0.5 ms) gives the time inside the webhook process. For each webhook process: the TLS
 * connections it accepted during the pass (`crowsnest_webhook_connections_total`; the API server
 * keeps them alive, so a few), its CPU per call, and its event-loop delay (prom-client's
 * histogram, reset by the scrape before the pass).
 *
 * `BENCH_PROBER_ROUNDS=n` repeats the three passes; `BENCH_PROBER_CPU_PROF=<dir>` runs the
 * operator with `--cpu-prof` into that directory (written when it stops).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import type { KubeObject } from '../../src/kube/objects/resources.ts';
import { type ControlPlane, freePort } from '../../testbed/controlplane.ts';
import { createCertificateAuthority, issueServingCertificate } from '../../testbed/webhook.ts';
import { histogramQuantile, parseSamples, type Sample, samplesOf } from '../helpers/exposition.ts';
import { installCrds } from '../integration/crds.ts';
import { chartWebhookConfiguration, newScopedNamespace, waitUntilInjecting } from '../integration/prober-run.ts';
import { eventually, newNamespace, testbed } from '../integration/testbed.ts';
import { median } from './stats.ts';

const run = promisify(execFile);
const repo = join(import.meta.dirname, '..', '..');
const PROBER_WEBHOOK = 'inject.prober.crowsnest.dev';
const FLOOR_WEBHOOK = 'floor.bench.crowsnest.dev';
const CONFIGURATIONS = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations';

/** One webhook process's share of a pass. */
export interface WebhookProcessCost {
  /** TLS connections it accepted during the pass. */
  readonly connections: number;
  /** Its CPU time per admission call, and its share of a core over the pass. */
  readonly cpuMsPerCall: number;
  readonly cpuCores: number;
  /** Event-loop delay over the pass. */
  readonly eventLoopP99Ms: number;
  readonly eventLoopMaxMs: number;
}

export interface AdmissionPass {
  readonly label: 'no webhook' | 'floor webhook' | 'prober webhook';
  readonly creates: number;
  readonly failures: number;
  /** Client-side create latency. */
  readonly clientP50Ms: number;
  readonly clientP99Ms: number;
  /** From the API server's histogram: calls, share ≤ 5 ms, interpolated quantiles. */
  readonly apiserver?: { readonly calls: number; readonly atMost5ms: number; readonly p50Ms: number; readonly p99Ms: number };
  /** From our webhook server's histogram. */
  readonly server?: { readonly p50Ms: number; readonly p99Ms: number };
  readonly process?: WebhookProcessCost;
  /** Pods the prober webhook injected. */
  readonly injected?: number;
}

function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** Cumulative buckets of `name` (labels matching `match`), after minus before. */
function bucketDelta(before: readonly Sample[], after: readonly Sample[], name: string, match: Record<string, string>): Array<{ le: number; count: number }> {
  const key = (s: Sample): string => s.labels['le']!;
  const base = new Map<string, number>();
  for (const s of samplesOf(before, `${name}_bucket`, match)) base.set(key(s), (base.get(key(s)) ?? 0) + s.value);
  const sums = new Map<string, number>();
  for (const s of samplesOf(after, `${name}_bucket`, match)) sums.set(key(s), (sums.get(key(s)) ?? 0) + s.value);
  return [...sums].map(([le, count]) => ({ le: le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), count: count - (base.get(le) ?? 0) }));
}

/** The sum of the samples of `name` matching `match`, after minus before. */
function delta(before: readonly Sample[], after: readonly Sample[], name: string, match: Record<string, string> = {}): number {
  const sum = (samples: readonly Sample[]): number => samplesOf(samples, name, match).reduce((total, s) => total + s.value, 0);
  return sum(after) - sum(before);
}

/** A webhook served by a child process, with its /metrics on loopback. */
class WebhookProcess {
  readonly child: ChildProcess;
  readonly metricsPort: number;
  /** Its handler's name in our metrics, and its webhook's name in the API server's. */
  readonly webhook: { readonly handler: string; readonly apiserverName: string };
  private readonly exited: Promise<unknown>;

  constructor(child: ChildProcess, metricsPort: number, webhook: { readonly handler: string; readonly apiserverName: string }) {
    this.child = child;
    this.metricsPort = metricsPort;
    this.webhook = webhook;
    this.exited = new Promise((resolve) => child.once('exit', resolve));
  }

  async scrape(): Promise<Sample[]> {
    return parseSamples(await (await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`)).text());
  }

  /** What it spent between two scrapes (the first reset the event-loop histogram), over `calls` calls in `seconds`. */
  static cost(before: readonly Sample[], after: readonly Sample[], calls: number, seconds: number): WebhookProcessCost {
    const cpuSeconds = delta(before, after, 'process_cpu_seconds_total');
    const lag = (name: string): number => (samplesOf(after, name)[0]?.value ?? Number.NaN) * 1000;
    return {
      connections: delta(before, after, 'crowsnest_webhook_connections_total'),
      cpuMsPerCall: calls ? (cpuSeconds * 1000) / calls : Number.NaN,
      cpuCores: cpuSeconds / seconds,
      eventLoopP99Ms: lag('nodejs_eventloop_lag_p99_seconds'),
      eventLoopMaxMs: lag('nodejs_eventloop_lag_max_seconds'),
    };
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    await this.exited;
  }
}

const childEnv = (): NodeJS.ProcessEnv => ({
  ...process.env, NODE_COMPILE_CACHE: process.env['NODE_COMPILE_CACHE'] ?? join(homedir(), '.cache', 'crowsnest', 'compile-cache'),
});

/**
 * `crowsnest operator --controllers prober` as one replica without leader election, its webhook
 * on every interface (the API server reaches it at the testbed's host address), its own namespace
 * and self-managed certificate, the chart's configuration pointed at it and scoped to `scope`.
 */
async function startOperator(plane: ControlPlane, hostIp: string, nodeArgs: readonly string[]): Promise<{ operator: WebhookProcess; scope: string; configurations: string[] }> {
  const operatorNamespace = await newNamespace('prober-op');
  const scope = operatorNamespace;
  const release = `p${operatorNamespace.slice(-6)}`;
  const configurationName = `${release}-crowsnest-prober`;
  const certDir = await mkdtemp(join(tmpdir(), 'prober-bench-certs-'));
  const [webhookPort, peerPort, metricsPort, healthPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const child = spawn(process.execPath, [
    ...nodeArgs, join(repo, 'src', 'cli', 'entry.ts'), 'operator', '--kubeconfig', plane.kubeconfigPath, '--controllers', 'prober', '--leader-elect=false',
    '--metrics-bind-address', `127.0.0.1:${metricsPort}`, '--health-probe-bind-address', `127.0.0.1:${healthPort}`,
    '--webhook-port', String(webhookPort), '--webhook-cert-dir', certDir, '--webhook-cert-mode', 'self', '--webhook-cert-secret', `${release}-webhook-cert`,
    '--webhook-cert-hosts', `${hostIp},127.0.0.1`, '--prober-webhook-configuration', configurationName,
    '--prober-peer-port', String(peerPort), '--prober-peers-url', `https://${hostIp}:${peerPort}`, '--prober-agent-image', 'registry.invalid/crowsnest:bench',
    '--log-level', 'error', '--log-format', 'json',
  ], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...childEnv(), POD_NAMESPACE: operatorNamespace } });
  child.once('exit', () => void rm(certDir, { recursive: true, force: true }));
  const operator = new WebhookProcess(child, metricsPort, { handler: 'prober-inject', apiserverName: PROBER_WEBHOOK });
  try {
    const configuration = await chartWebhookConfiguration(plane, { release, namespace: operatorNamespace, url: `https://${hostIp}:${webhookPort}`, scope, timeoutSeconds: 2 });
    const created = await plane.request('POST', CONFIGURATIONS, configuration);
    if (created.status !== 201) throw new Error(`creating ${configurationName}: ${created.status} ${created.body}`);
    await eventually('the operator to be ready', async () => {
      if (child.exitCode !== null) throw new Error(`the operator exited with ${child.exitCode}`);
      return (await fetch(`http://127.0.0.1:${healthPort}/readyz`).catch(() => undefined))?.status === 200;
    }, 60_000);
    await waitUntilInjecting(plane, { newNamespace: (prefix) => newScopedNamespace(plane, prefix, scope) });
    return { operator, scope, configurations: [configurationName] };
  } catch (err) {
    await operator.stop();
    throw err;
  }
}

/** The floor webhook (floor-webhook.ts) behind a copy of the chart's configuration, renamed and scoped to its own namespaces. */
async function startFloor(plane: ControlPlane, hostIp: string, operatorNamespace: string): Promise<{ floor: WebhookProcess; scope: string; configurations: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'prober-bench-floor-'));
  const ca = await createCertificateAuthority(dir, 'floor-ca');
  const files = await issueServingCertificate(ca, dir, { name: 'floor', hosts: [hostIp, '127.0.0.1'] });
  const child = spawn(process.execPath, [join(import.meta.dirname, 'floor-webhook.ts'), files.certFile, files.keyFile], { stdio: ['ignore', 'pipe', 'inherit'], env: childEnv() });
  child.once('exit', () => void rm(dir, { recursive: true, force: true }));
  const first = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`the floor webhook exited with ${code}`)));
  });
  const { port, metricsPort } = JSON.parse(first) as { port: number; metricsPort: number };
  const floor = new WebhookProcess(child, metricsPort, { handler: 'floor', apiserverName: FLOOR_WEBHOOK });
  try {
    const scope = `${operatorNamespace}-floor`;
    const configuration = await chartWebhookConfiguration(plane, { release: `f${operatorNamespace.slice(-6)}`, namespace: operatorNamespace, url: `https://${hostIp}:${port}`, scope, timeoutSeconds: 2 });
    const webhook = (configuration as KubeObject & { webhooks: Array<{ name: string; clientConfig: { url: string; caBundle?: string } }> }).webhooks[0]!;
    webhook.name = FLOOR_WEBHOOK;
    webhook.clientConfig.caBundle = (await readFile(ca.cert)).toString('base64');
    const created = await plane.request('POST', CONFIGURATIONS, configuration);
    if (created.status !== 201) throw new Error(`creating the floor's configuration: ${created.status} ${created.body}`);
    const namespace = await newScopedNamespace(plane, 'floor-probe', scope);
    let n = 0;
    await eventually('the API server to call the floor webhook', async () => {
      const before = delta([], await floor.scrape(), 'crowsnest_webhook_requests_total', { webhook: 'floor', code: '200' });
      await plane.request('POST', `/api/v1/namespaces/${namespace}/pods?dryRun=All`, {
        apiVersion: 'v1', kind: 'Pod', metadata: { name: `probe-${n++}` }, spec: { containers: [{ name: 'c', image: 'registry.invalid/x:1' }] },
      });
      return delta([], await floor.scrape(), 'crowsnest_webhook_requests_total', { webhook: 'floor', code: '200' }) > before;
    }, 60_000);
    await plane.request('DELETE', `/api/v1/namespaces/${namespace}`);
    return { floor, scope, configurations: [configuration.metadata!.name!] };
  } catch (err) {
    await floor.stop();
    throw err;
  }
}

export async function benchProberAdmission(log: (line: string) => void, count = 1_000, rate = 100): Promise<AdmissionPass[]> {
  const plane = await testbed();
  await installCrds();
  const hostIp = plane.network?.hostIp ?? '127.0.0.1';
  const rounds = Number(process.env['BENCH_PROBER_ROUNDS'] ?? '1');
  const profileDir = process.env['BENCH_PROBER_CPU_PROF'];
  const configurations: string[] = [];
  const processes: WebhookProcess[] = [];
  try {
    log('starting crowsnest operator --controllers prober in its own process');
    const ours = await startOperator(plane, hostIp, profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []);
    processes.push(ours.operator);
    configurations.push(...ours.configurations);
    log('starting the floor webhook (allow-all, same server) in its own process');
    const floor = await startFloor(plane, hostIp, ours.scope);
    processes.push(floor.floor);
    configurations.push(...floor.configurations);

    const passes: AdmissionPass[] = [];
    for (let round = 0; round < rounds; round++) {
      const off = await newNamespace('bench-admission-off');
      await plane.waitForDefaultServiceAccount(off);
      const floored = await newScopedNamespace(plane, 'bench-admission-floor', floor.scope);
      const served = await newScopedNamespace(plane, 'bench-admission', ours.scope);
      const created = await plane.request('POST', `/apis/crowsnest.dev/v1alpha1/namespaces/${served}/networkprobers`, {
        apiVersion: 'crowsnest.dev/v1alpha1', kind: 'NetworkProber', metadata: { name: 'bench' }, spec: { podSelector: { matchLabels: { app: 'bench' } } },
      });
      if (created.status !== 201) throw new Error(created.body);
      // The operator's cache has the NetworkProber once a dry-run create comes back injected.
      await eventually('the operator to see the bench NetworkProber', async () => {
        const res = await plane.request('POST', `/api/v1/namespaces/${served}/pods?dryRun=All`, {
          apiVersion: 'v1', kind: 'Pod', metadata: { name: 'probe', labels: { app: 'bench' } }, spec: { containers: [{ name: 'c', image: 'registry.invalid/x:1' }] },
        });
        return res.status === 201 && (JSON.parse(res.body) as { spec: { initContainers?: unknown[] } }).spec.initContainers !== undefined;
      }, 30_000);
      passes.push(await pass(plane, log, 'no webhook', off, undefined, count, rate, round));
      passes.push(await pass(plane, log, 'floor webhook', floored, floor.floor, count, rate, round));
      passes.push(await pass(plane, log, 'prober webhook', served, ours.operator, count, rate, round));
    }
    return passes;
  } finally {
    await Promise.all(configurations.map((name) => plane.request('DELETE', `${CONFIGURATIONS}/${name}`)));
    await Promise.all(processes.map((p) => p.stop()));
    if (profileDir) log(`operator CPU profile in ${profileDir}`);
  }
}

/** `count` creates at `rate`/s into `namespace`, measured from the client, the API server and `webhook`'s process. */
async function pass(
  plane: ControlPlane, log: (line: string) => void, label: AdmissionPass['label'], namespace: string, webhook: WebhookProcess | undefined, count: number, rate: number, round: number,
): Promise<AdmissionPass> {
  log(`${label}: ${count} creates at ${rate}/s`);
  const apiserverBefore = parseSamples((await plane.request('GET', '/metrics')).body);
  const processBefore = await webhook?.scrape();
  const started = performance.now();
  const { stdout } = await run(process.execPath, [join(import.meta.dirname, 'prober-load.ts'), plane.kubeconfigPath, namespace, String(count), String(rate), `r${round}`], { maxBuffer: 1 << 24 });
  const seconds = (performance.now() - started) / 1000;
  const load = JSON.parse(stdout) as { latencies: number[]; failures: number };
  const client = { creates: load.latencies.length, failures: load.failures, clientP50Ms: median(load.latencies), clientP99Ms: quantile(load.latencies, 0.99) };
  if (!webhook || !processBefore) return { label, ...client };
  const processAfter = await webhook.scrape();
  const apiserverAfter = parseSamples((await plane.request('GET', '/metrics')).body);
  const apiserver = bucketDelta(apiserverBefore, apiserverAfter, 'apiserver_admission_webhook_admission_duration_seconds', { name: webhook.webhook.apiserverName, operation: 'CREATE' });
  const calls = apiserver.find((b) => b.le === Number.POSITIVE_INFINITY)?.count ?? 0;
  const server = bucketDelta(processBefore, processAfter, 'crowsnest_webhook_request_duration_seconds', { webhook: webhook.webhook.handler });
  const injected = delta(processBefore, processAfter, 'crowsnest_prober_admissions_total', { result: 'injected' });
  log(`${label}: the API server saw ${calls} calls`);
  return {
    label, ...client,
    apiserver: {
      calls, atMost5ms: calls ? (apiserver.find((b) => b.le === 0.005)?.count ?? 0) / calls : Number.NaN,
      p50Ms: histogramQuantile(0.5, apiserver) * 1000, p99Ms: histogramQuantile(0.99, apiserver) * 1000,
    },
    server: { p50Ms: histogramQuantile(0.5, server) * 1000, p99Ms: histogramQuantile(0.99, server) * 1000 },
    process: WebhookProcess.cost(processBefore, processAfter, calls, seconds),
    ...(label === 'prober webhook' ? { injected } : {}),
  };
}
