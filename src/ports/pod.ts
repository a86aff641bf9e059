/**
 * The short-lived pod that scans one node: `crowsnest ports scan --output json` reading the
 * host's socket tables through `/proc/1/net` (the host's network namespace, seen via hostPID), so
 * the pod needs neither hostNetwork nor a hostPath mount: with hostPID the container's own /proc
 * already is the host PID namespace's, read-only to it.
 *
 * Why a pod per node per run rather than a DaemonSet: nothing privileged runs between runs
 * (a nightly scan does not justify a hostPID pod on every node all day), a new node is covered
 * by the next run without a rollout, and the result comes back through the API server (pod logs)
 * without a listener or a shared volume. The cost — image pull and pod start per run — is paid
 * in parallel across nodes.
 */
import type { KubeObject } from '../kube/objects/resources.ts';

/** Labels and annotations the collector puts on its pods; also how it finds them again. */
export const SCAN_POD_LABELS = {
  managedBy: 'app.kubernetes.io/managed-by',
  partOf: 'app.kubernetes.io/part-of',
  component: 'app.kubernetes.io/component',
  runId: 'ports.crowsnest.dev/run',
} as const;
export const SCAN_POD_COMPONENT = 'ports-scan';
/** Node names can exceed the 63 characters of a label value: the node goes in an annotation. */
export const SCAN_POD_NODE_ANNOTATION = 'ports.crowsnest.dev/node';
export const SCAN_CONTAINER = 'scan';

export interface ScanPodOptions {
  readonly namespace: string;
  readonly node: string;
  readonly runId: string;
  readonly image: string;
  readonly imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /**
   * Map sockets to processes: runs as root with CAP_SYS_PTRACE (to read other processes'
   * /proc/<pid>/fd) and CAP_DAC_READ_SEARCH, every other capability dropped. Without it the
   * scan runs as a non-root user with no capabilities and reports ports without processes.
   */
  readonly processInfo: boolean;
  /** Seconds after which the kubelet kills the scan. */
  readonly activeDeadlineSeconds: number;
  readonly priorityClassName?: string;
  readonly imagePullSecrets?: readonly string[];
}

/** The pod manifest for one node's scan. Pure: tested by applying it to an API server with dry run. */
export function buildScanPod(options: ScanPodOptions): KubeObject & Record<string, unknown> {
  const securityContext = options.processInfo
    ? {
        runAsUser: 0,
        runAsNonRoot: false,
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'], add: ['SYS_PTRACE', 'DAC_READ_SEARCH'] },
        // The runtime's default AppArmor profile only lets a container ptrace-read peers under
        // that same profile: host processes' /proc/<pid>/fd would stay unreadable despite the
        // capability. Unconfined is what reading every process needs, and only in this mode.
        appArmorProfile: { type: 'Unconfined' },
      }
    : {
        runAsUser: 65532,
        runAsGroup: 65532,
        runAsNonRoot: true,
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
      };
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: 'crowsnest-ports-',
      namespace: options.namespace,
      labels: {
        [SCAN_POD_LABELS.managedBy]: 'crowsnest',
        [SCAN_POD_LABELS.partOf]: 'crowsnest',
        [SCAN_POD_LABELS.component]: SCAN_POD_COMPONENT,
        [SCAN_POD_LABELS.runId]: options.runId,
      },
      annotations: { [SCAN_POD_NODE_ANNOTATION]: options.node },
    },
    spec: {
      nodeName: options.node,
      restartPolicy: 'Never',
      hostPID: true,
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      activeDeadlineSeconds: options.activeDeadlineSeconds,
      terminationGracePeriodSeconds: 5,
      // A scan must reach tainted nodes too (control plane, dedicated pools): tolerate everything.
      tolerations: [{ operator: 'Exists' }],
      ...(options.priorityClassName ? { priorityClassName: options.priorityClassName } : {}),
      ...(options.imagePullSecrets?.length ? { imagePullSecrets: options.imagePullSecrets.map((name) => ({ name })) } : {}),
      securityContext: { seccompProfile: { type: 'RuntimeDefault' } },
      containers: [
        {
          name: SCAN_CONTAINER,
          image: options.image,
          ...(options.imagePullPolicy ? { imagePullPolicy: options.imagePullPolicy } : {}),
          args: ['ports', 'scan', '--output', 'json', '--proc', '/proc', '--net-pid', '1', '--log-level', 'warn'],
          env: [
            { name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
            // Node's compile cache would write to a read-only root file system.
            { name: 'NODE_DISABLE_COMPILE_CACHE', value: '1' },
          ],
          resources: { requests: { cpu: '10m', memory: '48Mi' }, limits: { cpu: '500m', memory: '160Mi' } },
          securityContext,
          terminationMessagePolicy: 'FallbackToLogsOnError',
        },
      ],
    },
  };
}
