/**
 * `crowsnest ports collect`: one scan pod per node, in parallel (bounded), results read back from
 * the pods' logs, pods deleted whatever happens. The seed scanned one node at a time (~35 s
 * each); here a 100-node cluster takes about as long as its slowest node.
 *
 * Per node: create the pod (see `pod.ts`) → wait, through one informer on this run's pods, until
 * it Succeeded or Failed, or the per-node timeout passes → read its log → delete it. A node whose
 * scan fails is reported with why (exit code and last log lines, image pull errors, timeout); the
 * other nodes are not held up by it.
 */
import type { KubeClient } from '../kube/client/client.ts';
import { realClock } from '../kube/clock.ts';
import { readBoundedText } from '../kube/client/http-body.ts';
import { mapConcurrent, withTimeout } from '../kube/concurrency.ts';
import { describeError, isNotFound } from '../kube/client/errors.ts';
import { Informer } from '../kube/runtime/informer.ts';
import type { Logger } from '../kube/logger-type.ts';
import { Resources, type KubeObject } from '../kube/objects/resources.ts';
import { buildScanPod, SCAN_CONTAINER, SCAN_POD_LABELS, SCAN_POD_COMPONENT, type ScanPodOptions } from './pod.ts';
import { HOST_SCAN_KIND, type HostScan } from './scan.ts';

export interface PortsCollectOptions {
  /** Namespace the scan pods run in (the collector's own). */
  readonly namespace: string;
  readonly image: string;
  readonly imagePullPolicy?: ScanPodOptions['imagePullPolicy'];
  readonly processInfo: boolean;
  readonly priorityClassName?: string;
  /** Nodes scanned at once. */
  readonly concurrency: number;
  /** Per node, from pod creation to its result, in milliseconds. */
  readonly nodeTimeoutMs: number;
  /** Only nodes matching this label selector. */
  readonly nodeSelector?: string;
  readonly runId: string;
  readonly logger: Logger;
  readonly signal: AbortSignal;
}

/** What one node's scan produced. */
export type NodeScanOutcome =
  | { readonly node: string; readonly ok: true; readonly scan: HostScan; readonly durationMs: number }
  | { readonly node: string; readonly ok: false; readonly reason: string; readonly durationMs: number; readonly skipped?: true };

interface NodeObject extends KubeObject {
  status?: { conditions?: { type: string; status: string; reason?: string }[] };
}

/**
 * Why a node is not scanned at all, or `undefined` to scan it. The scan pod is a Linux container
 * sharing the host's PID namespace: Windows nodes and virtual kubelets (Fargate, ACI, …) cannot
 * run it, and `nodeName` + tolerate-all would otherwise send it there to fail at the timeout.
 */
export function skipReason(node: NodeObject): string | undefined {
  const labels = node.metadata?.labels ?? {};
  const os = labels['kubernetes.io/os'];
  if (os !== undefined && os !== 'linux') return `not a Linux node (kubernetes.io/os=${os})`;
  if (labels['type'] === 'virtual-kubelet') return 'virtual kubelet (type=virtual-kubelet): no host to scan';
  return undefined;
}

interface PodObject extends KubeObject {
  spec?: { nodeName?: string };
  status?: {
    phase?: string;
    reason?: string;
    message?: string;
    containerStatuses?: {
      name: string;
      state?: {
        waiting?: { reason?: string; message?: string };
        terminated?: { exitCode?: number; reason?: string; message?: string };
      };
    }[];
  };
}

/** Waiting reasons that will not resolve by themselves: fail the node now instead of at the timeout. */
const PERMANENT_WAITING_REASONS = new Set(['InvalidImageName', 'CreateContainerConfigError', 'CreateContainerError', 'ErrImageNeverPull']);
/** Enough for a host with ~100,000 listening sockets; a larger log is cut and fails to parse, loudly. */
const MAX_LOG_BYTES = 64 * 1024 * 1024;
/** Last log lines quoted when a scan fails. */
const FAILURE_LOG_LINES = 5;
/**
 * Deleting a scan pod, and the end-of-run sweep: an interrupted run deletes (in parallel), sweeps,
 * then writes its report, all within the 30 s a Job's pod gets between SIGTERM and SIGKILL.
 */
