/**
 * The two small images the testbed's real nodes need besides Crowsnest's own:
 *
 * - **pause** (`localhost/crowsnest/pause:<key>`): containerd's `sandbox_image`, the process
 *   that holds a pod's namespaces; our own static Go binary (testbed/pause), built by
 *   `testbed/build.sh`, whose key names its source and Go version.
 * - **testbox** (`localhost/crowsnest/testbox:<busybox version>`): Debian's `busybox-static`
 *   with every applet linked (sh, sleep, httpd, nc, wget, nslookup, ip, …) for test pods.
 *
 * Both are named under `localhost/` so that no runtime ever resolves them on the internet; to
 * serve them from the loopback registry, push the layout to {@link registryReference}.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { addAccounts } from './accounts.ts';
import { fetchPackages, parseLock, pinsFor, unpackPackages } from './debian.ts';
import { LayerBuilder } from './layer.ts';
import { type BuiltImage, writeOciImage } from './oci.ts';
import { cacheDir, repoDir } from './paths.ts';

const execFileAsync = promisify(execFile);

export const PAUSE_REPOSITORY = 'localhost/crowsnest/pause';
export const TESTBOX_REPOSITORY = 'localhost/crowsnest/testbox';
/** The pause image runs as the conventional nobody of pause images (Kubernetes' own uses 65535). */
const PAUSE_UID = 65535;

export interface TestbedImageOptions {
  /** Where to write `<name>/` (OCI layout) and `<name>.tar`. */
  readonly outDir: string;
  /** Progress lines. Default: stderr. */
  readonly log?: (line: string) => void;
}

/**
 * The pause image from the `pause` binary in `binDir` (testbed/build.sh's bin dir). Its tag is
 * the key the binary reports (`pause --version`), so a changed pause is a new tag.
 */
export async function buildPauseImage(binDir: string, options: TestbedImageOptions): Promise<BuiltImage> {
  const binary = join(binDir, 'pause');
  const { stdout } = await execFileAsync(binary, ['--version']);
  const key = stdout.trim().split(' ').pop() ?? '';
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(key)) throw new Error(`${binary} --version printed no usable tag: ${stdout}`);
  const layer = new LayerBuilder().file('pause', await readFile(binary), 0o755);
  return await writeOciImage({
    name: `${PAUSE_REPOSITORY}:${key}`,
    createdSeconds: 0,
    config: { entrypoint: ['/pause'], user: `${PAUSE_UID}:${PAUSE_UID}`, env: ['PATH=/'] },
    layers: [{ createdBy: 'crowsnest image builder: pause (testbed/pause)', entries: layer.build() }],
  }, { layoutDir: join(options.outDir, 'pause'), tarPath: join(options.outDir, 'pause.tar') });
}

/** The testbox image: busybox-static from Debian, at the version image/debian.lock pins. */
export async function buildTestboxImage(options: TestbedImageOptions): Promise<BuiltImage> {
  const log = options.log ?? ((line: string) => process.stderr.write(`[image] ${line}\n`));
  const lock = parseLock(await readFile(join(repoDir, 'image', 'debian.lock'), 'utf8'));
  const [busybox] = await fetchPackages(pinsFor(lock, ['busybox-static']), { cacheDir: join(cacheDir(), 'debs'), log });
  if (!busybox) throw new Error('busybox-static was not fetched');
  const staging = await mkdtemp(join(tmpdir(), 'crowsnest-testbox-'));
  try {
    await unpackPackages([busybox], staging);
    const binary = join(staging, 'bin', 'busybox');
    // The applet list is compiled into the (static) binary, so running it here is the same on any machine.
    const applets = (await execFileAsync(binary, ['--list-full'])).stdout.split('\n').filter((l) => l !== '');
    const layer = new LayerBuilder()
      .file('bin/busybox', await readFile(binary), 0o755)
      .file('usr/share/doc/busybox-static/copyright', await readFile(join(staging, 'usr/share/doc/busybox-static/copyright')));
    for (const applet of applets) if (applet !== 'bin/busybox') layer.symlink(applet, '/bin/busybox');
    addAccounts(layer);
    layer.dir('tmp', 0o1777);
    // Tags allow [A-Za-z0-9_.-]: Debian's epoch colon and '+' become '-'.
    const tag = busybox.version.replace(/^\d+:/, '').replace(/[^A-Za-z0-9_.-]/g, '-');
    return await writeOciImage({
      name: `${TESTBOX_REPOSITORY}:${tag}`,
      createdSeconds: 0,
      config: { cmd: ['sh'], env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'] },
      layers: [{ createdBy: `crowsnest image builder: busybox-static ${busybox.version} (Debian)`, entries: layer.build() }],
    }, { layoutDir: join(options.outDir, 'testbox'), tarPath: join(options.outDir, 'testbox.tar') });
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/**
 * The reference of a `localhost/…` image in a registry: `localhost/crowsnest/testbox:1.35` with
 * host `127.0.0.1:5000` → `127.0.0.1:5000/crowsnest/testbox:1.35`.
 */
export function registryReference(registryHost: string, localName: string): string {
  if (!localName.startsWith('localhost/')) throw new Error(`${localName} is not a localhost/ image name`);
  return `${registryHost}/${localName.slice('localhost/'.length)}`;
}
