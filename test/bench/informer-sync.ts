/**
 * Child process of the informer benchmark: syncs an informer on one resource type and prints
 * `{"wallMs":…,"objects":…,"maxRssBytes":…,"lists":…,"streams":…}`. Run alone so its RSS is its own.
 *   node test/bench/informer-sync.ts <kubeconfig> <resource> [pageSize] [list|stream]
 */
import { KubeConfig } from '@kubernetes/client-node';
import { KubeClient } from '../../src/kube/client/client.ts';
import { Informer } from '../../src/kube/runtime/informer.ts';
import { Resources } from '../../src/kube/objects/resources.ts';

const [kubeconfigPath, resource, pageSize, mode = 'list'] = process.argv.slice(2);
const type = Object.values(Resources).find((r) => r.resource === resource);
if (!kubeconfigPath || !type || (mode !== 'list' && mode !== 'stream')) throw new Error('usage: informer-sync.ts <kubeconfig> <resource> [pageSize] [list|stream]');
const kc = new KubeConfig();
kc.loadFromFile(kubeconfigPath);
const client = new KubeClient(kc);
const controller = new AbortController();
const started = performance.now();
const informer = new Informer({ client, type, pageSize: Number(pageSize ?? 500), streamingList: mode === 'stream' });
const running = informer.run(controller.signal);
await informer.waitForSync(controller.signal);
const wallMs = performance.now() - started;
const objects = informer.store.size;
const { listPages, streams } = informer.reflector.stats;
controller.abort();
await running;
await client.close();
process.stdout.write(`${JSON.stringify({ wallMs, objects, maxRssBytes: process.resourceUsage().maxRSS * 1024, listPages, streams })}\n`);
