import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FakeClock } from '../clock.ts';
import { CaBundleInjector, CertificateRotator, decodeSecretData, type SecretObject, writeCertificateFiles } from './certificates.ts';
import { planRotation, readHeldCertificates } from './rotation.ts';

describe('writeCertificateFiles', () => {
  it('writes ca.crt, tls.key, tls.crt (key 0600), touches only what changed, and skips what the Secret lacks', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'certfiles-'));
    try {
      assert.deepEqual(await writeCertificateFiles(dir, { 'ca.crt': 'CA', 'tls.key': 'KEY', 'tls.crt': 'CERT', 'ca-current.key': 'never written' }), ['ca.crt', 'tls.key', 'tls.crt']);
      assert.equal(await readFile(join(dir, 'tls.crt'), 'utf8'), 'CERT');
      assert.equal((await stat(join(dir, 'tls.key'))).mode & 0o777, 0o600);
      await assert.rejects(stat(join(dir, 'ca-current.key')), 'the CA key never leaves the Secret');
      assert.deepEqual(await writeCertificateFiles(dir, { 'ca.crt': 'CA', 'tls.key': 'KEY2', 'tls.crt': 'CERT2' }), ['tls.key', 'tls.crt']);
      assert.deepEqual(await writeCertificateFiles(dir, { 'ca.crt': 'CA2' }), ['ca.crt']);
      assert.equal(await readFile(join(dir, 'tls.crt'), 'utf8'), 'CERT2', 'a Secret without the pair leaves the served pair alone');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('CertificateRotator', () => {
  const hosts = ['svc.ns.svc'];

  function rotator(secret: SecretObject | undefined) {
    const writes: Array<{ path: string; method: string; body: SecretObject }> = [];
    const client = {
      json: async <T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> => {
        writes.push({ path, method: init.method ?? 'GET', body: init.body as SecretObject });
        return {} as T;
      },
    };
    const clock = new FakeClock(Date.parse('2026-03-01T00:00:00Z'));
    return { writes, clock, rotator: new CertificateRotator({ client, namespace: 'cs', secretName: 'cert', hosts, readSecret: () => secret, clock }) };
  }

  it('creates the Secret, labelled as ours, when there is none', async () => {
    const { writes, rotator: r } = rotator(undefined);
    await r.reconcile();
    assert.equal(writes.length, 1);
    assert.deepEqual([writes[0]!.method, writes[0]!.path], ['POST', '/api/v1/namespaces/cs/secrets']);
    assert.equal(writes[0]!.body.type, 'kubernetes.io/tls');
    assert.equal(writes[0]!.body.metadata?.labels?.['app.kubernetes.io/managed-by'], 'crowsnest');
    const held = readHeldCertificates(decodeSecretData(writes[0]!.body));
    assert.deepEqual(planRotation(held, hosts, Date.parse('2026-03-01T00:00:00Z')), [], 'what it wrote needs nothing more');
  });

  it('updates its own Secret with the resourceVersion read, and leaves a Secret it did not create alone', async () => {
    const ours: SecretObject = { metadata: { name: 'cert', namespace: 'cs', resourceVersion: '42', labels: { 'app.kubernetes.io/managed-by': 'crowsnest' } }, data: {} };
    const a = rotator(ours);
    await a.rotator.reconcile();
    assert.deepEqual([a.writes[0]!.method, a.writes[0]!.path, a.writes[0]!.body.metadata?.resourceVersion], ['PUT', '/api/v1/namespaces/cs/secrets/cert', '42']);
    const theirs: SecretObject = { metadata: { name: 'cert', namespace: 'cs', resourceVersion: '7' }, data: { 'tls.crt': Buffer.from('theirs').toString('base64') } };
    const b = rotator(theirs);
    const wait = await b.rotator.reconcile();
    assert.deepEqual(b.writes, [], 'never overwritten');
    assert.equal(wait, 3_600_000);
  });
});

describe('CaBundleInjector', () => {
  it('looks again soon for a configuration that does not exist yet (1 s, doubling to the interval), then at the interval', async () => {
    const clock = new FakeClock(0);
    const calls: Array<{ at: number; method: string }> = [];
    let exists = false;
    const client = {
      json: async <T>(_path: string, init: { method?: string } = {}): Promise<T> => {
        calls.push({ at: clock.now(), method: init.method ?? 'GET' });
        if (!exists) throw Object.assign(new Error('not found'), { statusCode: 404 });
        return (init.method === 'PATCH' ? {} : { metadata: { name: 'c', uid: 'u' }, webhooks: [{ name: 'w', clientConfig: {} }] }) as T;
      },
    };
    const injector = new CaBundleInjector({ client, configurations: [{ kind: 'MutatingWebhookConfiguration', name: 'c' }], bundle: () => 'PEM', clock });
    const stop = new AbortController();
    const running = injector.run(stop.signal);
    const tick = async (ms: number): Promise<void> => {
      clock.advance(ms);
      for (let i = 0; i < 20; i++) await Promise.resolve();
    };
    await tick(0);
    await tick(1_000);
    await tick(2_000);
    assert.deepEqual(calls.map((c) => c.at), [0, 1_000, 3_000], 'retried after 1 s, then 2 s');
    exists = true;
    await tick(4_000);
    assert.deepEqual(calls.slice(3).map((c) => [c.at, c.method]), [[7_000, 'GET'], [7_000, 'PATCH']], 'found after 4 s more: its caBundle set');
    await tick(29_000);
    assert.equal(calls.length, 5, 'then the 30 s interval');
    await tick(1_000);
    assert.deepEqual(calls.slice(5).map((c) => c.at), [37_000, 37_000]);
    stop.abort();
    await running;
  });
});
