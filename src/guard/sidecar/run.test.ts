/**
 * The sidecar as a whole on loopback: it probes an app's declared ports, serves its metrics, and
 * reports over real HTTPS (the CA pinned, the token re-read per request) to a fake receiver that
 * stands in for guard-core's endpoint.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createPlainHttpServer, type Server as PlainServer } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { eventually } from '../../../testbed/kubelet.ts';
import { parseSamples, samplesOf } from '../../../test/helpers/exposition.ts';
import { issueCertificateAuthority, issueServingCertificate } from '../../kube/webhook/x509.ts';
import { agentLogger } from '../../observe/json-lines-logger.ts';
import type { HealthReport } from '../contract.ts';
import type { SidecarConfig } from './config.ts';
import { type RunningSidecar, startSidecar, tcpPorts } from './run.ts';

const DAY_MS = 86_400_000;
const ca = issueCertificateAuthority({ commonName: 'test-ca', notBeforeMs: Date.now() - 60_000, notAfterMs: Date.now() + DAY_MS });
const serving = issueServingCertificate({ commonName: 'localhost', hosts: ['127.0.0.1', 'localhost'], notBeforeMs: Date.now() - 60_000, notAfterMs: Date.now() + DAY_MS }, ca);

/** guard-core's endpoint, as far as the sidecar can tell: keeps reports, answers reportAfterMs. */
class FakeReceiver {
  readonly server: Server;
  readonly reports: Array<{ token: string; report: HealthReport }> = [];
  status = 200;

  constructor() {
    this.server = createServer({ cert: serving.certPem, key: serving.keyPem }, (req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => { body += c.toString(); });
      req.on('end', () => {
        if (req.method !== 'POST' || req.url !== '/v1/guard/health') return res.writeHead(404, { 'content-length': 0 }).end();
        if (this.status !== 200) return res.writeHead(this.status, { 'content-length': 0, 'retry-after': '1' }).end();
        this.reports.push({ token: (req.headers.authorization ?? '').replace(/^Bearer /, ''), report: JSON.parse(body) as HealthReport });
        const text = JSON.stringify({ reportAfterMs: 1_000 });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
      });
    });
  }

  async start(): Promise<number> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return (this.server.address() as AddressInfo).port;
  }

  /** Outcomes of `port` summed over every report kept. */
  totals(port: number): { probes: number; failures: number; reasons: Set<string> } {
    const totals = { probes: 0, failures: 0, reasons: new Set<string>() };
    for (const { report } of this.reports) {
      for (const health of report.ports.filter((p) => p.port === port)) {
        totals.probes += health.probes;
        totals.failures += health.failures;
        if (health.lastFailure) totals.reasons.add(health.lastFailure);
      }
    }
    return totals;
  }
}

