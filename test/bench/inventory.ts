/**
 * Inventory benchmark: `crowsnest inventory collect` (pods + configmaps, redacted, gzip NDJSON
 * written to disk) vs `kubectl get pods,configmaps -A --chunk-size=500 -o json` (to /dev/null),
 * each as a whole process from exec to exit, at 5,000 and 50,000 objects. Pods are created
 * bound to kwok nodes, so kwok fills their status as a kubelet would. Targets (issue): wall
 * time ≤ 1.0× kubectl; our peak RSS roughly flat from 5k to 50k and < 150 MB.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ControlPlane } from '../../testbed/controlplane.ts';
import { median } from './stats.ts';

const run = promisify(execFile);
const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const NODES = 30;

export interface InventoryBenchRow {
  readonly objects: number;
  readonly oursWallMs: number;
  readonly kubectlWallMs: number;
  readonly oursRssBytes: number;
  readonly kubectlRssBytes: number;
  readonly rawBytes: number;
  readonly storedBytes: number;
}

interface Measured { wallMs: number; rssBytes: number }

async function timed(command: string, args: readonly string[]): Promise<Measured & { stdout: string }> {
  const started = performance.now();
  const { stdout, stderr } = await run('/usr/bin/time', ['-f', 'maxrss_kb=%M', command, ...args], { maxBuffer: 64 * 1024 * 1024 });
  const wallMs = performance.now() - started;
  const rssKb = Number(/maxrss_kb=(\d+)/.exec(stderr)?.[1] ?? NaN);
  return { wallMs, rssBytes: rssKb * 1024, stdout };
}

async function createObjects(plane: ControlPlane, namespace: string, kind: 'pods' | 'configmaps', from: number, to: number): Promise<void> {
  let next = from;
  const worker = async (): Promise<void> => {
    while (next < to) {
      const i = next++;
      const body = kind === 'configmaps'
        ? { metadata: { name: `cm-${i}`, labels: { bench: 'inventory' } }, data: { payload: 'x'.repeat(512), index: String(i) } }
        : {
            metadata: { name: `pod-${i}`, labels: { bench: 'inventory', app: `app-${i % 50}` } },
            spec: { nodeName: `kwok-node-${i % NODES}`, containers: [{ name: 'app', image: 'registry.example/app:1.0', ports: [{ containerPort: 8080 }], resources: { requests: { cpu: '10m', memory: '16Mi' } } }] },
          };
      const res = await plane.request('POST', `/api/v1/namespaces/${namespace}/${kind}`, body);
      if (res.status !== 201) throw new Error(`create ${kind} ${i}: ${res.status} ${res.body}`);
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
}

async function runningPods(plane: ControlPlane, namespace: string): Promise<number> {
  const { stdout } = await run(join(plane.binDir, 'kubectl'), ['--kubeconfig', plane.kubeconfigPath, '-n', namespace, 'get', 'pods', '--field-selector=status.phase=Running', '--chunk-size=500', '-o', 'name'], { maxBuffer: 64 * 1024 * 1024 });
  return stdout.split('\n').filter(Boolean).length;
}


/** Runs both sizes; `log` gets progress lines. */
export async function benchInventory(log: (line: string) => void, sizes: readonly number[] = [5_000, 50_000], repeats = 3): Promise<InventoryBenchRow[]> {
  const plane = await ControlPlane.start({ kwokNodes: NODES });
  const reports = await mkdtemp(join(tmpdir(), 'crowsnest-bench-inventory-'));
  const rows: InventoryBenchRow[] = [];
  try {
    await plane.request('POST', '/api/v1/namespaces', { metadata: { name: 'bench' } });
    let created = 0;
    for (const size of sizes) {
      // Half pods, half ConfigMaps.
      const half = size / 2;
      log(`creating objects up to ${size}`);
      await createObjects(plane, 'bench', 'configmaps', created / 2, half);
      await createObjects(plane, 'bench', 'pods', created / 2, half);
      created = size;
      const deadline = Date.now() + 15 * 60_000;
      for (;;) {
        const running = await runningPods(plane, 'bench');
        log(`pods running: ${running}/${half}`);
        if (running >= half || Date.now() > deadline) break;
        await new Promise((resolve) => setTimeout(resolve, 5_000));
      }
      const ours: (Measured & { rawBytes: number; storedBytes: number; objects: number })[] = [];
      const theirs: Measured[] = [];
      for (let i = 0; i < repeats; i++) {
        const out = await timed(join(repo, 'bin', 'crowsnest'), [
          'inventory', 'collect', 'bench', '--kubeconfig', plane.kubeconfigPath, '--resources', 'pods,configmaps', '--namespaces', 'bench',
          '--report-dir', reports, '--keep-last', '1', '--output', 'json', '--log-level', 'warn',
        ]);
        const summary = JSON.parse(out.stdout) as { objects: number; rawBytes: number; sink: { storedBytes: number } };
        ours.push({ ...out, rawBytes: summary.rawBytes, storedBytes: summary.sink.storedBytes, objects: summary.objects });
        const kubectl = await timed('/bin/sh', ['-c', `"${join(plane.binDir, 'kubectl')}" --kubeconfig "${plane.kubeconfigPath}" get pods,configmaps -n bench --chunk-size=500 -o json > /dev/null`]);
        theirs.push(kubectl);
        log(`size ${size} run ${i + 1}: ours ${ours.at(-1)!.wallMs.toFixed(0)} ms (${summary.objects} objects), kubectl ${kubectl.wallMs.toFixed(0)} ms`);
      }
      rows.push({
        objects: ours[0]!.objects,
        oursWallMs: median(ours.map((s) => s.wallMs)),
        kubectlWallMs: median(theirs.map((s) => s.wallMs)),
        oursRssBytes: median(ours.map((s) => s.rssBytes)),
        kubectlRssBytes: median(theirs.map((s) => s.rssBytes)),
        rawBytes: ours[0]!.rawBytes,
        storedBytes: ours[0]!.storedBytes,
      });
    }
  } finally {
    await rm(reports, { recursive: true, force: true });
    await plane.stop();
  }
  return rows;
}
