/**
 * Operator memory at scale (issue 12): `crowsnest operator --controllers logaccess` caching every
 * opted-in pod, at 10,000 and 150,000 kwok pods (Kubernetes' supported maximum), with the heap/RSS
 * split, beside an idle operator. Targets: ≤ 150 MiB RSS at 10,000 pods, < 1 GiB at 150,000.
 *
 * Pods come fast: kwok nodes of our own with room for 20,000 pods each, Deployments of 100
 * replicas whose pod template names its node (`spec.nodeName`: the scheduler is skipped, the
 * controller-manager creates pods at its 500 qps), created 16 at a time. Nodes are tainted as
 * the testbed's kwok nodes are, and pods carry the kwok toleration and node selector
 * (ON_KWOK_NODES).
 *
 * Each size is measured twice: the operator that ran while the pods were created (steady state
 * after the churn), and fresh operators started at that size, one per V8 flag set (how long the
 * first sync takes, and what each flag saves). Memory is read from the operator's own /metrics
 * (process_resident_memory_bytes, nodejs_heap_*) and /proc/<pid>/status (VmHWM: peak RSS;
 * RssAnon/RssFile: heap-and-malloc vs mapped code).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeClient } from '../../src/kube/client/client.ts';
import { type ControlPlane, freePort, KWOK_NODE_ANNOTATION, KWOK_TAINT, ON_KWOK_NODES } from '../../testbed/controlplane.ts';
import { median } from './stats.ts';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const NAMESPACE = 'bench-memory';
const REPLICAS = 100;
const NODE_CAPACITY = 20_000;
const CREATE_CONCURRENCY = 16;
const SAMPLES = 5;
const SAMPLE_INTERVAL_MS = 2_000;

/**
 * V8 flag sets given to node on the command line; `BENCH_MEMORY_VARIANTS=name,name` picks some.
 * The operator sets its own (OPERATOR_V8_FLAGS in src/operator/run.ts) unless the command line
 * names them, so `operator` is what it runs with and the others override it.
 */
export const V8_VARIANTS: Readonly<Record<string, readonly string[]>> = {
  operator: [],
  'v8-defaults': ['--max-semi-space-size=0', '--no-optimize-for-size'],
  'semi-space-1': ['--max-semi-space-size=1', '--no-optimize-for-size'],
  'optimize-for-size': ['--max-semi-space-size=0', '--optimize-for-size'],
};

export interface MemoryRow {
  /** What was measured: `idle`, `after creating`, or `fresh (<variant>)`. */
  readonly label: string;
  readonly pods: number;
  readonly rssMiB: number;
  readonly peakRssMiB: number;
  readonly heapUsedMiB: number;
  readonly heapTotalMiB: number;
  readonly externalMiB: number;
  readonly rssAnonMiB: number;
  readonly rssFileMiB: number;
  /** Start to ready (every cache synced), for fresh operators. */
  readonly syncSeconds?: number;
}

const MIB = 2 ** 20;

interface Status { rssKb: number; hwmKb: number; anonKb: number; fileKb: number }

function procStatus(pid: number): Status {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? Number.NaN);
  return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM'), anonKb: kb('RssAnon'), fileKb: kb('RssFile') };
}

/** Operators still running, killed if the bench process ends without stopping them. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

/** One operator process with its own metrics and probe ports. */
class OperatorProcess {
  readonly process: ChildProcess;
  readonly metricsPort: number;
  readonly healthPort: number;
  readonly startedAt = performance.now();
  private readonly exited: Promise<unknown>;

  private constructor(child: ChildProcess, metricsPort: number, healthPort: number) {
    this.process = child;
    this.metricsPort = metricsPort;
    this.healthPort = healthPort;
    this.exited = new Promise((resolve) => child.once('exit', resolve));
    running.add(child);
    child.once('exit', () => running.delete(child));
  }

