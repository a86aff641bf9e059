import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { Agent, request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { X509Certificate } from 'node:crypto';
import { Registry } from 'prom-client';
import { createCertificateAuthority, type CertificateAuthority, issueServingCertificate } from '../../../testbed/webhook.ts';
import { applyPatch, type JsonPatchOperation } from './jsonpatch.ts';
import { allow, deny, mutate, type AdmissionReview } from './review.ts';
import { type AdmissionHandler, WebhookServer } from './server.ts';

let dir = '';
let ca: CertificateAuthority;
let caPem: Buffer;
const servers: WebhookServer[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'crowsnest-webhook-test-'));
  ca = await createCertificateAuthority(dir);
  caPem = await readFile(ca.cert);
});
after(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  await rm(dir, { recursive: true, force: true });
});

async function serve(handlers: AdmissionHandler[], options: { registry?: Registry; handlerDeadlineMs?: number; maxRequestBytes?: number; files?: { certFile: string; keyFile: string } } = {}): Promise<WebhookServer> {
  const files = options.files ?? await issueServingCertificate(ca, dir, { name: `s${servers.length}` });
  const server = new WebhookServer({
    host: '127.0.0.1', port: 0, handlers, ...files,
    ...(options.registry ? { registry: options.registry } : {}),
    ...(options.handlerDeadlineMs ? { handlerDeadlineMs: options.handlerDeadlineMs } : {}),
    ...(options.maxRequestBytes ? { maxRequestBytes: options.maxRequestBytes } : {}),
  });
  servers.push(server);
  await server.start();
  return server;
}

/** POSTs `body`; on a connection of its own unless an `agent` that keeps connections is given. */
function post(server: WebhookServer, path: string, body: unknown, headers: Record<string, string> = {}, agent: Agent | false = false): Promise<{ status: number; body: string }> {
  const payload = typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port: server.port, path, method: 'POST', ca: caPem, servername: 'localhost', agent, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

const review = (object: unknown, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
  request: { uid: 'req-1', kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' }, operation: 'CREATE', userInfo: { username: 'alice' }, namespace: 'team-a', object, ...extra },
});

const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web', namespace: 'team-a' }, spec: { containers: [{ name: 'app', image: 'app:1' }] } };

function handler(name: string, review: AdmissionHandler['review'], failurePolicy: AdmissionHandler['failurePolicy'] = 'Fail'): AdmissionHandler {
  return { name, path: `/${name}`, failurePolicy, review };
}

function responseOf(body: string): NonNullable<AdmissionReview['response']> {
  return (JSON.parse(body) as AdmissionReview).response!;
}

describe('WebhookServer answers', () => {
  it('allow, with warnings, echoing the uid', async () => {
    const server = await serve([handler('ok', () => allow(['careful']))]);
    const res = await post(server, '/ok', review(pod));
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.body), { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'req-1', allowed: true, warnings: ['careful'] } });
  });

  it('deny with the message and code the client will see', async () => {
    const server = await serve([handler('no', () => deny('pods in team-a need an owner label', { code: 422, reason: 'Invalid' }))]);
    assert.deepEqual(responseOf((await post(server, '/no', review(pod))).body), {
      uid: 'req-1', allowed: false, status: { code: 422, message: 'pods in team-a need an owner label', reason: 'Invalid' },
    });
  });

  it('mutate: a JSON Patch that turns the request object into the handler\'s', async () => {
    const sidecar = { name: 'net-prober', image: 'crowsnest:1', restartPolicy: 'Always' };
    const server = await serve([handler('inject', (request) => {
      const mutated = structuredClone(request.object!) as typeof pod & { spec: { initContainers?: unknown[] } };
      mutated.spec.initContainers = [sidecar];
      return mutate(mutated);
    })]);
    const response = responseOf((await post(server, '/inject', review(pod))).body);
    assert.equal(response.allowed, true);
    assert.equal(response.patchType, 'JSONPatch');
    const patch = JSON.parse(Buffer.from(response.patch!, 'base64').toString('utf8')) as JsonPatchOperation[];
    assert.deepEqual(patch, [{ op: 'add', path: '/spec/initContainers', value: [sidecar] }]);
    assert.deepEqual(applyPatch(pod, patch), { ...pod, spec: { ...pod.spec, initContainers: [sidecar] } });
  });

  it('an unchanged mutation is a plain allow (no empty patch)', async () => {
    const server = await serve([handler('same', (request) => mutate(structuredClone(request.object!)))]);
    assert.deepEqual(responseOf((await post(server, '/same', review(pod))).body), { uid: 'req-1', allowed: true });
  });
});

