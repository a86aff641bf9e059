import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { FakeClock, realClock } from '../kube/clock.ts';
import { issueCertificateAuthority, issueServingCertificate } from '../kube/webhook/x509.ts';
import { AgentMetrics } from './agent/agent-metrics.ts';
import { PeerSync } from './agent/sync.ts';
import type { Peer, ProbeSettings } from './contract.ts';
import { ArrayCache, injectedPod, storedProber } from './fixtures.ts';
import { PeerServer } from './peer-server.ts';
import { PeerDirectory, ReachabilityReports } from './peers.ts';
import type { ReviewResult } from '../kube/auth/token-review.ts';

const DAY_MS = 86_400_000;
const ca = issueCertificateAuthority({ commonName: 'ca', notBeforeMs: Date.now() - 60_000, notAfterMs: Date.now() + DAY_MS });
const serving = issueServingCertificate({ commonName: 'localhost', hosts: ['127.0.0.1'], notBeforeMs: Date.now() - 60_000, notAfterMs: Date.now() + DAY_MS }, ca);

/** Tokens `pod:<name>` are pods of namespace shop; `refused` is refused; `down` fails the review. */
const reviewer = {
  async review(token: string): Promise<ReviewResult> {
    if (token === 'down') throw new Error('TokenReview: 503');
    const name = /^pod:(.+)$/.exec(token)?.[1];
    if (!name) return { ok: false, refusal: 'unauthenticated' };
    return { ok: true, identity: { namespace: 'shop', serviceAccount: 'default', podName: name, podUid: `uid-${name}` } };
  },
};

function post(port: number, body: string, token?: string, path = '/v1/sync', method = 'POST'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, ca: ca.certPem, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => { text += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode!, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('PeerServer', () => {
  let dir = '';
  let server: PeerServer;
  let leading = true;
  const changedFor: string[] = [];
  const cache = new ArrayCache();
  const reports = new ReachabilityReports();
  const registry = new Registry();
  const clock = new FakeClock(1_000_000);
  cache.probers = [storedProber('mesh', 'shop', { podSelector: { matchLabels: { app: 'web' } }, neighbours: 2, pollingPeriod: '5s' })];
  cache.pods = ['a', 'b', 'c'].map((n) => injectedPod(n, 'shop', 'mesh', { ip: '127.0.0.1' }));

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'peer-server-'));
    await writeFile(join(dir, 'tls.crt'), serving.certPem);
    await writeFile(join(dir, 'tls.key'), serving.keyPem);
    server = new PeerServer({
      host: '127.0.0.1', port: 0, certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), reviewer, directory: new PeerDirectory(cache), reports,
      isLeading: () => leading, onReportChanged: (key) => changedFor.push(key), clock, registry,
    });
    await server.start();
  });
  after(async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers the agent\'s own sync client with its peers and settings, and keeps its report on the leader', async () => {
    const tokenFile = join(dir, 'token');
    await writeFile(tokenFile, 'pod:a\n');
    const updates: Array<{ peers: readonly Peer[]; settings: ProbeSettings }> = [];
    const results = [{ uid: 'uid-b', reachable: true }, { uid: 'uid-c', reachable: false, reason: 'timeout' }];
    const sync = new PeerSync({
      url: `https://127.0.0.1:${server.port}`, ca: ca.certPem, tokenFile, clock: realClock, logger: { debug() {}, info() {}, warn() {}, error() {} },
      metrics: new AgentMetrics({ pod: 'a', node: 'n' }), results: () => results, onUpdate: (peers, settings) => updates.push({ peers, settings }),
    });
    const first = await sync.syncOnce();
    assert.ok(first.ok);
    assert.equal(updates.length, 1);
    assert.deepEqual(updates[0]!.peers.map((p) => p.name).sort(), ['b', 'c']);
    assert.deepEqual(updates[0]!.settings, { pollingPeriodMs: 5_000, timeoutMs: 1_000 });
    assert.ok((await sync.syncOnce()).ok);
    assert.equal(updates.length, 1, 'unchanged peers are not sent again');
    const ring = new PeerDirectory(cache).ring(cache.probers[0]!);
    const summary = reports.summarize('shop/mesh', ring, 2, clock.now());
    assert.equal(summary.reachable + summary.unreachable, 2, JSON.stringify(summary));
    assert.deepEqual(changedFor, ['shop/mesh'], 'woken once: the second report changed nothing');
  });

  it('keeps no report as a standby, and says so', async () => {
    leading = false;
    try {
      const before = JSON.stringify(reports.summarize('shop/mesh', new PeerDirectory(cache).ring(cache.probers[0]!), 2, clock.now()));
      const res = await post(server.port, JSON.stringify({ version: '', results: [{ uid: 'uid-a', reachable: false }] }), 'pod:b');
      assert.equal(res.status, 200);
      assert.equal((JSON.parse(res.body) as { reportAccepted: boolean }).reportAccepted, false);
      assert.equal(JSON.stringify(reports.summarize('shop/mesh', new PeerDirectory(cache).ring(cache.probers[0]!), 2, clock.now())), before);
    } finally {
      leading = true;
    }
  });

  it('refuses what it cannot serve, with the reason', async () => {
    const p = server.port;
    const ok = JSON.stringify({ version: '', results: [] });
    assert.equal((await post(p, ok)).status, 401, 'no token');
    assert.deepEqual(await post(p, ok, 'nonsense'), { status: 401, body: '{"message":"token refused: unauthenticated"}' });
    assert.equal((await post(p, ok, 'down')).status, 503, 'API server unavailable: retry');
    assert.equal((await post(p, '{"version": 1}', 'pod:a')).status, 400);
    assert.equal((await post(p, 'not json', 'pod:a')).status, 400);
    assert.equal((await post(p, ok, 'pod:a', '/v1/other')).status, 404);
    assert.equal((await post(p, '', 'pod:a', '/v1/sync', 'GET')).status, 405);
    assert.equal((await post(p, ok, 'pod:stranger')).status, 503, 'a pod not (yet) in the cache');
    assert.equal((await post(p, 'x'.repeat(1024 * 1024 + 1), 'pod:a')).status, 413);
    const codes = (await registry.getSingleMetric('crowsnest_prober_peer_requests_total')!.get()).values.map((v) => v.labels['code']);
    assert.ok(['200', '401', '503', '400', '404', '405', '413'].every((c) => codes.includes(c)), codes.join());
  });
});
