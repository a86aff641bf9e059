/**
 * Debian packages for our images: fetched with `apt-get download` at the versions pinned in
 * `image/debian.lock` (apt checks them against the archive's signed indexes), kept in a cache by
 * file name, and unpacked with `dpkg-deb -x` — no maintainer scripts run, nothing is installed
 * on this machine.
 *
 * Debian's archive keeps only the current version of a stable package, so a pin can fall out of
 * it (tzdata moves several times a year). Then the build takes the archive's candidate, says so
 * loudly, and the image records what it holds (SBOM, /var/lib/dpkg/status.d): the digest changes
 * until the lock is bumped. A machine whose cache still holds the pinned .deb builds the pinned image.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface DebianPin {
  readonly name: string;
  readonly version: string;
}

export interface DebianPackage {
  readonly name: string;
  readonly version: string;
  readonly architecture: string;
  /** Source package name and version (the `Source:` field, or the package itself). */
  readonly source: string;
  readonly sourceVersion: string;
  readonly homepage?: string;
  /** The package's control paragraph, as `dpkg-deb -f` prints it. */
  readonly control: string;
  readonly debPath: string;
  /** sha256 of the .deb, hex. */
  readonly sha256: string;
  /** False when the pinned version was gone from the archive and the candidate was taken. */
  readonly pinned: boolean;
}

/** Reads `name version` lines (`#` comments, blank lines allowed). */
export function parseLock(text: string): DebianPin[] {
  const pins: DebianPin[] = [];
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') continue;
    const fields = line.split(/\s+/);
    if (fields.length !== 2 || !/^[a-z0-9][a-z0-9+.-]+$/.test(fields[0] ?? '')) {
      throw new Error(`debian.lock line ${i + 1}: expected "<package> <version>", got ${JSON.stringify(raw)}`);
    }
    pins.push({ name: fields[0] ?? '', version: fields[1] ?? '' });
  }
  return pins;
}

/** The pins for `names`, in that order; a name missing from the lock is an error. */
export function pinsFor(lock: readonly DebianPin[], names: readonly string[]): DebianPin[] {
  return names.map((name) => {
    const pin = lock.find((p) => p.name === name);
    if (!pin) throw new Error(`image/debian.lock has no pin for ${name}`);
    return pin;
  });
}

export interface FetchOptions {
  /** Where .deb files are kept between builds. */
  readonly cacheDir: string;
  readonly log: (line: string) => void;
}

/** The .deb of each pin, from the cache or the archive (see the header for a vanished pin). */
export async function fetchPackages(pins: readonly DebianPin[], options: FetchOptions): Promise<DebianPackage[]> {
  await mkdir(options.cacheDir, { recursive: true });
  const apt = new AptSession(options);
  const packages: DebianPackage[] = [];
  for (const pin of pins) {
    let pinned = true;
    let debPath = await cached(options.cacheDir, pin);
    if (!debPath) {
      debPath = await apt.download(pin);
      if (!debPath) {
        const candidate = await apt.candidate(pin.name);
        if (!candidate) throw new Error(`apt knows no package ${pin.name}: is this a Debian bookworm machine with its archive reachable?`);
        options.log(
          `WARNING: ${pin.name} ${pin.version} (image/debian.lock) is gone from the Debian archive; using ${candidate}. ` +
            `The image differs from this commit's until the lock says "${pin.name} ${candidate}".`,
        );
        pinned = false;
        debPath = (await cached(options.cacheDir, { name: pin.name, version: candidate })) ?? (await apt.download({ name: pin.name, version: candidate }));
        if (!debPath) throw new Error(`apt-get download ${pin.name}=${candidate} failed`);
      }
    }
    packages.push({ ...(await describe(debPath)), debPath, pinned });
  }
  return packages;
}

/** Unpacks each package's files into `rootDir` (`dpkg-deb -x`: modes and symlinks as packaged). */
export async function unpackPackages(packages: readonly DebianPackage[], rootDir: string): Promise<void> {
  await mkdir(rootDir, { recursive: true });
  for (const pkg of packages) await execFileAsync('dpkg-deb', ['-x', pkg.debPath, rootDir]);
}

