/**
 * The agent's own cost (issue: with 10 and 100 peers, RSS and CPU per agent, target RSS ≤ 40 MiB,
 * CPU beside Goldpinger). Pods on both real nodes get the agent from the webhook (default
 * settings: a round per peer every 10 s, 1 s timeout) and run, as their main container, go-pinger
 * (test/bench/go-pinger): the same work written in plain Go, probing the same peers on the same
 * schedule. With `BENCH_GOLDPINGER_BINARY` set to a static Goldpinger binary (built elsewhere;
 * nothing here builds it), the same pods run Goldpinger as a second container, set to the agent's
 * schedule (see {@link goldpingerContainer}); without it Goldpinger is not measured.
 *
 * All are measured the same way, from the host's /proc: RSS (and its anonymous part: a binary's
 * file pages are shared between pods on a node) at the end, CPU as utime + stime over a minute
 * after a warm-up; and the container's working set as the kubelet computes it from the process's
 * memory cgroup (usage minus inactive file pages).
 */
import { execFile } from 'node:child_process';
import { readdir, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { LayerBuilder } from '../../image/layer.ts';
import { writeOciImage } from '../../image/oci.ts';
import { cacheDir } from '../../image/paths.ts';
import { registryReference } from '../../image/testbed-images.ts';
import { buildImageTools, pushOciLayout } from '../../testbed/registry.ts';
import { waitForPod } from '../../testbed/realpods.ts';
import { crowsnestImage } from '../integration/prober-image.ts';
import { startProber } from '../integration/prober-run.ts';
import { testbed } from '../integration/testbed.ts';
import { coresBetween, type ProcessSample, sampleProcess } from './process-sample.ts';
import { median } from './stats.ts';

const run = promisify(execFile);
const GO_PINGER_PORT = 19180;
const WARMUP_MS = 40_000;
const MEASURE_MS = 60_000;
/** Pods created before waiting for them to run. */
const STARTUP_BATCH = 20;

/**
 * Node's own floor with this binary: an idle process (`setInterval`), and one that has loaded what
 * the agent cannot do without (node:net, node:tls with a secure context). Measured on the host
 * (the image carries the same binary).
 */
export async function nodeFloor(): Promise<{ idle: { rssMiB: number; anonMiB: number }; netTls: { rssMiB: number; anonMiB: number } }> {
  const measure = async (script: string): Promise<{ rssMiB: number; anonMiB: number }> => {
    const { stdout } = await run(process.execPath, ['-e', `${script}; setTimeout(() => { const s = require('fs').readFileSync('/proc/self/status', 'utf8'); console.log(JSON.stringify({ rss: /VmRSS:\\s+(\\d+)/.exec(s)[1], anon: /RssAnon:\\s+(\\d+)/.exec(s)[1] })); process.exit(0); }, 3000)`]);
    const { rss, anon } = JSON.parse(stdout) as { rss: string; anon: string };
    return { rssMiB: Number(rss) / 1024, anonMiB: Number(anon) / 1024 };
  };
  return {
    idle: await measure('setInterval(() => {}, 1000)'),
    netTls: await measure("require('net').createServer().listen(0); require('tls').createSecureContext({})"),
  };
}

export interface AgentCost {
  readonly peers: number;
  readonly pods: number;
  readonly agent: ProcessCost;
  readonly goPinger: ProcessCost;
  /** Absent when `BENCH_GOLDPINGER_BINARY` was not set. */
  readonly goldpinger?: ProcessCost & { readonly pings: GoldpingerPings };
}

export interface ProcessCost {
  readonly rssMiBMedian: number;
  readonly rssMiBMax: number;
  readonly anonMiBMedian: number;
  /** The container's working set as the kubelet computes it (cgroup usage minus inactive file pages). */
  readonly workingSetMiBMedian: number;
  readonly workingSetMiBMax: number;
  /** Cores (CPU seconds per second), median over the pods. */
  readonly cpuCoresMedian: number;
}

/** What Goldpinger's own /metrics counted over the measurement window. */
export interface GoldpingerPings {
  /** Pods whose /metrics were read before and after the window, with no restart between. */
  readonly pods: number;
  /** Pings made, summed over those pods. */
  readonly made: number;
  readonly failed: number;
  /** Pings made per 10 s (its refresh interval) by a pod, median over those pods: its peers per round. */
  readonly perRoundMedian: number;
}

type ProcessKind = 'agent' | 'go-pinger' | 'goldpinger';

const GOLDPINGER_PORT = 19280;
/** How many pods' Goldpinger /metrics are read to count its pings. */
const GOLDPINGER_SCRAPED_PODS = 11;
/** Goldpinger's label on the pods' ServiceAccount, Role and RoleBinding. */
const GOLDPINGER_ACCOUNT = 'goldpinger';
/**
 * Goldpinger's logger settings as its Helm chart ships them (info, JSON). Without the file it
 * falls back to a development logger at debug level, which logs every ping.
 */
const GOLDPINGER_ZAP_CONFIG = {
  level: 'info', encoding: 'json', outputPaths: ['stdout'], errorOutputPaths: ['stderr'], initialFields: {},
  encoderConfig: { messageKey: 'message', levelKey: 'level', levelEncoder: 'lowercase', timeKey: 'ts', timeEncoder: 'ISO8601', callerKey: 'caller', callerEncoder: 'Short' },
};

/** Writes a one-layer image of `layer` to its own layout and pushes it to the testbed's registry. */
async function pushBenchImage(
  registryHost: string, name: string, entrypoint: string, layer: { createdBy: string; builder: LayerBuilder }, log: (line: string) => void,
): Promise<string> {
  const image = await writeOciImage({
    name: `localhost/crowsnest/${name}:bench`,
    createdSeconds: 0,
    config: { entrypoint: [entrypoint], user: '65532:65532', env: ['PATH=/'] },
    layers: [{ createdBy: layer.createdBy, entries: layer.builder.build() }],
  }, { layoutDir: join(cacheDir(), `bench-${name}`, 'layout') });
  const crane = join(await buildImageTools(log), 'crane');
  const reference = registryReference(registryHost, image.name);
  await pushOciLayout(crane, image.layoutDir, reference);
  return reference;
}

/** go-pinger as an image: the static binary alone. */
async function goPingerImage(registryHost: string, log: (line: string) => void): Promise<string> {
  const dir = join(import.meta.dirname, 'go-pinger');
  const binary = join(tmpdir(), `go-pinger-${process.pid}`);
  await run(process.env['GO'] ?? '/usr/local/go/bin/go', ['build', '-trimpath', '-o', binary, '.'], { cwd: dir, env: { ...process.env, CGO_ENABLED: '0', GOTOOLCHAIN: 'local' } });
  const builder = new LayerBuilder().file('go-pinger', await readFile(binary), 0o755);
  await rm(binary, { force: true });
  return pushBenchImage(registryHost, 'go-pinger', '/go-pinger', { createdBy: 'go-pinger (test/bench/go-pinger)', builder }, log);
}

/**
 * Goldpinger as an image: the binary given (static: it needs no libc) and its logger config at
 * its default path, /config/zap.json. No static files (only its UI serves them) and no CA
 * certificates: the in-cluster client trusts the ServiceAccount's ca.crt, and it calls nothing else.
 */
async function goldpingerImage(binary: string, registryHost: string, log: (line: string) => void): Promise<string> {
  const builder = new LayerBuilder()
    .file('goldpinger', await readFile(binary), 0o755)
    .file('config/zap.json', JSON.stringify(GOLDPINGER_ZAP_CONFIG));
  return pushBenchImage(registryHost, 'goldpinger', '/goldpinger', { createdBy: 'goldpinger (BENCH_GOLDPINGER_BINARY)', builder }, log);
}

/**
 * Goldpinger's container, set to the agent's schedule: the pod list and each peer's ping every
 * 10 s (REFRESH_INTERVAL; its default is 30), 1 s ping timeout (default 300 ms), `peers` pods
 * picked by its rendezvous hash on the pod's name (PING_NUMBER; 0, its default, pings every pod).
 * It lists Running pods with LABEL_SELECTOR in NAMESPACE; no DNS, TCP or HTTP targets (their
 * defaults, empty), so it calls only its peers and the API server.
 */
function goldpingerContainer(image: string, peers: number): object {
  const field = (fieldPath: string): object => ({ valueFrom: { fieldRef: { fieldPath } } });
  return {
    name: 'goldpinger', image, resources: { limits: { memory: '128Mi' } },
    ports: [{ name: 'goldpinger', containerPort: GOLDPINGER_PORT }],
    env: [
      { name: 'HOST', value: '0.0.0.0' }, { name: 'PORT', value: String(GOLDPINGER_PORT) },
      { name: 'REFRESH_INTERVAL', value: '10' }, { name: 'PING_TIMEOUT', value: '1s' }, { name: 'PING_NUMBER', value: String(peers) },
      { name: 'LABEL_SELECTOR', value: 'app=bench' }, { name: 'NAMESPACE', ...field('metadata.namespace') },
      { name: 'POD_NAME', ...field('metadata.name') }, { name: 'POD_IP', ...field('status.podIP') },
      // As its chart sets it: the node's name (a label on its metrics).
      { name: 'HOSTNAME', ...field('spec.nodeName') },
    ],
  };
}

/** The namespace's ServiceAccount for Goldpinger, allowed what its chart's namespaced RBAC allows: list pods. */
async function goldpingerAccount(plane: Awaited<ReturnType<typeof testbed>>, namespace: string): Promise<void> {
  const create = async (path: string, body: object): Promise<void> => {
    const res = await plane.request('POST', path, body);
    if (res.status !== 201) throw new Error(`${path}: ${res.status} ${res.body}`);
  };
  const rbac = `/apis/rbac.authorization.k8s.io/v1/namespaces/${namespace}`;
  await create(`/api/v1/namespaces/${namespace}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: GOLDPINGER_ACCOUNT } });
  await create(`${rbac}/roles`, {
    apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: GOLDPINGER_ACCOUNT },
    rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['list'] }],
  });
  await create(`${rbac}/rolebindings`, {
    apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: GOLDPINGER_ACCOUNT },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: GOLDPINGER_ACCOUNT },
    subjects: [{ kind: 'ServiceAccount', name: GOLDPINGER_ACCOUNT, namespace }],
  });
}

interface GoldpingerCounts { readonly atMs: number; readonly made: number; readonly failed: number }

/**
 * A pod's Goldpinger's own counts of pings made (`goldpinger_stats_total{group="made",action="ping"}`)
 * and failed (`goldpinger_errors_total{type="ping"}`), from its /metrics.
 */
async function goldpingerCounts(ip: string, log: (line: string) => void): Promise<GoldpingerCounts | undefined> {
  try {
    const res = await fetch(`http://${ip}:${GOLDPINGER_PORT}/metrics`, { signal: AbortSignal.timeout(30_000) });
    const lines = (await res.text()).split('\n');
    const sum = (prefix: string, ...labels: string[]): number => lines
      .filter((l) => l.startsWith(`${prefix}{`) && labels.every((label) => l.includes(label)))
      .reduce((total, l) => total + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    return { atMs: Date.now(), made: sum('goldpinger_stats_total', 'group="made"', 'action="ping"'), failed: sum('goldpinger_errors_total', 'type="ping"') };
  } catch (err) {
    log(`goldpinger /metrics of ${ip}: ${String(err)}`);
    return undefined;
  }
}

/** The pings each scraped pod's Goldpinger made between two scrapes (skipping a pod whose counters restarted). */
function goldpingerPings(before: ReadonlyMap<string, GoldpingerCounts | undefined>, after: ReadonlyMap<string, GoldpingerCounts | undefined>, log: (line: string) => void): GoldpingerPings {
  let made = 0;
  let failed = 0;
  const perRound: number[] = [];
  for (const [pod, start] of before) {
    const end = after.get(pod);
    if (!start || !end) continue;
    if (end.made < start.made) {
      log(`warning: Goldpinger of ${pod} restarted in the window (its counters went down)`);
      continue;
    }
    const window = { made: end.made - start.made, failed: end.failed - start.failed };
    if (window.made - window.failed <= 0) log(`warning: Goldpinger of ${pod} made no successful ping in the window`);
    made += window.made;
    failed += window.failed;
    perRound.push(window.made / ((end.atMs - start.atMs) / 10_000));
  }
  return { pods: perRound.length, made, failed, perRoundMedian: perRound.length > 0 ? median(perRound) : 0 };
}

interface ProcSample extends ProcessSample {
  readonly pid: number; readonly kind: ProcessKind;
  readonly workingSetKiB: number | undefined;
}

function processKind(cmdline: readonly string[]): ProcessKind | undefined {
  if (cmdline.some((a) => a.endsWith('/crowsnest') || a.endsWith('crowsnest.js')) && cmdline.includes('agent')) return 'agent';
  if (cmdline[0]?.endsWith('/go-pinger')) return 'go-pinger';
  if (cmdline[0]?.endsWith('/goldpinger')) return 'goldpinger';
  return undefined;
}

/** The UID of the pod whose cgroup holds the process (`pod<uid>` in cgroupfs paths, `_` for `-` under systemd). */
function podUidOf(cgroups: string): string | undefined {
  return /pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})/.exec(cgroups)?.[1]?.replaceAll('_', '-');
}

