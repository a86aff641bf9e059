/** Test helper: a {@link ProcFs} that fails on chosen paths, to stand in for EACCES and vanished pids even as root. */
import { nodeProcFs, type ProcFs } from '../procfs.ts';

/** The real file system, except for paths ending in one of the given suffixes, which fail with that code. */
export function failing(failures: Record<string, string>): ProcFs {
  const check = (path: string): void => {
    for (const [suffix, code] of Object.entries(failures)) {
      if (path.endsWith(suffix)) throw Object.assign(new Error(`${code}: ${path}`), { code });
    }
  };
  return {
    readdir: (path) => { check(path); return nodeProcFs.readdir(path); },
    readlink: (path) => { check(path); return nodeProcFs.readlink(path); },
    readFile: (path) => { check(path); return nodeProcFs.readFile(path); },
    readFilesInBackground: (paths) => {
      const reads = nodeProcFs.readFilesInBackground(paths);
      return {
        async *[Symbol.asyncIterator]() {
          for await (const { index, read } of reads) {
            try {
              check(paths[index]!);
              yield { index, read };
            } catch (err) {
              yield { index, read: { error: err as Error } };
            }
          }
        },
      };
    },
  };
}
