/**
 * Writes an OCI image — layers, config, manifest, index — as an OCI image layout directory and,
 * optionally, as a `.tar` of that layout, with no container engine.
 *
 * Reproducible by construction: layer tars come from {@link tarChunks} (sorted entries, one
 * mtime, fixed owners); each is compressed by GNU `gzip -n` (no name or time in the gzip header;
 * its output depends only on the input and gzip's version, unlike zlib builds that pick a
 * different hash function on CPUs with SSE4.2); every JSON document is built with a fixed key
 * order and the creation time is the caller's (SOURCE_DATE_EPOCH). Same inputs, same digest.
 *
 * The `.tar` holds the layout plus a Docker-style `manifest.json`, as `docker save` writes
 * since Docker 25: `ctr images import` reads the OCI layout (it prefers it when `oci-layout` is
 * present) and keeps our manifest digest; `docker load` and `crane push <file>` read
 * `manifest.json` (crane then re-encodes the manifest, so push the directory to keep the digest).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pathExists } from './paths.ts';
import { type TarEntry, tarChunks } from './tar.ts';

export const MEDIA_TYPE_INDEX = 'application/vnd.oci.image.index.v1+json';
export const MEDIA_TYPE_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const MEDIA_TYPE_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const MEDIA_TYPE_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
/** containerd reads the full image name from this index annotation on import. */
export const ANNOTATION_CONTAINERD_NAME = 'io.containerd.image.name';
/** The OCI annotation naming a manifest in a layout: by convention the tag alone. */
export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';

/**
 * Every file in every layer carries this mtime (1970-01-01), whatever SOURCE_DATE_EPOCH says:
 * a layer's digest then depends on its files alone, so the node binary's layer is the same blob
 * from one commit to the next and a registry or node that has it never transfers it again. The
 * image's `created` time is where SOURCE_DATE_EPOCH goes.
 */
const LAYER_MTIME_SECONDS = 0;
/** gzip level: -6 is gzip's default; -9 costs ~2x the time on the node binary for ~1 % less. */
const GZIP_LEVEL = '-6';

export interface LayerSpec {
  /** What the layer holds; sorted and checked by the tar writer. */
  readonly entries: readonly TarEntry[];
  /** Says what the layer is, in the config's history (`created_by`). */
  readonly createdBy: string;
}

/** The runtime part of the image config (OCI image-spec `config`), all optional. */
export interface RuntimeConfig {
  readonly user?: string;
  readonly entrypoint?: readonly string[];
  readonly cmd?: readonly string[];
  readonly env?: readonly string[];
  readonly workingDir?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly stopSignal?: string;
}

export interface ImageSpec {
  /** Full reference the image is known by locally, e.g. `localhost/crowsnest/pause:3.10`. */
  readonly name: string;
  readonly layers: readonly LayerSpec[];
  readonly config: RuntimeConfig;
  /** Creation time written into config and history, in seconds since the epoch (SOURCE_DATE_EPOCH). */
  readonly createdSeconds: number;
  /** Manifest annotations (e.g. `org.opencontainers.image.source`). */
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface WriteOptions {
  /** The OCI layout directory to (re)create. */
  readonly layoutDir: string;
  /** Also write the layout as one `.tar` here. */
  readonly tarPath?: string;
  /**
   * Compressed layers kept by their uncompressed digest, so a rebuild of unchanged content skips
   * gzip (the node binary's layer takes ~8 s to compress on this machine's cores).
   */
  readonly layerCacheDir?: string;
}

export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
}

export interface BuiltImage {
  readonly name: string;
  readonly layoutDir: string;
  readonly tarPath?: string;
  readonly manifest: Descriptor;
  readonly config: Descriptor;
  readonly layers: ReadonlyArray<Descriptor & { readonly diffId: string }>;
  /** What a pull transfers: manifest + config + compressed layers, in bytes. */
  readonly compressedBytes: number;
  /** Sum of the uncompressed layer tars, in bytes. */
  readonly uncompressedBytes: number;
}

