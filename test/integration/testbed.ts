/**
 * One shared control plane per test process. Integration tests call {@link testbed} to get it
 * (started on first use) and {@link newNamespace} for an isolated namespace of their own. The
 * test runner's global teardown ({@link globalTeardown}) stops it; the control plane also kills
 * itself when the process exits for any other reason.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { dirname, join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { ControlPlane } from '../../testbed/controlplane.ts';

let shared: Promise<ControlPlane> | undefined;

export function testbed(): Promise<ControlPlane> {
  shared ??= ControlPlane.start({ nodes: 3 });
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

/** A client-node KubeConfig for the testbed admin, optionally pointed at another port (a proxy). */
export async function adminKubeConfig(options: { port?: number } = {}): Promise<KubeConfig> {
  const plane = await testbed();
  const kc = new KubeConfig();
  kc.loadFromFile(plane.kubeconfigPath);
  if (options.port !== undefined) {
    const cluster = kc.getCurrentCluster()!;
    kc.clusters = kc.clusters.map((c) => (c.name === cluster.name ? { ...c, server: `https://127.0.0.1:${options.port}` } : c));
  }
  return kc;
}

/** Polls `probe` every 50 ms until it returns true; fails with `what` after `timeoutMs`. */
export async function eventually(what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
}

/** Runs `fn` over `items` with at most `concurrency` in flight. */
export async function inParallel<T>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

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
        host: '127.0.0.1', port: plane.ports.apiserver, path, method, ca,
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

// --- standing in for a kubelet: container logs and container exit --------------------------------
//
// kwok's nodes run nothing. A test that needs a pod to "do work" (the scan pods of
// `crowsnest ports collect`, say) does the work itself, then uses these two helpers so the pod
// looks, through the real apiserver, as if a kubelet had run it: its log returns the output
// (`GET pods/<pod>/log` → apiserver → kwok's kubelet server → a file) and it ends Succeeded or
// Failed with its container terminated.

const KWOK_LOGS_API = '/apis/kwok.x-k8s.io/v1alpha1';

/** The file {@link serveContainerLogs} writes for a container, under the control plane's dir. */
export function containerLogsPath(plane: ControlPlane, ref: { namespace: string; pod: string; container: string }): string {
  return join(plane.dir, 'container-logs', ref.namespace, ref.pod, `${ref.container}.log`);
}

/**
 * Makes `GET /api/v1/namespaces/<namespace>/pods/<pod>/log?container=<container>` return exactly
 * `text` (any string: several lines, no trailing newline, empty), for any client the apiserver
 * lets read pod logs, while the pod is running and after it has terminated.
 *
 * Writes `text` in the CRI log format (what kubelet reads; one stdout entry per line, the current
 * time as every line's timestamp, so `timestamps=true` prefixes that) to
 * {@link containerLogsPath} and points kwok at it with a `kwok.x-k8s.io/v1alpha1` `Logs` object
 * named after the pod (one entry per container; other containers' entries are kept). Calling it
 * again replaces the text. Resolves once the apiserver serves the new text, which needs the pod
 * to exist and be bound to a kwok node (`spec.nodeName`); rejects after 30 s otherwise.
 *
 * The `Logs` object outlives the pod (it goes with the namespace): a new pod of the same name
 * serves the last text served for that name until this is called for it.
 */
export async function serveContainerLogs(
  plane: ControlPlane,
  options: { namespace: string; pod: string; container: string; text: string },
): Promise<void> {
  const { namespace, pod, container, text } = options;
  const file = containerLogsPath(plane, options);
  await mkdir(dirname(file), { recursive: true });
  // Written aside and renamed so that kwok, which opens the file for every request, never reads
  // half of it.
  await writeFile(`${file}.tmp`, criLog(text));
  await rename(`${file}.tmp`, file);

  const path = `${KWOK_LOGS_API}/namespaces/${namespace}/logs/${pod}`;
  for (let attempt = 0; ; attempt++) {
    const got = await plane.request('GET', path);
    let res: { status: number; body: string };
    if (got.status === 404) {
      res = await plane.request('POST', `${KWOK_LOGS_API}/namespaces/${namespace}/logs`, {
        apiVersion: 'kwok.x-k8s.io/v1alpha1', kind: 'Logs', metadata: { name: pod }, spec: { logs: [{ containers: [container], logsFile: file }] },
      });
    } else if (got.status === 200) {
      const logs = JSON.parse(got.body) as KwokLogs;
      if (logs.spec.logs.some((l) => l.logsFile === file && l.containers?.length === 1 && l.containers[0] === container)) break;
      const others = logs.spec.logs
        .map((l) => (l.containers?.includes(container) ? { ...l, containers: l.containers.filter((c) => c !== container) } : l))
        .filter((l) => l.containers === undefined || l.containers.length > 0);
      res = await plane.request('PUT', path, { ...logs, spec: { ...logs.spec, logs: [...others, { containers: [container], logsFile: file }] } });
    } else {
      throw new Error(`reading kwok Logs ${namespace}/${pod}: ${got.status} ${got.body}`);
    }
    if (res.status === 200 || res.status === 201) break;
    if (res.status !== 409 || attempt >= 10) throw new Error(`writing kwok Logs ${namespace}/${pod}: ${res.status} ${res.body}`);
  }

  const logPath = `/api/v1/namespaces/${namespace}/pods/${pod}/log?container=${encodeURIComponent(container)}`;
  let last = { status: 0, body: '' };
  try {
    await eventually(`the apiserver serves the log of ${namespace}/${pod} container ${container}`, async () => {
      last = await plane.request('GET', logPath, undefined, { accept: '*/*' });
      return last.status === 200 && last.body === text;
    });
  } catch (err) {
    throw new Error(`${(err as Error).message} (last answer: HTTP ${last.status} ${last.body.slice(0, 300)})`);
  }
}

