/**
 * The testbed's PKI: one CA, a serving certificate for kube-apiserver (127.0.0.1, localhost, the
 * host's address on the real nodes' bridge and the `kubernetes` Service IP), client certificates
 * for the admin and the control-plane components, per-node kubelet certificates
 * ({@link issueCertificate}), and the service-account signing key. Made with the openssl CLI
 * (Node's crypto cannot issue X.509 certificates).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, access, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Paths of the files written by {@link ensurePki}. */
export interface Pki {
  readonly dir: string;
  readonly caCert: string;
  readonly caKey: string;
  readonly servingCert: string;
  readonly servingKey: string;
  readonly serviceAccountKey: string;
  readonly serviceAccountPub: string;
  /** Client certificate per identity name (admin, controller-manager, scheduler, kwok). */
  readonly clients: Readonly<Record<ClientName, { readonly cert: string; readonly key: string }>>;
}

export type ClientName = 'admin' | 'controller-manager' | 'scheduler' | 'kwok' | 'apiserver-kubelet-client' | 'kube-proxy' | 'coredns';

/**
 * Subjects of the client certificates. The controller-manager and scheduler get their own
 * identities so the bootstrap RBAC roles (not system:masters) decide what they may do, as in a
 * real cluster; kwok plays every kubelet at once, so it is an admin.
 */
const CLIENT_SUBJECTS: Readonly<Record<ClientName, string>> = {
  admin: '/O=system:masters/CN=crowsnest-testbed-admin',
  'controller-manager': '/CN=system:kube-controller-manager',
  scheduler: '/CN=system:kube-scheduler',
  kwok: '/O=system:masters/CN=kwok',
  'apiserver-kubelet-client': '/O=system:masters/CN=kube-apiserver-kubelet-client',
  // Bound to system:node-proxier by the API server's bootstrap policy.
  'kube-proxy': '/CN=system:kube-proxy',
  // Granted what CoreDNS's kubernetes plugin reads by a ClusterRole the control plane creates.
  coredns: '/CN=crowsnest-testbed:coredns',
};

const VALIDITY_DAYS = '3650';
/** openssl req arguments for a new P-256 key without a passphrase. */
const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

async function openssl(args: string[], cwd: string): Promise<void> {
  await run('openssl', args, { cwd });
}

/**
 * Creates the PKI in `dir` unless it is already there (a restarted cluster keeps its identity).
 * The API server's certificate is valid for 127.0.0.1, localhost, the `kubernetes` Service names
 * and `servingIps` (the address it binds, the Service's ClusterIP).
 */
export async function ensurePki(dir: string, servingIps: readonly string[] = []): Promise<Pki> {
  await mkdir(dir, { recursive: true });
  const pki: Pki = {
    dir,
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    servingCert: join(dir, 'apiserver.crt'),
    servingKey: join(dir, 'apiserver.key'),
    serviceAccountKey: join(dir, 'sa.key'),
    serviceAccountPub: join(dir, 'sa.pub'),
    clients: Object.fromEntries(
      (Object.keys(CLIENT_SUBJECTS) as ClientName[]).map((n) => [n, { cert: join(dir, `${n}.crt`), key: join(dir, `${n}.key`) }]),
    ) as Pki['clients'],
  };
  if (await exists(join(dir, '.complete'))) return pki;

  await openssl(['req', '-x509', ...EC_KEY, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', VALIDITY_DAYS, '-subj', '/CN=crowsnest-testbed-ca'], dir);

  await issueCertificate(pki, 'apiserver', {
    subject: '/CN=kube-apiserver',
    usage: 'serverAuth',
    ips: ['127.0.0.1', ...servingIps],
    dns: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'],
  });
  for (const [name, subject] of Object.entries(CLIENT_SUBJECTS)) await issueCertificate(pki, name, { subject, usage: 'clientAuth' });
  await openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'sa.key'], dir);
  await openssl(['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);
  await writeFile(join(dir, '.complete'), '');
  return pki;
}

/**
 * Issues `<name>.crt` / `<name>.key` in the PKI dir, signed by its CA: a client certificate
 * (`subject` carries the user as CN and groups as O) or a serving certificate for `ips`/`dns`.
 * Returns the paths.
 */
export async function issueCertificate(
  pki: Pick<Pki, 'dir'>,
  name: string,
  options: { subject: string; usage: 'clientAuth' | 'serverAuth'; ips?: readonly string[]; dns?: readonly string[] },
): Promise<{ cert: string; key: string }> {
  const dir = pki.dir;
  const sans = [...(options.ips ?? []).map((ip) => `IP:${ip}`), ...(options.dns ?? []).map((d) => `DNS:${d}`)];
  await writeFile(
    join(dir, `${name}.ext`),
    `${sans.length ? `subjectAltName=${sans.join(',')}\n` : ''}extendedKeyUsage=${options.usage}\nkeyUsage=digitalSignature,keyEncipherment\n`,
  );
  await openssl(['req', ...EC_KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', options.subject], dir);
  await openssl(
    // A random serial rather than -CAcreateserial: certificates are issued concurrently (one per
    // node), and openssl's serial file is not safe for that.
    ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', `0x${randomBytes(16).toString('hex')}`,
      '-out', `${name}.crt`, '-days', VALIDITY_DAYS, '-extfile', `${name}.ext`],
    dir,
  );
  return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
}

/** Reads a file as base64, for kubeconfig `*-data` fields. */
export async function base64File(path: string): Promise<string> {
  return (await readFile(path)).toString('base64');
}
