/**
 * `make image`, `make image-push`, and the testbed's small images, from the command line:
 *
 *   node image/build.ts crowsnest [--out .image]                 the Crowsnest image
 *   node image/build.ts push --registry HOST/PATH [--out .image] push it: HOST/PATH/crowsnest:<version>
 *   node image/build.ts testbed [--out .image]                   pause and testbox images
 *
 * `push` pushes the layout a previous `crowsnest` build wrote, with crane (built by
 * `testbed/build.sh --image-tools`), and checks the registry holds the digest we built.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildImageTools, pushOciLayout, remoteDigest } from '../testbed/registry.ts';
import { buildCrowsnestImage } from './crowsnest.ts';
import { buildPauseImage, buildTestboxImage } from './testbed-images.ts';

const log = (line: string): void => {
  process.stderr.write(`[image] ${line}\n`);
};

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { out: { type: 'string', default: '.image' }, registry: { type: 'string' } },
});
const outDir = resolve(values.out);

switch (positionals[0]) {
  case 'crowsnest': {
    const image = await buildCrowsnestImage({ outDir, log });
    process.stdout.write(`${image.name}@${image.manifest.digest}\n`);
    break;
  }
  case 'push': {
    const registry = values.registry?.replace(/\/+$/, '');
    if (!registry || !/^[a-z0-9.-]+(:\d+)?(\/[a-z0-9._/-]+)?$/.test(registry)) {
      log(`usage: make image-push REGISTRY=host[:port]/path (got ${JSON.stringify(values.registry ?? '')})`);
      process.exit(2);
    }
    const built = JSON.parse(await readFile(join(outDir, 'crowsnest.json'), 'utf8')) as { digest: string; version: string; layout: string };
    const reference = `${registry}/crowsnest:${built.version}`;
    const crane = join(await buildImageTools(log), 'crane');
    log(`pushing ${built.layout} to ${reference}`);
    const pushed = await pushOciLayout(crane, built.layout, reference);
    const remote = await remoteDigest(crane, reference);
    if (remote !== built.digest) throw new Error(`${reference} has digest ${remote}, but the image built is ${built.digest}`);
    process.stdout.write(`${pushed}\n`);
    break;
  }
  case 'testbed': {
    const pause = await buildPauseImage(await buildImageTools(log), { outDir, log });
    const testbox = await buildTestboxImage({ outDir, log });
    for (const image of [pause, testbox]) process.stdout.write(`${image.name}@${image.manifest.digest} ${image.tarPath}\n`);
    break;
  }
  default:
    log('usage: node image/build.ts crowsnest|push|testbed [--out DIR] [--registry HOST/PATH]');
    process.exit(2);
}
