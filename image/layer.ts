/**
 * Collects the entries of one image layer: files and symlinks from memory or from a staged
 * directory on disk, with every parent directory added as `mkdir -p` would (mode 0755, root).
 * What a file's owner and mode are is decided here, never taken from the build machine's
 * users: everything belongs to root unless the caller says otherwise.
 */
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { TarEntry } from './tar.ts';

/** Ownership and permissions for entries taken from disk. */
export interface TreeOptions {
  /** Leave out an entry (and, for a directory, all below it). `path` is relative to the tree's root. */
  readonly exclude?: (path: string) => boolean;
  /**
   * Modes: `keep` takes the staged file's permission bits (a Debian package's own, as dpkg-deb
   * extracted them); `normalize` makes files 0644, executables 0755 and directories 0755, so an
   * npm install's umask cannot change the layer.
   */
  readonly modes: 'keep' | 'normalize';
}

export class LayerBuilder {
  private readonly entries = new Map<string, TarEntry>();

  /** Adds a directory (and its parents). A directory already present keeps its first mode. */
  dir(path: string, mode = 0o755, owner?: { uid: number; gid: number }): this {
    this.parents(path);
    if (!this.entries.has(path)) this.entries.set(path, { type: 'dir', path, mode, ...owner });
    return this;
  }

  file(path: string, content: Uint8Array | string, mode = 0o644): this {
    this.parents(path);
    this.put({ type: 'file', path, mode, content: typeof content === 'string' ? Buffer.from(content) : content });
    return this;
  }

  symlink(path: string, target: string): this {
    this.parents(path);
    this.put({ type: 'symlink', path, target });
    return this;
  }

  /**
   * Adds everything below `diskDir` at `atPath` (`''` for the image's root), in sorted order.
   * Hard links become copies; sockets, fifos and devices are refused (none belongs in a layer).
   */
  async tree(diskDir: string, atPath: string, options: TreeOptions): Promise<this> {
    if (atPath !== '') this.dir(atPath);
    const walk = async (rel: string): Promise<void> => {
      const names = (await readdir(join(diskDir, rel))).sort();
      for (const name of names) {
        const relPath = rel === '' ? name : `${rel}/${name}`;
        if (options.exclude?.(relPath)) continue;
        const imagePath = atPath === '' ? relPath : `${atPath}/${relPath}`;
        const diskPath = join(diskDir, relPath);
        const stats = await lstat(diskPath);
        const keptMode = stats.mode & 0o7777;
        if (stats.isDirectory()) {
          this.dir(imagePath, options.modes === 'keep' ? keptMode : 0o755);
          await walk(relPath);
        } else if (stats.isSymbolicLink()) {
          this.symlink(imagePath, await readlink(diskPath));
        } else if (stats.isFile()) {
          const mode = options.modes === 'keep' ? keptMode : (stats.mode & 0o111) !== 0 ? 0o755 : 0o644;
          this.file(imagePath, await readFile(diskPath), mode);
        } else {
          throw new Error(`layer: ${diskPath} is neither a file, a directory nor a symlink`);
        }
      }
    };
    await walk('');
    return this;
  }

  /** True when the layer holds `path`. */
  has(path: string): boolean {
    return this.entries.has(path);
  }

  /** Paths of the regular files, sorted. */
  filePaths(): string[] {
    return [...this.entries.values()].filter((e) => e.type === 'file').map((e) => e.path).sort();
  }

  build(): TarEntry[] {
    return [...this.entries.values()];
  }

  private parents(path: string): void {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      const existing = this.entries.get(dir);
      if (existing === undefined) this.entries.set(dir, { type: 'dir', path: dir, mode: 0o755 });
      else if (existing.type !== 'dir') throw new Error(`layer: ${path} needs ${dir} to be a directory, but it is a ${existing.type}`);
    }
  }

  private put(entry: TarEntry): void {
    const existing = this.entries.get(entry.path);
    if (existing !== undefined) throw new Error(`layer: ${entry.path} is added twice (${existing.type}, then ${entry.type})`);
    this.entries.set(entry.path, entry);
  }
}