interface KwokLogs {
  metadata: { name: string; resourceVersion?: string };
  spec: { logs: Array<{ containers?: string[]; logsFile?: string; follow?: boolean; previousLogsFile?: string }> };
}

/**
 * `text` as a CRI container log file: `<RFC 3339 time> stdout F <line>\n` per line; a last line
 * without a newline is tagged P (partial), which the reader emits without a newline.
 */
function criLog(text: string): string {
  const time = new Date().toISOString();
  const lines = text.split('\n');
  const rest = lines.pop()!;
  return lines.map((line) => `${time} stdout F ${line}\n`).join('') + (rest === '' ? '' : `${time} stdout P ${rest}\n`);
}

interface PodForFinish {
  metadata: { resourceVersion: string };
  spec: { restartPolicy?: string; containers: Array<{ name: string; image?: string }> };
  status?: {
    phase?: string;
    podIP?: string;
    conditions?: Array<{ type: string; status: string; reason?: string; message?: string; lastTransitionTime?: string }>;
    containerStatuses?: Array<{ name: string; state?: { running?: { startedAt?: string } } } & Record<string, unknown>>;
  };
}

/**
 * Ends a running pod as a kubelet would when its containers exit with `exitCode`: phase
 * Succeeded (every container exit code 0) or Failed, each container `terminated` (`exitCode`,
 * reason Completed or Error, `startedAt` from its running state, `finishedAt` now, not ready),
 * and the Ready and ContainersReady conditions False (reason PodCompleted, or ContainersNotReady
 * for Failed). `exitCode` applies to every container of the pod.
 *
 * It first waits (30 s at most) until kwok has started the pod (phase Running with a pod IP), as
 * a kubelet would have: kwok's pod-ready stage acts on any pod without a pod IP, and on a pod
 * finished before that it would fail (the apiserver forbids a terminated container to run
 * again), leaving the pod without pod IP and start time. Once finished, kwok leaves the pod
 * alone: its other pod stages only complete Job pods and delete pods being deleted. Writes the
 * `pods/status` subresource as admin, with the resourceVersion it read (retried on a conflict).
 * Rejects for `restartPolicy: Always` (and OnFailure with a non-zero code): a kubelet would
 * restart the container, not end the pod.
 */
export async function finishPod(plane: ControlPlane, options: { namespace: string; pod: string; exitCode: number }): Promise<void> {
  const { namespace, pod, exitCode } = options;
  const path = `/api/v1/namespaces/${namespace}/pods/${pod}`;
  for (let attempt = 0; ; attempt++) {
    let current: PodForFinish | undefined;
    let lastAnswer = '';
    try {
      await eventually(`kwok starts pod ${namespace}/${pod} (Running with a pod IP) before it is finished`, async () => {
        const res = await plane.request('GET', path);
        lastAnswer = `HTTP ${res.status}${res.status === 200 ? '' : ` ${res.body}`}`;
        if (res.status !== 200) return false;
        current = JSON.parse(res.body) as PodForFinish;
        lastAnswer = `phase ${current.status?.phase}`;
        return current.status?.phase === 'Running' && !!current.status.podIP;
      });
    } catch (err) {
      throw new Error(`${(err as Error).message} (last: ${lastAnswer})`);
    }
    const podNow = current!;
    const restartPolicy = podNow.spec.restartPolicy ?? 'Always';
    if (restartPolicy === 'Always' || (restartPolicy === 'OnFailure' && exitCode !== 0)) {
      throw new Error(`finishPod ${namespace}/${pod}: with restartPolicy ${restartPolicy} a kubelet would restart a container that exits with ${exitCode}`);
    }
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const phase = exitCode === 0 ? 'Succeeded' : 'Failed';
    const names = podNow.spec.containers.map((c) => c.name);
    const notReady = phase === 'Succeeded'
      ? { reason: 'PodCompleted' }
      : { reason: 'ContainersNotReady', message: `containers with unready status: [${names.join(' ')}]` };
    const conditions = (podNow.status?.conditions ?? []).map((c) =>
      c.type === 'Ready' || c.type === 'ContainersReady'
        ? { type: c.type, status: 'False', lastTransitionTime: now, ...notReady }
        : c);
    const containerStatuses = podNow.spec.containers.map((container) => {
      const previous = podNow.status?.containerStatuses?.find((s) => s.name === container.name);
      return {
        image: container.image ?? '', imageID: '', restartCount: 0,
        ...previous,
        name: container.name,
        ready: false,
        started: false,
        state: {
          terminated: {
            exitCode,
            reason: exitCode === 0 ? 'Completed' : 'Error',
            startedAt: previous?.state?.running?.startedAt ?? now,
            finishedAt: now,
          },
        },
      };
    });
    const res = await plane.request(
      'PATCH', `${path}/status`,
      { metadata: { resourceVersion: podNow.metadata.resourceVersion }, status: { phase, conditions, containerStatuses } },
      { 'content-type': 'application/merge-patch+json' },
    );
    if (res.status === 200) return;
    if (res.status !== 409 || attempt >= 10) throw new Error(`finishing pod ${namespace}/${pod}: ${res.status} ${res.body}`);
  }
}
