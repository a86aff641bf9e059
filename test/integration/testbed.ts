/**
 * One shared control plane per test process. Integration tests call {@link testbed} to get it
 * (started on first use) and {@link newNamespace} for an isolated namespace of their own. The
 * test runner's global teardown ({@link globalTeardown}) stops it; the control plane also kills
 * itself when the process exits for any other reason.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';
import { ControlPlane } from '../../testbed/controlplane.ts';

let shared: Promise<ControlPlane> | undefined;

/**
 * The shared cluster: three kwok nodes (tainted: see {@link KWOK_TOLERATION}) and two real nodes,
 * `crowsnest-real-0` and `crowsnest-real-1` (see testbed/realnode.ts and realpods.ts).
 */
export function testbed(): Promise<ControlPlane> {
  shared ??= ControlPlane.start({ kwokNodes: 3, realNodes: 2 });
  return shared;
}

/** Creates a namespace named `<prefix>-<random>` and waits for its default ServiceAccount. */
export async function newNamespace(prefix: string): Promise<string> {
  const plane = await testbed();
  const name = `${prefix}-${randomBytes(3).toString('hex')}`.toLowerCase();
  const res = await plane.request('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  if (res.status !== 201) throw new Error(`creating namespace ${name}: ${res.status} ${res.body}`);
  return name;
}

export async function globalSetup(): Promise<void> {
  await testbed();
}

export async function globalTeardown(): Promise<void> {
  if (shared) await (await shared).stop();
}

/** POSTs `body` to `path` as admin; an error naming the answer unless it was created (201). */
export async function createObject(path: string, body: unknown): Promise<void> {
  const plane = await testbed();
  const res = await plane.request('POST', path, body);
  if (res.status !== 201) throw new Error(`POST ${path}: ${res.status} ${res.body}`);
}

/** GET `path` as admin, parsed; `undefined` on 404, an error naming the answer otherwise. */
export async function getObject<T>(path: string): Promise<T | undefined> {
  const plane = await testbed();
  const res = await plane.request('GET', path);
  if (res.status === 404) return undefined;
  if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${res.body}`);
  return JSON.parse(res.body) as T;
}

/** The items of the list at `path`, as admin (none when it is not found). */
export async function listObjects<T>(path: string): Promise<T[]> {
  return (await getObject<{ items: T[] }>(path))?.items ?? [];
}

/** A client-node KubeConfig for the testbed admin, optionally pointed at another port (a proxy). */
export async function adminKubeConfig(options: { port?: number } = {}): Promise<KubeConfig> {
  const plane = await testbed();
  const kc = new KubeConfig();
  kc.loadFromFile(plane.kubeconfigPath);
  if (options.port !== undefined) {
    const cluster = kc.getCurrentCluster()!;
    // A relay on loopback (TcpProxy): the serving certificate is valid for 127.0.0.1 too.
    kc.clusters = kc.clusters.map((c) => (c.name === cluster.name ? { ...c, server: `https://127.0.0.1:${options.port}` } : c));
  }
  return kc;
}

export { eventually } from '../../testbed/kubelet.ts';

/**
 * A request to the testbed's apiserver authenticated only by a bearer token (no client
 * certificate), so RBAC decides as it would for that ServiceAccount. `body` objects go as JSON.
 */
export async function asToken(token: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: string }> {
  const plane = await testbed();
  const ca = await readFile(plane.pki.caCert);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return await new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: plane.host, port: plane.ports.apiserver, path, method, ca,
        headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...(payload ? { 'content-type': 'application/json' } : {}) },
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** Issues a token for the existing ServiceAccount `namespace/name` through TokenRequest (valid `expirationSeconds`, default 600). */
export async function requestToken(namespace: string, name: string, expirationSeconds = 600): Promise<string> {
  const plane = await testbed();
  const res = await plane.request('POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec: { expirationSeconds },
  });
  if (res.status !== 201) throw new Error(`TokenRequest for ${namespace}/${name}: ${res.status} ${res.body}`);
  return (JSON.parse(res.body) as { status: { token: string } }).status.token;
}

/** Creates ServiceAccount `namespace/name` and returns a token for it (see {@link requestToken}). */
export async function serviceAccountToken(namespace: string, name: string): Promise<string> {
  const plane = await testbed();
  const created = await plane.request('POST', `/api/v1/namespaces/${namespace}/serviceaccounts`, { metadata: { name } });
  if (created.status !== 201) throw new Error(`creating ServiceAccount ${namespace}/${name}: ${created.status} ${created.body}`);
  return await requestToken(namespace, name);
}

export { containerLogsPath, finishPod, serveContainerLogs } from '../../testbed/kubelet.ts';
export { KWOK_NODE_SELECTOR, KWOK_TOLERATION, ON_KWOK_NODES } from '../../testbed/controlplane.ts';
/** Pods that run for real on the real nodes: create and wait, log, exec, reach from the host. */
export { execInPod, fetchFromHost, httpServerCommand, podLog, runPod, waitForPod } from '../../testbed/realpods.ts';