describe('crowsnest sidecar on loopback', () => {
  const receiver = new FakeReceiver();
  let app: PlainServer;
  let appPort = 0;
  let latePort = 0;
  let late: PlainServer | undefined;
  let dir = '';
  let tokenFile = '';
  let sidecar: RunningSidecar;
  const logs: string[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'guard-sidecar-test-'));
    tokenFile = join(dir, 'token');
    await writeFile(tokenFile, 'token-1\n');
    const receiverPort = await receiver.start();
    app = createPlainHttpServer((_req, res) => res.end('shop\n'));
    app.listen(0, '127.0.0.1');
    await once(app, 'listening');
    appPort = (app.address() as AddressInfo).port;
    const probe = createPlainHttpServer();
    probe.listen(0, '127.0.0.1');
    await once(probe, 'listening');
    latePort = (probe.address() as AddressInfo).port;
    probe.close();
    const config: SidecarConfig = {
      podName: 'web-1', podNamespace: 'shop', podIp: '127.0.0.1', nodeName: 'node-a', policyName: 'web',
      signalsUrl: `https://127.0.0.1:${receiverPort}`, caBundle: ca.certPem, tokenFile,
      declaredPorts: [{ container: 'app', port: appPort, protocol: 'TCP', name: 'http' }, { container: 'app', port: 53, protocol: 'UDP' }, { container: 'late', port: latePort, protocol: 'TCP' }],
      // A timeout well above loopback's answer time even on a starved CPU: a probe that times out is a
      // failure, and these cases count the app healthy.
      metricsPort: 0, host: '127.0.0.1', probePeriodMs: 250, probeTimeoutMs: 200, reportPeriodMs: 300, startupGraceMs: 60_000,
    };
    sidecar = await startSidecar(config, { logger: agentLogger((line) => logs.push(line)) });
  });
  after(async () => {
    await sidecar?.stop();
    app?.close();
    app?.closeAllConnections();
    late?.close();
    receiver.server.close();
    receiver.server.closeAllConnections();
    await rm(dir, { recursive: true, force: true });
  });

  const scrape = async () => {
    const res = await fetch(`http://127.0.0.1:${sidecar.metricsPort}/metrics`);
    assert.equal(res.status, 200);
    return parseSamples(await res.text());
  };

  it('is ready as soon as it listens, whatever the app or the operator do', async () => {
    assert.equal((await fetch(`http://127.0.0.1:${sidecar.metricsPort}/readyz`)).status, 200);
  });

  it('probes the app\'s declared TCP port by HTTP, reports it healthy with the pod\'s listening sockets, and exports it', async () => {
    await eventually('a report with passing HTTP probes of the app', () => receiver.totals(appPort).probes >= 3, 10_000);
    const { report, token } = receiver.reports.at(-1)!;
    assert.equal(token, 'token-1');
    const health = report.ports.find((p) => p.port === appPort)!;
    assert.deepEqual({ container: health.container, method: health.method }, { container: 'app', method: 'http' });
    assert.equal(receiver.totals(appPort).failures, 0);
    assert.ok(report.ports.every((p) => p.port !== 53), 'UDP ports are not probed');
    assert.ok(report.listening.some((s) => s.protocol === 'TCP' && s.port === appPort), 'the app\'s listener is among the listening sockets');
    assert.ok(report.listening.some((s) => s.protocol === 'TCP' && s.port === sidecar.metricsPort), 'and so is the sidecar\'s own');
    const samples = await scrape();
    assert.ok((samplesOf(samples, 'crowsnest_guard_sidecar_probes_total', { container: 'app', port: String(appPort), method: 'http' })[0]?.value ?? 0) >= 3);
    assert.equal(samplesOf(samples, 'crowsnest_guard_sidecar_port_up', { port: String(appPort) })[0]?.value, 1);
    assert.equal(samplesOf(samples, 'crowsnest_guard_sidecar_listening_sockets', { protocol: 'TCP', port: String(appPort) })[0]?.value, 1);
    assert.ok((samplesOf(samples, 'crowsnest_guard_sidecar_reports_total', { result: 'accepted' })[0]?.value ?? 0) >= 1);
  });

  it('does not report a port that has not answered yet while the app may still be starting (it is in the metrics), and reports it once it answers', async () => {
    await eventually('refused probes of the late port in the metrics', async () => (samplesOf(await scrape(), 'crowsnest_guard_sidecar_probe_failures_total', { container: 'late', reason: 'refused' })[0]?.value ?? 0) >= 2, 10_000);
    assert.equal(receiver.totals(latePort).probes, 0, 'not reported within the startup grace');
    late = createPlainHttpServer((_req, res) => res.end('late\n'));
    late.listen(latePort, '127.0.0.1');
    await once(late, 'listening');
    await eventually('the late port reported healthy', () => receiver.totals(latePort).probes >= 1, 10_000);
    assert.equal(receiver.totals(latePort).failures, 0, 'its startup failures were never reported');
  });

  it('reads the token again for every report (the kubelet rotates it)', async () => {
    await writeFile(tokenFile, 'token-2\n');
    await eventually('a report with the new token', () => receiver.reports.at(-1)?.token === 'token-2', 10_000);
  });

  it('keeps probing and exporting while the operator does not take reports, and delivers the counts afterwards', async () => {
    receiver.status = 503;
    const before = receiver.totals(appPort).probes;
    const scraped = async () => samplesOf(await scrape(), 'crowsnest_guard_sidecar_probes_total', { port: String(appPort) })[0]?.value ?? 0;
    const probedBefore = await scraped();
    await eventually('throttled reports counted', async () => (samplesOf(await scrape(), 'crowsnest_guard_sidecar_reports_total', { result: 'throttled' })[0]?.value ?? 0) >= 1, 10_000);
    await eventually('probing goes on', async () => (await scraped()) >= probedBefore + 5, 10_000);
    const probedWhileDown = (await scraped()) - probedBefore;
    receiver.status = 200;
    await eventually('the probes made while the operator refused arrive', () => receiver.totals(appPort).probes - before >= probedWhileDown, 10_000);
  });

  it('reports the port failing by reason (refused) when the app stops listening, and its socket gone', async () => {
    app.close();
    app.closeAllConnections();
    await eventually('refused probes reported', () => receiver.totals(appPort).reasons.has('refused'), 10_000);
    await eventually('the app\'s socket no longer listed', () => receiver.reports.at(-1)?.report.listening.every((s) => s.port !== appPort) === true, 10_000);
    const samples = await scrape();
    assert.ok((samplesOf(samples, 'crowsnest_guard_sidecar_probe_failures_total', { port: String(appPort), reason: 'refused' })[0]?.value ?? 0) >= 1);
    assert.equal(samplesOf(samples, 'crowsnest_guard_sidecar_port_up', { port: String(appPort) })[0]?.value, 0);
    assert.ok(logs.some((line) => line.includes('"port failing"') && line.includes('"refused"')), 'the change is logged once');
  });
});

describe('tcpPorts', () => {
  it('keeps the TCP ports, each once', () => {
    assert.deepEqual(tcpPorts([
      { container: 'a', port: 80, protocol: 'TCP' }, { container: 'a', port: 53, protocol: 'UDP' }, { container: 'b', port: 80, protocol: 'TCP' }, { container: 'b', port: 9000, protocol: 'SCTP' },
    ]), [{ container: 'a', port: 80, protocol: 'TCP' }]);
  });
});