describe('WebhookServer refuses what is not a review', () => {
  it('400 for a body that is not an AdmissionReview v1, 404 for an unknown path, 415 for another content type', async () => {
    const server = await serve([handler('ok', () => allow())]);
    const v1beta1 = await post(server, '/ok', { ...review(pod), apiVersion: 'admission.k8s.io/v1beta1' });
    assert.equal(v1beta1.status, 400);
    assert.match(v1beta1.body, /admissionReviewVersions/);
    assert.equal((await post(server, '/ok', 'not json')).status, 400);
    assert.equal((await post(server, '/ok', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' })).status, 400);
    assert.equal((await post(server, '/elsewhere', review(pod))).status, 404);
    assert.equal((await post(server, '/ok', review(pod), { 'content-type': 'text/plain' })).status, 415);
  });

  it('413 for a body over the limit, without calling the handler', async () => {
    let called = false;
    const server = await serve([handler('small', () => { called = true; return allow(); })], { maxRequestBytes: 1024 });
    const big = review({ ...pod, metadata: { ...pod.metadata, annotations: { blob: 'x'.repeat(2048) } } });
    assert.equal((await post(server, '/small', big)).status, 413);
    assert.equal(called, false);
    assert.equal((await post(server, '/small', review(pod))).status, 200);
  });
});

describe('WebhookServer deadline', () => {
  const never = (_request: unknown, signal: AbortSignal) => new Promise<never>((_resolve, reject) => signal.addEventListener('abort', () => reject(new Error('aborted'))));

  it('failurePolicy Ignore: allowed unchanged with a warning when the handler is too slow; its signal aborts', async () => {
    let aborted = false;
    const server = await serve([handler('slow', (request, signal) => {
      signal.addEventListener('abort', () => (aborted = true));
      return never(request, signal);
    }, 'Ignore')], { handlerDeadlineMs: 50 });
    const started = Date.now();
    const response = responseOf((await post(server, '/slow', review(pod))).body);
    assert.ok(Date.now() - started < 1_000);
    assert.equal(response.allowed, true);
    assert.equal(response.patch, undefined);
    assert.match(response.warnings?.[0] ?? '', /crowsnest webhook slow did not decide within 50 ms/);
    assert.equal(aborted, true);
  });

  it('failurePolicy Fail: denied with 503 and "try again"', async () => {
    const server = await serve([handler('strict', never, 'Fail')], { handlerDeadlineMs: 50 });
    const response = responseOf((await post(server, '/strict', review(pod))).body);
    assert.equal(response.allowed, false);
    assert.equal(response.status?.code, 503);
    assert.match(response.status?.message ?? '', /did not decide within 50 ms; try again/);
  });

  it('a handler that throws is answered by its failure policy too', async () => {
    const server = await serve([handler('broken', () => { throw new Error('bug'); }, 'Ignore')]);
    const response = responseOf((await post(server, '/broken', review(pod))).body);
    assert.equal(response.allowed, true);
    assert.match(response.warnings?.[0] ?? '', /broken failed/);
  });

  it('takes at most 80 % of the timeout the API server sends', async () => {
    const server = await serve([handler('slow2', never, 'Ignore')], { handlerDeadlineMs: 60_000 });
    const started = Date.now();
    const response = responseOf((await post(server, '/slow2?timeout=0.1s', review(pod))).body);
    assert.ok(Date.now() - started < 2_000);
    assert.match(response.warnings?.[0] ?? '', /within 80 ms/);
  });
});

describe('WebhookServer metrics', () => {
  it('counts requests by webhook and code, and times them', async () => {
    const registry = new Registry();
    const server = await serve([handler('m-allow', () => allow()), handler('m-deny', () => deny('no'))], { registry });
    await post(server, '/m-allow', review(pod));
    await post(server, '/m-allow', review(pod));
    await post(server, '/m-deny', review(pod));
    await post(server, '/nowhere', review(pod));
    const text = await registry.metrics();
    assert.match(text, /crowsnest_webhook_requests_total\{webhook="m-allow",code="200"\} 2/);
    assert.match(text, /crowsnest_webhook_requests_total\{webhook="m-deny",code="403"\} 1/);
    assert.match(text, /crowsnest_webhook_requests_total\{webhook="unknown",code="404"\} 1/);
    assert.match(text, /crowsnest_webhook_request_duration_seconds_count\{webhook="m-allow"\} 2/);
  });
});

describe('WebhookServer connections', () => {
  const connections = async (registry: Registry): Promise<number> => (await registry.getSingleMetric('crowsnest_webhook_connections_total')!.get()).values[0]?.value ?? 0;

  it('counts TLS connections, not requests: a kept-alive client opens one', async () => {
    const registry = new Registry();
    const server = await serve([handler('c-keep', () => allow())], { registry });
    const keeping = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 0; i < 3; i++) assert.equal((await post(server, '/c-keep', review(pod), {}, keeping)).status, 200);
      assert.equal(await connections(registry), 1);
      await post(server, '/c-keep', review(pod));
      assert.equal(await connections(registry), 2);
    } finally {
      keeping.destroy();
    }
  });

  it('keeps an idle connection past Node\'s default keep-alive (5 s + a 1 s buffer), as the API server\'s client keeps it 90 s', async () => {
    const registry = new Registry();
    const server = await serve([handler('c-idle', () => allow())], { registry });
    const keeping = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      await post(server, '/c-idle', review(pod), {}, keeping);
      await new Promise((resolve) => setTimeout(resolve, 6_500));
      assert.equal((await post(server, '/c-idle', review(pod), {}, keeping)).status, 200);
      assert.equal(await connections(registry), 1, 'the second request needed a new connection: the server closed the idle one');
    } finally {
      keeping.destroy();
    }
  });
});

