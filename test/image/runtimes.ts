/**
 * Two ways to run an image without a kubelet, for the image tests:
 *
 * - {@link runInRootfs}: the unpacked rootfs, bind-mounted read-only onto itself in a private
 *   mount + PID namespace (`unshare`), with a fresh /proc and the host's /dev, entered with
 *   `chroot --userspec`. Close to what runc does with `readOnlyRootFilesystem: true`.
 * - {@link PrivateContainerd}: Debian's containerd on its own socket, root and state dirs (the
 *   CRI plugin off), so `ctr images import` and `ctr run` (runc) see our `.tar` as a node's
 *   containerd would. Only when containerd, ctr and runc are installed.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RootfsRun {
  /** `uid:gid` to run as. */
  readonly user: string;
  /** The whole environment (nothing of the test process leaks in). */
  readonly env: readonly string[];
  readonly argv: readonly string[];
}

/** Why image tests that need root cannot run here, or false when they can. */
export function rootSkipReason(): string | false {
  return process.getuid?.() === 0 ? false : 'needs root (unshare, mount, chroot)';
}

/**
 * Starts `argv` in the rootfs at `rootDir`, read-only, as `user` (see the header). The process
 * returned is `unshare`; the command itself is PID 1 of the new PID namespace (`sh` execs it), a
 * child of that process on the host: {@link hostPidOfCommand} finds it.
 */
export function spawnInRootfs(rootDir: string, run: RootfsRun): ChildProcess {
  const script = [
    'set -e',
    // Runtimes make the mount points an image lacks (pause and testbox have no /proc or /dev).
    'mkdir -p "$1/proc" "$1/dev"',
    'mount --bind "$1" "$1"',
    'mount -o remount,bind,ro "$1"',
    'mount -t proc proc "$1/proc"',
    'mount --rbind /dev "$1/dev"',
    'shift',
    'exec env -i "$@"',
  ].join('\n');
  const args = ['--mount', '--pid', '--fork', '--propagation', 'private', 'sh', '-c', script, 'sh', rootDir,
    ...run.env, which('chroot'), `--userspec=${run.user}`, rootDir, ...run.argv];
  return spawn('unshare', args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Runs `argv` in the rootfs to its end (see {@link spawnInRootfs}). */
export async function runInRootfs(rootDir: string, run: RootfsRun): Promise<RunResult> {
  const child = spawnInRootfs(rootDir, run);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  return await new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The host pid of the command {@link spawnInRootfs} started: the only child of `unshare`. */
export async function hostPidOfCommand(unshare: ChildProcess, timeoutMs = 10_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const children = childrenOf(unshare.pid ?? -1);
    if (children.length === 1 && children[0] !== undefined) return children[0];
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no child of unshare (pid ${unshare.pid}) within ${timeoutMs} ms`);
}

/**
 * Ends a command started by {@link spawnInRootfs}: SIGKILL to it (PID 1 of its namespace, so
 * everything in the namespace dies with it), then waits for `unshare` to exit. Killing `unshare`
 * alone would not do: the command dropped privileges (chroot --userspec), which clears the
 * parent-death signal `unshare --kill-child` relies on.
 */
export async function killInRootfs(unshare: ChildProcess): Promise<void> {
  if (unshare.exitCode !== null || unshare.signalCode !== null) return;
  const closed = new Promise((r) => unshare.once('close', r));
  for (const child of childProcesses(unshare.pid ?? -1)) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  await closed;
}

/** Host pids whose parent is `pid`, with their state letter (`Z` for a zombie). */
export function childProcesses(pid: number): Array<{ pid: number; state: string }> {
  const out: Array<{ pid: number; state: string }> = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // Fields after the parenthesised command: state, ppid, ...
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(ppid) === pid) out.push({ pid: Number(entry), state: state ?? '?' });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function childrenOf(pid: number): number[] {
  return childProcesses(pid).map((c) => c.pid);
}

/** True when Debian's containerd, ctr and runc are installed. */
export function containerdAvailable(): boolean {
  return ['containerd', 'ctr', 'runc'].every((b) => which(b) !== '');
}

/** A containerd of the test's own, on a socket in `dir`; stop() kills it and removes its state. */
export class PrivateContainerd {
  readonly socket: string;
  private readonly dir: string;
  private readonly child: ChildProcess;

  private constructor(dir: string, child: ChildProcess) {
    this.dir = dir;
    this.socket = join(dir, 'containerd.sock');
    this.child = child;
  }

  static async start(dir: string): Promise<PrivateContainerd> {
    await mkdir(dir, { recursive: true });
    const config = join(dir, 'config.toml');
    await writeFile(config, [
      'version = 2',
      `root = ${JSON.stringify(join(dir, 'root'))}`,
      `state = ${JSON.stringify(join(dir, 'state'))}`,
      // No CRI: nothing here pulls, and the test's containerd must not look like a node's.
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = ${JSON.stringify(join(dir, 'containerd.sock'))}`,
      '[ttrpc]',
      `  address = ${JSON.stringify(join(dir, 'containerd.sock.ttrpc'))}`,
      '[debug]',
      '  address = ""',
      '[metrics]',
      '  address = ""',
      '',
    ].join('\n'));
    const child = spawn('containerd', ['--config', config], { stdio: 'ignore' });
    const containerd = new PrivateContainerd(dir, child);
    const deadline = Date.now() + 20_000;
    while (!existsSync(containerd.socket) || !(await containerd.answers())) {
      if (child.exitCode !== null) throw new Error(`containerd exited with ${child.exitCode} while starting`);
      if (Date.now() > deadline) {
        await containerd.stop();
        throw new Error('containerd did not answer within 20 s');
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    return containerd;
  }

  /** Runs `ctr` against this containerd in the `crowsnest-test` namespace. */
  async ctr(args: readonly string[], options: { timeoutMs?: number } = {}): Promise<RunResult> {
    try {
      const { stdout, stderr } = await execFileAsync('ctr', ['--address', this.socket, '--namespace', 'crowsnest-test', ...args], {
        timeout: options.timeoutMs ?? 60_000,
        maxBuffer: 1 << 24,
      });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === 'number' ? e.code : null, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    }
    // Snapshots may still be mounted if a container was left behind: unmount before removing.
    try {
      execFileSync('sh', ['-c', 'grep -o " $1[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l', 'sh', this.dir]);
    } catch {
      // nothing mounted
    }
    await rm(this.dir, { recursive: true, force: true });
  }

  private async answers(): Promise<boolean> {
    return (await this.ctr(['version'], { timeoutMs: 5_000 })).code === 0;
  }
}

function which(binary: string): string {
  try {
    return execFileSync('sh', ['-c', 'command -v "$1"', 'sh', binary], { encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
}
