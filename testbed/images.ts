/**
 * The images of a testbed with real nodes: its own registry (CNCF distribution, testbed/registry.ts)
 * on the host's bridge address (`<hostIp>:5000`: the nodes' namespaces reach it, nothing outside
 * the machine does), filled with crane at start from OCI layouts our own builder writes
 * (image/): the pause image (containerd's `sandbox_image`), the busybox test image ("testbox"),
 * and the Crowsnest image when `make image` has built it (`make cluster` does). containerd is
 * configured for that one registry host (realnode.ts) and every reference is fully qualified to
 * it, so no pull ever leaves the machine.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildPauseImage, buildTestboxImage, registryReference } from '../image/testbed-images.ts';
import { LoopbackRegistry, pushOciLayout } from './registry.ts';

/** The registry's port on the host's bridge address (one address per testbed: no clash). */
export const REGISTRY_PORT = 5000;

/** An image to push: the OCI layout `layout` under its `localhost/…` name. */
export interface ImageSource {
  /** `localhost/<repository>:<tag>`; pushed as `<registry>/<repository>:<tag>`. */
  readonly name: string;
  readonly layout: string;
}

/** Images by short name: `pause` is the sandbox image, `test` the busybox test image, `crowsnest` ours. */
export type ImageSources = Readonly<Record<string, ImageSource>> & { readonly pause: ImageSource };

/**
 * Builds the pause and test images into `outDir` (reproducible: the same bytes every time, so
 * the registry and containerd see the same digests) and adds the Crowsnest image if
 * `crowsnestOut` holds a `make image` build.
 */
export async function testbedImageSources(options: { binDir: string; outDir: string; crowsnestOut?: string; log: (line: string) => void }): Promise<ImageSources> {
  const [pause, testbox] = await Promise.all([
    buildPauseImage(options.binDir, { outDir: options.outDir, log: options.log }),
    buildTestboxImage({ outDir: options.outDir, log: options.log }),
  ]);
  const sources: Record<string, ImageSource> = {
    pause: { name: pause.name, layout: pause.layoutDir },
    test: { name: testbox.name, layout: testbox.layoutDir },
  };
  const built = options.crowsnestOut ? join(options.crowsnestOut, 'crowsnest.json') : undefined;
  if (built && existsSync(built)) {
    const image = JSON.parse(readFileSync(built, 'utf8')) as { name: string; layout: string };
    sources['crowsnest'] = { name: image.name, layout: image.layout };
  }
  return sources as ImageSources;
}

/**
 * Starts the testbed's registry in `<dir>/registry` on `address`:{@link REGISTRY_PORT} and
 * pushes `sources`; resolves to the registry and the pushed references by short name. With
 * `cgroupProcs`, the registry process is moved into that cgroup (the slot's daemons), so reaping
 * the slot ends it too.
 */
export async function startRegistry(options: {
  dir: string; address: string; detached: boolean; cgroupProcs?: string; sources: ImageSources; log: (line: string) => void;
}): Promise<{ registry: LoopbackRegistry; images: Record<string, string> }> {
  const registry = await LoopbackRegistry.start({
    dir: join(options.dir, 'registry'), address: options.address, port: REGISTRY_PORT, detached: options.detached, log: options.log,
  });
  if (options.cgroupProcs) writeFileSync(options.cgroupProcs, String(registry.pid));
  const images: Record<string, string> = {};
  await Promise.all(Object.entries(options.sources).map(async ([name, source]) => {
    const reference = registryReference(registry.host, source.name);
    await pushOciLayout(registry.crane, source.layout, reference);
    images[name] = reference;
  }));
  return { registry, images };
}