const CLEANUP_TIMEOUT_MS = 10_000;

/** Lists the nodes to scan (paged). */
export async function listNodes(client: KubeClient, nodeSelector: string | undefined, signal: AbortSignal): Promise<NodeObject[]> {
  const nodes: NodeObject[] = [];
  for await (const items of client.listPages<NodeObject>('/api/v1/nodes', { query: { labelSelector: nodeSelector }, signal })) nodes.push(...items);
  return nodes.sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
}

/** Scans every node; never throws for a node's failure (see the outcomes), only for cluster-level ones. */
export async function collectPorts(client: KubeClient, options: PortsCollectOptions): Promise<NodeScanOutcome[]> {
  const { logger } = options;
  const nodes = await listNodes(client, options.nodeSelector, options.signal);
  logger.info({ nodes: nodes.length, concurrency: options.concurrency }, 'scanning nodes');

  const stop = new AbortController();
  const onAbort = (): void => stop.abort();
  options.signal.addEventListener('abort', onAbort, { once: true });
  const podsPath = `/api/v1/namespaces/${encodeURIComponent(options.namespace)}/pods`;
  const runSelector = `${SCAN_POD_LABELS.runId}=${options.runId}`;
  const informer = new Informer<PodObject>({
    client,
    type: Resources.pods,
    name: 'ports-scan-pods',
    namespace: options.namespace,
    labelSelector: runSelector,
    logger,
  });
  let running: Promise<void> | undefined;
  try {
    // One plain list first: a missing permission or namespace fails the run now, with the API's
    // words, instead of an informer retrying it in the background until the Job's deadline.
    await client.json(podsPath, { query: { labelSelector: runSelector, limit: 1 }, signal: options.signal });
    running = informer.run(stop.signal);
    await withTimeout(informer.waitForSync(stop.signal), options.nodeTimeoutMs, `pods in ${options.namespace} could not be listed and watched within ${Math.round(options.nodeTimeoutMs / 1000)}s`);
    return await mapConcurrent(nodes, options.concurrency, async (node): Promise<NodeScanOutcome> => {
      const name = node.metadata?.name ?? '';
      const started = Date.now();
      const skip = skipReason(node);
      if (skip) return { node: name, ok: false, skipped: true, reason: skip, durationMs: 0 };
      const notReady = node.status?.conditions?.find((c) => c.type === 'Ready' && c.status !== 'True');
      if (notReady) return { node: name, ok: false, reason: `node is not Ready (${notReady.reason ?? notReady.status})`, durationMs: 0 };
      // Interrupted: the nodes not yet scanned are reported as such, so the report still gets written.
      if (options.signal.aborted) return { node: name, ok: false, reason: 'not scanned: the run was interrupted', durationMs: 0 };
      try {
        const scan = await scanNode(client, informer, name, options);
        logger.info({ node: name, sockets: scan.sockets.length, durationMs: Date.now() - started }, 'node scanned');
        return { node: name, ok: true, scan, durationMs: Date.now() - started };
      } catch (err) {
        const reason = options.signal.aborted ? 'interrupted before its scan finished' : err instanceof Error ? err.message : String(err);
        logger.warn({ node: name, reason }, 'node scan failed');
        return { node: name, ok: false, reason, durationMs: Date.now() - started };
      }
    });
  } finally {
    stop.abort();
    await running?.catch(() => {});
    options.signal.removeEventListener('abort', onAbort);
    // A sweep for anything a crash between create and delete left behind.
    await client
      .send(`/api/v1/namespaces/${encodeURIComponent(options.namespace)}/pods`, {
        method: 'DELETE',
        query: { labelSelector: runSelector },
        timeoutMs: CLEANUP_TIMEOUT_MS,
      })
      .then((res) => res.body?.cancel())
      .catch((err: unknown) => logger.warn({ reason: describeError(err) }, 'could not sweep scan pods'));
  }
}

