/**
 * The Crowsnest image as `make image` builds it: reproducible, non-root, runnable on a
 * read-only root filesystem, described exactly by its SBOM, and pushed to a registry under the
 * digest we built.
 *
 * The two builds share the download caches (.debs, the production node_modules: inputs) but not
 * the compressed-layer cache, so both run gzip and the digests compare what each build made.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { APP_DIR, buildCrowsnestImage, type CrowsnestImage, DEBIAN_PACKAGES, excludedFromDebian, SBOM_PATH } from '../../image/crowsnest.ts';
import { packageFiles } from '../../image/debian.ts';
import { readLayout, unpackLayout } from '../../image/oci.ts';
import { pathExists, repoDir } from '../../image/paths.ts';
import { LoopbackRegistry, remoteDigest, remoteManifest } from '../../testbed/registry.ts';
import { useScratchDir } from '../helpers/scratch.ts';
import { containerdAvailable, PrivateContainerd, rootSkipReason, runInRootfs } from './runtimes.ts';

const execFileAsync = promisify(execFile);
const scratch = useScratchDir('crowsnest-image-');
/**
 * A budget, not a target: the published compressed size of the distroless Node.js base image
 * alone is ~55 MB (README, "The image"); ours, with Crowsnest in it, must stay below.
 */
const COMPRESSED_BUDGET_BYTES = 55_000_000;

let first: CrowsnestImage;
let second: CrowsnestImage;
let rootfs: string;

