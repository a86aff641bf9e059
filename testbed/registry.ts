/**
 * The testbed's image registry: CNCF distribution (built from Go modules by `testbed/build.sh`)
 * serving plain HTTP on 127.0.0.1, storing blobs in a directory of ours. It has no upstream: the
 * config has no `proxy` section, so a name it does not hold is a 404, never a pull from the
 * internet. The real nodes' containerd pulls from it; {@link pushOciLayout} fills it with crane.
 *
 * Life cycle: {@link LoopbackRegistry.start} picks a free port (or takes one), writes the config,
 * starts the registry and resolves once `GET /v2/` answers 200; {@link LoopbackRegistry.stop}
 * sends TERM, then KILL. Started attached (the default), the registry is killed when this
 * process exits for any reason; started detached (`make cluster`), it outlives this process and
 * a later one finds it with {@link LoopbackRegistry.attach}.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { closeSync, openSync, readlinkSync, realpathSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort } from './free-port.ts';

const execFileAsync = promisify(execFile);
const testbedDir = dirname(fileURLToPath(import.meta.url));

const STATE_FILE = 'registry-state.json';
/** How long a start may take before it counts as failed: the registry itself starts in < 1 s. */
const START_TIMEOUT_MS = 30_000;
/** After TERM, how long the registry gets to finish before KILL. */
const STOP_GRACE_MS = 5_000;

export interface LoopbackRegistryOptions {
  /** Holds the config, the stored blobs (`storage/`) and the log (`registry.log`). Created if missing. */
  readonly dir: string;
  /** Where `registry` and `crane` live. Default: {@link buildImageTools}'s bin dir. */
  readonly binDir?: string;
  /**
   * Address to bind. Default 127.0.0.1; the testbed's real nodes need the host's address on
   * their bridge (their network namespaces have their own loopback).
   */
  readonly address?: string;
  /** TCP port. Default: a free one the OS picks. */
  readonly port?: number;
  /** Outlive this process (`make cluster`). Default false: killed when this process exits. */
  readonly detached?: boolean;
  /** Progress lines. Default: stderr. */
  readonly log?: (line: string) => void;
}

interface StateFile {
  readonly pid: number;
  readonly address?: string;
  readonly port: number;
  readonly binDir: string;
  /** The registry executable's real path (bin dir entries are symlinks into per-version caches). */
  readonly binary: string;
}

export class LoopbackRegistry {
  /** `<address>:<port>`: the first part of every image reference it serves. */
  readonly host: string;
  readonly port: number;
  readonly dir: string;
  readonly binDir: string;
  readonly pid: number;
  /** What /proc/<pid>/exe must point to before the pid is signalled (pids get reused). */
  private readonly binary: string;

  private constructor(init: StateFile & { dir: string }) {
    this.port = init.port;
    this.host = `${init.address ?? '127.0.0.1'}:${init.port}`;
    this.dir = init.dir;
    this.binDir = init.binDir;
    this.pid = init.pid;
    this.binary = init.binary;
  }

  /** The crane binary built next to the registry (for {@link pushOciLayout} and friends). */
  get crane(): string {
    return join(this.binDir, 'crane');
  }

