/**
 * Error-rate detection end to end, with every part real: guard (its endpoint and controller,
 * registered with a Manager as the operator registers them, in this process, its endpoint on the
 * host's bridge address), the chart's log agent DaemonSet on both real nodes, and a real app pod
 * whose log containerd writes. The agent takes up the watch guard hands it, ships batches to
 * guard's endpoint (HTTPS, its projected token checked by a real TokenReview), and the errorLogs
 * detector opens an incident on the app's pod once its error rate rises over the threshold.
 *
 * The agent is SIGKILLed mid-stream (its pod deleted without grace) at the worst moment: guard has
 * counted a batch but the agent never got the answer (a relay between them withholds it), so the
 * restarted agent sends the same batch again. The lines guard counted for the policy
 * (crowsnest_guard_log_matched_lines_total) equal the lines the app wrote, none lost, none counted
 * twice: only guard's batchId dedupe keeps the resent batch from being counted again.
 *
 * Testbed specifics as in guard-logs-agent.test.ts: pod logs live in `<testbed>/nodes/<node>/pod-logs`,
 * and the chart's tolerate-everything toleration is left out so kwok nodes get no agent.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { freePort } from '../../testbed/controlplane.ts';
import type { RealPod } from '../../testbed/realpods.ts';
import type { GuardPolicy } from '../../src/guard/api.ts';
import { type LogBatch, LOGS_PATH } from '../../src/guard/contract.ts';
import { type GuardRuntime, registerGuard } from '../../src/guard/register.ts';
import { KubeClient } from '../../src/kube/client/client.ts';
import { silentLogger } from '../../src/kube/logger-type.ts';
import { EventRecorder } from '../../src/kube/objects/events.ts';
import { Manager } from '../../src/kube/runtime/manager.ts';
import { issueCertificateAuthority, issueServingCertificate } from '../../src/kube/webhook/x509.ts';
import { installCrds } from './crds.ts';
import { installLogsAgent } from './logs-agent-chart.ts';
import { crowsnestImage } from './prober-image.ts';
import { adminKubeConfig, eventually, execInPod, getObject, listObjects, newNamespace, podLog, runPod, testbed } from './testbed.ts';

const RELEASE = 'ge2e';
const NODE = 'crowsnest-real-0';
/** Error lines of the slow phase (under the threshold), then of the burst. */
const SLOW = 10;
const BURST = 150;
const THRESHOLD = 40;

type Incident = NonNullable<NonNullable<GuardPolicy['status']>['incidents']>[number];

/**
 * An HTTPS relay between the log agents and guard's endpoint (serving guard's certificate), which
 * can make one batch's answer get lost: armed with {@link withholdNextMatching}, it passes the
 * next batch carrying matching lines on to guard, then never answers the agent; every later
 * request is held unanswered, not passed on, until {@link passAll}. So guard counted that batch and
 * the agent still has it pending, exactly the state a kill between the two leaves.
 */
class AnswerWithholdingRelay {
  /** Every batch id passed on to guard, in order. */
  readonly passed: number[] = [];
  withheld: number | undefined;
  private arm: ((batch: LogBatch) => boolean) | undefined;
  private holding = false;
  private readonly held: ServerResponse[] = [];
  private readonly server: Server;
  private readonly upstream: { host: string; port: number; ca: string };