  /** Runs the operator as bin/crowsnest does (same Node, compile cache), with `v8Flags` before the script. */
  static async start(plane: ControlPlane, v8Flags: readonly string[]): Promise<OperatorProcess> {
    const metricsPort = await freePort();
    const healthPort = await freePort();
    const child = spawn(process.execPath, [
      ...v8Flags, join(repo, 'src', 'cli', 'entry.ts'),
      'operator', '--kubeconfig', plane.kubeconfigPath, '--controllers', 'logaccess', '--leader-elect=false', '--workers', '4',
      '--metrics-bind-address', `127.0.0.1:${metricsPort}`, '--health-probe-bind-address', `127.0.0.1:${healthPort}`,
      '--log-level', 'warn', '--log-format', 'json',
    ], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, NODE_COMPILE_CACHE: process.env['NODE_COMPILE_CACHE'] ?? join(homedir(), '.cache', 'crowsnest', 'compile-cache') },
    });
    return new OperatorProcess(child, metricsPort, healthPort);
  }

  async ready(): Promise<boolean> {
    const res = await fetch(`http://127.0.0.1:${this.healthPort}/readyz`).catch(() => undefined);
    return res?.status === 200;
  }

  async metrics(): Promise<Map<string, number>> {
    const text = await (await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`)).text();
    const values = new Map<string, number>();
    for (const line of text.split('\n')) {
      if (!line || line.startsWith('#')) continue;
      const name = line.slice(0, line.search(/[ {]/));
      values.set(name, (values.get(name) ?? 0) + Number(line.split(' ').pop()));
    }
    return values;
  }

  /** Waits until it is ready; returns seconds since start. */
  async waitReady(timeoutMs: number): Promise<number> {
    await until('the operator to be ready', () => this.ready(), timeoutMs);
    return (performance.now() - this.startedAt) / 1000;
  }

  /** Waits until it keeps `roles` Roles and has had nothing to do for three scrapes in a row. */
  async waitDrained(roles: number, timeoutMs: number, log: (line: string) => void): Promise<void> {
    let quiet = 0;
    let lastLog = 0;
    await until('the operator to catch up', async () => {
      const m = await this.metrics();
      const idle = m.get('crowsnest_logaccess_managed_roles') === roles && m.get('workqueue_depth') === 0 && m.get('workqueue_longest_running_processor_seconds') === 0;
      quiet = idle ? quiet + 1 : 0;
      if (Date.now() - lastLog > 15_000) {
        log(`memory: operator roles ${m.get('crowsnest_logaccess_managed_roles')}/${roles}, queue ${m.get('workqueue_depth')}`);
        lastLog = Date.now();
      }
      return quiet >= 3;
    }, timeoutMs, 1_000);
  }

  /** Median of a few samples of RSS and heap, and the peak RSS so far. */
  async sample(label: string, pods: number, syncSeconds?: number): Promise<MemoryRow> {
    const samples: Array<{ m: Map<string, number>; s: Status }> = [];
    for (let i = 0; i < SAMPLES; i++) {
      if (i > 0) await new Promise((resolve) => setTimeout(resolve, SAMPLE_INTERVAL_MS));
      samples.push({ m: await this.metrics(), s: procStatus(this.process.pid!) });
    }
    const med = (f: (x: { m: Map<string, number>; s: Status }) => number): number => median(samples.map(f));
    return {
      label, pods,
      rssMiB: med((x) => x.s.rssKb) / 1024,
      peakRssMiB: Math.max(...samples.map((x) => x.s.hwmKb)) / 1024,
      heapUsedMiB: med((x) => x.m.get('nodejs_heap_size_used_bytes') ?? Number.NaN) / MIB,
      heapTotalMiB: med((x) => x.m.get('nodejs_heap_size_total_bytes') ?? Number.NaN) / MIB,
      externalMiB: med((x) => x.m.get('nodejs_external_memory_bytes') ?? Number.NaN) / MIB,
      rssAnonMiB: med((x) => x.s.anonKb) / 1024,
      rssFileMiB: med((x) => x.s.fileKb) / 1024,
      ...(syncSeconds !== undefined ? { syncSeconds } : {}),
    };
  }

  async stop(): Promise<void> {
    if (this.process.exitCode === null) this.process.kill('SIGTERM');
    await this.exited;
  }
}

/**
 * Polls `condition` until it holds. A failed poll (an API server slow under 150,000 pods) is
 * retried, not fatal; only the deadline is.
 */
async function until(what: string, condition: () => boolean | Promise<boolean>, timeoutMs: number, intervalMs = 500): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await condition()) return;
    } catch (err) {
      process.stderr.write(`[bench] memory: polling ${what} failed, retrying: ${err instanceof Error ? err.message : String(err)}\n`);
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

async function mapLimit<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await work(items[next++]!);
  }));
}

/**
 * The bench's own API calls go through our client: its requests time out and fail loudly, where
 * a stalled answer to the testbed's helper could leave a promise pending with nothing keeping
 * the process alive (the first 150,000-pod run ended that way, silently, at 69,000 pods).
 */
async function post(client: KubeClient, path: string, body: unknown): Promise<void> {
  await client.json(path, { method: 'POST', body, timeoutMs: 60_000 });
}

/** kwok nodes of our own, each with room for {@link NODE_CAPACITY} pods, tainted as the testbed's are. */
async function createNodes(client: KubeClient, count: number): Promise<string[]> {
  const names = Array.from({ length: count }, (_, i) => `bench-kwok-${i}`);
  await mapLimit(names, CREATE_CONCURRENCY, async (name) => {
    await post(client, '/api/v1/nodes', {
      apiVersion: 'v1', kind: 'Node',
      metadata: { name, annotations: { [KWOK_NODE_ANNOTATION]: 'fake', 'node.alpha.kubernetes.io/ttl': '0' }, labels: { type: 'kwok', 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux' } },
      spec: { taints: [KWOK_TAINT] },
      status: {
        allocatable: { cpu: '1000', memory: '4Ti', pods: String(NODE_CAPACITY) },
        capacity: { cpu: '1000', memory: '4Ti', pods: String(NODE_CAPACITY) },
      },
    });
  });
  return names;
}

/** Deployments `d-<from>` … `d-<to - 1>`, each of {@link REPLICAS} opted-in pods pinned to one node. */
async function createDeployments(client: KubeClient, nodes: readonly string[], from: number, to: number): Promise<void> {
  const indexes = Array.from({ length: to - from }, (_, i) => from + i);
  await mapLimit(indexes, CREATE_CONCURRENCY, async (i) => {
    const labels = { app: `d-${i}`, 'podlogreader-affiliate': 'enable' };
    await post(client, `/apis/apps/v1/namespaces/${NAMESPACE}/deployments`, {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: `d-${i}` },
      spec: {
        replicas: REPLICAS,
        selector: { matchLabels: { app: `d-${i}` } },
        template: {
          metadata: { labels },
          spec: {
            nodeName: nodes[i % nodes.length], ...ON_KWOK_NODES,
            containers: [{ name: 'app', image: 'localhost/app:1', resources: { requests: { cpu: '1m', memory: '1Mi' } } }],
          },
        },
      },
    });
  });
}

/** Pods in the namespace, counted from one list page's remainingItemCount (cheap at 150,000). */
async function countPods(client: KubeClient): Promise<number> {
  const list = await client.json<{ items: unknown[]; metadata: { remainingItemCount?: number } }>(`/api/v1/namespaces/${NAMESPACE}/pods`, { query: { limit: 1 }, timeoutMs: 60_000 });
  return list.items.length + (list.metadata.remainingItemCount ?? 0);
}

/**
 * Whether some pod is not Running yet. (A selected list carries no remainingItemCount, so the
 * Running ones cannot be counted this cheaply; one that is not is enough to know.)
 */
async function somePodNotRunning(client: KubeClient): Promise<boolean> {
  const list = await client.json<{ items: unknown[] }>(`/api/v1/namespaces/${NAMESPACE}/pods`, { query: { limit: 1, fieldSelector: 'status.phase!=Running' }, timeoutMs: 60_000 });
  return list.items.length > 0;
}

export interface MemoryBenchResult {
  readonly rows: MemoryRow[];
  /**
   * Per size: seconds to create the pods, and to have kwok report them all Running, unless that
   * took longer than the wait allowed (`runningSeconds` undefined: measured with kwok still at it).
   */
  readonly creation: Array<{ pods: number; createdSeconds: number; runningSeconds: number | undefined }>;
}

/** How long to wait for kwok to report every pod Running before measuring anyway (`BENCH_MEMORY_RUNNING_WAIT_MINUTES`). */
const RUNNING_WAIT_MS = Number(process.env['BENCH_MEMORY_RUNNING_WAIT_MINUTES'] ?? '20') * 60_000;

/**
 * Runs the sizes in increasing order on `plane`; `onRow` gets each row as it is measured so a
 * later size that fails loses nothing.
 */
export async function benchMemory(
  plane: ControlPlane,
  sizes: readonly number[],
  variants: readonly string[],
  log: (line: string) => void,
  onRow: (row: MemoryRow) => void = () => {},
  /** V8 flag sets of the operators that run while the pods are created (one each). */
  residentVariants: readonly string[] = ['operator'],
): Promise<MemoryBenchResult> {
  const kc = new KubeConfig();
  kc.loadFromFile(plane.kubeconfigPath);
  const client = new KubeClient(kc);
  // Something must keep the process alive while it only waits on the API server.
  const keepAlive = setInterval(() => {}, 60_000);
  try {
    return await measure(plane, client, sizes, variants, log, onRow, residentVariants);
  } finally {
    clearInterval(keepAlive);
    await client.close();
  }
}

async function measure(
  plane: ControlPlane, client: KubeClient, sizes: readonly number[], variants: readonly string[], log: (line: string) => void,
  onRow: (row: MemoryRow) => void, residentVariants: readonly string[],
): Promise<MemoryBenchResult> {
  const rows: MemoryRow[] = [];
  const creation: MemoryBenchResult['creation'] = [];
  const record = (row: MemoryRow): void => {
    rows.push(row);
    onRow(row);
  };
  const nodes = await createNodes(client, Math.ceil(Math.max(...sizes) / NODE_CAPACITY) + 1);
  await post(client, '/api/v1/namespaces', { metadata: { name: NAMESPACE } });
  await plane.waitForDefaultServiceAccount(NAMESPACE);

  const flagsOf = (variant: string): readonly string[] => {
    const flags = V8_VARIANTS[variant];
    if (!flags) throw new Error(`unknown V8 variant ${variant} (known: ${Object.keys(V8_VARIANTS).join(', ')})`);
    return flags;
  };
  const describe = (variant: string): string => variant;
  // One run first, so every module is in Node's compile cache: a process that strips TypeScript
  // loads the stripper (several MiB of WebAssembly), which the image (compiled to JS) never does.
  const warmUp = await OperatorProcess.start(plane, []);
  await warmUp.waitReady(120_000);
  await warmUp.stop();
  const residents = await Promise.all(residentVariants.map(async (variant) => ({ variant, operator: await OperatorProcess.start(plane, flagsOf(variant)) })));
  try {
    const idleSyncs = await Promise.all(residents.map(({ operator }) => operator.waitReady(120_000)));
    for (const [i, { variant, operator }] of residents.entries()) {
      const idleSync = idleSyncs[i]!;
      await operator.waitDrained(0, 60_000, log);
      record(await operator.sample(`idle (${describe(variant)})`, 0, idleSync));
    }

    let deployments = 0;
    for (const pods of sizes) {
      const target = pods / REPLICAS;
      const started = performance.now();
      log(`memory: creating Deployments ${deployments}…${target - 1} (${pods} pods in all)`);
      await createDeployments(client, nodes, deployments, target);
      deployments = target;
      let lastLog = 0;
      await until(`${pods} pods`, async () => {
        const count = await countPods(client);
        if (Date.now() - lastLog > 15_000) {
          log(`memory: ${count}/${pods} pods after ${((performance.now() - started) / 1000).toFixed(0)} s`);
          lastLog = Date.now();
        }
        return count >= pods;
      }, 4 * 3600_000, 2_000);
      const createdSeconds = (performance.now() - started) / 1000;
      let runningSeconds: number | undefined;
      try {
        await until(`${pods} pods Running`, async () => {
          const waiting = await somePodNotRunning(client);
          if (waiting && Date.now() - lastLog > 15_000) {
            log(`memory: not every pod Running after ${((performance.now() - started) / 1000).toFixed(0)} s`);
            lastLog = Date.now();
          }
          return !waiting;
        }, RUNNING_WAIT_MS, 20_000);
        runningSeconds = (performance.now() - started) / 1000;
      } catch {
        log(`memory: kwok has not reported every pod Running ${RUNNING_WAIT_MS / 60_000} min after they were created; measuring with it still at work`);
      }
      creation.push({ pods, createdSeconds, runningSeconds });
      log(`memory: ${pods} pods created in ${createdSeconds.toFixed(0)} s, Running in ${runningSeconds === undefined ? '(not yet)' : `${runningSeconds.toFixed(0)} s`}`);

      for (const { variant, operator } of residents) {
        await operator.waitDrained(deployments, 30 * 60_000, log);
        record(await operator.sample(`ran through the creation (${describe(variant)})`, pods));
      }

      for (const variant of variants) {
        const fresh = await OperatorProcess.start(plane, flagsOf(variant));
        try {
          const syncSeconds = await fresh.waitReady(30 * 60_000);
          await fresh.waitDrained(deployments, 30 * 60_000, log);
          record(await fresh.sample(`fresh start (${describe(variant)})`, pods, syncSeconds));
        } finally {
          await fresh.stop();
        }
      }
    }
  } finally {
    await Promise.all(residents.map(({ operator }) => operator.stop()));
  }
  return { rows, creation };
}
