/**
 * Issuing the webhook's certificates without openssl: a CA and serving certificates, ECDSA P-256
 * with SHA-256, as DER written here and signed with node:crypto. Node can parse and verify X.509
 * (`X509Certificate`) but not create it, and our image has no openssl binary; a library for this
 * (@peculiar/x509) brings seven packages and a reflection polyfill for ~250 lines of ASN.1 that
 * only ever encode the handful of fields below.
 *
 * What is encoded (RFC 5280): v3, a random positive 128-bit serial, issuer and subject as one
 * CommonName, validity (UTCTime until 2049, GeneralizedTime after), the public key as Node
 * exports it (SubjectPublicKeyInfo), and the extensions a TLS client checks: basicConstraints
 * (critical), keyUsage (critical), extKeyUsage serverAuth for serving certificates,
 * subjectAltName (DNS names and IP addresses), subject and authority key identifiers. The tests
 * read every certificate back with `X509Certificate` and have openssl verify the chain.
 */
import { createHash, createPrivateKey, generateKeyPairSync, type KeyObject, randomBytes, sign, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';

// ---------------------------------------------------------------------------------------------
// DER

const TAG = {
  boolean: 0x01, integer: 0x02, bitString: 0x03, octetString: 0x04, oid: 0x06, utf8String: 0x0c,
  sequence: 0x30, set: 0x31, utcTime: 0x17, generalizedTime: 0x18,
} as const;

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let rest = n; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), length(content.length), content]);
}

const sequence = (...items: Buffer[]): Buffer => tlv(TAG.sequence, Buffer.concat(items));
const set = (...items: Buffer[]): Buffer => tlv(TAG.set, Buffer.concat(items));
/** `[n] EXPLICIT`: a constructed context-specific wrapper. */
const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner);
const octetString = (bytes: Buffer): Buffer => tlv(TAG.octetString, bytes);
const utf8 = (text: string): Buffer => tlv(TAG.utf8String, Buffer.from(text, 'utf8'));
const boolean = (value: boolean): Buffer => tlv(TAG.boolean, Buffer.from([value ? 0xff : 0x00]));

/** A non-negative INTEGER from big-endian bytes (leading zeros trimmed, a 0x00 added when the top bit is set). */
function unsignedInteger(bytes: Buffer): Buffer {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  const trimmed = bytes.subarray(start);
  return tlv(TAG.integer, (trimmed[0]! & 0x80) !== 0 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed);
}

function smallInteger(value: number): Buffer {
  return unsignedInteger(Buffer.from([value]));
}

/** BIT STRING of whole bytes (unused bits 0), or of flags numbered from the most significant bit. */
function bitString(bytes: Buffer, unusedBits = 0): Buffer {
  return tlv(TAG.bitString, Buffer.concat([Buffer.from([unusedBits]), bytes]));
}

function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const bytes: number[] = [parts[0]! * 40 + parts[1]!];
  for (const part of parts.slice(2)) {
    const base128: number[] = [];
    let rest = part;
    do {
      base128.unshift(rest % 128);
      rest = Math.floor(rest / 128);
    } while (rest > 0);
    for (let i = 0; i < base128.length - 1; i++) base128[i]! |= 0x80;
    bytes.push(...base128);
  }
  return tlv(TAG.oid, Buffer.from(bytes));
}

/** UTCTime for 1950–2049, GeneralizedTime otherwise (RFC 5280 §4.1.2.5); whole seconds, Z. */
function time(epochMs: number): Buffer {
  const iso = new Date(Math.floor(epochMs / 1000) * 1000).toISOString(); // 2026-01-02T03:04:05.000Z
  const year = Number(iso.slice(0, 4));
  const digits = iso.slice(0, 19).replace(/[-:T]/g, '');
  return year >= 1950 && year < 2050 ? tlv(TAG.utcTime, Buffer.from(`${digits.slice(2)}Z`)) : tlv(TAG.generalizedTime, Buffer.from(`${digits}Z`));
}

const OID = {
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  subjectAltName: '2.5.29.17',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
} as const;

function name(commonName: string, organization?: string): Buffer {
  const rdns: Buffer[] = [];
  if (organization) rdns.push(set(sequence(oid(OID.organization), utf8(organization))));
  rdns.push(set(sequence(oid(OID.commonName), utf8(commonName))));
  return sequence(...rdns);
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return sequence(oid(id), ...(critical ? [boolean(true)] : []), octetString(value));
}

