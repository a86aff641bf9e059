/**
 * The webhook server's CPU per admission call on a kept-alive connection and on a new one (a TLS
 * handshake each), measured in the floor webhook's process (floor-webhook.ts: our server, an
 * allow-all handler, the operator's V8 flags) from its `process_cpu_seconds_total`. Says what a
 * connection the API server opens costs beside a call on one it kept; no control plane.
 *   node test/bench/webhook-connection-cost.ts [rounds]
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { WEBHOOK_PATH } from '../../src/prober/webhook.ts';
import { createCertificateAuthority, issueServingCertificate } from '../../testbed/webhook.ts';
import { admissionReviewBody } from './admission-review.fixture.ts';

const KEPT_CALLS = 2_000;
const NEW_CONNECTION_CALLS = 500;
const rounds = Number(process.argv[2] ?? '3');
const dir = await mkdtemp(join(tmpdir(), 'webhook-connection-cost-'));
const ca = await createCertificateAuthority(dir, 'cost-ca');
const files = await issueServingCertificate(ca, dir, { name: 'cost' });
const caPem = await readFile(ca.cert);
const child = spawn(process.execPath, [join(import.meta.dirname, 'floor-webhook.ts'), files.certFile, files.keyFile], { stdio: ['ignore', 'pipe', 'inherit'] });
try {
  const first = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve));
  const { port, metricsPort } = JSON.parse(first) as { port: number; metricsPort: number };
  const cpuSeconds = async (): Promise<number> => {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    return Number(/^process_cpu_seconds_total (\S+)/m.exec(text)?.[1]);
  };
  const body = admissionReviewBody('cost');
  const post = (agent: Agent | false): Promise<void> => new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: WEBHOOK_PATH, method: 'POST', ca: caPem, servername: 'localhost', agent, headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', resolve);
    });
    req.on('error', reject);
    req.end(body);
  });
  /** The server's CPU in milliseconds per call over `calls` sequential calls. */
  const perCall = async (calls: number, agent: Agent | false): Promise<number> => {
    const before = await cpuSeconds();
    for (let i = 0; i < calls; i++) await post(agent);
    return ((await cpuSeconds()) - before) * 1000 / calls;
  };
  const keeping = new Agent({ keepAlive: true, maxSockets: 1 });
  await perCall(200, keeping); // warm-up: JIT, the first connection
  for (let round = 0; round < rounds; round++) {
    const kept = await perCall(KEPT_CALLS, keeping);
    const fresh = await perCall(NEW_CONNECTION_CALLS, false);
    console.log(`server CPU per call: ${kept.toFixed(2)} ms on a kept connection, ${fresh.toFixed(2)} ms on a new one`);
  }
  keeping.destroy();
} finally {
  child.kill('SIGTERM');
  await rm(dir, { recursive: true, force: true });
}
