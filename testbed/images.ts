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
  const crowsnest = options.crowsnestOut ? crowsnestImageSource(options.crowsnestOut) : undefined;
  if (crowsnest) sources['crowsnest'] = crowsnest;
  return sources as ImageSources;
}

/**
 * Starts the testbed's registry in `<dir>/registry` on `address`:{@link REGISTRY_PORT} and
 * pushes `sources`; resolves to the registry, the pushed references by short name and their
 * manifest digests (`sha256:…`). With
 * `cgroupProcs`, the registry process is moved into that cgroup (the slot's daemons), so reaping
 * the slot ends it too.
 */
export async function startRegistry(options: {
  dir: string; address: string; detached: boolean; cgroupProcs?: string; sources: ImageSources; log: (line: string) => void;
}): Promise<{ registry: LoopbackRegistry; images: Record<string, string>; digests: Record<string, string> }> {
  const registry = await LoopbackRegistry.start({
    dir: join(options.dir, 'registry'), address: options.address, port: REGISTRY_PORT, detached: options.detached, log: options.log,
  });
  if (options.cgroupProcs) writeFileSync(options.cgroupProcs, String(registry.pid));
  const images: Record<string, string> = {};
  const digests: Record<string, string> = {};
  await Promise.all(Object.entries(options.sources).map(async ([name, source]) => {
    const pushed = await pushImage(registry.crane, registry.host, source);
    images[name] = pushed.reference;
    digests[name] = pushed.digest;
  }));
  return { registry, images, digests };
}

/** Pushes `source` to the registry at `registryHost` with `crane`; resolves to its reference there and manifest digest. */
export async function pushImage(crane: string, registryHost: string, source: ImageSource): Promise<{ reference: string; digest: string }> {
  const reference = registryReference(registryHost, source.name);
  const pushed = await pushOciLayout(crane, source.layout, reference);
  return { reference, digest: pushed.slice(pushed.indexOf('@') + 1) };
}

/** The Crowsnest image of a `make image` output dir (`crowsnestOut`), if it holds a build. */
export function crowsnestImageSource(crowsnestOut: string): ImageSource | undefined {
  const built = join(crowsnestOut, 'crowsnest.json');
  if (!existsSync(built)) return undefined;
  const image = JSON.parse(readFileSync(built, 'utf8')) as { name: string; layout: string };
  return { name: image.name, layout: image.layout };
}

/**
 * The Helm values that install the chart from the testbed's registry (`.cluster/values-testbed.yaml`):
 * the Crowsnest image by repository, tag and digest, so a rebuilt image pushed under the same tag
 * is the one the nodes run, never an older copy they cached.
 */
export function testbedChartValues(images: Readonly<Record<string, string>>, digests: Readonly<Record<string, string>>): string | undefined {
  const reference = images['crowsnest'];
  const digest = digests['crowsnest'];
  if (!reference || !digest) return undefined;
  const at = reference.lastIndexOf(':');
  return [
    '# The chart on this testbed: its Crowsnest image, from the testbed\'s own registry.',
    '#   helm install crowsnest deploy/helm/crowsnest -n crowsnest-system --create-namespace -f .cluster/values-testbed.yaml',
    'image:',
    `  repository: ${reference.slice(0, at)}`,
    `  tag: ${JSON.stringify(reference.slice(at + 1))}`,
    `  digest: ${JSON.stringify(digest)}`,
    '  pullPolicy: IfNotPresent',
    '',
  ].join('\n');
}
