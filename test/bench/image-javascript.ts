/**
 * The image's JavaScript for benchmarks that run an in-pod command as the image runs it: `src/`
 * emitted by tsconfig.build.json (so no type stripping at start), the checkout's package.json and
 * npm packages beside it.
 */
import { execFile } from 'node:child_process';
import { copyFile, symlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const repo = join(import.meta.dirname, '..', '..');

/** Emits into `outDir`; returns the path of the CLI's entry (`…/src/cli/entry.js`). */
export async function emitImageJavaScript(outDir: string): Promise<string> {
  const tsc = createRequire(join(repo, 'package.json')).resolve('typescript/bin/tsc');
  await run(process.execPath, [tsc, '-p', join(repo, 'tsconfig.build.json'), '--outDir', outDir], { cwd: repo });
  await copyFile(join(repo, 'package.json'), join(outDir, 'package.json'));
  // The image has its npm packages beside the JavaScript; here, the checkout's.
  await symlink(join(repo, 'node_modules'), join(outDir, 'node_modules'));
  return join(outDir, 'src', 'cli', 'entry.js');
}
