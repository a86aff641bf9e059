/**
 * The testbed's loopback registry (CNCF distribution) with crane: an image we build is pushed
 * byte for byte and read back under the same digest; a name the registry does not hold is not
 * fetched from anywhere else.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { type BuiltImage, writeOciImage } from '../../image/oci.ts';
import { LoopbackRegistry, pushOciLayout, remoteDigest, remoteManifest } from '../../testbed/registry.ts';
import { useScratchDir } from '../helpers/scratch.ts';

const execFileAsync = promisify(execFile);
const scratch = useScratchDir('crowsnest-registry-');

let registry: LoopbackRegistry;
let image: BuiltImage;

describe('loopback registry', () => {
  before(async () => {
    registry = await LoopbackRegistry.start({ dir: join(scratch.root, 'registry'), log: () => {} });
    image = await writeOciImage({
      name: 'localhost/crowsnest/registry-test:1',
      createdSeconds: 0,
      config: { entrypoint: ['/hello'], user: '65532:65532' },
      layers: [{
        createdBy: 'a file',
        entries: [{ type: 'file', path: 'hello', mode: 0o755, content: Buffer.from(`hello from ${process.pid}\n`) }],
      }],
    }, { layoutDir: join(scratch.root, 'layout'), tarPath: join(scratch.root, 'image.tar') });
  });

  after(async () => {
    await registry?.stop();
  });

  it('serves the Docker registry API v2 on 127.0.0.1', async () => {
    assert.match(registry.host, /^127\.0\.0\.1:\d+$/);
    assert.equal(await registry.healthy(), true);
    const res = await fetch(`http://${registry.host}/v2/`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
  });

  it('takes a push of our OCI layout and gives back the same manifest bytes and digest', async () => {
    const reference = `${registry.host}/crowsnest/registry-test:1`;
    const pushed = await pushOciLayout(registry.crane, image.layoutDir, reference);
    assert.equal(pushed, `${registry.host}/crowsnest/registry-test@${image.manifest.digest}`);
    assert.equal(await remoteDigest(registry.crane, reference), image.manifest.digest);
    const ours = await readFile(join(image.layoutDir, 'blobs/sha256', image.manifest.digest.slice('sha256:'.length)));
    assert.ok((await remoteManifest(registry.crane, reference)).equals(ours), 'manifest bytes unchanged');
    const layer = image.layers[0];
    assert.ok(layer);
    const blob = await fetch(`http://${registry.host}/v2/crowsnest/registry-test/blobs/${layer.digest}`);
    assert.equal(blob.status, 200);
    assert.ok(Buffer.from(await blob.arrayBuffer()).equals(await readFile(join(image.layoutDir, 'blobs/sha256', layer.digest.slice(7)))));
  });

  it('takes the .tar of the layout as well, keeping the digest', async () => {
    const reference = `${registry.host}/crowsnest/from-tar:1`;
    assert.ok(image.tarPath);
    const pushed = await pushOciLayout(registry.crane, image.tarPath, reference);
    assert.ok(pushed.endsWith(`@${image.manifest.digest}`), pushed);
  });

  it('answers 404 for a name it does not hold (no upstream to fall back to)', async () => {
    const res = await fetch(`http://${registry.host}/v2/library/busybox/manifests/latest`);
    assert.equal(res.status, 404);
    await assert.rejects(
      execFileAsync(registry.crane, ['digest', `${registry.host}/library/busybox:latest`], { env: { PATH: '/usr/bin:/bin' } }),
      /MANIFEST_UNKNOWN|NAME_UNKNOWN|404/,
    );
  });

  it('is found again by a later process and stops for good', async () => {
    const found = await LoopbackRegistry.attach(registry.dir);
    assert.ok(found);
    assert.equal(found.host, registry.host);
    const second = await LoopbackRegistry.start({ dir: join(scratch.root, 'second'), log: () => {} });
    assert.notEqual(second.host, registry.host);
    await second.stop();
    assert.equal(await second.healthy(), false);
    assert.equal(await LoopbackRegistry.attach(second.dir), undefined);
  });
});
