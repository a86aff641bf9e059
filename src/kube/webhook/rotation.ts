/**
 * When the webhook's self-managed certificates change, decided as a pure function of what the
 * Secret holds, the time, and the hosts the serving certificate must name — then carried out by
 * {@link applyRotation}, which issues what the plan asks for.
 *
 * The Secret (type kubernetes.io/tls) holds:
 *
 * | key            | what                                                                  |
 * |----------------|-----------------------------------------------------------------------|
 * | `tls.crt/.key` | the serving certificate, signed by the current CA                     |
 * | `ca.crt`       | every CA a client should trust: retired (until they expire), current, next |
 * | `ca-current.crt/.key` | the CA that signs                                              |
 * | `ca-next.crt/.key`    | a CA being introduced (present only during a CA rotation)      |
 *
 * **Serving certificates** live 90 days and are renewed after two thirds of that (60 days), or
 * at once when the hosts change, the key does not match, or the current CA did not sign them.
 *
 * **CAs** live 10 years. Two years before the current CA expires a next CA is created and added
 * to `ca.crt`; a year later it becomes current (the serving certificate is reissued under it) and
 * the old one stays in `ca.crt` until it expires. Clients that read `ca.crt` at any time in that
 * year (the API server through the caBundle, kept current by the leader; agents injected in it)
 * trust both sides of the switch. An agent injected more than a year before the switch — it
 * carries the bundle of its day — must be restarted to trust the new CA; it says so in its log.
 */
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { ipAddressBytes, issueCertificateAuthority, issueServingCertificate, keyMatchesCertificate, splitPemBundle, type IssuedCertificate } from './x509.ts';

const DAY_MS = 86_400_000;

export interface RotationPolicy {
  readonly caValidityMs: number;
  /** A next CA is introduced this long before the current one expires. */
  readonly caRenewBeforeMs: number;
  /** How long the next CA is trusted (in `ca.crt`) before it signs. Less than caRenewBeforeMs. */
  readonly caOverlapMs: number;
  readonly servingValidityMs: number;
  /** Share of the serving certificate's lifetime after which it is renewed. */
  readonly servingRenewAt: number;
  /** Validity starts this long before now, for clients whose clocks run behind. */
  readonly backdateMs: number;
  /** CommonName of the CAs. */
  readonly caCommonName: string;
}

export const DEFAULT_ROTATION_POLICY: RotationPolicy = {
  caValidityMs: 3650 * DAY_MS,
  caRenewBeforeMs: 730 * DAY_MS,
  caOverlapMs: 365 * DAY_MS,
  servingValidityMs: 90 * DAY_MS,
  servingRenewAt: 2 / 3,
  backdateMs: 3_600_000,
  caCommonName: 'crowsnest-webhook-ca',
};

/** Secret data keys. */
export const SECRET_KEYS = {
  tlsCert: 'tls.crt', tlsKey: 'tls.key', caBundle: 'ca.crt',
  caCurrentCert: 'ca-current.crt', caCurrentKey: 'ca-current.key', caNextCert: 'ca-next.crt', caNextKey: 'ca-next.key',
} as const;

interface Held {
  readonly pem: string;
  readonly keyPem: string;
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
  readonly fingerprint: string;
}

/** What the Secret holds, parsed; unusable entries are absent. */
export interface HeldCertificates {
  readonly current?: Held;
  readonly next?: Held;
  /** CAs in `ca.crt` that are neither current nor next (certificate only). */
  readonly retired: readonly Omit<Held, 'keyPem'>[];
  readonly serving?: Held & { readonly hosts: readonly string[]; readonly issuerFingerprint?: string };
}