  /** Starts a registry; resolves once it answers `GET /v2/`. */
  static async start(options: LoopbackRegistryOptions): Promise<LoopbackRegistry> {
    const log = options.log ?? ((line: string) => process.stderr.write(`[registry] ${line}\n`));
    const started = Date.now();
    const binDir = options.binDir ?? (await buildImageTools(log));
    const dir = resolve(options.dir);
    await mkdir(join(dir, 'storage'), { recursive: true });
    const port = options.port ?? (await freePort());
    const configPath = join(dir, 'config.yml');
    const address = options.address ?? '127.0.0.1';
    await writeFile(configPath, registryConfig(address, port, join(dir, 'storage')));
    const binary = realpathSync(join(binDir, 'registry'));
    const logFd = openSync(join(dir, 'registry.log'), 'a');
    const detached = options.detached ?? false;
    let child: ChildProcess;
    try {
      child = spawn(binary, ['serve', configPath], {
        // Only what the registry needs: no REGISTRY_* variable of the caller's can reconfigure it
        // (say, add a proxy upstream), and no OpenTelemetry exporter dials out.
        env: { PATH: '/usr/bin:/bin', OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'none' },
        stdio: ['ignore', logFd, logFd],
        detached,
      });
    } finally {
      closeSync(logFd);
    }
    const pid = child.pid;
    if (pid === undefined) throw new Error(`cannot start ${binary}; see ${join(dir, 'registry.log')}`);
    const state: StateFile = { pid, address, port, binDir, binary };
    const registry = new LoopbackRegistry({ ...state, dir });
    // Unref'd even when attached: a running registry must not keep this process alive (node
    // --test waits for an idle event loop before its global teardown); the exit hook still ends it.
    child.unref();
    if (!detached) killOnExit(registry);
    const exited = new Promise<never>((_, reject) => {
      child.once('exit', (code, signal) =>
        reject(new Error(`registry exited (${signal ?? `code ${code}`}) while starting; see ${join(dir, 'registry.log')}`)));
    });
    exited.catch(() => {}); // only raced below
    try {
      await Promise.race([waitUntilServing(registry.host, START_TIMEOUT_MS), exited]);
    } catch (err) {
      await registry.stop();
      throw err;
    }
    await writeFile(join(dir, STATE_FILE), JSON.stringify(state, null, 2));
    log(`registry ready in ${((Date.now() - started) / 1000).toFixed(1)} s at http://${registry.host} (storage ${join(dir, 'storage')})`);
    return registry;
  }

  /** Finds a registry started in `dir` (by this process or another) whose process still runs. */
  static async attach(dir: string): Promise<LoopbackRegistry | undefined> {
    let state: StateFile;
    try {
      state = JSON.parse(await readFile(join(resolve(dir), STATE_FILE), 'utf8')) as StateFile;
    } catch {
      return undefined;
    }
    if (!runsBinary(state.pid, state.binary)) return undefined;
    return new LoopbackRegistry({ ...state, dir: resolve(dir) });
  }

  /** True when the process runs and `GET /v2/` answers 200. */
  async healthy(): Promise<boolean> {
    return runsBinary(this.pid, this.binary) && (await getV2(this.host)) === 200;
  }

  /** TERM, then KILL after a grace period; resolves when the process is gone. Storage is kept. */
  async stop(): Promise<void> {
    liveRegistries.delete(this);
    if (runsBinary(this.pid, this.binary)) signal(this.pid, 'SIGTERM');
    const deadline = Date.now() + STOP_GRACE_MS;
    while (runsBinary(this.pid, this.binary)) {
      if (Date.now() > deadline) signal(this.pid, 'SIGKILL');
      await sleep(50);
    }
    await rm(join(this.dir, STATE_FILE), { force: true });
  }

  /** Kills the registry right now, synchronously (from a process 'exit' handler). */
  killSync(): void {
    if (runsBinary(this.pid, this.binary)) signal(this.pid, 'SIGKILL');
  }
}

/**
 * Runs `testbed/build.sh --image-tools` (building the registry, crane and pause binaries if they
 * are missing, not the rest of the testbed) and returns the bin dir they are linked into.
 */
export async function buildImageTools(log: (line: string) => void = () => {}): Promise<string> {
  const { stdout, stderr } = await execFileAsync(join(testbedDir, 'build.sh'), ['--image-tools'], { maxBuffer: 1 << 22 });
  for (const line of stderr.split('\n')) if (line.trim()) log(line.replace(/^\[testbed [^\]]*\] /, ''));
  const binDir = stdout.trim().split('\n').pop() ?? '';
  if (binDir === '') throw new Error('testbed/build.sh --image-tools printed no bin dir');
  return binDir;
}

/**
 * Pushes the single image of an OCI image layout (a directory, or a `.tar` of one) to
 * `reference` (`<host>/<repository>:<tag>`) with crane, byte for byte: the manifest keeps its
 * digest. Resolves to the pushed `<host>/<repository>@sha256:…`.
 */
