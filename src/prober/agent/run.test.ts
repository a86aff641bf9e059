/**
 * The agent as a whole on loopback: two agents learn each other from a peer endpoint served here
 * (HTTPS with a certificate of our own CA), probe each other, report back, and drop a peer's
 * series when it leaves. Real sockets and timers, short periods.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { eventually } from '../../../testbed/kubelet.ts';
import { parseSamples, samplesOf } from '../../../test/helpers/exposition.ts';
import { issueCertificateAuthority, issueServingCertificate } from '../../kube/webhook/x509.ts';
import type { Peer, PeerResult, SyncRequest, SyncResponse } from '../contract.ts';
import { agentLogger } from '../../observe/json-lines-logger.ts';
import { AgentConfigError, agentConfigFromEnv, type RunningAgent, startAgent } from './run.ts';

const DAY_MS = 86_400_000;
const ca = issueCertificateAuthority({ commonName: 'test-ca', notBeforeMs: Date.now() - 60_000, notAfterMs: Date.now() + DAY_MS });
const serving = issueServingCertificate({ commonName: 'localhost', hosts: ['127.0.0.1', 'localhost'], notBeforeMs: Date.now() - 60_000, notAfterMs: Date.now() + DAY_MS }, ca);

/** A peer endpoint: each token names an agent; the test says who probes whom. */
class FakePeerEndpoint {
  readonly server: Server;
  peersOf = new Map<string, Peer[]>();
  readonly reports = new Map<string, PeerResult[]>();
  readonly versions: string[] = [];
  reportAccepted = true;
  connections = 0;
  version = 1;

  constructor() {
    this.server = createServer({ cert: serving.certPem, key: serving.keyPem }, (req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => { body += c.toString(); });
      req.on('end', () => {
        const token = (req.headers.authorization ?? '').replace(/^Bearer /, '');
        if (!this.peersOf.has(token)) return res.writeHead(401, { 'content-length': 0 }).end();
        const request = JSON.parse(body) as SyncRequest;
        this.reports.set(token, [...request.results]);
        this.versions.push(request.version);
        const version = `v${this.version}`;
        const answer: SyncResponse = request.version === version
          ? { version, changed: false, reportAccepted: this.reportAccepted, syncAfterMs: 100 }
          : { version, changed: true, peers: this.peersOf.get(token)!, settings: { pollingPeriodMs: 150, timeoutMs: 100 }, reportAccepted: this.reportAccepted, syncAfterMs: 100 };
        const text = JSON.stringify(answer);
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
      });
    });
    this.server.on('secureConnection', () => this.connections++);
  }

  async start(): Promise<number> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return (this.server.address() as AddressInfo).port;
  }
}