async function scanNode(client: KubeClient, informer: Informer<PodObject>, node: string, options: PortsCollectOptions): Promise<HostScan> {
  const manifest = buildScanPod({
    namespace: options.namespace,
    node,
    runId: options.runId,
    image: options.image,
    ...(options.imagePullPolicy ? { imagePullPolicy: options.imagePullPolicy } : {}),
    processInfo: options.processInfo,
    activeDeadlineSeconds: Math.max(1, Math.ceil(options.nodeTimeoutMs / 1000)),
    ...(options.priorityClassName ? { priorityClassName: options.priorityClassName } : {}),
  });
  const podsPath = `/api/v1/namespaces/${encodeURIComponent(options.namespace)}/pods`;
  // Cut short by the run's signal: the API server abandons a create whose client went away
  // (admission included, as a slow webhook in the tests shows), and the end-of-run sweep deletes
  // one that was already being stored.
  const created = await client.json<PodObject>(podsPath, { method: 'POST', body: manifest, signal: options.signal });
  const podName = created.metadata?.name ?? '';
  const podPath = `${podsPath}/${encodeURIComponent(podName)}`;
  try {
    const finished = await waitForPod(informer, options.namespace, podName, options.nodeTimeoutMs, options.signal);
    const log = await readLog(client, podPath, options.signal);
    if (finished.status?.phase !== 'Succeeded') throw new Error(describeFailure(finished, log));
    return parseScanOutput(log);
  } finally {
    await client
      .send(podPath, { method: 'DELETE', timeoutMs: CLEANUP_TIMEOUT_MS })
      .then((res) => res.body?.cancel())
      .catch((err: unknown) => {
        if (!isNotFound(err)) options.logger.warn({ pod: podName, reason: describeError(err) }, 'could not delete scan pod; the end-of-run sweep retries');
      });
  }
}

/** Resolves with the pod once it is Succeeded or Failed; rejects on timeout, permanent errors or deletion. */
function waitForPod(informer: Informer<PodObject>, namespace: string, name: string, timeoutMs: number, signal: AbortSignal): Promise<PodObject> {
  return new Promise((resolve, reject) => {
    // An abort listener added to an aborted signal never fires.
    if (signal.aborted) return reject(signal.reason ?? new Error('aborted'));
    let lastWaiting = '';
    let seen = false;
    const finish = (fn: () => void): void => {
      realClock.clearTimer(timer);
      unsubscribe();
      signal.removeEventListener('abort', onAbort);
      fn();
    };
    const check = (): void => {
      const pod = informer.store.getByName(namespace, name);
      if (!pod) {
        if (seen) finish(() => reject(new Error('scan pod was deleted before it finished')));
        return;
      }
      seen = true;
      const phase = pod.status?.phase;
      if (phase === 'Succeeded' || phase === 'Failed') { finish(() => resolve(pod)); return; }
      const waiting = pod.status?.containerStatuses?.find((c) => c.name === SCAN_CONTAINER)?.state?.waiting;
      if (waiting?.reason) {
        lastWaiting = `${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}`;
        if (PERMANENT_WAITING_REASONS.has(waiting.reason)) finish(() => reject(new Error(`scan pod cannot start: ${lastWaiting}`)));
      }
    };
    const onAbort = (): void => finish(() => reject(signal.reason ?? new Error('aborted')));
    // realClock, not setTimeout: a --timeout longer than ~24.8 days would fire at once.
    const timer = realClock.setTimer(() => {
      const pod = informer.store.getByName(namespace, name);
      const state = pod ? `phase ${pod.status?.phase ?? 'unknown'}${lastWaiting ? `, ${lastWaiting}` : ''}` : 'pod not seen';
      finish(() => reject(new Error(`timed out after ${Math.round(timeoutMs / 1000)}s (${state})`)));
    }, timeoutMs);
    const unsubscribe = informer.on({
      onAdd: (pod) => pod.metadata?.name === name && check(),
      onUpdate: (_old, pod) => pod.metadata?.name === name && check(),
      onDelete: (pod) => pod.metadata?.name === name && check(),
    });
    signal.addEventListener('abort', onAbort, { once: true });
    check();
  });
}

