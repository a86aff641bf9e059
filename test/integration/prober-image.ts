/**
 * The Crowsnest image in the testbed's registry, for pods that run the agent: the one the testbed
 * pushed at start (when `make image` had built it), else built now from this checkout
 * (`image/crowsnest.ts`, ~15 s with warm caches) and pushed with crane. Built at most once per
 * test process.
 */
import { join } from 'node:path';
import { buildCrowsnestImage } from '../../image/crowsnest.ts';
import { cacheDir } from '../../image/paths.ts';
import { registryReference } from '../../image/testbed-images.ts';
import type { ControlPlane } from '../../testbed/controlplane.ts';
import { buildImageTools, pushOciLayout } from '../../testbed/registry.ts';

let pushed: Promise<string> | undefined;

export function crowsnestImage(plane: ControlPlane): Promise<string> {
  const existing = plane.images['crowsnest'];
  if (existing) return Promise.resolve(existing);
  pushed ??= (async () => {
    const registryHost = (plane.images['test'] ?? '').split('/')[0];
    if (!registryHost) throw new Error('the testbed has no image registry (no real nodes?)');
    const log = (line: string): void => { process.stderr.write(`[prober-image] ${line}\n`); };
    const image = await buildCrowsnestImage({ outDir: join(cacheDir(), 'prober-test-image'), log });
    const crane = join(await buildImageTools(log), 'crane');
    const reference = registryReference(registryHost, image.name);
    await pushOciLayout(crane, image.layoutDir, reference);
    return reference;
  })();
  return pushed;
}
