/** Where the image builder reads the project from and keeps what it downloads. */
import { lstat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's root directory. */
export const repoDir = dirname(dirname(fileURLToPath(import.meta.url)));

/** The build cache shared with testbed/build.sh and scripts/node.sh: CROWSNEST_CACHE or ~/.cache/crowsnest. */
export function cacheDir(): string {
  return process.env.CROWSNEST_CACHE || join(homedir(), '.cache', 'crowsnest');
}

/** True when something (a dangling symlink too) is at `path`. */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}