describe('WebhookServer certificate', () => {
  function servedFingerprint(server: WebhookServer): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: server.port, ca: caPem, servername: 'localhost' }, () => {
        resolve(new X509Certificate(socket.getPeerCertificate(true).raw).fingerprint256);
        socket.end();
      });
      socket.on('error', reject);
    });
  }

  it('is not ready without certificate files, and serves them once they appear', async () => {
    const certFile = join(dir, 'late.crt');
    const keyFile = join(dir, 'late.key');
    const server = await serve([handler('late', () => allow())], { files: { certFile, keyFile } });
    assert.throws(() => server.readinessCheck().check(), /no serving certificate/);
    const issued = await issueServingCertificate(ca, dir, { name: 'late-issued' });
    await copyFile(issued.keyFile, keyFile);
    await copyFile(issued.certFile, certFile);
    assert.equal(await server.reloadCertificate(), true);
    server.readinessCheck().check();
    assert.equal((await post(server, '/late', review(pod))).status, 200);
  });

  it('serves a rotated certificate to new connections, and keeps the old one while the new pair does not match', async () => {
    const files = await issueServingCertificate(ca, dir, { name: 'rotating' });
    const server = await serve([handler('rot', () => allow())], { files });
    const first = await servedFingerprint(server);
    const next = await issueServingCertificate(ca, dir, { name: 'rotating-next' });
    // Half-way: the new certificate is written, its key not yet.
    await copyFile(next.certFile, files.certFile);
    assert.equal(await server.reloadCertificate(), false);
    assert.equal(await servedFingerprint(server), first);
    assert.equal((await post(server, '/rot', review(pod))).status, 200);
    await copyFile(next.keyFile, files.keyFile);
    assert.equal(await server.reloadCertificate(), true);
    const second = await servedFingerprint(server);
    assert.notEqual(second, first);
    assert.equal(second, new X509Certificate(await readFile(next.certFile)).fingerprint256);
  });
});