export async function pushOciLayout(crane: string, layout: string, reference: string): Promise<string> {
  let dir = layout;
  let unpacked: string | undefined;
  if (layout.endsWith('.tar')) {
    unpacked = await mkdtemp(join(tmpdir(), 'crowsnest-oci-push-'));
    await execFileAsync('tar', ['-xf', layout, '-C', unpacked]);
    dir = unpacked;
  }
  try {
    // crane reads a directory as an OCI layout (a file would be taken for a `docker save` tarball,
    // whose manifest it rewrites). The output is the pushed digest reference.
    const { stdout } = await execFileAsync(crane, ['push', ...insecure(reference), dir, reference], { env: craneEnv() });
    const pushed = stdout.trim().split('\n').pop() ?? '';
    if (!/@sha256:[0-9a-f]{64}$/.test(pushed)) throw new Error(`crane push printed no digest reference: ${stdout}`);
    return pushed;
  } finally {
    if (unpacked) await rm(unpacked, { recursive: true, force: true });
  }
}

/** The manifest digest (`sha256:…`) a registry holds for `reference`, asked with crane. */
export async function remoteDigest(crane: string, reference: string): Promise<string> {
  return (await execFileAsync(crane, ['digest', ...insecure(reference), reference], { env: craneEnv() })).stdout.trim();
}

/** The manifest bytes a registry serves for `reference`, fetched with crane. */
export async function remoteManifest(crane: string, reference: string): Promise<Buffer> {
  return (await execFileAsync(crane, ['manifest', ...insecure(reference), reference], { env: craneEnv(), encoding: 'buffer' })).stdout;
}

/** Plain HTTP for a registry off loopback (the testbed's, on the real nodes' bridge). */
function insecure(reference: string): string[] {
  return /^(127\.|localhost[:/])/.test(reference) ? [] : ['--insecure'];
}

/**
 * crane's environment: no credentials of the caller's (DOCKER_CONFIG points at a directory
 * without a config.json) and no proxy variables. crane speaks plain HTTP to 127.0.0.1 by itself.
 */
function craneEnv(): NodeJS.ProcessEnv {
  return { PATH: '/usr/bin:/bin', HOME: tmpdir(), DOCKER_CONFIG: join(tmpdir(), 'crowsnest-no-docker-config') };
}

/** The registry's configuration: plain HTTP on loopback, filesystem storage, no upstream. */
function registryConfig(address: string, port: number, storageDir: string): string {
  return [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(storageDir)}`,
    '  delete:',
    '    enabled: true',
    // Upload purging walks the storage every few hours; a testbed's registry lives for minutes.
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: ${address}:${port}`,
    // A fixed secret keeps the registry from warning that it made a random one; resumable
    // uploads across registry restarts are all it signs.
    '  secret: crowsnest-testbed-loopback-only',
    '',
  ].join('\n');
}

async function waitUntilServing(host: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    const status = await getV2(host);
    if (status === 200) return;
    last = status === undefined ? 'no answer' : `HTTP ${status}`;
    await sleep(50);
  }
  throw new Error(`registry at ${host} did not answer GET /v2/ within ${timeoutMs} ms (last: ${last})`);
}

/** `GET http://<host>/v2/`'s status, or undefined when nothing answers. */
function getV2(host: string): Promise<number | undefined> {
  return new Promise((resolvePromise) => {
    const req = request(`http://${host}/v2/`, { timeout: 2_000 }, (res) => {
      res.resume();
      resolvePromise(res.statusCode);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolvePromise(undefined));
    req.end();
  });
}

const liveRegistries = new Set<LoopbackRegistry>();
let exitHookInstalled = false;

function killOnExit(registry: LoopbackRegistry): void {
  liveRegistries.add(registry);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const r of liveRegistries) r.killSync();
  });
  // A signal that ends this process skips 'exit' unless someone handles it. The control plane
  // installs the same handlers; whichever runs first exits, and 'exit' then kills the rest.
  for (const name of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(name, () => {
      for (const r of liveRegistries) r.killSync();
      process.exit(128 + (name === 'SIGINT' ? 2 : name === 'SIGTERM' ? 15 : 1));
    });
  }
}

/** True when `pid` is a live process executing `binaryPath` (a reused pid is never signalled). */
function runsBinary(pid: number, binaryPath: string): boolean {
  try {
    return readlinkSync(`/proc/${pid}/exe`) === binaryPath;
  } catch {
    return false;
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
