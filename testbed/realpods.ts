/**
 * Helpers for tests that run pods for real on the testbed's real nodes: create a pod and wait
 * until it runs, read its log, reach it from the host. Pods without a toleration land on real
 * nodes anyway (kwok nodes are tainted); these pin one to a node and use the test image.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import type { ControlPlane } from './controlplane.ts';
import { eventually } from './kubelet.ts';

/** The parts of a Pod these helpers read. */
export interface RealPod {
  metadata: { name: string; namespace: string; uid: string };
  spec: { nodeName?: string; containers: Array<{ name: string }> };
  status: {
    phase?: string;
    podIP?: string;
    hostIP?: string;
    containerStatuses?: Array<{ name: string; ready: boolean; restartCount: number; state: Record<string, { reason?: string; message?: string; exitCode?: number } | undefined> }>;
  };
}

export interface RunPodOptions {
  readonly namespace: string;
  readonly name: string;
  /** Image, fully qualified (the testbed's test image: busybox with sh, sleep, httpd, nc, wget, nslookup). */
  readonly image: string;
  /** The container's command (the test image's entrypoint is /bin/sh). */
  readonly command: readonly string[];
  /** A real node's name (`crowsnest-real-<i>`); default: wherever the scheduler puts it. */
  readonly node?: string;
  /** Extra pod spec fields (ports, probes, securityContext, ...). */
  readonly spec?: Record<string, unknown>;
  readonly labels?: Record<string, string>;
  /** Default 60 s: the first pod on a node also waits for its sandbox. */
  readonly timeoutMs?: number;
}

/**
 * Creates a pod with one container `main` and resolves with it once it is Running (phase
 * Running, container ready). Rejects with the container's waiting reason (ErrImagePull, ...)
 * when it does not get there in time.
 */
export async function runPod(plane: ControlPlane, options: RunPodOptions): Promise<RealPod> {
  const { namespace, name } = options;
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: { app: name, ...options.labels } },
    spec: {
      ...(options.node ? { nodeName: options.node } : {}),
      terminationGracePeriodSeconds: 1,
      containers: [{ name: 'main', image: options.image, command: [...options.command] }],
      ...options.spec,
    },
  };
  const created = await plane.request('POST', `/api/v1/namespaces/${namespace}/pods`, pod);
  if (created.status !== 201) throw new Error(`creating pod ${namespace}/${name}: ${created.status} ${created.body}`);
  return await waitForPod(plane, namespace, name, (p) => p.status.phase === 'Running' && (p.status.containerStatuses ?? []).every((s) => s.ready), 'Running and ready', options.timeoutMs);
}

/** Waits until `predicate` holds for the pod; the error names the last phase and container states. */
export async function waitForPod(
  plane: ControlPlane, namespace: string, name: string, predicate: (pod: RealPod) => boolean, what: string, timeoutMs = 60_000,
): Promise<RealPod> {
  let last: RealPod | undefined;
  try {
    await eventually(`pod ${namespace}/${name} ${what}`, async () => {
      const res = await plane.request('GET', `/api/v1/namespaces/${namespace}/pods/${name}`);
      if (res.status !== 200) return false;
      last = JSON.parse(res.body) as RealPod;
      return predicate(last);
    }, timeoutMs);
  } catch (err) {
    const states = last?.status.containerStatuses?.map((s) => `${s.name}: ${JSON.stringify(s.state)}`).join('; ');
    throw new Error(`${(err as Error).message} (phase ${last?.status.phase ?? 'unknown'}${states ? `; ${states}` : ''})`);
  }
  return last!;
}

/** The container's log as the API server serves it (apiserver → the node's kubelet → the CRI log file). */
export async function podLog(plane: ControlPlane, namespace: string, name: string, container = 'main'): Promise<string> {
  const res = await plane.request('GET', `/api/v1/namespaces/${namespace}/pods/${name}/log?container=${encodeURIComponent(container)}`, undefined, { accept: '*/*' });
  if (res.status !== 200) throw new Error(`log of ${namespace}/${name}: ${res.status} ${res.body}`);
  return res.body;
}

/**
 * A shell command for the test image that serves `text` over HTTP on `port` (busybox httpd, in
 * the foreground), so a test can reach the pod's IP from the host or from another pod.
 */
export function httpServerCommand(port: number, text: string): string[] {
  const escaped = text.replace(/'/g, `'\\''`);
  return ['/bin/sh', '-c', `mkdir -p /tmp/www && printf '%s' '${escaped}' > /tmp/www/index.html && exec httpd -f -p ${port} -h /tmp/www`];
}

/** GET `http://<ip>:<port><path>` from the host (this test process), with a timeout. */
export async function fetchFromHost(ip: string, port: number, path = '/', timeoutMs = 5_000): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://${ip}:${port}${path}`, { signal: AbortSignal.timeout(timeoutMs) });
  return { status: res.status, body: await res.text() };
}

/**
 * Runs `command` in a pod's container (`kubectl exec`: API server → the node's kubelet →
 * containerd), resolving with its output and exit code; never rejects for a non-zero exit.
 */
export async function execInPod(
  plane: ControlPlane, namespace: string, pod: string, command: readonly string[], container = 'main',
): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  return await new Promise((resolve, reject) => {
    execFile(join(plane.binDir, 'kubectl'), ['--kubeconfig', plane.kubeconfigPath, '-n', namespace, 'exec', pod, '-c', container, '--', ...command],
      { maxBuffer: 64 * 1024 * 1024, timeout: 60_000 }, (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') reject(err);
        else resolve({ stdout, stderr, exitCode: err ? Number(err.code) : 0 });
      });
  });
}
