/**
 * Child process of the prober admission benchmark: creates `count` pods in `namespace` at `rate`
 * per second (on kwok nodes: admission is what is measured, nothing is pulled) and prints the
 * client-side create latencies in milliseconds as JSON. Run apart from the webhook's process so
 * the load does not share its event loop.
 *   node test/bench/prober-load.ts <kubeconfig> <namespace> <count> <rate> <label>
 */
import { KubeConfig } from '@kubernetes/client-node';
import { KubeClient } from '../../src/kube/client/client.ts';
import { ON_KWOK_NODES } from '../../testbed/controlplane.ts';

const [kubeconfigPath, namespace, countText, rateText, label] = process.argv.slice(2);
if (!kubeconfigPath || !namespace || !countText || !rateText || !label) throw new Error('usage: prober-load.ts <kubeconfig> <namespace> <count> <rate> <label>');
const kc = new KubeConfig();
kc.loadFromFile(kubeconfigPath);
const client = new KubeClient(kc);
const count = Number(countText);
const intervalMs = 1000 / Number(rateText);
const latencies: number[] = [];
let failures = 0;
const started = performance.now();
const creates: Array<Promise<void>> = [];
for (let i = 0; i < count; i++) {
  const due = started + i * intervalMs;
  const wait = due - performance.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  const sent = performance.now();
  creates.push(client.json(`/api/v1/namespaces/${namespace}/pods`, {
    method: 'POST',
    body: { apiVersion: 'v1', kind: 'Pod', metadata: { name: `${label}-${i}`, labels: { app: 'bench' } }, spec: { ...ON_KWOK_NODES, containers: [{ name: 'app', image: 'registry.invalid/app:1' }] } },
  }).then(() => { latencies.push(performance.now() - sent); }, () => { failures++; }));
}
await Promise.all(creates);
const wallMs = performance.now() - started;
await client.close();
process.stdout.write(`${JSON.stringify({ latencies, failures, wallMs })}\n`);
