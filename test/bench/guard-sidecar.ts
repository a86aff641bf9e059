/**
 * Guard's health sidecar, what it costs per pod (`make bench BENCH=guard-sidecar`): `crowsnest
 * sidecar` run as the image runs it (the JavaScript the image ships, emitted by
 * tsconfig.build.json, so no type stripping at start; the NODE_OPTIONS the webhook injects),
 * probing a pod's declared ports on loopback — an HTTP server, a TCP server that speaks no HTTP,
 * a port nothing listens on — and reporting to a local HTTPS receiver every second. Sampled from
 * /proc/<pid>/status (VmRSS, RssAnon) and /proc/<pid>/stat (CPU ticks) after a warm-up, at the
 * default probe period (10 s) and at 1 s; beside Node's own floor (same binary, idle).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IN_POD_NODE_OPTIONS } from '../../src/kube/webhook/sidecar-injection.ts';
import { issueCertificateAuthority, issueServingCertificate } from '../../src/kube/webhook/x509.ts';
import { freePort } from '../../testbed/free-port.ts';
import { emitImageJavaScript } from './image-javascript.ts';
import { coresBetween, type ProcessSample, sampleProcess } from './process-sample.ts';
import { nodeFloor } from './prober-agents.ts';
import { median, table } from './stats.ts';

const WARM_UP_MS = 10_000;
const SAMPLES = 6;
const SAMPLE_INTERVAL_MS = 5_000;

async function listen<S extends { listen(port: number, host: string): unknown }>(server: S): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server as unknown as NodeJS.EventEmitter, 'listening');
  return ((server as unknown as { address(): AddressInfo }).address()).port;
}

export interface SidecarCost {
  readonly probePeriod: string;
  readonly rssMiB: number;
  readonly anonMiB: number;
  /** Cores, averaged over the sampling. */
  readonly cpuCores: number;
  readonly reports: number;
}

export async function benchGuardSidecar(log: (line: string) => void): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-guard-sidecar-'));
  const children: ChildProcess[] = [];
  const DAY_MS = 86_400_000;
  const ca = issueCertificateAuthority({ commonName: 'bench-ca', notBeforeMs: Date.now() - 60_000, notAfterMs: Date.now() + DAY_MS });
  const serving = issueServingCertificate({ commonName: '127.0.0.1', hosts: ['127.0.0.1'], notBeforeMs: Date.now() - 60_000, notAfterMs: Date.now() + DAY_MS }, ca);
  let reports = 0;
  const receiver = createHttpsServer({ cert: serving.certPem, key: serving.keyPem }, (req, res) => {
    req.resume();
    req.on('end', () => {
      reports++;
      const text = '{"reportAfterMs":1000}';
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': text.length }).end(text);
    });
  });
  const app = createHttpServer((_req, res) => res.end('ok\n'));
  const tcp = createServer((socket) => {
    // The sidecar closes its probe connections at once: resets are expected.
    socket.on('error', () => {});
    socket.end('+OK\r\n');
  });
  try {
    const [receiverPort, httpPort, tcpPort] = [await listen(receiver), await listen(app), await listen(tcp)];
    // Ports nothing listens on: one declared (probed, refused), one for the sidecar's metrics.
    const closed = await freePort();
    const metricsPort = await freePort();
    log('emitting the image\'s JavaScript (tsconfig.build.json)');
    const entry = await emitImageJavaScript(join(dir, 'js'));
    await writeFile(join(dir, 'token'), 'bench-token\n');
    const results: SidecarCost[] = [];
    for (const probePeriod of ['10s', '1s']) {
      const before = reports;
      const child = spawn(process.execPath, [entry, 'sidecar'], {
        stdio: ['ignore', 'ignore', 'pipe'],
        env: {
          PATH: process.env.PATH, NODE_OPTIONS: IN_POD_NODE_OPTIONS,
          CROWSNEST_POD_NAME: 'web-1', CROWSNEST_POD_NAMESPACE: 'shop', CROWSNEST_POD_IP: '127.0.0.1', CROWSNEST_NODE_NAME: 'node-a',
          CROWSNEST_GUARD_POLICY: 'web', CROWSNEST_GUARD_URL: `https://127.0.0.1:${receiverPort}`, CROWSNEST_GUARD_CA: ca.certPem,
          CROWSNEST_GUARD_TOKEN_FILE: join(dir, 'token'), CROWSNEST_GUARD_METRICS_PORT: String(metricsPort),
          CROWSNEST_GUARD_DECLARED_PORTS: JSON.stringify([
            { container: 'app', port: httpPort, protocol: 'TCP' }, { container: 'cache', port: tcpPort, protocol: 'TCP' }, { container: 'app', port: closed, protocol: 'TCP' },
          ]),
          CROWSNEST_GUARD_PROBE_PERIOD: probePeriod,
        },
      });
      children.push(child);
      let stderr = '';
      child.stderr!.on('data', (c: Buffer) => { stderr += c.toString(); });
      log(`sidecar at a ${probePeriod} probe period: ${WARM_UP_MS / 1000} s warm-up, then ${SAMPLES} samples ${SAMPLE_INTERVAL_MS / 1000} s apart`);
      await new Promise((resolve) => setTimeout(resolve, WARM_UP_MS));
      if (child.exitCode !== null) throw new Error(`the sidecar exited ${child.exitCode}: ${stderr}`);
      const samples: ProcessSample[] = [];
      for (let i = 0; i <= SAMPLES; i++) {
        samples.push(await sampleProcess(child.pid!));
        if (i < SAMPLES) await new Promise((resolve) => setTimeout(resolve, SAMPLE_INTERVAL_MS));
      }
      const first = samples[0]!;
      const last = samples.at(-1)!;
      results.push({
        probePeriod,
        rssMiB: median(samples.map((s) => s.rssKiB)) / 1024,
        anonMiB: median(samples.map((s) => s.anonKiB)) / 1024,
        cpuCores: coresBetween(first, last),
        reports: reports - before,
      });
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
    const floor = await nodeFloor();
    const mib = (v: number): string => `${v.toFixed(1)} MiB`;
    console.log('\nguard health sidecar (crowsnest sidecar, Node 24, the image\'s JavaScript and NODE_OPTIONS): 3 declared ports (HTTP, TCP, closed), a report a second');
    console.log('RSS includes the file-backed pages of the node binary (shared by every pod on a node); anon is what each sidecar adds. Memory limit injected: 128Mi\n');
    table(['probe period', 'RSS (median)', 'anon', 'CPU', 'reports'], results.map((r) => [
      r.probePeriod, mib(r.rssMiB), mib(r.anonMiB), `${(r.cpuCores * 1000).toFixed(1)} m`, String(r.reports),
    ]));
    console.log(`\nNode ${process.version} alone, same binary: idle ${mib(floor.idle.rssMiB)} RSS (${mib(floor.idle.anonMiB)} anon); with node:net and node:tls loaded ${mib(floor.netTls.rssMiB)} (${mib(floor.netTls.anonMiB)} anon)`);
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    receiver.close();
    receiver.closeAllConnections();
    app.close();
    app.closeAllConnections();
    tcp.close();
    await rm(dir, { recursive: true, force: true });
  }
}
