/**
 * Persistent volumes for a testbed with real nodes, which has no storage provisioner: `local`
 * PersistentVolumes made by hand, each a directory in the testbed's state dir (so they go with it)
 * and pinned to one real node by node affinity, as a local disk would be. kubelet gives a local
 * volume to the pod's fsGroup (a hostPath volume it leaves to root), so a chart's non-root pods
 * can write to it as they would to a provisioned volume.
 *
 * Tests make a volume per claim with a storage class name of their own (a class needs no
 * StorageClass object for a static volume to bind); `make cluster` makes a small pool under the
 * default StorageClass {@link TESTBED_STORAGE_CLASS}, so a chart's claims bind with no setting.
 */
import { chmod, chown, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ControlPlane } from './controlplane.ts';

/** The default StorageClass `make cluster` creates, with {@link createVolumePool}'s volumes. */
export const TESTBED_STORAGE_CLASS = 'crowsnest-testbed-local';

export interface LocalVolumeOptions {
  /** PersistentVolume name, also the directory's name under `<state dir>/volumes/`. */
  readonly name: string;
  /** The real node the volume lives on (`crowsnest-real-<i>`). */
  readonly node: string;
  readonly storageClassName: string;
  /** Default `1Gi`: nominal, nothing enforces it on a directory. */
  readonly capacity?: string;
  readonly labels?: Readonly<Record<string, string>>;
  /**
   * The claim this volume is for (pre-bound through `claimRef`): with several volumes of one
   * class, the controller would otherwise bind any claim to any of them.
   */
  readonly claim?: { readonly namespace: string; readonly name: string };
}

/** Creates a directory and a `local` PersistentVolume for it; resolves to the directory's path. */
export async function createLocalVolume(plane: ControlPlane, options: LocalVolumeOptions): Promise<string> {
  const path = join(plane.dir, 'volumes', options.name);
  await mkdir(path, { recursive: true });
  // kubelet sets the group (fsGroup) and group write on first mount; readable by the test as root.
  await chown(path, 0, 0);
  await chmod(path, 0o755);
  const res = await plane.request('POST', '/api/v1/persistentvolumes', {
    apiVersion: 'v1',
    kind: 'PersistentVolume',
    metadata: { name: options.name, labels: { 'app.kubernetes.io/managed-by': 'crowsnest-testbed', ...options.labels } },
    spec: {
      capacity: { storage: options.capacity ?? '1Gi' },
      accessModes: ['ReadWriteOnce'],
      // Retain: a released volume keeps its files for the test to read; nothing could delete them anyway.
      persistentVolumeReclaimPolicy: 'Retain',
      storageClassName: options.storageClassName,
      volumeMode: 'Filesystem',
      ...(options.claim ? { claimRef: { apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace: options.claim.namespace, name: options.claim.name } } : {}),
      local: { path },
      nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [options.node] }] }] } },
    },
  });
  if (res.status !== 201) throw new Error(`creating PersistentVolume ${options.name}: ${res.status} ${res.body}`);
  return path;
}

/**
 * The default StorageClass {@link TESTBED_STORAGE_CLASS} (no provisioner, immediate binding, so
 * `helm install --wait` sees its claims bound) and `perNode` local volumes on each real node.
 */
export async function createVolumePool(plane: ControlPlane, perNode = 2): Promise<void> {
  const created = await plane.request('POST', '/apis/storage.k8s.io/v1/storageclasses', {
    apiVersion: 'storage.k8s.io/v1',
    kind: 'StorageClass',
    metadata: {
      name: TESTBED_STORAGE_CLASS,
      annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' },
      labels: { 'app.kubernetes.io/managed-by': 'crowsnest-testbed' },
    },
    provisioner: 'kubernetes.io/no-provisioner',
    reclaimPolicy: 'Retain',
    volumeBindingMode: 'Immediate',
  });
  if (created.status !== 201 && created.status !== 409) throw new Error(`creating StorageClass ${TESTBED_STORAGE_CLASS}: ${created.status} ${created.body}`);
  for (const node of plane.network?.nodes ?? []) {
    for (let i = 0; i < perNode; i++) {
      const name = `${TESTBED_STORAGE_CLASS}-${node.index}-${i}`;
      const exists = await plane.request('GET', `/api/v1/persistentvolumes/${name}`);
      if (exists.status === 200) continue;
      await createLocalVolume(plane, { name, node: node.name, storageClassName: TESTBED_STORAGE_CLASS });
    }
  }
}