describe('crowsnest agent on loopback', () => {
  const endpoint = new FakePeerEndpoint();
  let dir = '';
  let url = '';
  const agents: RunningAgent[] = [];
  const logs: string[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'agent-test-'));
    url = `https://127.0.0.1:${await endpoint.start()}`;
  });
  after(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    endpoint.server.close();
    endpoint.server.closeAllConnections();
    await rm(dir, { recursive: true, force: true });
  });

  async function agent(name: string): Promise<RunningAgent> {
    const tokenFile = join(dir, `${name}.token`);
    await writeFile(tokenFile, `${name}\n`);
    const running = await startAgent({
      httpPort: 0, prometheusPort: 0, podName: name, podNamespace: 'shop', nodeName: `node-${name}`, proberName: 'p',
      peersUrl: url, caBundle: ca.certPem, tokenFile, host: '127.0.0.1',
    }, { logger: agentLogger((line) => logs.push(line)) });
    agents.push(running);
    return running;
  }

  const peerFor = (name: string, running: RunningAgent): Peer => ({ name, uid: `uid-${name}`, ip: '127.0.0.1', node: `node-${name}`, port: running.ports.http });

  async function scrape(running: RunningAgent): Promise<ReturnType<typeof parseSamples>> {
    const res = await fetch(`http://127.0.0.1:${running.ports.prometheus}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return parseSamples(await res.text());
  }

  it('is ready once it listens, before it knows any peer; /ping answers', async () => {
    endpoint.peersOf.set('lonely', []);
    const running = await agent('lonely');
    assert.equal((await fetch(`http://127.0.0.1:${running.ports.prometheus}/readyz`)).status, 200);
    const ping = await fetch(`http://127.0.0.1:${running.ports.http}/ping`);
    assert.equal(ping.status, 200);
    assert.equal((await fetch(`http://127.0.0.1:${running.ports.http}/metrics`)).status, 404, 'metrics only on the metrics port');
  });

  it('two agents probe each other, export RTT histograms by method and the seed\'s histogram, and report back', async () => {
    const a = await agent('a');
    const b = await agent('b');
    endpoint.peersOf.set('a', [peerFor('b', b)]);
    endpoint.peersOf.set('b', [peerFor('a', a)]);
    await eventually('a has measured b by both methods', async () => {
      const samples = await scrape(a);
      return ['http', 'tcp'].every((method) => (samplesOf(samples, 'crowsnest_prober_rtt_seconds_count', { dest_pod: 'b', method })[0]?.value ?? 0) >= 2);
    }, 10_000);
    const samples = await scrape(a);
    const labels = samplesOf(samples, 'crowsnest_prober_rtt_seconds_count', { method: 'http' })[0]!.labels;
    assert.deepEqual(labels, { source_pod: 'a', dest_pod: 'b', source_node: 'node-a', dest_node: 'node-b', method: 'http' });
    const seed = samplesOf(samples, 'netprober_interpod_latency_s_bucket', { dest_pod_name: 'b', dest_ip: '127.0.0.1' });
    assert.equal(seed.length, 26, '25 buckets and +Inf');
    assert.equal(seed[0]!.labels['le'], '0.00001');
    assert.equal(samplesOf(samples, 'crowsnest_prober_peers')[0]!.value, 1);
    assert.ok(samplesOf(samples, 'process_resident_memory_bytes')[0]!.value > 10 * 1024 * 1024);
    assert.equal(samplesOf(samples, 'crowsnest_prober_errors_total').length, 0, 'no failures');
    await eventually('a reports b reachable', () => endpoint.reports.get('a')?.some((r) => r.uid === 'uid-b' && r.reachable) === true, 5_000);
    assert.ok(endpoint.versions.includes('v1'), 'the agent sends back the version it holds');
  });

  it('counts a peer that stops answering by reason, not as latency, and reports it unreachable', async () => {
    const c = await agent('c');
    const d = await agent('d');
    endpoint.peersOf.set('c', [peerFor('d', d)]);
    endpoint.peersOf.set('d', []);
    await eventually('c measured d', async () => (samplesOf(await scrape(c), 'crowsnest_prober_rtt_seconds_count', { dest_pod: 'd', method: 'http' })[0]?.value ?? 0) >= 1, 10_000);
    await d.stop();
    agents.splice(agents.indexOf(d), 1);
    await eventually('c counts refused probes of d', async () => (samplesOf(await scrape(c), 'crowsnest_prober_errors_total', { dest_pod: 'd', reason: 'refused' })[0]?.value ?? 0) >= 2, 10_000);
    const countBefore = samplesOf(await scrape(c), 'crowsnest_prober_rtt_seconds_count', { dest_pod: 'd', method: 'http' })[0]!.value;
    await eventually('c reports d unreachable (refused)', () => endpoint.reports.get('c')?.some((r) => r.uid === 'uid-d' && !r.reachable && r.reason === 'refused') === true, 5_000);
    const countAfter = samplesOf(await scrape(c), 'crowsnest_prober_rtt_seconds_count', { dest_pod: 'd', method: 'http' })[0]!.value;
    assert.equal(countAfter, countBefore, 'failures add no RTT samples');
  });

  it('drops the series of a peer that left', async () => {
    const e = await agent('e');
    const f = await agent('f');
    endpoint.peersOf.set('e', [peerFor('f', f)]);
    endpoint.peersOf.set('f', []);
    await eventually('e measured f', async () => samplesOf(await scrape(e), 'crowsnest_prober_rtt_seconds_count', { dest_pod: 'f' }).length > 0, 10_000);
    endpoint.peersOf.set('e', []);
    endpoint.version++;
    await eventually('f\'s series are gone from e', async () => {
      const samples = await scrape(e);
      return samples.every((s) => s.labels['dest_pod'] !== 'f' && s.labels['dest_pod_name'] !== 'f');
    }, 10_000);
    assert.equal(samplesOf(await scrape(e), 'crowsnest_prober_peers')[0]!.value, 0);
  });

  it('reconnects after each sync a standby answered, so its reports can reach the leader', async () => {
    endpoint.peersOf.set('g', []);
    endpoint.reportAccepted = false;
    try {
      const before = endpoint.connections;
      await agent('g');
      await eventually('three syncs on three connections', () => endpoint.connections - before >= 3, 5_000);
    } finally {
      endpoint.reportAccepted = true;
    }
  });

  it('says why when the endpoint\'s certificate is not from the CA it was given, and counts it', async () => {
    const stranger = issueCertificateAuthority({ commonName: 'stranger', notBeforeMs: Date.now() - 60_000, notAfterMs: Date.now() + DAY_MS });
    const tokenFile = join(dir, 'h.token');
    await writeFile(tokenFile, 'h');
    const lines: string[] = [];
    const running = await startAgent({
      httpPort: 0, prometheusPort: 0, podName: 'h', podNamespace: 'shop', nodeName: 'n', proberName: 'p', peersUrl: url, caBundle: stranger.certPem, tokenFile, host: '127.0.0.1',
    }, { logger: agentLogger((line) => lines.push(line)) });
    agents.push(running);
    await eventually('a log line says to restart for the current CA', () => lines.some((l) => l.includes('restart this pod to get the current one')), 5_000);
    assert.ok((samplesOf(await scrape(running), 'crowsnest_prober_peer_syncs_total', { result: 'untrusted' })[0]?.value ?? 0) >= 1);
  });
});