/**
 * The working set of the process's memory cgroup (its container's), as the kubelet (cAdvisor)
 * computes it: on cgroup v1 memory.usage_in_bytes minus memory.stat's total_inactive_file, on v2
 * memory.current minus inactive_file. The testbed's nodes put pods under their kubelet's
 * cgroupRoot in the host's hierarchies (no cgroup namespace), so /proc/<pid>/cgroup names the path.
 */
async function workingSetKiB(cgroups: string): Promise<number | undefined> {
  const lines = cgroups.trim().split('\n').map((l) => l.split(':'));
  const v1 = lines.find(([, controllers]) => controllers?.split(',').includes('memory'));
  const v2 = lines.find(([id, controllers]) => id === '0' && controllers === '');
  const [dir, usageFile, inactiveKey] = v1 ? [`/sys/fs/cgroup/memory${v1[2]}`, 'memory.usage_in_bytes', 'total_inactive_file']
    : v2 ? [`/sys/fs/cgroup${v2[2]}`, 'memory.current', 'inactive_file'] : [];
  if (!dir) return undefined;
  try {
    const usage = Number((await readFile(join(dir, usageFile!), 'utf8')).trim());
    const stat = await readFile(join(dir, 'memory.stat'), 'utf8');
    const inactive = Number(new RegExp(`^${inactiveKey} (\\d+)$`, 'm').exec(stat)?.[1] ?? 0);
    return Math.max(0, usage - inactive) / 1024;
  } catch {
    return undefined; // No memory controller on this hierarchy (a v2 host without it, or the unified part of a hybrid one).
  }
}