/** Reads the Secret's data (decoded to text); anything that does not parse or match its key is ignored. */
export function readHeldCertificates(data: Readonly<Record<string, string | undefined>>): HeldCertificates {
  const pair = (certKey: string, keyKey: string): Held | undefined => {
    const pem = data[certKey];
    const keyPem = data[keyKey];
    if (!pem || !keyPem || !keyMatchesCertificate(pem, keyPem)) return undefined;
    const cert = new X509Certificate(pem);
    return { pem: normalisePem(pem), keyPem, notBeforeMs: Date.parse(cert.validFrom), notAfterMs: Date.parse(cert.validTo), fingerprint: cert.fingerprint256 };
  };
  const current = pair(SECRET_KEYS.caCurrentCert, SECRET_KEYS.caCurrentKey);
  const next = pair(SECRET_KEYS.caNextCert, SECRET_KEYS.caNextKey);
  const servingPair = pair(SECRET_KEYS.tlsCert, SECRET_KEYS.tlsKey);
  let serving: HeldCertificates['serving'];
  if (servingPair) {
    const cert = new X509Certificate(servingPair.pem);
    const issuer = [current, next].find((ca) => ca && cert.checkIssued(new X509Certificate(ca.pem)) && cert.verify(new X509Certificate(ca.pem).publicKey));
    serving = { ...servingPair, hosts: sanHosts(cert), ...(issuer ? { issuerFingerprint: issuer.fingerprint } : {}) };
  }
  const known = new Set([current?.fingerprint, next?.fingerprint]);
  const retired: Array<Omit<Held, 'keyPem'>> = [];
  for (const pem of splitPemBundle(data[SECRET_KEYS.caBundle] ?? '')) {
    try {
      const cert = new X509Certificate(pem);
      if (!known.has(cert.fingerprint256) && cert.ca) {
        retired.push({ pem, notBeforeMs: Date.parse(cert.validFrom), notAfterMs: Date.parse(cert.validTo), fingerprint: cert.fingerprint256 });
      }
    } catch {
      // Not a certificate: dropped from the bundle at the next write.
    }
  }
  return { ...(current ? { current } : {}), ...(next ? { next } : {}), retired, ...(serving ? { serving } : {}) };
}

/** One step of a rotation, with the reason logged and recorded in an Event. */
export type RotationStep =
  | { readonly kind: 'createCa'; readonly reason: string }
  | { readonly kind: 'createNextCa'; readonly reason: string }
  | { readonly kind: 'promoteNextCa'; readonly reason: string }
  | { readonly kind: 'dropExpiredCas'; readonly reason: string }
  | { readonly kind: 'issueServing'; readonly reason: string };

/** The steps that bring `held` to what `hosts` and `policy` want at `nowMs`; empty when nothing is due. */
export function planRotation(held: HeldCertificates, hosts: readonly string[], nowMs: number, policy: RotationPolicy = DEFAULT_ROTATION_POLICY): RotationStep[] {
  const steps: RotationStep[] = [];
  let caChanged = false;
  if (!held.current || held.current.notAfterMs <= nowMs) {
    if (held.next && held.next.notAfterMs > nowMs) {
      steps.push({ kind: 'promoteNextCa', reason: held.current ? 'the current CA expired' : 'no usable current CA; the next one takes over' });
    } else {
      steps.push({ kind: 'createCa', reason: held.current ? 'the CA expired' : 'no CA yet' });
    }
    caChanged = true;
  } else if (held.next) {
    if (nowMs - held.next.notBeforeMs - policy.backdateMs >= policy.caOverlapMs) {
      steps.push({ kind: 'promoteNextCa', reason: `the next CA has been trusted for ${days(policy.caOverlapMs)} days` });
      caChanged = true;
    }
  } else if (held.current.notAfterMs - nowMs <= policy.caRenewBeforeMs) {
    steps.push({ kind: 'createNextCa', reason: `the CA expires in ${days(held.current.notAfterMs - nowMs)} days` });
  }
  if (held.retired.some((ca) => ca.notAfterMs <= nowMs)) steps.push({ kind: 'dropExpiredCas', reason: 'retired CAs expired' });

  const serving = held.serving;
  const servingReason = caChanged ? 'the signing CA changed'
    : !serving ? 'no serving certificate yet'
      : serving.issuerFingerprint !== held.current?.fingerprint ? 'the serving certificate was not signed by the current CA'
        : !sameHosts(serving.hosts, hosts) ? `the hosts changed (${serving.hosts.join(', ')} → ${hosts.join(', ')})`
          : nowMs >= serving.notBeforeMs + (serving.notAfterMs - serving.notBeforeMs) * policy.servingRenewAt
            ? `${Math.round(policy.servingRenewAt * 100)} % of its lifetime passed (it expires ${new Date(serving.notAfterMs).toISOString()})`
            : undefined;
  if (servingReason) steps.push({ kind: 'issueServing', reason: servingReason });
  return steps;
}

