/**
 * `make cluster` / `make cluster-down`: a cluster for humans, detached from the shell that
 * started it, with its kubeconfig at .cluster/kubeconfig, kubectl and helm in .cluster/bin/, the
 * chart values for its registry in .cluster/values-testbed.yaml, and a default StorageClass with
 * two local volumes per real node (testbed/volumes.ts).
 *
 *   node testbed/cli.ts up   [--dir .cluster] [--kwok-nodes 3] [--real-nodes 2]   idempotent: reuses a healthy one
 *   node testbed/cli.ts down [--dir .cluster]
 */
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ControlPlane } from './controlplane.ts';
import { testbedChartValues } from './images.ts';
import { createVolumePool } from './volumes.ts';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    dir: { type: 'string', default: '.cluster' },
    'kwok-nodes': { type: 'string', default: '3' },
    'real-nodes': { type: 'string', default: '2' },
  },
});
const dir = resolve(values.dir);
const command = positionals[0];

/**
 * `images.env` (`TEST_IMAGE=…`, `PAUSE_IMAGE=…`, and `CROWSNEST_IMAGE=…` once the Crowsnest image
 * is built) for scripts and people, and `values-testbed.yaml` with the chart's image settings.
 */
async function writeImageSettings(plane: ControlPlane): Promise<void> {
  const env = Object.entries(plane.images).map(([name, reference]) => `${name.toUpperCase()}_IMAGE=${reference}\n`).join('');
  await writeFile(join(dir, 'images.env'), env);
  const values = testbedChartValues(plane.images, plane.imageDigests);
  if (values) await writeFile(join(dir, 'values-testbed.yaml'), values);
}

/** kubectl and helm of the testbed in `<dir>/bin`, for the PATH the hint prints. */
async function linkTools(plane: ControlPlane): Promise<void> {
  await mkdir(join(dir, 'bin'), { recursive: true });
  for (const tool of ['kubectl', 'helm']) {
    await rm(join(dir, 'bin', tool), { force: true });
    await symlink(join(plane.binDir, tool), join(dir, 'bin', tool));
  }
}

function hint(): void {
  process.stdout.write(
    `\nexport KUBECONFIG=${join(dir, 'kubeconfig')} PATH=${join(dir, 'bin')}:$PATH\nkubectl get nodes\n`,
  );
}

if (command === 'up') {
  const existing = await ControlPlane.attach(dir);
  if (existing && (await existing.healthy())) {
    process.stderr.write(`[testbed] control plane in ${dir} is already running at ${existing.server}\n`);
    // The image `make cluster` just built, under the same tag: the values file pins its digest.
    if (await existing.pushCrowsnestImage()) process.stderr.write(`[testbed] pushed ${existing.images['crowsnest']}@${existing.imageDigests['crowsnest']}\n`);
    await linkTools(existing);
    await writeImageSettings(existing);
    hint();
    process.exit(0);
  }
  if (existing) {
    process.stderr.write(`[testbed] found a stopped or broken control plane in ${dir}; starting afresh\n`);
    await existing.stop();
  }
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const kwokNodes = Number(values['kwok-nodes']);
  if (!Number.isInteger(kwokNodes) || kwokNodes < 0) throw new Error(`--kwok-nodes must be a non-negative integer, got ${values['kwok-nodes']}`);
  const realNodes = Number(values['real-nodes']);
  if (!Number.isInteger(realNodes) || realNodes < 0) throw new Error(`--real-nodes must be a non-negative integer, got ${values['real-nodes']}`);
  const plane = await ControlPlane.start({ dir, kwokNodes, realNodes, detached: true });
  await linkTools(plane);
  // No storage provisioner here: a default StorageClass with a few local volumes per node, so
  // claims (the chart's report volumes) bind as they would in a cluster.
  if (realNodes > 0) await createVolumePool(plane);
  await writeImageSettings(plane);
  hint();
  process.exit(0);
} else if (command === 'down') {
  const existing = await ControlPlane.attach(dir);
  if (existing) await existing.stop();
  await rm(dir, { recursive: true, force: true });
  process.stderr.write(`[testbed] stopped; removed ${dir}\n`);
} else {
  process.stderr.write('usage: node testbed/cli.ts up|down [--dir DIR] [--kwok-nodes N] [--real-nodes N]\n');
  process.exit(2);
}
