/**
 * The testbed's PKI: one CA, a serving certificate for kube-apiserver on 127.0.0.1/localhost,
 * client certificates for the admin and the control-plane components, and the service-account
 * signing key. Made with the openssl CLI (Node's crypto cannot issue X.509 certificates).
 */
import { execFile } from 'node:child_process';
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

export type ClientName = 'admin' | 'controller-manager' | 'scheduler' | 'kwok' | 'apiserver-kubelet-client';

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
};

const VALIDITY_DAYS = '3650';

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

/** Creates the PKI in `dir` unless it is already there (a restarted cluster keeps its identity). */
export async function ensurePki(dir: string): Promise<Pki> {
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

  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', VALIDITY_DAYS, '-subj', '/CN=crowsnest-testbed-ca'], dir);

  const issue = async (name: string, subject: string): Promise<void> => {
    await openssl(['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject], dir);
    await openssl(
      ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
        '-out', `${name}.crt`, '-days', VALIDITY_DAYS, '-extfile', `${name}.ext`],
      dir,
    );
  };
  await writeFile(
    join(dir, 'apiserver.ext'),
    'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n',
  );
  await issue('apiserver', '/CN=kube-apiserver');
  for (const [name, subject] of Object.entries(CLIENT_SUBJECTS)) {
    await writeFile(join(dir, `${name}.ext`), 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n');
    await issue(name, subject);
  }
  await openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'sa.key'], dir);
  await openssl(['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);
  await writeFile(join(dir, '.complete'), '');
  return pki;
}

/** Reads a file as base64, for kubeconfig `*-data` fields. */
export async function base64File(path: string): Promise<string> {
  return (await readFile(path)).toString('base64');
}