/** Builds the image described by `spec` into `options.layoutDir` (and the `.tar`, if asked). */
export async function writeOciImage(spec: ImageSpec, options: WriteOptions): Promise<BuiltImage> {
  const { layoutDir } = options;
  await rm(layoutDir, { recursive: true, force: true });
  const blobsDir = join(layoutDir, 'blobs', 'sha256');
  await mkdir(blobsDir, { recursive: true });

  const layers: Array<Descriptor & { diffId: string; uncompressedSize: number }> = [];
  for (const layer of spec.layers) layers.push(await writeLayer(layer, blobsDir, options.layerCacheDir));

  const created = new Date(spec.createdSeconds * 1000).toISOString().replace(/\.000Z$/, 'Z');
  const config = {
    created,
    architecture: 'amd64',
    os: 'linux',
    config: runtimeConfigJson(spec.config),
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: spec.layers.map((l) => ({ created, created_by: l.createdBy })),
  };
  const configDesc = await writeJsonBlob(blobsDir, MEDIA_TYPE_CONFIG, config);
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_MANIFEST,
    config: configDesc,
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    ...(spec.annotations && Object.keys(spec.annotations).length > 0 ? { annotations: sortedRecord(spec.annotations) } : {}),
  };
  const manifestDesc = await writeJsonBlob(blobsDir, MEDIA_TYPE_MANIFEST, manifest);
  const index = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_INDEX,
    manifests: [{
      ...manifestDesc,
      platform: { architecture: 'amd64', os: 'linux' },
      annotations: { [ANNOTATION_CONTAINERD_NAME]: spec.name, [ANNOTATION_REF_NAME]: tagOf(spec.name) },
    }],
  };
  await writeFile(join(layoutDir, 'index.json'), canonicalJson(index));
  await writeFile(join(layoutDir, 'oci-layout'), canonicalJson({ imageLayoutVersion: '1.0.0' }));

  const built: BuiltImage = {
    name: spec.name,
    layoutDir,
    ...(options.tarPath ? { tarPath: options.tarPath } : {}),
    manifest: manifestDesc,
    config: configDesc,
    layers: layers.map(({ mediaType, digest, size, diffId }) => ({ mediaType, digest, size, diffId })),
    compressedBytes: manifestDesc.size + configDesc.size + layers.reduce((sum, l) => sum + l.size, 0),
    uncompressedBytes: layers.reduce((sum, l) => sum + l.uncompressedSize, 0),
  };
  if (options.tarPath) await writeLayoutTar(built, options.tarPath);
  return built;
}

/** The tag of a reference (`…/name:tag` → `tag`; no tag → `latest`). */
export function tagOf(reference: string): string {
  const lastPart = reference.slice(reference.lastIndexOf('/') + 1);
  const colon = lastPart.indexOf(':');
  return colon === -1 ? 'latest' : lastPart.slice(colon + 1);
}

/**
 * JSON with no whitespace and keys in the order the object was built: the bytes a digest covers.
 * Callers build objects in a fixed order; {@link sortedRecord} orders user-given maps.
 */
