/**
 * `make cluster` / `make cluster-down`: a control plane for humans, detached from the shell
 * that started it, with its kubeconfig at .cluster/kubeconfig and kubectl in .cluster/bin/.
 *
 *   node testbed/cli.ts up   [--dir .cluster] [--nodes 3]   idempotent: reuses a healthy one
 *   node testbed/cli.ts down [--dir .cluster]
 */
import { mkdir, rm, symlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ControlPlane } from './controlplane.ts';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { dir: { type: 'string', default: '.cluster' }, nodes: { type: 'string', default: '3' } },
});
const dir = resolve(values.dir);
const command = positionals[0];

function hint(): void {
  process.stdout.write(
    `\nexport KUBECONFIG=${join(dir, 'kubeconfig')} PATH=${join(dir, 'bin')}:$PATH\nkubectl get nodes\n`,
  );
}

if (command === 'up') {
  const existing = await ControlPlane.attach(dir);
  if (existing && (await existing.healthy())) {
    process.stderr.write(`[testbed] control plane in ${dir} is already running at ${existing.server}\n`);
    hint();
    process.exit(0);
  }
  if (existing) {
    process.stderr.write(`[testbed] found a stopped or broken control plane in ${dir}; starting afresh\n`);
    await existing.stop();
  }
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const nodes = Number(values.nodes);
  if (!Number.isInteger(nodes) || nodes < 0) throw new Error(`--nodes must be a non-negative integer, got ${values.nodes}`);
  const plane = await ControlPlane.start({ dir, nodes, detached: true });
  await mkdir(join(dir, 'bin'), { recursive: true });
  await symlink(join(plane.binDir, 'kubectl'), join(dir, 'bin', 'kubectl'));
  hint();
  process.exit(0);
} else if (command === 'down') {
  const existing = await ControlPlane.attach(dir);
  if (existing) await existing.stop();
  await rm(dir, { recursive: true, force: true });
  process.stderr.write(`[testbed] stopped; removed ${dir}\n`);
} else {
  process.stderr.write('usage: node testbed/cli.ts up|down [--dir DIR] [--nodes N]\n');
  process.exit(2);
}
