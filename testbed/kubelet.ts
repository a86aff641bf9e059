/**
 * Standing in for a kubelet on the testbed, whose kwok nodes run nothing: a pod's container log
 * and its exit, as the real apiserver shows them. Used by tests and by `make demo`.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { ControlPlane } from './controlplane.ts';

/** Polls `probe` every 50 ms until it returns true; fails with `what` after `timeoutMs`. */
export async function eventually(what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
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
