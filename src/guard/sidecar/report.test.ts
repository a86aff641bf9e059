import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock } from '../../kube/clock.ts';
import { silentLogger } from '../../kube/logger-type.ts';
import type { EndpointAnswer, EndpointFailure } from '../../observe/lean/endpoint.ts';
import type { DeclaredPort, HealthReport, ListeningSocket } from '../contract.ts';
import { SidecarMetrics } from './metrics.ts';
import type { PortProbeOutcome } from './probe.ts';
import { HealthReporter, type ReportEndpoint } from './report.ts';

const APP: DeclaredPort = { container: 'app', port: 8080, protocol: 'TCP' };
const DB: DeclaredPort = { container: 'db', port: 5432, protocol: 'TCP' };
const OK_HTTP: PortProbeOutcome = { ok: true, method: 'http', seconds: 0.001 };
const REFUSED: PortProbeOutcome = { ok: false, method: 'tcp', reason: 'refused', detail: 'connect ECONNREFUSED' };
const TIMEOUT: PortProbeOutcome = { ok: false, method: 'http', reason: 'timeout', detail: 'no answer' };

type Reply = EndpointAnswer | EndpointFailure;

const answer = (status: number, body = '', headers: Record<string, string> = {}): Reply => ({
  ok: true, response: { status, headers: new Map(Object.entries(headers)), body: Buffer.from(body) },
});
const noAnswer: Reply = { ok: false, failure: 'unavailable', message: "the operator's endpoint is unreachable: connect ECONNREFUSED" };

/** Records what was posted and answers from a script. */
class FakeEndpoint implements ReportEndpoint {
  readonly posted: Array<{ path: string; body: HealthReport }> = [];
  disconnects = 0;
  replies: Reply[] = [];

  async post(path: string, body: unknown): Promise<Reply> {
    this.posted.push({ path, body: structuredClone(body) as HealthReport });
    return this.replies.shift() ?? answer(200, '{"reportAfterMs":5000}');
  }

  disconnect(): void {
    this.disconnects++;
  }
}

function setup(listening: ListeningSocket[] = [{ protocol: 'TCP', address: '0.0.0.0', port: 8080 }]) {
  const clock = new FakeClock(1_000_000);
  const endpoint = new FakeEndpoint();
  const metrics = new SidecarMetrics();
  const reporter = new HealthReporter({ endpoint, clock, logger: silentLogger, metrics, listening: async () => listening, reportPeriodMs: 10_000, random: () => 0.5 });
  return { clock, endpoint, metrics, reporter };
}

const ports = (report: HealthReport | undefined) => report?.ports.map((p) => ({ ...p })).sort((a, b) => a.port - b.port);

