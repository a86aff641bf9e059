import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { useScratchDir } from '../test/helpers/scratch.ts';
import { type ImageSpec, readLayout, tagOf, writeOciImage } from './oci.ts';

const scratch = useScratchDir('crowsnest-oci-');

function spec(content: string): ImageSpec {
  return {
    name: 'localhost/crowsnest/oci-test:2.0',
    createdSeconds: 1_700_000_000,
    config: { user: '65532:65532', entrypoint: ['/bin/app'], env: ['PATH=/bin'], labels: { b: '2', a: '1' } },
    annotations: { 'org.opencontainers.image.version': '2.0' },
    layers: [
      { createdBy: 'dirs', entries: [{ type: 'dir', path: 'bin', mode: 0o755 }] },
      { createdBy: 'app', entries: [{ type: 'dir', path: 'bin', mode: 0o755 }, { type: 'file', path: 'bin/app', mode: 0o755, content: Buffer.from(content) }] },
    ],
  };
}

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('OCI image writer', () => {
  it('writes the same digest for the same content, cached or not, and another for other content', async () => {
    const cache = scratch.path('cache');
    const a = await writeOciImage(spec('v1'), { layoutDir: scratch.path('a') });
    const b = await writeOciImage(spec('v1'), { layoutDir: scratch.path('b'), layerCacheDir: cache });
    const c = await writeOciImage(spec('v1'), { layoutDir: scratch.path('c'), layerCacheDir: cache });
    const d = await writeOciImage(spec('v2'), { layoutDir: scratch.path('d') });
    assert.equal(b.manifest.digest, a.manifest.digest);
    assert.equal(c.manifest.digest, a.manifest.digest, 'from the layer cache');
    assert.equal((await readdir(cache)).length, 2, 'one cached gzip per layer');
    assert.notEqual(d.manifest.digest, a.manifest.digest);
    assert.equal(d.layers[0]?.digest, a.layers[0]?.digest, 'an unchanged layer keeps its digest');
  });

  it('lays out blobs named by their digests, an index naming the image for containerd, and a config with the runtime settings', async () => {
    const image = await writeOciImage(spec('v1'), { layoutDir: scratch.path('layout') });
    const blobs = join(image.layoutDir, 'blobs', 'sha256');
    for (const name of await readdir(blobs)) assert.equal(sha256(await readFile(join(blobs, name))), `sha256:${name}`);
    assert.deepEqual(JSON.parse(await readFile(join(image.layoutDir, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
    const index = JSON.parse(await readFile(join(image.layoutDir, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; annotations: Record<string, string> }> };
    assert.equal(index.manifests[0]?.digest, image.manifest.digest);
    assert.deepEqual(index.manifests[0]?.annotations, {
      'io.containerd.image.name': 'localhost/crowsnest/oci-test:2.0',
      'org.opencontainers.image.ref.name': '2.0',
    });
    const { config, manifest } = await readLayout(image.layoutDir);
    assert.deepEqual(config.config, { User: '65532:65532', Env: ['PATH=/bin'], Entrypoint: ['/bin/app'], Labels: { a: '1', b: '2' } });
    assert.equal((config as unknown as { created: string }).created, '2023-11-14T22:13:20Z');
    assert.equal(manifest.layers.length, 2);

    // Each layer: gzip without name or time (bytes 4-7 of the header), a tar whose digest is the diff ID.
    for (const [i, layer] of image.layers.entries()) {
      const gz = await readFile(join(blobs, layer.digest.slice(7)));
      assert.equal(gz.readUInt32LE(4), 0, 'no mtime in the gzip header');
      assert.equal((gz[3] ?? 0) & 0x08, 0, 'no file name in the gzip header');
      assert.equal(sha256(gunzipSync(gz)), config.rootfs.diff_ids[i]);
    }
  });

  it('writes the layout as a .tar that GNU tar lists with a Docker-style manifest.json beside the index', async () => {
    const tarPath = scratch.path('image', '.tar');
    const image = await writeOciImage(spec('v1'), { layoutDir: scratch.path('layout'), tarPath });
    const names = execFileSync('tar', ['-tf', tarPath], { encoding: 'utf8' }).trim().split('\n');
    assert.deepEqual(names.slice(0, 3), ['blobs/', 'blobs/sha256/', `blobs/sha256/${names[2]?.slice('blobs/sha256/'.length)}`]);
    assert.ok(names.includes('index.json') && names.includes('oci-layout') && names.includes('manifest.json'));
    const docker = JSON.parse(execFileSync('tar', ['-xOf', tarPath, 'manifest.json'], { encoding: 'utf8' })) as Array<{ Config: string; RepoTags: string[]; Layers: string[] }>;
    assert.deepEqual(docker, [{
      Config: `blobs/sha256/${image.config.digest.slice(7)}`,
      RepoTags: ['localhost/crowsnest/oci-test:2.0'],
      Layers: image.layers.map((l) => `blobs/sha256/${l.digest.slice(7)}`),
    }]);
  });

  it('reads the tag of a reference', () => {
    assert.equal(tagOf('localhost/crowsnest/pause:abc'), 'abc');
    assert.equal(tagOf('127.0.0.1:5000/crowsnest/x'), 'latest');
    assert.equal(tagOf('127.0.0.1:5000/crowsnest/x:1.2'), '1.2');
  });
});
