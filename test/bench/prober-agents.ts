/**
 * The agent's own cost (issue: with 10 and 100 peers, RSS and CPU per agent, target RSS ≤ 40 MiB,
 * CPU beside the anchor). Pods on both real nodes get the agent from the webhook (default
 * settings: a round per peer every 10 s, 1 s timeout) and run, as their main container, go-pinger
 * (test/bench/go-pinger): the same work written in plain Go, probing the same peers on the same
 * schedule. Goldpinger itself is not built: the Go module proxy here answers 403 for every path of
 * its module (github.com/bloomberg/goldpinger{,/v2,/v3}), so go-pinger is the Go reference.
 *
 * Both are measured the same way, from the host's /proc: RSS (and its anonymous part: the binary's
 * file pages are shared between pods on a node) at the end, CPU as utime + stime over a minute
 * after a warm-up.
 */
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
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
import { median } from './stats.ts';

const run = promisify(execFile);
const GO_PINGER_PORT = 19180;
const WARMUP_MS = 40_000;
const MEASURE_MS = 60_000;
const CLOCK_TICKS = 100;

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
  /** Node alone, idle, in the same image: `node -e setInterval(...)`. */
  readonly nodeFloorRssMiB?: number;
}

export interface ProcessCost {
  readonly rssMiBMedian: number;
  readonly rssMiBMax: number;
  readonly anonMiBMedian: number;
  /** Cores (CPU seconds per second), median over the pods. */
  readonly cpuCoresMedian: number;
}

/** go-pinger as an image: the static binary alone. */
async function goPingerImage(registryHost: string, log: (line: string) => void): Promise<string> {
  const dir = join(import.meta.dirname, 'go-pinger');
  const binary = join(tmpdir(), `go-pinger-${process.pid}`);
  await run(process.env['GO'] ?? '/usr/local/go/bin/go', ['build', '-trimpath', '-o', binary, '.'], { cwd: dir, env: { ...process.env, CGO_ENABLED: '0', GOTOOLCHAIN: 'local' } });
  const image = await writeOciImage({
    name: 'localhost/crowsnest/go-pinger:bench',
    createdSeconds: 0,
    config: { entrypoint: ['/go-pinger'], user: '65532:65532', env: ['PATH=/'] },
    layers: [{ createdBy: 'go-pinger (test/bench/go-pinger)', entries: new LayerBuilder().file('go-pinger', await readFile(binary), 0o755).build() }],
  }, { layoutDir: join(cacheDir(), 'bench-go-pinger', 'layout') });
  const crane = join(await buildImageTools(log), 'crane');
  const reference = registryReference(registryHost, image.name);
  await pushOciLayout(crane, image.layoutDir, reference);
  return reference;
}

interface ProcSample { readonly pid: number; readonly kind: 'agent' | 'go-pinger'; readonly cpuTicks: number; readonly rssKiB: number; readonly anonKiB: number }

/** The agents' and go-pingers' processes on this machine, with CPU ticks and memory. */
async function sampleProcesses(): Promise<ProcSample[]> {
  const samples: ProcSample[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0');
      const kind = cmdline.some((a) => a.endsWith('/crowsnest') || a.endsWith('crowsnest.js')) && cmdline.includes('agent') ? 'agent'
        : cmdline[0]?.endsWith('/go-pinger') ? 'go-pinger' : undefined;
      if (!kind) continue;
      const stat = (await readFile(`/proc/${entry}/stat`, 'utf8')).split(') ')[1]!.split(' ');
      const status = await readFile(`/proc/${entry}/status`, 'utf8');
      const kib = (key: string): number => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
      samples.push({ pid: Number(entry), kind, cpuTicks: Number(stat[11]) + Number(stat[12]), rssKiB: kib('VmRSS'), anonKiB: kib('RssAnon') });
    } catch {
      // The process ended while we read it.
    }
  }
  return samples;
}

