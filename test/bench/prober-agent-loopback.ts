/**
 * One `crowsnest agent` on loopback (`make bench BENCH=prober BENCH_PROBER=loopback`), for what
 * its V8 settings cost and save without a cluster: the image's JavaScript, a local HTTPS peer
 * endpoint answering N peers (every one a loopback address served by one ping server in this
 * process), a round per peer every 10 s with a 1 s timeout, as the webhook's defaults. The agent
 * runs with the injected NODE_OPTIONS, and again with the same but `--jitless`, one after the
 * other on the same machine; RSS and CPU from /proc/<pid> after a warm-up. A pod run of 100 peers
 * is 101 agents and 101 go-pingers on the 2 cores, which saturates them: this is where one agent's
 * CPU at 100 peers is measured.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IN_POD_NODE_OPTIONS } from '../../src/kube/webhook/sidecar-injection.ts';
import { issueCertificateAuthority, issueServingCertificate } from '../../src/kube/webhook/x509.ts';
import type { Peer, SyncResponse } from '../../src/prober/contract.ts';
import { freePort } from '../../testbed/free-port.ts';
import { emitImageJavaScript } from './image-javascript.ts';
import { coresBetween, sampleProcess } from './process-sample.ts';

const WARM_UP_MS = 20_000;
const MEASURE_MS = 40_000;
const MAX_PEERS_PER_SUBNET = 250;

export interface LoopbackAgentCost {
  readonly peers: number;
  readonly nodeOptions: string;
  readonly rssMiB: number;
  readonly anonMiB: number;
  readonly fileMiB: number;
  /** Cores (CPU seconds per second) over the measurement. */
  readonly cpuCores: number;
}

/** The injected NODE_OPTIONS, and the same with the JIT on, for `peerCounts`. */
export async function benchProberAgentLoopback(log: (line: string) => void, peerCounts: readonly number[]): Promise<LoopbackAgentCost[]> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-agent-loopback-'));
  const DAY_MS = 86_400_000;
  const ca = issueCertificateAuthority({ commonName: 'bench-ca', notBeforeMs: Date.now() - 60_000, notAfterMs: Date.now() + DAY_MS });
  const serving = issueServingCertificate({ commonName: '127.0.0.1', hosts: ['127.0.0.1'], notBeforeMs: Date.now() - 60_000, notAfterMs: Date.now() + DAY_MS }, ca);
  const ping = createHttpServer((_req, res) => res.end('pong\n'));
  let peers: Peer[] = [];
  const endpoint = createHttpsServer({ cert: serving.certPem, key: serving.keyPem }, (req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => { body += chunk.toString(); });
    req.on('end', () => {
      const version = String(peers.length);
      const held = (JSON.parse(body) as { version: string }).version === version;
      const answer: SyncResponse = held
        ? { version, changed: false, reportAccepted: true, syncAfterMs: 5_000 }
        : { version, changed: true, peers, settings: { pollingPeriodMs: 10_000, timeoutMs: 1_000 }, reportAccepted: true, syncAfterMs: 5_000 };
      const text = JSON.stringify(answer);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
    });
  });
  const results: LoopbackAgentCost[] = [];
  try {
    ping.listen(0, '0.0.0.0');
    endpoint.listen(0, '127.0.0.1');
    await Promise.all([once(ping, 'listening'), once(endpoint, 'listening')]);
    const pingPort = (ping.address() as AddressInfo).port;
    log('emitting the image\'s JavaScript (tsconfig.build.json)');
    const entry = await emitImageJavaScript(join(dir, 'js'));
    await writeFile(join(dir, 'token'), 'bench-token\n');
    const withJit = IN_POD_NODE_OPTIONS.split(' ').filter((flag) => flag !== '--jitless').join(' ');
    for (const count of peerCounts) {
      peers = Array.from({ length: count }, (_, i) => ({
        name: `peer-${i}`, uid: `uid-${i}`, node: 'node-a', port: pingPort,
        ip: `127.0.${1 + Math.floor(i / MAX_PEERS_PER_SUBNET)}.${1 + (i % MAX_PEERS_PER_SUBNET)}`,
      }));
      for (const nodeOptions of [IN_POD_NODE_OPTIONS, withJit]) {
        log(`${count} peers, NODE_OPTIONS="${nodeOptions}": ${WARM_UP_MS / 1000} s warm-up, ${MEASURE_MS / 1000} s measured`);
        results.push(await measureAgent(entry, count, nodeOptions, {
          peersUrl: `https://127.0.0.1:${(endpoint.address() as AddressInfo).port}`, ca: ca.certPem, tokenFile: join(dir, 'token'),
        }));
      }
    }
  } finally {
    ping.close();
    ping.closeAllConnections();
    endpoint.close();
    endpoint.closeAllConnections();
    await rm(dir, { recursive: true, force: true });
  }
  return results;
}

async function measureAgent(entry: string, peers: number, nodeOptions: string, peerEndpoint: { peersUrl: string; ca: string; tokenFile: string }): Promise<LoopbackAgentCost> {
  const child = spawn(process.execPath, [entry, 'agent'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: {
      PATH: process.env['PATH'], NODE_OPTIONS: nodeOptions, NODE_DISABLE_COMPILE_CACHE: '1',
      HTTP_PORT: String(await freePort()), HTTP_PROMETHEUS_PORT: String(await freePort()),
      CROWSNEST_POD_NAME: 'bench-0', CROWSNEST_POD_NAMESPACE: 'bench', CROWSNEST_NODE_NAME: 'node-a', CROWSNEST_PROBER_NAME: 'bench',
      CROWSNEST_PROBER_PEERS_URL: peerEndpoint.peersUrl, CROWSNEST_PROBER_CA: peerEndpoint.ca, CROWSNEST_PROBER_TOKEN_FILE: peerEndpoint.tokenFile,
    },
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  try {
    await new Promise((resolve) => setTimeout(resolve, WARM_UP_MS));
    if (child.exitCode !== null) throw new Error(`the agent exited ${child.exitCode}: ${stderr}`);
    const first = await sampleProcess(child.pid!);
    await new Promise((resolve) => setTimeout(resolve, MEASURE_MS));
    const last = await sampleProcess(child.pid!);
    if (!stderr.includes(`"peers":${peers}`)) throw new Error(`the agent never took its ${peers} peers: ${stderr}`);
    return {
      peers, nodeOptions, rssMiB: last.rssKiB / 1024, anonMiB: last.anonKiB / 1024, fileMiB: last.fileKiB / 1024,
      cpuCores: coresBetween(first, last),
    };
  } finally {
    child.kill('SIGTERM');
    if (child.exitCode === null) await once(child, 'exit');
  }
}
