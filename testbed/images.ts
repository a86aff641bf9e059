/**
 * The images of a testbed with real nodes: its own registry (CNCF distribution, testbed/registry.ts)
 * on the host's bridge address (`<hostIp>:5000`: the nodes' namespaces reach it, nothing outside
 * the machine does), filled with crane from OCI layouts at start. containerd is configured for
 * that one registry host (realnode.ts), and every reference is fully qualified to it, so no pull
 * ever leaves the machine.
 *
 * Where the layouts come from: TEMPORARY, until the image builder lands (pause, busybox test
 * image, the Crowsnest image): OCI layout archives in $CROWSNEST_TESTBED_IMAGES (`pause.tar`,
 * `test.tar`).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LoopbackRegistry, pushOciLayout } from './registry.ts';

/** The registry's port on the host's bridge address (one address per testbed: no clash). */
export const REGISTRY_PORT = 5000;

/** An image to push: `layout` (an OCI layout dir or a .tar of one) as `<registry>/<repository>:<tag>`. */
export interface ImageSource {
  readonly repository: string;
  readonly tag: string;
  readonly layout: string;
}

/** Images by short name: `pause` is the sandbox image; `test` the busybox test image; `crowsnest` ours. */
export type ImageSources = Readonly<Record<string, ImageSource>> & { readonly pause: ImageSource };

/** The images every testbed with real nodes pushes. */
export async function testbedImageSources(): Promise<ImageSources> {
  const from = process.env['CROWSNEST_TESTBED_IMAGES'];
  if (!from) throw new Error('real nodes need images: set CROWSNEST_TESTBED_IMAGES to a dir with pause.tar and test.tar (OCI layouts)');
  return {
    pause: { repository: 'crowsnest/pause', tag: 'dev', layout: join(from, 'pause.tar') },
    test: { repository: 'crowsnest/test', tag: 'dev', layout: join(from, 'test.tar') },
  };
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
    const reference = imageReference(registry.host, source);
    await pushOciLayout(registry.crane, source.layout, reference);
    images[name] = reference;
  }));
  return { registry, images };
}

/** `<registry host>/<repository>:<tag>`. */
export function imageReference(registryHost: string, source: ImageSource): string {
  return `${registryHost}/${source.repository}:${source.tag}`;
}
