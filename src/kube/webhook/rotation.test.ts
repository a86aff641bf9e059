import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { applyRotation, DEFAULT_ROTATION_POLICY, nextRotationDue, planRotation, readHeldCertificates, SECRET_KEYS } from './rotation.ts';
import { splitPemBundle } from './x509.ts';

const DAY_MS = 86_400_000;
const start = Date.parse('2026-01-01T00:00:00Z');
const hosts = ['crowsnest-webhook.crowsnest-system.svc', 'crowsnest-webhook.crowsnest-system.svc.cluster.local'];

function rotate(data: Record<string, string>, nowMs: number, want = hosts): { data: Record<string, string>; steps: string[] } {
  const held = readHeldCertificates(data);
  const steps = planRotation(held, want, nowMs);
  if (steps.length === 0) return { data, steps: [] };
  return { data: applyRotation(held, steps, want, nowMs), steps: steps.map((s) => s.kind) };
}

const fingerprints = (bundle: string): Set<string> => new Set(splitPemBundle(bundle).map((pem) => new X509Certificate(pem).fingerprint256));

describe('planRotation', () => {
  it('creates a CA and a serving certificate from nothing, then has nothing to do', () => {
    const first = rotate({}, start);
    assert.deepEqual(first.steps, ['createCa', 'issueServing']);
    assert.deepEqual(Object.keys(first.data).sort(), ['ca-current.crt', 'ca-current.key', 'ca.crt', 'tls.crt', 'tls.key']);
    const serving = new X509Certificate(first.data[SECRET_KEYS.tlsCert]!);
    assert.ok(serving.checkIssued(new X509Certificate(first.data[SECRET_KEYS.caBundle]!)));
    assert.equal(Date.parse(serving.validFrom), start - 3_600_000, 'backdated an hour for clock skew');
    assert.equal(Date.parse(serving.validTo), start + 90 * DAY_MS);
    assert.deepEqual(rotate(first.data, start + DAY_MS).steps, []);
  });

  it('renews the serving certificate after two thirds of its lifetime, under the same CA', () => {
    const { data } = rotate({}, start);
    const due = nextRotationDue(readHeldCertificates(data));
    assert.equal(due, start - 3_600_000 + (90 * DAY_MS + 3_600_000) * (2 / 3));
    assert.deepEqual(rotate(data, due - 1).steps, []);
    const renewed = rotate(data, due);
    assert.deepEqual(renewed.steps, ['issueServing']);
    assert.equal(renewed.data[SECRET_KEYS.caCurrentCert], data[SECRET_KEYS.caCurrentCert]);
    assert.notEqual(renewed.data[SECRET_KEYS.tlsCert], data[SECRET_KEYS.tlsCert]);
  });

  it('reissues at once when the hosts change, and not when only their order or spelling does', () => {
    const { data } = rotate({}, start, ['svc.ns.svc', '::1']);
    assert.deepEqual(rotate(data, start + DAY_MS, ['0:0:0:0:0:0:0:1', 'SVC.ns.svc']).steps, []);
    const changed = rotate(data, start + DAY_MS, ['svc.ns.svc', '::1', '198.18.0.1']);
    assert.deepEqual(changed.steps, ['issueServing']);
    assert.equal(new X509Certificate(changed.data[SECRET_KEYS.tlsCert]!).checkIP('198.18.0.1'), '198.18.0.1');
  });

  it('replaces what does not hold together: a key that does not match, a certificate of another CA, garbage', () => {
    const { data } = rotate({}, start);
    const other = rotate({}, start).data;
    assert.deepEqual(rotate({ ...data, [SECRET_KEYS.tlsKey]: other[SECRET_KEYS.tlsKey]! }, start).steps, ['issueServing']);
    assert.deepEqual(rotate({ ...data, [SECRET_KEYS.tlsCert]: other[SECRET_KEYS.tlsCert]!, [SECRET_KEYS.tlsKey]: other[SECRET_KEYS.tlsKey]! }, start).steps, ['issueServing']);
    assert.deepEqual(rotate({ ...data, [SECRET_KEYS.caCurrentKey]: 'not a key' }, start).steps, ['createCa', 'issueServing']);
    const bundle = rotate({ ...data, [SECRET_KEYS.caBundle]: `garbage\n${data[SECRET_KEYS.caBundle]}` }, start);
    assert.deepEqual(bundle.steps, [], 'a bundle with junk besides the current CA is rewritten at the next change, not forced');
  });

  it('over twelve years: the serving certificate is always valid, and a bundle read at any time trusts every serving certificate of the year after', () => {
    let data: Record<string, string> = {};
    const stepMs = 5 * DAY_MS;
    const history: Array<{ at: number; bundle: Set<string>; issuer: string }> = [];
    const counts: Record<string, number> = {};
    for (let now = start; now < start + 12 * 365 * DAY_MS; now += stepMs) {
      const result = rotate(data, now);
      data = result.data;
      for (const step of result.steps) counts[step] = (counts[step] ?? 0) + 1;
      const serving = new X509Certificate(data[SECRET_KEYS.tlsCert]!);
      assert.ok(Date.parse(serving.validFrom) <= now && now < Date.parse(serving.validTo), `serving certificate valid at ${new Date(now).toISOString()}`);
      const bundle = fingerprints(data[SECRET_KEYS.caBundle]!);
      const issuer = splitPemBundle(data[SECRET_KEYS.caBundle]!).map((pem) => new X509Certificate(pem)).find((ca) => serving.checkIssued(ca) && serving.verify(ca.publicKey));
      assert.ok(issuer, 'the serving certificate chains to the bundle');
      assert.ok(Date.parse(issuer.validTo) > now, 'its CA has not expired');
      history.push({ at: now, bundle, issuer: issuer.fingerprint256 });
    }
    for (const [i, read] of history.entries()) {
      for (const later of history.slice(i)) {
        if (later.at - read.at >= DEFAULT_ROTATION_POLICY.caOverlapMs) break;
        assert.ok(read.bundle.has(later.issuer), `bundle of ${new Date(read.at).toISOString()} trusts the certificate of ${new Date(later.at).toISOString()}`);
      }
    }
    assert.deepEqual({ createCa: counts['createCa'], createNextCa: counts['createNextCa'], promoteNextCa: counts['promoteNextCa'], dropExpiredCas: counts['dropExpiredCas'] },
      { createCa: 1, createNextCa: 1, promoteNextCa: 1, dropExpiredCas: 1 });
    assert.ok(counts['issueServing']! >= 70 && counts['issueServing']! <= 75, `serving certificates issued about every 60 days: ${counts['issueServing']}`);
  });

  it('promotes the next CA when the current one expired before its time (a long outage), rather than making a third', () => {
    let data = rotate({}, start).data;
    data = rotate(data, start + 3650 * DAY_MS - 700 * DAY_MS).data; // next CA introduced
    assert.ok(data[SECRET_KEYS.caNextCert]);
    const late = rotate(data, start + 3650 * DAY_MS + DAY_MS);
    assert.deepEqual(late.steps, ['promoteNextCa', 'issueServing']);
    assert.equal(late.data[SECRET_KEYS.caCurrentCert], data[SECRET_KEYS.caNextCert]);
    assert.equal(splitPemBundle(late.data[SECRET_KEYS.caBundle]!).length, 1, 'the expired CA is not kept');
  });
});