export async function benchProberAgents(log: (line: string) => void, peerCounts: readonly number[] = [10, 100]): Promise<AgentCost[]> {
  const plane = await testbed();
  const agentImage = await crowsnestImage(plane);
  const registryHost = plane.images['test']!.split('/')[0]!;
  const goPinger = await goPingerImage(registryHost, log);
  const prober = await startProber({ agentImage });
  const results: AgentCost[] = [];
  try {
    for (const peers of peerCounts) {
      const pods = peers + 1;
      const namespace = await prober.newNamespace(`bench-agents-${peers}`);
      log(`${pods} pods, ${peers} peers each`);
      const created = await plane.request('POST', `/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/networkprobers`, {
        apiVersion: 'crowsnest.dev/v1alpha1', kind: 'NetworkProber', metadata: { name: 'bench' }, spec: { podSelector: { matchLabels: { app: 'bench' } }, neighbours: peers },
      });
      if (created.status !== 201) throw new Error(created.body);
      // go-pinger asks this server for its peers: every other pod.
      const ips = new Map<string, string>();
      const peersServer = createServer((req, res) => {
        const self = new URL(req.url ?? '/', 'http://x').searchParams.get('pod');
        res.end([...ips].filter(([name]) => name !== self).map(([name, ip]) => `${name} ${ip}:${GO_PINGER_PORT}`).join('\n'));
      });
      await new Promise<void>((resolve) => peersServer.listen(0, plane.network!.hostIp, resolve));
      const peersUrl = `http://${plane.network!.hostIp}:${(peersServer.address() as AddressInfo).port}/peers`;
      try {
        for (let i = 0; i < pods; i++) {
          const name = `bench-${i}`;
          const res = await plane.request('POST', `/api/v1/namespaces/${namespace}/pods`, {
            apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: { app: 'bench' } },
            spec: {
              nodeName: `crowsnest-real-${i % 2}`, terminationGracePeriodSeconds: 1,
              containers: [{ name: 'go-pinger', image: goPinger, args: ['-listen', `:${GO_PINGER_PORT}`, '-peers-url', `${peersUrl}?pod=${name}`, '-period', '10s', '-timeout', '1s'], resources: { limits: { memory: '128Mi' } } }],
            },
          });
          if (res.status !== 201) throw new Error(res.body);
        }
        for (let i = 0; i < pods; i++) {
          const pod = await waitForPod(plane, namespace, `bench-${i}`, (p) => p.status.phase === 'Running' && Boolean(p.status.podIP), 'Running', 300_000);
          ips.set(pod.metadata.name, pod.status.podIP!);
        }
        log(`pods running; warming up ${WARMUP_MS / 1000} s`);
        await new Promise((resolve) => setTimeout(resolve, WARMUP_MS));
        const before = await sampleProcesses();
        await new Promise((resolve) => setTimeout(resolve, MEASURE_MS));
        const after = await sampleProcesses();
        const cost = (kind: ProcSample['kind']): ProcessCost => {
          const end = after.filter((s) => s.kind === kind);
          const cpu = end.map((s) => {
            const start = before.find((b) => b.pid === s.pid);
            return start ? (s.cpuTicks - start.cpuTicks) / CLOCK_TICKS / (MEASURE_MS / 1000) : Number.NaN;
          }).filter((c) => !Number.isNaN(c));
          if (end.length !== pods) log(`warning: found ${end.length} ${kind} processes for ${pods} pods`);
          return {
            rssMiBMedian: median(end.map((s) => s.rssKiB / 1024)), rssMiBMax: Math.max(...end.map((s) => s.rssKiB / 1024)),
            anonMiBMedian: median(end.map((s) => s.anonKiB / 1024)), cpuCoresMedian: median(cpu),
          };
        };
        const result: AgentCost = { peers, pods, agent: cost('agent'), goPinger: cost('go-pinger') };
        log(JSON.stringify(result));
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
