import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';

/** A test file's scratch directory; see {@link useScratchDir}. */
export interface ScratchDir {
  /** The directory itself, once the file's tests have started. */
  readonly root: string;
  /** A path inside it that no other call returned: `<root>/<stem>-<n><suffix>`, not created. */
  path(stem: string, suffix?: string): string;
  /** A new, empty directory inside it. */
  fresh(): Promise<string>;
}

/**
 * Creates a scratch directory before the calling file's tests and removes it, with everything
 * in it, after them. Call at the top level of a test file.
 */
export function useScratchDir(prefix: string): ScratchDir {
  let root = '';
  let count = 0;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), prefix));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });
  const path = (stem: string, suffix = ''): string => join(root, `${stem}-${count++}${suffix}`);
  return {
    get root() {
      return root;
    },
    path,
    async fresh() {
      const dir = path('d');
      await mkdir(dir);
      return dir;
    },
  };
}
