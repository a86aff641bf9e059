/**
 * Plays the kubelet for `crowsnest ports collect`'s scan pods on the testbed's kwok nodes, which
 * run nothing: for each scan pod it runs the real scanner (`bin/crowsnest ports scan --output
 * json`) as a local process, serves the output as the pod's container log through kwok and marks
 * the pod finished — or fails it, or leaves it hanging, as the caller asks per node. Scans that
 * should simply work run for real on the real nodes (the Crowsnest image, hostPID); this is for
 * what a real node cannot be made to do on demand: a scan that fails, one that never ends.
 */
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { ControlPlane } from './controlplane.ts';
import { finishPod, serveContainerLogs } from './kubelet.ts';

const run = promisify(execFile);
const repo = join(dirname(fileURLToPath(import.meta.url)), '..');

export type Behaviour = 'scan' | 'fail' | 'hang';

/** Plays the kubelet for scan pods in `namespace` until stopped. */
export function standInKubelet(plane: ControlPlane, namespace: string, behaviour: (node: string) => Behaviour): { stop: () => Promise<void>; handled: Map<string, string> } {
  const handled = new Map<string, string>(); // pod → node
  let stopped = false;
  const loop = (async () => {
    const inFlight: Promise<void>[] = [];
    while (!stopped) {
      const res = await plane.request('GET', `/api/v1/namespaces/${namespace}/pods?labelSelector=app.kubernetes.io/component%3Dports-scan`);
      const pods = (JSON.parse(res.body) as { items: { metadata: { name: string }; spec: { nodeName?: string } }[] }).items;
      for (const pod of pods) {
        const node = pod.spec.nodeName;
        if (!node || handled.has(pod.metadata.name)) continue;
        handled.set(pod.metadata.name, node);
        const what = behaviour(node);
        if (what === 'hang') continue;
        inFlight.push((async () => {
          const text = what === 'scan'
            ? (await run(join(repo, 'bin', 'crowsnest'), ['ports', 'scan', '--output', 'json'], { maxBuffer: 64 * 1024 * 1024 })).stdout
            : 'error: open /proc/1/net/tcp: permission denied\n';
          await serveContainerLogs(plane, { namespace, pod: pod.metadata.name, container: 'scan', text });
          await finishPod(plane, { namespace, pod: pod.metadata.name, exitCode: what === 'scan' ? 0 : 1 });
        })().catch(() => {})); // the collector may already have given up on (and deleted) the pod
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await Promise.all(inFlight);
  })();
  return {
    handled,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