async function readLog(client: KubeClient, podPath: string, signal: AbortSignal): Promise<string> {
  try {
    const res = await client.send(`${podPath}/log`, { query: { container: SCAN_CONTAINER, limitBytes: MAX_LOG_BYTES }, signal, accept: '*/*' });
    // limitBytes asks the kubelet to stop there; the log is the pod's text, so we stop there too.
    const { text, truncated } = await readBoundedText(res.body as AsyncIterable<Uint8Array> | null, MAX_LOG_BYTES);
    return truncated ? `${text}\n(log cut at ${MAX_LOG_BYTES} bytes)` : text;
  } catch (err) {
    if (signal.aborted) throw err;
    return `(log unavailable: ${describeError(err)})`;
  }
}

function describeFailure(pod: PodObject, log: string): string {
  const terminated = pod.status?.containerStatuses?.find((c) => c.name === SCAN_CONTAINER)?.state?.terminated;
  const parts = [`scan pod ${pod.status?.phase ?? 'failed'}`];
  if (terminated?.exitCode !== undefined) parts.push(`exit code ${terminated.exitCode}`);
  if (terminated?.reason) parts.push(terminated.reason);
  if (pod.status?.reason) parts.push(pod.status.reason); // e.g. DeadlineExceeded, Evicted
  const tail = log.trim().split('\n').slice(-FAILURE_LOG_LINES).join(' | ');
  return `${parts.join(', ')}${tail ? `; log: ${tail}` : ''}`;
}

/**
 * The scan's JSON from a container log, which interleaves stdout and stderr: warning lines that
 * the scanner and Node print on stderr are set aside first — Node follows its first warning with a
 * "(Use `node --trace-warnings ...` to show where the warning was created)" line, dropped as well.
 */
export function parseScanOutput(log: string): HostScan {
  const kept = log.split('\n').filter((line) => !/^(warning: |\(node:\d+\) |\(Use `node --trace-warnings )/.test(line)).join('\n').trim();
  let parsed: unknown;
  try {
    parsed = JSON.parse(kept);
  } catch {
    throw new Error(`scan output is not JSON: ${kept.slice(0, 200)}`);
  }
  const scan = parsed as Partial<HostScan>;
  if (scan.kind !== HOST_SCAN_KIND || !Array.isArray(scan.sockets)) {
    throw new Error(`scan output is not a ${HOST_SCAN_KIND} document (kind ${String(scan.kind)})`);
  }
  return scan as HostScan;
}

/** Scan pods older than this belong to a collector that died: no run waits that long for a node. */
const STALE_POD_AGE_MS = 3_600_000;

/**
 * Deletes scan pods that a killed collector left behind: those of other runs older than an hour
 * (a concurrent run's pods are younger and left alone).
 */
export async function sweepStalePods(client: KubeClient, namespace: string, runId: string, logger: Logger, nowMs = Date.now()): Promise<number> {
  const podsPath = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`;
  try {
    const list = await client.json<{ items: PodObject[] }>(podsPath, {
      query: { labelSelector: `${SCAN_POD_LABELS.component}=${SCAN_POD_COMPONENT},${SCAN_POD_LABELS.runId}!=${runId}` },
    });
    const stale = list.items.filter((pod) => nowMs - Date.parse(pod.metadata?.creationTimestamp ?? '') > STALE_POD_AGE_MS);
    for (const pod of stale) {
      await client
        .send(`${podsPath}/${encodeURIComponent(pod.metadata?.name ?? '')}`, { method: 'DELETE' })
        .then((res) => res.body?.cancel())
        .catch((err: unknown) => {
          if (!isNotFound(err)) throw err; // gone already (another sweep, the GC): fine
        });
    }
    if (stale.length) logger.info({ pods: stale.length }, 'removed scan pods left by earlier runs');
    return stale.length;
  } catch (err) {
    logger.warn({ reason: describeError(err) }, 'could not remove scan pods of earlier runs');
    return 0;
  }
}
