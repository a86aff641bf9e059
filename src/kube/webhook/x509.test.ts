import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer } from 'node:tls';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { ipAddressBytes, issueCertificateAuthority, issueServingCertificate, keyMatchesCertificate, splitPemBundle } from './x509.ts';

const run = promisify(execFile);
const DAY_MS = 86_400_000;
const now = Date.parse('2026-03-01T12:00:00Z');

const ca = issueCertificateAuthority({ commonName: 'crowsnest-webhook-ca', notBeforeMs: now - 3_600_000, notAfterMs: now + 3650 * DAY_MS });
const hosts = ['crowsnest-webhook.crowsnest-system.svc', 'crowsnest-webhook.crowsnest-system.svc.cluster.local', '127.0.0.1', '::1'];
const serving = issueServingCertificate({ commonName: hosts[0]!, hosts, notBeforeMs: now - 3_600_000, notAfterMs: now + 90 * DAY_MS }, ca);

describe('issueCertificateAuthority', () => {
  it('is a self-signed v3 CA certificate Node reads back, with its validity to the second', () => {
    const cert = new X509Certificate(ca.certPem);
    assert.equal(cert.ca, true);
    assert.equal(cert.subject, 'CN=crowsnest-webhook-ca');
    assert.equal(cert.issuer, cert.subject);
    assert.ok(cert.verify(cert.publicKey), 'self-signature verifies');
    assert.ok(cert.checkIssued(cert));
    assert.equal(Date.parse(cert.validFrom), now - 3_600_000);
    assert.equal(Date.parse(cert.validTo), now + 3650 * DAY_MS);
    assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.ok(keyMatchesCertificate(ca.certPem, ca.keyPem));
  });

  it('writes validity after 2049 as GeneralizedTime', () => {
    const late = issueCertificateAuthority({ commonName: 'late', notBeforeMs: Date.parse('2049-06-01T00:00:00Z'), notAfterMs: Date.parse('2051-06-01T00:00:00Z') });
    const cert = new X509Certificate(late.certPem);
    assert.equal(new Date(cert.validTo).toISOString(), '2051-06-01T00:00:00.000Z');
    assert.equal(new Date(cert.validFrom).toISOString(), '2049-06-01T00:00:00.000Z');
  });

  it('gives each certificate its own serial and key', () => {
    const other = issueCertificateAuthority({ commonName: 'crowsnest-webhook-ca', notBeforeMs: now, notAfterMs: now + DAY_MS });
    assert.notEqual(new X509Certificate(other.certPem).serialNumber, new X509Certificate(ca.certPem).serialNumber);
    assert.equal(keyMatchesCertificate(ca.certPem, other.keyPem), false);
  });
});