describe('HealthReporter', () => {
  it('reports the outcomes since the last kept report per port, with every listening socket, to /v1/guard/health', async () => {
    const { endpoint, reporter } = setup();
    reporter.record(APP, OK_HTTP);
    reporter.record(APP, TIMEOUT);
    reporter.record(APP, OK_HTTP);
    reporter.record(DB, REFUSED);
    const attempt = await reporter.reportOnce();
    assert.deepEqual(attempt, { result: 'accepted', nextInMs: 5_000 });
    assert.equal(endpoint.posted[0]?.path, '/v1/guard/health');
    assert.deepEqual(ports(endpoint.posted[0]?.body), [
      { container: 'db', port: 5432, method: 'tcp', probes: 1, failures: 1, lastFailure: 'refused' },
      { container: 'app', port: 8080, method: 'http', probes: 3, failures: 1, lastFailure: 'timeout' },
    ]);
    assert.deepEqual(endpoint.posted[0]?.body.listening, [{ protocol: 'TCP', address: '0.0.0.0', port: 8080 }]);
    // A kept report's counts are not sent again.
    reporter.record(APP, OK_HTTP);
    await reporter.reportOnce();
    assert.deepEqual(ports(endpoint.posted[1]?.body), [{ container: 'app', port: 8080, method: 'http', probes: 1, failures: 0 }]);
    assert.equal(endpoint.posted[1]!.body.sequence, endpoint.posted[0]!.body.sequence + 1);
  });

  it('sends a report that got no answer again as it was, same sequence, while new outcomes wait for the next', async () => {
    const { endpoint, reporter, metrics } = setup();
    reporter.record(APP, OK_HTTP);
    endpoint.replies = [noAnswer, noAnswer];
    const first = await reporter.reportOnce();
    assert.equal(first.result, 'unavailable');
    reporter.record(APP, TIMEOUT);
    assert.equal((await reporter.reportOnce()).result, 'unavailable');
    assert.equal((await reporter.reportOnce()).result, 'accepted');
    const [a, b, c] = endpoint.posted.map((p) => p.body);
    assert.equal(a!.sequence, b!.sequence);
    assert.equal(b!.sequence, c!.sequence);
    assert.deepEqual(ports(c), [{ container: 'app', port: 8080, method: 'http', probes: 1, failures: 0 }]);
    await reporter.reportOnce();
    const d = endpoint.posted[3]!.body;
    assert.equal(d.sequence, a!.sequence + 1);
    assert.deepEqual(ports(d), [{ container: 'app', port: 8080, method: 'http', probes: 1, failures: 1, lastFailure: 'timeout' }]);
    assert.match(metrics.registry.render(), /crowsnest_guard_sidecar_reports_total\{result="unavailable"\} 2/);
  });

  it('backs off from 1 s doubling while the operator is unreachable, jittered, up to 60 s', async () => {
    const { endpoint, reporter } = setup();
    endpoint.replies = Array.from({ length: 9 }, () => noAnswer);
    const waits: number[] = [];
    for (let i = 0; i < 9; i++) waits.push((await reporter.reportOnce()).nextInMs);
    // random() = 0.5: three quarters of the step.
    assert.deepEqual(waits, [750, 1_500, 3_000, 6_000, 12_000, 24_000, 45_000, 45_000, 45_000]);
    assert.equal((await reporter.reportOnce()).result, 'accepted');
  });

  it('puts the counts of a throttled report back (it was not kept), waits Retry-After, and on 503 reconnects to reach the leader', async () => {
    const { endpoint, reporter } = setup();
    reporter.record(APP, TIMEOUT);
    endpoint.replies = [answer(503, 'not the leader', { 'retry-after': '3' }), answer(429, 'slow down', { 'retry-after': '7' })];
    assert.deepEqual(await reporter.reportOnce(), { result: 'throttled', nextInMs: 3_000 });
    assert.equal(endpoint.disconnects, 1);
    reporter.record(APP, OK_HTTP);
    assert.deepEqual(await reporter.reportOnce(), { result: 'throttled', nextInMs: 7_000 });
    assert.equal(endpoint.disconnects, 1);
    reporter.record(APP, OK_HTTP);
    assert.equal((await reporter.reportOnce()).result, 'accepted');
    const [a, b, c] = endpoint.posted.map((p) => p.body);
    assert.ok(a!.sequence < b!.sequence && b!.sequence < c!.sequence, 'a report answered (not kept) is never resent under its sequence');
    assert.deepEqual(ports(c), [{ container: 'app', port: 8080, method: 'http', probes: 3, failures: 1, lastFailure: 'timeout' }]);
  });

  it('keeps the newer method and failure when a refused report is put back', async () => {
    const { endpoint, reporter } = setup();
    reporter.record(APP, { ok: false, method: 'tcp', reason: 'refused', detail: '' });
    endpoint.replies = [answer(401)];
    assert.equal((await reporter.reportOnce()).result, 'unauthorized');
    reporter.record(APP, TIMEOUT);
    await reporter.reportOnce();
    assert.deepEqual(ports(endpoint.posted[1]?.body), [{ container: 'app', port: 8080, method: 'http', probes: 2, failures: 2, lastFailure: 'timeout' }]);
  });

  it('drops the counts of a report the operator will never take (400, 413), and goes on', async () => {
    const { endpoint, reporter, metrics } = setup();
    reporter.record(APP, TIMEOUT);
    endpoint.replies = [answer(413, 'too large')];
    assert.equal((await reporter.reportOnce()).result, 'rejected');
    reporter.record(DB, REFUSED);
    await reporter.reportOnce();
    assert.deepEqual(ports(endpoint.posted[1]?.body), [{ container: 'db', port: 5432, method: 'tcp', probes: 1, failures: 1, lastFailure: 'refused' }]);
    assert.match(metrics.registry.render(), /crowsnest_guard_sidecar_reports_total\{result="rejected"\} 1/);
  });

  it('follows the operator\'s reportAfterMs within bounds (1 s to 10 min), jittered ±10 %', async () => {
    const { endpoint, reporter } = setup();
    endpoint.replies = [answer(200, '{"reportAfterMs":20}'), answer(200, '{"reportAfterMs":86400000}'), answer(200, 'not json')];
    assert.equal((await reporter.reportOnce()).nextInMs, 1_000);
    assert.equal((await reporter.reportOnce()).nextInMs, 600_000);
    assert.equal((await reporter.reportOnce()).nextInMs, 600_000, 'an answer without reportAfterMs keeps the last period');
  });

  it('runs on the clock: the first report within the first period, then one per period, until stopped', async () => {
    const { clock, endpoint, reporter } = setup();
    const stop = new AbortController();
    const running = reporter.run(stop.signal);
    const tick = async (ms: number): Promise<void> => {
      clock.advance(ms);
      for (let i = 0; i < 10; i++) await Promise.resolve();
    };
    await tick(3_000);
    assert.equal(endpoint.posted.length, 0);
    await tick(1_000);
    // 0.2 + 0.3 × 0.5 of 10 s = 3.5 s.
    assert.equal(endpoint.posted.length, 1);
    await tick(5_000);
    assert.equal(endpoint.posted.length, 2);
    stop.abort();
    await running;
    assert.equal(endpoint.disconnects, 1);
  });
});