describe('the Crowsnest image', () => {
  before(async () => {
    const log = (): void => {};
    // At once: each build's gzip is a process of its own, so the two share the machine's cores.
    [first, second] = await Promise.all([
      buildCrowsnestImage({ outDir: join(scratch.root, 'first'), layerCache: join(scratch.root, 'layer-cache'), log }),
      buildCrowsnestImage({ outDir: join(scratch.root, 'second'), layerCache: false, log }),
    ]);
    rootfs = join(scratch.root, 'rootfs');
    await unpackLayout(first.layoutDir, rootfs);
  });

  it('has the same digest, tar and SBOM when built twice from the same commit', async () => {
    assert.equal(second.manifest.digest, first.manifest.digest);
    assert.deepEqual(second.layers, first.layers);
    assert.ok(first.tarPath && second.tarPath);
    assert.ok((await readFile(first.tarPath)).equals(await readFile(second.tarPath)), 'the .tar files are byte-identical');
    assert.ok((await readFile(first.sbomPath)).equals(await readFile(second.sbomPath)));
  });

  it('runs as uid/gid 65532 with crowsnest as its entrypoint and no compile cache to write', async () => {
    const { config, manifest } = await readLayout(first.layoutDir);
    const runtime = config.config as { User: string; Entrypoint: string[]; Env: string[]; WorkingDir: string };
    assert.equal(runtime.User, '65532:65532');
    assert.deepEqual(runtime.Entrypoint, ['/usr/local/bin/crowsnest']);
    assert.ok(runtime.Env.includes('NODE_ENV=production'));
    assert.ok(runtime.Env.includes('NODE_DISABLE_COMPILE_CACHE=1'));
    assert.ok(runtime.Env.includes(`CROWSNEST_GIT_COMMIT=${first.gitCommit}`));
    assert.equal(manifest.annotations?.['org.opencontainers.image.version'], first.version);
    assert.equal(first.name, `localhost/crowsnest/crowsnest:${first.version}`);
  });

  it(`stays below the distroless Node.js base image's compressed size (${COMPRESSED_BUDGET_BYTES / 1e6} MB)`, () => {
    assert.ok(first.compressedBytes < COMPRESSED_BUDGET_BYTES, `${first.compressedBytes} bytes compressed`);
  });

  it('holds JavaScript, not TypeScript, and only production dependencies', async () => {
    const files = await walk(join(rootfs, APP_DIR, 'src'));
    assert.ok(files.includes('cli/entry.js'));
    assert.deepEqual(files.filter((f) => !f.endsWith('.js')), [], 'nothing but .js under src/');
    assert.deepEqual(files.filter((f) => f.endsWith('.test.js')), [], 'no tests');
    const dev = Object.keys((JSON.parse(await readFile(join(repoDir, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }).devDependencies);
    for (const name of dev) assert.equal(first.npm.some((p) => p.name === name), false, `${name} is a dev dependency`);
  });

  it('lists in its SBOM exactly the Debian and npm packages inside, with versions', async () => {
    const sbom = JSON.parse(await readFile(first.sbomPath, 'utf8')) as {
      spdxVersion: string;
      packages: Array<{ name: string; versionInfo: string; SPDXID: string; externalRefs?: Array<{ referenceLocator: string }> }>;
    };
    assert.equal(sbom.spdxVersion, 'SPDX-2.3');
    assert.ok((await readFile(join(rootfs, SBOM_PATH))).equals(await readFile(first.sbomPath)), 'the SBOM inside is the one beside');
    const listed = (kind: string): string[] => sbom.packages
      .filter((p) => p.externalRefs?.[0]?.referenceLocator.startsWith(`pkg:${kind}/`))
      .map((p) => `${p.name}@${p.versionInfo}`).sort();

    // Debian: what dpkg's status.d in the image says, which is what was unpacked.
    const statusDir = join(rootfs, 'var/lib/dpkg/status.d');
    const installed: string[] = [];
    for (const name of await readdir(statusDir)) {
      const control = await readFile(join(statusDir, name), 'utf8');
      assert.match(control, /^Status: install ok installed$/m);
      installed.push(`${control.match(/^Package: (.+)$/m)?.[1]}@${control.match(/^Version: (.+)$/m)?.[1]}`);
    }
    assert.deepEqual(listed('deb'), installed.sort());
    assert.deepEqual(installed.map((p) => p.split('@')[0]).sort(), [...DEBIAN_PACKAGES].sort());
    for (const pkg of first.debian) {
      for (const file of await packageFiles(pkg.debPath)) {
        if (!excludedFromDebian(file)) assert.ok(await pathExists(join(rootfs, file)), `${pkg.name}: /${file} is in the image`);
      }
    }

    // npm: every package.json under the image's node_modules (nested ones too).
    const inImage = (await npmPackagesIn(join(rootfs, APP_DIR, 'node_modules'))).sort();
    assert.ok(inImage.length > 5, inImage.join(' '));
    assert.deepEqual(listed('npm'), inImage);

    // Node itself, at the version the binary in the image reports.
    const node = sbom.packages.find((p) => p.name === 'node');
    assert.equal(`v${node?.versionInfo}`, (await execFileAsync(join(rootfs, 'usr/local/bin/node'), ['--version'])).stdout.trim());
  });

  it('runs `crowsnest --help` and `crowsnest ports scan` as uid 65532 on a read-only root', { skip: rootSkipReason() }, async () => {
    const { config } = await readLayout(first.layoutDir);
    const runtime = config.config as { User: string; Entrypoint: string[]; Env: string[] };
    const run = (args: string[]): ReturnType<typeof runInRootfs> =>
      runInRootfs(rootfs, { user: runtime.User, env: runtime.Env, argv: [...runtime.Entrypoint, ...args] });

    const help = await run(['--help']);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^Usage: crowsnest <command>/);
    assert.equal(help.stderr, '', 'nothing to complain about: no write to a read-only path was tried');

    const version = await run(['version']);
    assert.match(version.stdout, new RegExp(`crowsnest ${first.version.replace(/\./g, '\\.')}`));
    assert.match(version.stdout, new RegExp(first.gitCommit.slice(0, 7)));

    const listener = await listen();
    try {
      const port = (listener.address() as { port: number }).port;
      const scan = await run(['ports', 'scan', '--output', 'json']);
      assert.equal(scan.code, 0, scan.stderr);
      const { sockets } = JSON.parse(scan.stdout) as { sockets: Array<{ port: number }> };
      assert.ok(sockets.some((s) => s.port === port), `port ${port} listened on by the test is in the scan`);
    } finally {
      listener.close();
    }

    const write = await runInRootfs(rootfs, {
      user: runtime.User, env: runtime.Env,
      argv: ['/usr/local/bin/node', '-e', 'try { require("fs").writeFileSync("/tmp/x", "") } catch (e) { console.log(e.code) } console.log(require("os").userInfo().username)'],
    });
    assert.deepEqual(write.stdout.trim().split('\n'), ['EROFS', 'nonroot'], 'the root really is read-only, and uid 65532 has a name');
  });

  it('is imported by containerd from its .tar under our digest and runs with runc, read-only', { skip: rootSkipReason() || (!containerdAvailable() && 'containerd, ctr or runc not installed') }, async () => {
    const containerd = await PrivateContainerd.start(join(scratch.root, 'containerd'));
    try {
      assert.ok(first.tarPath);
      const imported = await containerd.ctr(['images', 'import', first.tarPath]);
      assert.equal(imported.code, 0, imported.stderr);
      const images = await containerd.ctr(['images', 'ls']);
      assert.match(images.stdout, new RegExp(`${first.name.replace(/[.]/g, '\\.')}\\s+\\S+\\s+${first.manifest.digest}`));
      const run = await containerd.ctr(['run', '--rm', '--read-only', first.name, 'crowsnest-help', '/usr/local/bin/crowsnest', '--help']);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /Usage: crowsnest <command>/);
      const who = await containerd.ctr(['run', '--rm', '--read-only', first.name, 'crowsnest-id', '/usr/local/bin/node', '-p', 'process.getuid() + ":" + process.getgid()']);
      assert.equal(who.stdout.trim(), '65532:65532');
    } finally {
      await containerd.stop();
    }
  });

  it('is pushed by `make image-push` and the registry serves it under the digest built', async () => {
    const registry = await LoopbackRegistry.start({ dir: join(scratch.root, 'registry'), log: () => {} });
    try {
      const { stdout } = await execFileAsync(process.execPath, [join(repoDir, 'image/build.ts'), 'push', '--registry', `${registry.host}/team`, '--out', join(scratch.root, 'first')]);
      assert.equal(stdout.trim(), `${registry.host}/team/crowsnest@${first.manifest.digest}`);
      const reference = `${registry.host}/team/crowsnest:${first.version}`;
      assert.equal(await remoteDigest(registry.crane, reference), first.manifest.digest);
      const ours = await readFile(join(first.layoutDir, 'blobs/sha256', first.manifest.digest.slice(7)));
      assert.ok((await remoteManifest(registry.crane, reference)).equals(ours));
    } finally {
      await registry.stop();
    }
  });
});

/** Files below `dir`, relative, sorted. */
async function walk(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...(await walk(join(dir, entry.name), rel)));
    else out.push(rel);
  }
  return out.sort();
}

/** `name@version` of every package directory in a node_modules tree (scoped and nested ones too). */
async function npmPackagesIn(nodeModules: string): Promise<string[]> {
  const found: string[] = [];
  const visit = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
      if (entry.name.startsWith('@')) {
        await visit(join(dir, entry.name));
        continue;
      }
      const pkgDir = join(dir, entry.name);
      const manifest = JSON.parse(await readFile(join(pkgDir, 'package.json'), 'utf8')) as { name: string; version: string };
      found.push(`${manifest.name}@${manifest.version}`);
      if (await pathExists(join(pkgDir, 'node_modules'))) await visit(join(pkgDir, 'node_modules'));
    }
  };
  await visit(nodeModules);
  return found;
}


function listen(): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}