export function canonicalJson(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

function sortedRecord(record: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function runtimeConfigJson(c: RuntimeConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (c.user !== undefined) out.User = c.user;
  if (c.env !== undefined) out.Env = [...c.env];
  if (c.entrypoint !== undefined) out.Entrypoint = [...c.entrypoint];
  if (c.cmd !== undefined) out.Cmd = [...c.cmd];
  if (c.workingDir !== undefined) out.WorkingDir = c.workingDir;
  if (c.labels !== undefined) out.Labels = sortedRecord(c.labels);
  if (c.stopSignal !== undefined) out.StopSignal = c.stopSignal;
  return out;
}

async function writeJsonBlob(blobsDir: string, mediaType: string, value: unknown): Promise<Descriptor> {
  const bytes = canonicalJson(value);
  const hex = sha256Hex(bytes);
  await writeFile(join(blobsDir, hex), bytes);
  return { mediaType, digest: `sha256:${hex}`, size: bytes.length };
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * Writes the layer's tar to a scratch file (hashing it: the diff ID), then its gzip into the
 * blobs (hashing that: the digest), or copies the gzip kept for that diff ID in the cache.
 */
async function writeLayer(
  layer: LayerSpec,
  blobsDir: string,
  cacheDir: string | undefined,
): Promise<Descriptor & { diffId: string; uncompressedSize: number }> {
  const tarFile = join(blobsDir, '.layer.tar');
  const tarHash = createHash('sha256');
  let uncompressedSize = 0;
  await pipeline(
    (function* () {
      for (const chunk of tarChunks(layer.entries, { mtimeSeconds: LAYER_MTIME_SECONDS })) {
        tarHash.update(chunk);
        uncompressedSize += chunk.length;
        yield chunk;
      }
    })(),
    createWriteStream(tarFile),
  );
  const diffHex = tarHash.digest('hex');
  const gzFile = join(blobsDir, '.layer.tar.gz');
  const cached = cacheDir ? join(cacheDir, `${diffHex}.tar.gz`) : undefined;
  if (cached && (await pathExists(cached))) {
    await copyFile(cached, gzFile);
  } else {
    await gzip(tarFile, gzFile);
    if (cached) {
      await mkdir(dirname(cached), { recursive: true });
      await copyFile(gzFile, `${cached}.${process.pid}`);
      await rename(`${cached}.${process.pid}`, cached);
    }
  }
  await rm(tarFile);
  // Hash what lands in the layout, cache or not: a damaged cache entry cannot slip in under the
  // digest of a good one (the diff ID would still say what it should hold).
  const { hex, size } = await hashFile(gzFile);
  await rename(gzFile, join(blobsDir, hex));
  return { mediaType: MEDIA_TYPE_LAYER_GZIP, digest: `sha256:${hex}`, size, diffId: `sha256:${diffHex}`, uncompressedSize };
}

/** `gzip -n` of `from` into `to`. */
async function gzip(from: string, to: string): Promise<void> {
  const child = spawn('gzip', ['-n', GZIP_LEVEL, '-c', from], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  await pipeline(child.stdout, createWriteStream(to));
  const code = await exited;
  if (code !== 0) throw new Error(`gzip ${from} failed (exit ${code}): ${stderr.trim()}`);
}

async function hashFile(path: string): Promise<{ hex: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  await pipeline(createReadStream(path), new Writable({
    write(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      size += chunk.length;
      done();
    },
  }));
  return { hex: hash.digest('hex'), size };
}


/** The layout as one tar, with a `manifest.json` for Docker-format readers (see the header). */
async function writeLayoutTar(image: BuiltImage, tarPath: string): Promise<void> {
  const blob = (digest: string): string => `blobs/sha256/${digest.slice('sha256:'.length)}`;
  const dockerManifest = [{
    Config: blob(image.config.digest),
    RepoTags: [image.name],
    Layers: image.layers.map((l) => blob(l.digest)),
  }];
  const entries: TarEntry[] = [
    { type: 'file', path: 'oci-layout', mode: 0o644, content: await readFile(join(image.layoutDir, 'oci-layout')) },
    { type: 'file', path: 'index.json', mode: 0o644, content: await readFile(join(image.layoutDir, 'index.json')) },
    { type: 'file', path: 'manifest.json', mode: 0o644, content: canonicalJson(dockerManifest) },
    { type: 'dir', path: 'blobs', mode: 0o755 },
    { type: 'dir', path: 'blobs/sha256', mode: 0o755 },
  ];
  const digests = new Set([image.manifest.digest, image.config.digest, ...image.layers.map((l) => l.digest)]);
  for (const digest of digests) {
    entries.push({ type: 'file', path: blob(digest), mode: 0o644, content: await readFile(join(image.layoutDir, blob(digest))) });
  }
  await mkdir(dirname(tarPath), { recursive: true });
  await pipeline(tarChunks(entries, { mtimeSeconds: LAYER_MTIME_SECONDS }), createWriteStream(`${tarPath}.tmp`));
  await rename(`${tarPath}.tmp`, tarPath);
}

/** The manifest and config of the single image in an OCI layout directory. */
export async function readLayout(layoutDir: string): Promise<{
  manifestDigest: string;
  manifest: { config: Descriptor; layers: Descriptor[]; annotations?: Record<string, string> };
  config: { config: Record<string, unknown>; rootfs: { diff_ids: string[] } };
}> {
  const blob = async (digest: string): Promise<Buffer> => await readFile(join(layoutDir, 'blobs', 'sha256', digest.slice('sha256:'.length)));
  const index = JSON.parse(await readFile(join(layoutDir, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
  const [only] = index.manifests;
  if (!only || index.manifests.length !== 1) throw new Error(`${layoutDir}: expected one manifest in index.json, found ${index.manifests.length}`);
  const manifest = JSON.parse((await blob(only.digest)).toString()) as { config: Descriptor; layers: Descriptor[] };
  const config = JSON.parse((await blob(manifest.config.digest)).toString()) as { config: Record<string, unknown>; rootfs: { diff_ids: string[] } };
  return { manifestDigest: only.digest, manifest, config };
}

/**
 * Unpacks the image's layers, in order, into `rootDir` with GNU tar (as root: owners and modes
 * as the layers say). Our layers have no whiteouts, so plain extraction is the image's rootfs.
 */
export async function unpackLayout(layoutDir: string, rootDir: string): Promise<void> {
  const { manifest } = await readLayout(layoutDir);
  await mkdir(rootDir, { recursive: true });
  for (const layer of manifest.layers) {
    const file = join(layoutDir, 'blobs', 'sha256', layer.digest.slice('sha256:'.length));
    await new Promise<void>((resolve, reject) => {
      const child = spawn('tar', ['-xzf', file, '-C', rootDir, '--numeric-owner', '--same-owner', '--same-permissions'], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`tar -x ${file}: exit ${code}: ${stderr.trim()}`))));
    });
  }
}
