/**
 * `make demo`'s cluster port report: `crowsnest ports collect` against the local control plane.
 * It scans the kwok nodes (fakes that run nothing), so this script plays their kubelet for the scan pods
 * (testbed/scan-pods.ts): each pod's scan runs here as a local process, and its output comes back
 * to the collector as the pod's log through the real apiserver.
 *   node scripts/demo-ports.ts <cluster dir> <reports dir> <namespace>
 */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ControlPlane } from '../testbed/controlplane.ts';
import { standInKubelet } from '../testbed/scan-pods.ts';

const [clusterDir = '.cluster', reports = 'reports', namespace = 'crowsnest-system'] = process.argv.slice(2);
const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const plane = await ControlPlane.attach(clusterDir);
if (!plane) throw new Error(`no control plane in ${clusterDir}: run make cluster`);
const kubelet = standInKubelet(plane, namespace, () => 'scan');
const code = await new Promise<number | null>((resolve) => {
  const child = spawn(join(repo, 'bin', 'crowsnest'), [
    'ports', 'collect', '--kubeconfig', plane.kubeconfigPath, '--namespace', namespace, '--report-dir', reports,
    '--image', 'crowsnest:demo', '--node-selector', 'type=kwok', '--log-level', 'warn',
  ], { stdio: 'inherit' });
  child.on('exit', resolve);
});
await kubelet.stop();
process.exitCode = code ?? 1;