describe('issueServingCertificate', () => {
  it('is issued by the CA, verifies with its key, and names every host', () => {
    const cert = new X509Certificate(serving.certPem);
    const caCert = new X509Certificate(ca.certPem);
    assert.equal(cert.ca, false);
    assert.ok(cert.checkIssued(caCert));
    assert.ok(cert.verify(caCert.publicKey));
    assert.equal(cert.issuer, 'CN=crowsnest-webhook-ca');
    assert.equal(cert.subjectAltName, 'DNS:crowsnest-webhook.crowsnest-system.svc, DNS:crowsnest-webhook.crowsnest-system.svc.cluster.local, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    assert.equal(cert.checkHost('crowsnest-webhook.crowsnest-system.svc'), 'crowsnest-webhook.crowsnest-system.svc');
    assert.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(cert.checkHost('elsewhere.example'), undefined);
    assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.1'], 'extended key usage: serverAuth');
    assert.ok(keyMatchesCertificate(serving.certPem, serving.keyPem));
    assert.equal(keyMatchesCertificate(serving.certPem, ca.keyPem), false);
  });

  it('passes openssl verify as a TLS server certificate of this CA (basicConstraints, keyUsage, key identifiers)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'x509-test-'));
    try {
      await writeFile(join(dir, 'ca.crt'), ca.certPem);
      await writeFile(join(dir, 'tls.crt'), serving.certPem);
      const at = String(Math.floor(now / 1000) + 60);
      const { stdout } = await run('openssl', ['verify', '-attime', at, '-x509_strict', '-purpose', 'sslserver', '-CAfile', join(dir, 'ca.crt'), join(dir, 'tls.crt')]);
      assert.match(stdout, /tls\.crt: OK/);
      const text = (await run('openssl', ['x509', '-in', join(dir, 'tls.crt'), '-noout', '-text'])).stdout;
      assert.match(text, /Version: 3/);
      assert.match(text, /X509v3 Basic Constraints: critical\s+CA:FALSE/);
      assert.match(text, /X509v3 Key Usage: critical\s+Digital Signature/);
      assert.match(text, /X509v3 Authority Key Identifier:/);
      const caText = (await run('openssl', ['x509', '-in', join(dir, 'ca.crt'), '-noout', '-text'])).stdout;
      assert.match(caText, /X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
      assert.match(caText, /Certificate Sign, CRL Sign/);
      // A certificate signed by another CA is refused.
      const stranger = issueCertificateAuthority({ commonName: 'crowsnest-webhook-ca', notBeforeMs: now - 3_600_000, notAfterMs: now + DAY_MS });
      await writeFile(join(dir, 'stranger.crt'), stranger.certPem);
      await assert.rejects(run('openssl', ['verify', '-attime', at, '-CAfile', join(dir, 'stranger.crt'), join(dir, 'tls.crt')]));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('serves TLS that a client trusting only the CA accepts, by IP and by name', async () => {
    const live = issueCertificateAuthority({ commonName: 'live-ca', notBeforeMs: Date.now() - 60_000, notAfterMs: Date.now() + DAY_MS });
    const leaf = issueServingCertificate({ commonName: 'localhost', hosts: ['localhost', '127.0.0.1'], notBeforeMs: Date.now() - 60_000, notAfterMs: Date.now() + DAY_MS }, live);
    const server = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (socket) => socket.end('hello'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const read = (servername: string | undefined, trusted: string) => new Promise<string>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port, ca: trusted, ...(servername ? { servername } : {}) }, () => {});
      let text = '';
      socket.on('data', (chunk: Buffer) => { text += chunk.toString(); });
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    try {
      assert.equal(await read(undefined, live.certPem), 'hello');
      assert.equal(await read('localhost', live.certPem), 'hello');
      await assert.rejects(read('localhost', ca.certPem), /self-signed|unable to verify|UNABLE_TO_GET_ISSUER/i);
    } finally {
      server.close();
    }
  });

  it('refuses to issue without a host', () => {
    assert.throws(() => issueServingCertificate({ commonName: 'x', hosts: [], notBeforeMs: now, notAfterMs: now + DAY_MS }, ca), /at least one host/);
  });
});

describe('ipAddressBytes', () => {
  it('encodes IPv4 and every IPv6 spelling', () => {
    assert.deepEqual([...ipAddressBytes('198.18.0.1')], [198, 18, 0, 1]);
    assert.equal(ipAddressBytes('::1').toString('hex'), '00000000000000000000000000000001');
    assert.equal(ipAddressBytes('fd00:10:96::1').toString('hex'), 'fd000010009600000000000000000001');
    assert.equal(ipAddressBytes('2001:db8:0:0:1:0:0:1').toString('hex'), '20010db8000000000001000000000001');
    assert.equal(ipAddressBytes('::ffff:198.18.0.1').toString('hex'), '00000000000000000000ffffc6120001');
    assert.equal(ipAddressBytes('fe80::').toString('hex'), 'fe800000000000000000000000000000');
    assert.throws(() => ipAddressBytes('example.com'));
  });
});

describe('splitPemBundle', () => {
  it('returns each certificate of a bundle', () => {
    const other = issueCertificateAuthority({ commonName: 'next', notBeforeMs: now, notAfterMs: now + DAY_MS });
    const parts = splitPemBundle(`${ca.certPem}${other.certPem}`);
    assert.deepEqual(parts, [ca.certPem, other.certPem]);
    assert.deepEqual(splitPemBundle(''), []);
  });
});