  constructor(tls: { certPem: string; keyPem: string }, upstream: { host: string; port: number; ca: string }) {
    this.upstream = upstream;
    this.server = createHttpsServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => void this.relay(req, res));
  }

  listen(host: string, port: number): Promise<void> {
    return new Promise((resolve) => this.server.listen(port, host, resolve));
  }

  /** Withholds guard's answer to the next batch for which `matches` is true. */
  withholdNextMatching(matches: (batch: LogBatch) => boolean): void {
    this.arm = matches;
  }

  /** Passes every request on again; the held ones are dropped (their agent is gone). */
  passAll(): void {
    this.holding = false;
    for (const res of this.held.splice(0)) res.socket?.destroy();
  }

  async close(): Promise<void> {
    this.passAll();
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private async relay(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    if (this.holding) {
      this.held.push(res);
      return;
    }
    const batch = req.url === LOGS_PATH ? JSON.parse(body.toString()) as LogBatch : undefined;
    const withhold = batch !== undefined && this.arm?.(batch) === true;
    if (batch) this.passed.push(batch.batchId);
    const headers = { 'content-type': req.headers['content-type'] ?? 'application/json', authorization: req.headers.authorization ?? '' };
    const upstream = httpsRequest({ host: this.upstream.host, port: this.upstream.port, path: req.url, method: req.method, ca: this.upstream.ca, headers }, (answer) => {
      if (withhold) {
        answer.resume();
        this.arm = undefined;
        this.withheld = batch!.batchId;
        this.holding = true;
        this.held.push(res);
        return;
      }
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.socket?.destroy());
    upstream.end(body);
  }
}

describe('guard end to end: the chart\'s log agent on the real nodes feeds guard\'s errorLogs detector', () => {
  let namespace = '';
  let client: KubeClient;
  let recorder: EventRecorder;
  let certDir = '';
  let guard: GuardRuntime;
  let relay: AnswerWithholdingRelay | undefined;
  const registry = new Registry();
  const stop = new AbortController();
  let running: Promise<unknown> | undefined;

  before(async () => {
    const plane = await testbed();
    await installCrds();
    const hostIp = plane.network!.hostIp;
    const [image] = await Promise.all([crowsnestImage(plane), (async () => { namespace = await newNamespace('guard-e2e'); })()]);

    // Guard's endpoint serves a certificate for the host's bridge address; the agents trust its CA
    // through the Secret the chart mounts (the operator's webhook certificate in a real install).
    const now = Date.now();
    const ca = issueCertificateAuthority({ commonName: 'guard-e2e-ca', notBeforeMs: now - 60_000, notAfterMs: now + 3_600_000 });
    const serving = issueServingCertificate({ commonName: 'guard', hosts: [hostIp], notBeforeMs: now - 60_000, notAfterMs: now + 3_600_000 }, ca);
    certDir = await mkdtemp(join(tmpdir(), 'guard-e2e-'));
    await writeFile(join(certDir, 'tls.crt'), serving.certPem);
    await writeFile(join(certDir, 'tls.key'), serving.keyPem);
    const secret = await plane.request('POST', `/api/v1/namespaces/${namespace}/secrets`, {
      apiVersion: 'v1', kind: 'Secret', metadata: { name: `${RELEASE}-crowsnest-webhook-cert` }, data: { 'ca.crt': Buffer.from(ca.certPem).toString('base64') },
    });
    assert.equal(secret.status, 201, secret.body);

    client = new KubeClient(await adminKubeConfig());
    recorder = new EventRecorder({ client, reportingInstance: 'guard-e2e-test', registry });
    const manager = new Manager({ client, recorder, registry, logger: silentLogger });
    const port = await freePort();
    // The operator's namespace is another one: guard never acts in its own.
    guard = registerGuard(manager, {
      namespace: 'crowsnest-system', port, url: `https://${hostIp}:${port}`, logAgentServiceAccount: `${namespace}/${RELEASE}-crowsnest-logs-agent`, reportIntervalMs: 500,
    }, certDir, undefined, hostIp);
    running = manager.run(stop.signal);
    await eventually('the guard endpoint to listen', () => guard.endpoint.port > 0, 30_000);

    const policy = await plane.request('POST', `/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/guardpolicies`, {
      apiVersion: 'crowsnest.dev/v1alpha1', kind: 'GuardPolicy', metadata: { name: 'talker' },
      spec: { targets: { podSelector: { matchLabels: { app: 'talker' } } }, detectors: { errorLogs: { pattern: 'ERROR', lines: THRESHOLD, window: '5m' } }, actions: ['Event'] },
    });
    assert.equal(policy.status, 201, policy.body);

    // The agents reach guard through the relay (on the same address, another port).
    relay = new AnswerWithholdingRelay(serving, { host: hostIp, port, ca: ca.certPem });
    const relayPort = await freePort();
    await relay.listen(hostIp, relayPort);
    await installLogsAgent(plane, { release: RELEASE, namespace, image, guardUrl: `https://${hostIp}:${relayPort}` });
  });

  after(async () => {
    const plane = await testbed();
    stop.abort();
    await relay?.close();
    await running?.catch(() => {});
    await recorder?.flush().catch(() => {});
    await client?.close();
    if (certDir) await rm(certDir, { recursive: true, force: true });
    if (namespace) {
      await plane.request('DELETE', `/api/v1/namespaces/${namespace}`);
      await plane.request('DELETE', `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${namespace}-auth-delegator`);
    }
  });

  const agentPod = async (): Promise<RealPod | undefined> => {
    const plane = await testbed();
    const res = await plane.request('GET', `/api/v1/namespaces/${namespace}/pods?labelSelector=${encodeURIComponent('app.kubernetes.io/component=logs-agent')}&fieldSelector=spec.nodeName=${NODE}`);
    return (JSON.parse(res.body) as { items: Array<RealPod & { metadata: { deletionTimestamp?: string } }> }).items.find((p) => !p.metadata.deletionTimestamp && p.status.phase === 'Running');
  };
  /** What guard counted for the policy, from its metrics: lines read and lines matching. */
  const counted = async (name: string): Promise<{ lines: number; matched: number }> => {
    const value = async (metric: string) => ((await registry.getSingleMetric(metric)?.get())?.values ?? []).find((v) => v.labels['namespace'] === namespace && v.labels['policy'] === name)?.value ?? 0;
    return { lines: await value('crowsnest_guard_log_lines_total'), matched: await value('crowsnest_guard_log_matched_lines_total') };
  };
  const incidents = async (): Promise<Incident[]> => (await getObject<GuardPolicy>(`/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/guardpolicies/talker`))?.status?.incidents ?? [];

  it('an app logging errors at a rising rate is an incident on its pod; the agent killed mid-stream neither loses nor duplicates a line', { timeout: 180_000 }, async () => {
    const plane = await testbed();
    // Ticks (not matching) until told to start, so the test sees when the agent tails the log;
    // then a slow trickle of errors under the threshold, then a burst over it.
    const app = await runPod(plane, {
      namespace, name: 'talker', image: plane.images['test']!, node: NODE, timeoutMs: 120_000,
      command: ['/bin/sh', '-c', [
        'while [ ! -f /tmp/go ]; do echo tick; sleep 0.2; done',
        `i=0; while [ $i -lt ${SLOW} ]; do echo "slow $i ERROR"; i=$((i+1)); sleep 0.1; done`,
        'while [ ! -f /tmp/burst ]; do sleep 0.1; done',
        `i=0; while [ $i -lt ${BURST} ]; do echo "burst $i ERROR"; echo "burst $i fine"; i=$((i+1)); sleep 0.05; done`,
        'exec sleep 3600',
      ].join('\n')],
    });
    try {
      await eventually('the agent on the app\'s node tails its log (guard counted its ticks)', async () => (await counted('talker')).lines > 0, 60_000);
    } catch (err) {
      const agent = await agentPod();
      const reports = (await registry.getSingleMetric('crowsnest_guard_reports_total')?.get())?.values;
      throw new Error(`${String(err)}; reports: ${JSON.stringify(reports)}; agent ${agent?.metadata.name}: ${agent ? (await podLog(plane, namespace, agent.metadata.name, 'logs-agent').catch((e: unknown) => String(e))).slice(-3000) : ''}`);
    }
    assert.equal((await counted('talker')).matched, 0);

    const go = await execInPod(plane, namespace, 'talker', ['touch', '/tmp/go']);
    assert.equal(go.exitCode, 0, go.stderr);
    await eventually(`the ${SLOW} slow error lines counted`, async () => (await counted('talker')).matched >= SLOW, 30_000);
    // Reconciled on the batch that carried them: under the threshold, no incident.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    assert.deepEqual(await incidents(), [], `${SLOW} error lines are under the threshold of ${THRESHOLD}`);

    const burst = await execInPod(plane, namespace, 'talker', ['touch', '/tmp/burst']);
    assert.equal(burst.exitCode, 0, burst.stderr);
    await eventually('a third of the burst counted', async () => (await counted('talker')).matched >= SLOW + BURST / 3, 30_000);
    // Guard counts the next batch with error lines, the agent never hears so: then it is killed.
    relay!.withholdNextMatching((batch) => batch.counts.some((c) => c.pod === 'talker' && c.matched > 0));
    await eventually('a batch counted by guard and its answer withheld', () => relay!.withheld !== undefined, 30_000);
    const killed = await agentPod();
    assert.ok(killed);
    const atKill = await counted('talker');
    const deleted = await plane.request('DELETE', `/api/v1/namespaces/${namespace}/pods/${killed.metadata.name}?gracePeriodSeconds=0`);
    assert.equal(deleted.status, 200, deleted.body);
    assert.ok(atKill.matched < SLOW + BURST, `killed mid-stream (${atKill.matched} of ${SLOW + BURST} counted then)`);
    relay!.passAll();

    let incident: Incident | undefined;
    await eventually('an errorLogs incident on the app\'s pod', async () => {
      incident = (await incidents()).find((i) => i.pod === 'talker');
      return incident !== undefined;
    }, 30_000).catch(async (err: unknown) => {
      throw new Error(`${String(err)}; counted ${JSON.stringify(await counted('talker'))}; policy: ${JSON.stringify(await getObject(`/apis/crowsnest.dev/v1alpha1/namespaces/${namespace}/guardpolicies/talker`))}`);
    });
    assert.equal(incident!.detector, 'errorLogs');
    assert.equal(incident!.reason, 'ErrorLogs');
    assert.match(incident!.evidence[0]!, /^\d+ log lines matching \/ERROR\/ within 5m \(threshold 40\)$/);
    assert.ok(incident!.evidence.slice(1).some((s) => /^main: (slow|burst) \d+ ERROR$/.test(s)), `samples as evidence: ${JSON.stringify(incident!.evidence)}`);

    await eventually('a new agent pod on the node', async () => {
      const pod = await agentPod();
      return pod !== undefined && pod.metadata.uid !== killed.metadata.uid;
    }, 60_000);
    await eventually(`all ${SLOW + BURST} error lines counted`, async () => (await counted('talker')).matched >= SLOW + BURST, 60_000);
    // A few more batches: nothing counted twice arrives late.
    const reports = async () => ((await registry.getSingleMetric('crowsnest_guard_reports_total')?.get())?.values ?? []).filter((v) => v.labels['endpoint'] === 'logs').reduce((sum, v) => sum + v.value, 0);
    const seen = await reports();
    await eventually('more batches', async () => (await reports()) >= seen + 6, 15_000);
    // The restarted agent sent the withheld batch again (it was pending on disk): guard saw it twice.
    const withheld = relay!.withheld!;
    assert.ok(relay!.passed.filter((id) => id === withheld).length >= 2, `batch ${withheld} passed to guard before the kill and again after (passed: ${relay!.passed.join(', ')})`);
    const final = await counted('talker');
    assert.equal(final.matched, SLOW + BURST, 'every error line the app wrote, counted once');
    assert.equal(guard.signals.of(app.metadata.uid)?.errorLines.count(Date.now(), 3_600_000), SLOW + BURST, 'the count the detector reads for the pod');

    await recorder.flush();
    const events = await listObjects<{ reason: string; note: string }>(`/apis/events.k8s.io/v1/namespaces/${namespace}/events?fieldSelector=${encodeURIComponent('regarding.name=talker')}`);
    assert.ok(events.some((e) => e.reason === 'IncidentOpened'), `an IncidentOpened Event on the pod (got ${events.map((e) => e.reason).join(', ')})`);
  });
});