describe('agentConfigFromEnv', () => {
  const env = {
    HTTP_PORT: '9090', HTTP_PROMETHEUS_PORT: '1222', CROWSNEST_POD_NAME: 'web-1', CROWSNEST_POD_NAMESPACE: 'shop', CROWSNEST_NODE_NAME: 'n1',
    CROWSNEST_PROBER_NAME: 'p', CROWSNEST_PROBER_PEERS_URL: 'https://crowsnest-webhook.crowsnest-system.svc:9444', CROWSNEST_PROBER_CA: 'pem',
    CROWSNEST_PROBER_TOKEN_FILE: '/var/run/secrets/crowsnest.dev/prober/token',
  };

  it('reads the injected environment (the seed\'s port variables included)', () => {
    const config = agentConfigFromEnv(env);
    assert.equal(config.httpPort, 9090);
    assert.equal(config.prometheusPort, 1222);
    assert.equal(config.podName, 'web-1');
  });

  it('names the variable that is missing or wrong', () => {
    assert.throws(() => agentConfigFromEnv({ ...env, HTTP_PORT: undefined }), (e: unknown) => e instanceof AgentConfigError && /HTTP_PORT is not set/.test(e.message));
    assert.throws(() => agentConfigFromEnv({ ...env, HTTP_PORT: 'http' }), /HTTP_PORT must be a port number/);
    assert.throws(() => agentConfigFromEnv({ ...env, HTTP_PROMETHEUS_PORT: '9090' }), /must differ/);
    assert.throws(() => agentConfigFromEnv({ ...env, CROWSNEST_PROBER_PEERS_URL: 'http://x' }), /must be an https:\/\/ URL/);
  });
});