/** IPv4 or IPv6 address as 4 or 16 bytes. */
export function ipAddressBytes(address: string): Buffer {
  const family = isIP(address);
  if (family === 4) return Buffer.from(address.split('.').map(Number));
  if (family !== 6) throw new Error(`not an IP address: ${address}`);
  let text = address;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    text = `${text.slice(0, -v4[1]!.length)}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') as [string, string] : [text, undefined];
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array<string>(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups];
  const bytes = Buffer.alloc(16);
  groups.forEach((group, i) => { bytes.writeUInt16BE(Number.parseInt(group, 16), i * 2); });
  return bytes;
}

function subjectAltName(hosts: readonly string[]): Buffer {
  // GeneralName: dNSName [2] IMPLICIT IA5String, iPAddress [7] IMPLICIT OCTET STRING.
  return sequence(...hosts.map((host) => (isIP(host) ? tlv(0x87, ipAddressBytes(host)) : tlv(0x82, Buffer.from(host, 'ascii')))));
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
function keyIdentifier(spki: Buffer): Buffer {
  // SubjectPublicKeyInfo ::= SEQUENCE { algorithm, subjectPublicKey BIT STRING }: for P-256 the
  // BIT STRING is the last 66 bytes (tag, length, unused-bits byte, 65-byte point).
  const point = spki.subarray(spki.length - 65);
  return createHash('sha1').update(point).digest();
}

// ---------------------------------------------------------------------------------------------
// Certificates

/** A certificate and its key, PEM. */
export interface IssuedCertificate {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface CertificateRequest {
  readonly commonName: string;
  /** Validity start, in milliseconds since the epoch (backdated by the caller for clock skew). */
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
}

export interface ServingCertificateRequest extends CertificateRequest {
  /** DNS names and IP addresses (subjectAltName). */
  readonly hosts: readonly string[];
}

const KEY_USAGE_CA = { bits: Buffer.from([0x86]), unused: 1 }; // digitalSignature, keyCertSign, cRLSign
const KEY_USAGE_SERVING = { bits: Buffer.from([0x80]), unused: 7 }; // digitalSignature (ECDHE key agreement signs)

function newKey(): { privateKey: KeyObject; spki: Buffer } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { privateKey, spki: publicKey.export({ type: 'spki', format: 'der' }) };
}

function serialNumber(): Buffer {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01; // positive, never zero, never trimmed below 16 bytes
  return bytes;
}

function certificate(tbs: Buffer, issuerKey: KeyObject): string {
  const signature = sign('sha256', tbs, issuerKey); // ECDSA signatures come out DER-encoded
  const der = sequence(tbs, sequence(oid(OID.ecdsaWithSha256)), bitString(signature));
  return `-----BEGIN CERTIFICATE-----\n${der.toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END CERTIFICATE-----\n`;
}

function tbsCertificate(options: {
  readonly issuer: Buffer; readonly subject: Buffer; readonly spki: Buffer; readonly request: CertificateRequest; readonly extensions: readonly Buffer[];
}): Buffer {
  return sequence(
    explicit(0, smallInteger(2)),
    unsignedInteger(serialNumber()),
    sequence(oid(OID.ecdsaWithSha256)),
    options.issuer,
    sequence(time(options.request.notBeforeMs), time(options.request.notAfterMs)),
    options.subject,
    options.spki,
    explicit(3, sequence(...options.extensions)),
  );
}

/** A self-signed CA that may sign end-entity certificates only (pathLen 0). */
export function issueCertificateAuthority(request: CertificateRequest): IssuedCertificate {
  const { privateKey, spki } = newKey();
  const subject = name(request.commonName);
  const id = keyIdentifier(spki);
  const tbs = tbsCertificate({
    issuer: subject, subject, spki, request,
    extensions: [
      extension(OID.basicConstraints, true, sequence(boolean(true), smallInteger(0))),
      extension(OID.keyUsage, true, bitString(KEY_USAGE_CA.bits, KEY_USAGE_CA.unused)),
      extension(OID.subjectKeyIdentifier, false, octetString(id)),
    ],
  });
  return { certPem: certificate(tbs, privateKey), keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}

/** A serving certificate for `hosts`, signed by `ca`. */
export function issueServingCertificate(request: ServingCertificateRequest, ca: IssuedCertificate): IssuedCertificate {
  if (request.hosts.length === 0) throw new Error('a serving certificate needs at least one host');
  const caCert = new X509Certificate(ca.certPem);
  const caKey = createPrivateKey(ca.keyPem);
  const caSpki = caCert.publicKey.export({ type: 'spki', format: 'der' });
  const { privateKey, spki } = newKey();
  const tbs = tbsCertificate({
    issuer: subjectDer(caCert), subject: name(request.commonName), spki, request,
    extensions: [
      extension(OID.basicConstraints, true, sequence()),
      extension(OID.keyUsage, true, bitString(KEY_USAGE_SERVING.bits, KEY_USAGE_SERVING.unused)),
      extension(OID.extKeyUsage, false, sequence(oid(OID.serverAuth))),
      extension(OID.subjectAltName, false, subjectAltName(request.hosts)),
      extension(OID.subjectKeyIdentifier, false, octetString(keyIdentifier(spki))),
      extension(OID.authorityKeyIdentifier, false, sequence(tlv(0x80, keyIdentifier(caSpki)))),
    ],
  });
  return { certPem: certificate(tbs, caKey), keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}

/**
 * The issuer's subject exactly as the issuer encodes it (a verifier compares names byte for
 * byte after normalising; copying the bytes leaves nothing to normalise). Read from the DER:
 * Certificate → tbsCertificate → its 6th element (version, serial, signature, issuer, validity,
 * subject).
 */
function subjectDer(cert: X509Certificate): Buffer {
  const tbs = children(children(cert.raw)[0]!);
  return tbs[5]!;
}

/** The complete TLVs inside a constructed DER element. */
function children(element: Buffer): Buffer[] {
  const { headerLength, contentLength } = header(element);
  const content = element.subarray(headerLength, headerLength + contentLength);
  const items: Buffer[] = [];
  for (let at = 0; at < content.length;) {
    const h = header(content.subarray(at));
    items.push(content.subarray(at, at + h.headerLength + h.contentLength));
    at += h.headerLength + h.contentLength;
  }
  return items;
}

function header(element: Buffer): { headerLength: number; contentLength: number } {
  const first = element[1]!;
  if (first < 0x80) return { headerLength: 2, contentLength: first };
  const count = first & 0x7f;
  let contentLength = 0;
  for (let i = 0; i < count; i++) contentLength = contentLength * 256 + element[2 + i]!;
  return { headerLength: 2 + count, contentLength };
}

/** Whether `keyPem` is the private key of `certPem`. */
export function keyMatchesCertificate(certPem: string, keyPem: string): boolean {
  try {
    const cert = new X509Certificate(certPem);
    return cert.checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

/** The PEM certificates in a bundle, in order. */
export function splitPemBundle(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g)?.map((pem) => (pem.endsWith('\n') ? pem : `${pem}\n`)) ?? [];
}
