/**
 * Child process of the prober admission benchmark: the floor webhook. Our webhook server
 * (src/kube/webhook/server.ts) with one handler that allows every pod unchanged, in a process of
 * its own with the operator's V8 flags and metrics, so what the prober webhook costs beyond it is
 * the prober's own: TLS, HTTP, the AdmissionReview's JSON and the API server's side are the same.
 * It answers on the prober's path, so the chart's configuration serves it with only the URL's
 * host and the webhook's name changed. Prints `{"port":…,"metricsPort":…}` once it listens.
 *   node test/bench/floor-webhook.ts <certFile> <keyFile>
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { silentLogger } from '../../src/kube/logger-type.ts';
import { allow } from '../../src/kube/webhook/review.ts';
import { WebhookServer } from '../../src/kube/webhook/server.ts';
import { createRegistry } from '../../src/observe/metrics.ts';
import { applyOperatorV8Flags } from '../../src/operator/v8-flags.ts';
import { WEBHOOK_PATH } from '../../src/prober/webhook.ts';

applyOperatorV8Flags();
const [certFile, keyFile] = process.argv.slice(2);
if (!certFile || !keyFile) throw new Error('usage: floor-webhook.ts <certFile> <keyFile>');
const registry = createRegistry();
const server = new WebhookServer({
  port: 0, certFile, keyFile, registry, logger: silentLogger,
  handlers: [{ name: 'floor', path: WEBHOOK_PATH, failurePolicy: 'Ignore', review: () => allow() }],
});
await server.start();
// Every path answers the scrape: only the bench reads it.
const metrics = createServer((_req, res) => void registry.metrics().then((text) => res.end(text)));
await new Promise<void>((resolve) => metrics.listen(0, '127.0.0.1', resolve));
process.stdout.write(`${JSON.stringify({ port: server.port, metricsPort: (metrics.address() as AddressInfo).port })}\n`);
process.once('SIGTERM', () => void server.stop().then(() => process.exit(0)));