/** Secret data (text) after carrying out `steps`; issues keys and certificates as needed. */
export function applyRotation(held: HeldCertificates, steps: readonly RotationStep[], hosts: readonly string[], nowMs: number, policy: RotationPolicy = DEFAULT_ROTATION_POLICY): Record<string, string> {
  const notBeforeMs = nowMs - policy.backdateMs;
  const newCa = (): IssuedCertificate => issueCertificateAuthority({ commonName: policy.caCommonName, notBeforeMs, notAfterMs: nowMs + policy.caValidityMs });
  let current: { certPem: string; keyPem: string; notAfterMs: number } | undefined = held.current && { certPem: held.current.pem, keyPem: held.current.keyPem, notAfterMs: held.current.notAfterMs };
  let next: { certPem: string; keyPem: string } | undefined = held.next && { certPem: held.next.pem, keyPem: held.next.keyPem };
  let retired = held.retired.map((ca) => ({ pem: ca.pem, notAfterMs: ca.notAfterMs }));
  let serving: { certPem: string; keyPem: string } | undefined = held.serving && { certPem: held.serving.pem, keyPem: held.serving.keyPem };
  for (const step of steps) {
    if (step.kind === 'createCa') {
      if (current && current.notAfterMs > nowMs) retired.push({ pem: current.certPem, notAfterMs: current.notAfterMs });
      const ca = newCa();
      current = { ...ca, notAfterMs: nowMs + policy.caValidityMs };
    } else if (step.kind === 'createNextCa') {
      next = newCa();
    } else if (step.kind === 'promoteNextCa' && next) {
      if (current && current.notAfterMs > nowMs) retired.push({ pem: current.certPem, notAfterMs: current.notAfterMs });
      current = { ...next, notAfterMs: Date.parse(new X509Certificate(next.certPem).validTo) };
      next = undefined;
    } else if (step.kind === 'dropExpiredCas') {
      retired = retired.filter((ca) => ca.notAfterMs > nowMs);
    } else if (step.kind === 'issueServing') {
      if (!current) throw new Error('cannot issue a serving certificate without a CA');
      const notAfterMs = Math.min(nowMs + policy.servingValidityMs, current.notAfterMs);
      serving = issueServingCertificate({ commonName: hosts[0] ?? 'crowsnest-webhook', hosts, notBeforeMs, notAfterMs }, current);
    }
  }
  if (!current || !serving) throw new Error('rotation left no CA or no serving certificate');
  const bundle = [...retired.map((ca) => ca.pem), current.certPem, ...(next ? [next.certPem] : [])].map(normalisePem).join('');
  return {
    [SECRET_KEYS.tlsCert]: serving.certPem,
    [SECRET_KEYS.tlsKey]: serving.keyPem,
    [SECRET_KEYS.caBundle]: bundle,
    [SECRET_KEYS.caCurrentCert]: current.certPem,
    [SECRET_KEYS.caCurrentKey]: current.keyPem,
    ...(next ? { [SECRET_KEYS.caNextCert]: next.certPem, [SECRET_KEYS.caNextKey]: next.keyPem } : {}),
  };
}

/** When the plan next has something to do (for scheduling the next check), in ms since the epoch. */
export function nextRotationDue(held: HeldCertificates, policy: RotationPolicy = DEFAULT_ROTATION_POLICY): number {
  const candidates: number[] = [];
  if (held.serving) candidates.push(held.serving.notBeforeMs + (held.serving.notAfterMs - held.serving.notBeforeMs) * policy.servingRenewAt);
  if (held.current) candidates.push(held.next ? held.next.notBeforeMs + policy.backdateMs + policy.caOverlapMs : held.current.notAfterMs - policy.caRenewBeforeMs);
  for (const ca of held.retired) candidates.push(ca.notAfterMs);
  return candidates.length ? Math.min(...candidates) : 0;
}

function sanHosts(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? '').split(', ').filter(Boolean).map((entry) => entry.replace(/^DNS:/, '').replace(/^IP Address:/, ''));
}

function sameHosts(have: readonly string[], want: readonly string[]): boolean {
  const normalise = (hosts: readonly string[]) => [...new Set(hosts.map(canonicalHost))].sort().join(',');
  return normalise(have) === normalise(want);
}

/** Addresses as their bytes (X509Certificate prints `0:0:0:0:0:0:0:1` for `::1`), names lower-case. */
function canonicalHost(host: string): string {
  return isIP(host) ? ipAddressBytes(host).toString('hex') : host.toLowerCase();
}

function normalisePem(pem: string): string {
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}

function days(ms: number): number {
  return Math.round(ms / DAY_MS);
}