/**
 * The agents', go-pingers' and Goldpingers' processes in the pods `podUids` (other testbeds on
 * this machine run agents too), with CPU ticks and memory.
 */
async function sampleProcesses(podUids: ReadonlySet<string>): Promise<ProcSample[]> {
  const samples: ProcSample[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const kind = processKind((await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0'));
      if (!kind) continue;
      const cgroups = await readFile(`/proc/${entry}/cgroup`, 'utf8');
      if (!podUids.has(podUidOf(cgroups) ?? '')) continue;
      samples.push({ ...await sampleProcess(Number(entry)), pid: Number(entry), kind, workingSetKiB: await workingSetKiB(cgroups) });
    } catch {
      // The process ended while we read it.
    }
  }
  return samples;
}

/** Median and max of RSS, anon and working set at the end, and median CPU over the window, of one kind's processes. */
function processCost(before: readonly ProcSample[], after: readonly ProcSample[], kind: ProcessKind, pods: number, log: (line: string) => void): ProcessCost {
  const end = after.filter((s) => s.kind === kind);
  if (end.length !== pods) log(`warning: found ${end.length} ${kind} processes for ${pods} pods`);
  const cpu = end.map((s) => {
    const start = before.find((b) => b.pid === s.pid);
    return start ? coresBetween(start, s) : Number.NaN;
  }).filter((c) => !Number.isNaN(c));
  const workingSet = end.flatMap((s) => (s.workingSetKiB === undefined ? [] : [s.workingSetKiB / 1024]));
  if (workingSet.length !== end.length) log(`warning: no memory cgroup read for ${end.length - workingSet.length} ${kind} processes`);
  return {
    rssMiBMedian: median(end.map((s) => s.rssKiB / 1024)), rssMiBMax: Math.max(...end.map((s) => s.rssKiB / 1024)),
    anonMiBMedian: median(end.map((s) => s.anonKiB / 1024)),
    workingSetMiBMedian: workingSet.length > 0 ? median(workingSet) : Number.NaN, workingSetMiBMax: Math.max(...workingSet),
    cpuCoresMedian: median(cpu),
  };
}

/** Container restarts in the namespace's pods, summed per container name (a saturated machine restarts some). */
async function restarts(plane: Awaited<ReturnType<typeof testbed>>, namespace: string): Promise<string> {
  const res = await plane.request('GET', `/api/v1/namespaces/${namespace}/pods`);
  const list = JSON.parse(res.body) as { items: Array<{ status: { containerStatuses?: Array<{ name: string; restartCount: number }>; initContainerStatuses?: Array<{ name: string; restartCount: number }> } }> };
  const counts = new Map<string, number>();
  for (const pod of list.items) {
    for (const c of [...(pod.status.initContainerStatuses ?? []), ...(pod.status.containerStatuses ?? [])]) counts.set(c.name, (counts.get(c.name) ?? 0) + c.restartCount);
  }
  return [...counts].map(([name, n]) => `${name} ${n}`).join(', ');
}

export async function benchProberAgents(log: (line: string) => void, peerCounts: readonly number[] = [10, 100]): Promise<AgentCost[]> {
  const plane = await testbed();
  const agentImage = await crowsnestImage(plane);
  const registryHost = plane.images['test']!.split('/')[0]!;
  const goPinger = await goPingerImage(registryHost, log);
  const goldpingerBinary = process.env['BENCH_GOLDPINGER_BINARY'];
  const goldpinger = goldpingerBinary ? await goldpingerImage(goldpingerBinary, registryHost, log) : undefined;
  if (!goldpinger) log('BENCH_GOLDPINGER_BINARY is not set: Goldpinger is not measured');
  const prober = await startProber({ agentImage });
  const results: AgentCost[] = [];
  try {
    for (const peers of peerCounts) {
      const pods = peers + 1;
      const namespace = await prober.newNamespace(`bench-agents-${peers}`);
      log(`${pods} pods, ${peers} peers each${goldpinger ? ', with Goldpinger' : ''}`);
      const created = await plane.request('POST', `/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/networkprobers`, {
        apiVersion: 'crowsnest.dev/v1alpha1', kind: 'NetworkProber', metadata: { name: 'bench' }, spec: { podSelector: { matchLabels: { app: 'bench' } }, neighbours: peers },
      });
      if (created.status !== 201) throw new Error(created.body);
      if (goldpinger) await goldpingerAccount(plane, namespace);
      // go-pinger asks this server for its peers: every other pod. It asks until the answer is not
      // empty and never again, so nothing is answered before every pod's IP is known (else the
      // first pods' go-pingers probed only the few pods running before them).
      const ips = new Map<string, string>();
      const uids = new Set<string>();
      const peersServer = createServer((req, res) => {
        if (ips.size < pods) return void res.end();
        const self = new URL(req.url ?? '/', 'http://x').searchParams.get('pod');
        res.end([...ips].filter(([name]) => name !== self).map(([name, ip]) => `${name} ${ip}:${GO_PINGER_PORT}`).join('\n'));
      });
      await new Promise<void>((resolve) => peersServer.listen(0, plane.network!.hostIp, resolve));
      const peersUrl = `http://${plane.network!.hostIp}:${(peersServer.address() as AddressInfo).port}/peers`;
      try {
        // In batches: 303 containers created at once on 2 cores had runc time out (RunContainerError,
        // "context deadline exceeded") and the kubelet's back-off kept a pod Pending past 5 min.
        for (let batch = 0; batch < pods; batch += STARTUP_BATCH) {
          const inBatch = Array.from({ length: Math.min(STARTUP_BATCH, pods - batch) }, (_, k) => batch + k);
          for (const i of inBatch) {
            const name = `bench-${i}`;
            const res = await plane.request('POST', `/api/v1/namespaces/${namespace}/pods`, {
              apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: { app: 'bench' } },
              spec: {
                nodeName: `crowsnest-real-${i % 2}`, terminationGracePeriodSeconds: 1,
                ...(goldpinger ? { serviceAccountName: GOLDPINGER_ACCOUNT } : {}),
                containers: [
                  { name: 'go-pinger', image: goPinger, args: ['-listen', `:${GO_PINGER_PORT}`, '-peers-url', `${peersUrl}?pod=${name}`, '-period', '10s', '-timeout', '1s'], resources: { limits: { memory: '128Mi' } } },
                  ...(goldpinger ? [goldpingerContainer(goldpinger, peers)] : []),
                ],
              },
            });
            if (res.status !== 201) throw new Error(res.body);
          }
          for (const i of inBatch) {
            const pod = await waitForPod(plane, namespace, `bench-${i}`, (p) => p.status.phase === 'Running' && Boolean(p.status.podIP), 'Running', 300_000);
            ips.set(pod.metadata.name, pod.status.podIP!);
            uids.add(pod.metadata.uid);
          }
          log(`${ips.size} of ${pods} pods running`);
        }
        log(`pods running; warming up ${WARMUP_MS / 1000} s`);
        await new Promise((resolve) => setTimeout(resolve, WARMUP_MS));
        // Goldpinger's counts around the window, from a few pods spread over both nodes (reading
        // all 101 at once timed most of them out on a saturated machine).
        const spread = new Set(Array.from({ length: Math.min(pods, GOLDPINGER_SCRAPED_PODS) }, (_, k) => Math.floor((k * pods) / Math.min(pods, GOLDPINGER_SCRAPED_PODS))));
        const scraped = [...ips].filter((_, i) => spread.has(i));
        const scrape = async (): Promise<Map<string, GoldpingerCounts | undefined>> =>
          new Map(await Promise.all(scraped.map(async ([pod, ip]) => [pod, await goldpingerCounts(ip, log)] as const)));
        const countsBefore = goldpinger ? await scrape() : new Map();
        const before = await sampleProcesses(uids);
        await new Promise((resolve) => setTimeout(resolve, MEASURE_MS));
        const after = await sampleProcesses(uids);
        const countsAfter = goldpinger ? await scrape() : new Map();
        const cost = (kind: ProcessKind): ProcessCost => processCost(before, after, kind, pods, log);
        const pings = goldpinger ? goldpingerPings(countsBefore, countsAfter, log) : undefined;
        const result: AgentCost = { peers, pods, agent: cost('agent'), goPinger: cost('go-pinger'), ...(pings ? { goldpinger: { ...cost('goldpinger'), pings } } : {}) };
        log(JSON.stringify(result));
        log(`restarts: ${await restarts(plane, namespace)}`);
        if (pings) {
          log(`goldpinger: ${pings.made - pings.failed} successful pings of ${pings.made} made by ${pings.pods} pods in ${MEASURE_MS / 1000} s; ${pings.perRoundMedian.toFixed(1)} per pod per 10 s (median)`);
          if (pings.pods === 0) throw new Error(`no Goldpinger's /metrics could be read both before and after the window (${scraped.length} pods tried): its pings are not verified`);
          if (pings.made - pings.failed <= 0) throw new Error('Goldpinger made no successful ping in the window: its numbers are an idle process\'s (see its containers\' logs)');
        }
        results.push(result);
      } finally {
        peersServer.close();
        await plane.request('DELETE', `/api/v1/namespaces/${namespace}`);
        await new Promise((resolve) => setTimeout(resolve, 10_000));
      }
    }
  } finally {
    await prober.stop();
  }
  return results;
}