/** Paths of the regular files and symlinks a package holds (relative, no leading `./`). */
export async function packageFiles(debPath: string): Promise<string[]> {
  const { stdout } = await execFileAsync('sh', ['-c', 'dpkg-deb --fsys-tarfile "$1" | tar -t', 'sh', debPath], { maxBuffer: 1 << 26 });
  return stdout.split('\n').filter((l) => l !== '' && !l.endsWith('/')).map((l) => l.replace(/^\.\//, ''));
}

/** apt's file name for a version: an epoch's colon is written `%3a`. */
function debFileVersion(version: string): string {
  return version.replace(/:/g, '%3a');
}

async function cached(cacheDir: string, pin: DebianPin): Promise<string | undefined> {
  const prefix = `${pin.name}_${debFileVersion(pin.version)}_`;
  const hit = (await readdir(cacheDir)).find((f) => f.startsWith(prefix) && f.endsWith('.deb'));
  return hit ? join(cacheDir, hit) : undefined;
}

async function describe(debPath: string): Promise<Omit<DebianPackage, 'debPath' | 'pinned'>> {
  const control = (await execFileAsync('dpkg-deb', ['-f', debPath])).stdout;
  const field = (name: string): string | undefined => control.match(new RegExp(`^${name}: (.*)$`, 'm'))?.[1]?.trim();
  const name = field('Package');
  const version = field('Version');
  const architecture = field('Architecture');
  if (!name || !version || !architecture) throw new Error(`${debPath}: no Package/Version/Architecture in its control file`);
  // `Source: glibc` or `Source: gcc-12 (12.2.0-14)` when the source version differs.
  const sourceField = field('Source');
  const sourceMatch = sourceField?.match(/^(\S+)(?: \((.+)\))?$/);
  const homepage = field('Homepage');
  return {
    name,
    version,
    architecture,
    source: sourceMatch?.[1] ?? name,
    sourceVersion: sourceMatch?.[2] ?? version,
    ...(homepage ? { homepage } : {}),
    control,
    sha256: createHash('sha256').update(await readFile(debPath)).digest('hex'),
  };
}

/** `apt-get download` into the cache; runs `apt-get update` once if the indexes lack a version. */
class AptSession {
  private updated = false;
  private readonly options: FetchOptions;

  constructor(options: FetchOptions) {
    this.options = options;
  }

  /** The cached path of `name=version`, or undefined when apt cannot get that version. */
  async download(pin: DebianPin): Promise<string | undefined> {
    for (;;) {
      const path = await this.tryDownload(pin);
      if (path || this.updated) return path;
      await this.update();
    }
  }

  async candidate(name: string): Promise<string | undefined> {
    if (!this.updated) await this.update();
    const { stdout } = await execFileAsync('apt-cache', ['policy', name]);
    const candidate = stdout.match(/^\s*Candidate: (\S+)$/m)?.[1];
    return candidate && candidate !== '(none)' ? candidate : undefined;
  }

  private async tryDownload(pin: DebianPin): Promise<string | undefined> {
    const tmp = await mkdtemp(join(this.options.cacheDir, '.download-'));
    try {
      // Root downloads unsandboxed (the _apt user cannot write our cache); apt still verifies
      // the file against the signed index.
      await execFileAsync('apt-get', ['download', '-q', '-o', 'APT::Sandbox::User=root', `${pin.name}=${pin.version}`], { cwd: tmp });
      const [file] = (await readdir(tmp)).filter((f) => f.endsWith('.deb'));
      if (!file) return undefined;
      const dest = join(this.options.cacheDir, file);
      await rename(join(tmp, file), dest);
      this.options.log(`downloaded ${file}`);
      return dest;
    } catch {
      return undefined;
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }

  private async update(): Promise<void> {
    this.updated = true;
    this.options.log('apt-get update (a pinned package is not in the current indexes)');
    try {
      await execFileAsync('apt-get', ['update', '-q']);
    } catch (err) {
      this.options.log(`apt-get update failed (${(err as Error).message.split('\n')[0]}); needs root and the Debian archive`);
    }
  }
}
