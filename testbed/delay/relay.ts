/**
 * A known delay on the path to some pods, for the prober's accuracy test: the kernel here has no
 * netem, so `delayrelay` (main.go beside this file) holds packets in user space.
 *
 * How the path is bent, inside the network namespace of the node the probing pod runs on:
 *
 * ```
 *  pod A ─cni0→ [node ns] route <pod B>/32 dev <tun> ──→ delayrelay holds each packet D, writes it back
 *                          rule iif <tun> → table T: <pod B>/32 via <the usual next hop> ──→ eth0 → node of pod B
 * ```
 *
 * (one such pair of routes per destination, all through the same relay). Only that direction is
 * delayed (the answers come back the usual way), so every round trip to pod B — TCP handshake,
 * HTTP request and response, ping — is longer by D. The relay says how
 * late it released packets (`late_us_*`), and {@link DelayedPath.stop} returns its last count.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { access, mkdir, readFile, rename } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const sourceDir = dirname(fileURLToPath(import.meta.url));

/** Builds `delayrelay` once per version of its source, into the cache; resolves to its path. */
export async function buildDelayRelay(): Promise<string> {
  const source = await readFile(join(sourceDir, 'main.go'));
  const key = createHash('sha256').update(source).update(await readFile(join(sourceDir, 'go.mod'))).digest('hex').slice(0, 12);
  const cache = process.env['CROWSNEST_CACHE'] ?? join(homedir(), '.cache', 'crowsnest');
  const binary = join(cache, `delayrelay-${key}`, 'delayrelay');
  try {
    await access(binary);
    return binary;
  } catch {
    // not built yet
  }
  await mkdir(dirname(binary), { recursive: true });
  const go = process.env['GO'] ?? '/usr/local/go/bin/go';
  const temporary = `${binary}.${process.pid}.tmp`;
  await run(go, ['build', '-trimpath', '-o', temporary, '.'], { cwd: sourceDir, env: { ...process.env, CGO_ENABLED: '0', GOTOOLCHAIN: 'local', GOFLAGS: '-mod=mod' } });
  await rename(temporary, binary);
  return binary;
}

export interface RelayStats {
  readonly released: number;
  readonly lateUsP50: number;
  readonly lateUsP99: number;
  readonly lateUsMax: number;
}

export interface DelayedPath {
  /** The relay's latest one-second window (packets released, how late). */
  readonly lastWindow: () => RelayStats | undefined;
  /** Changes the delay of packets read from now on (milliseconds); resolves once the relay took it. */
  setDelay(delayMs: number): Promise<void>;
  /** Removes the route and rule and stops the relay; resolves to its final count. */
  stop(): Promise<RelayStats | undefined>;
}

export interface DelayOptions {
  /** Network namespace the packets to `destination` are routed in (the probing pod's node). */
  readonly netns: string;
  /** IPv4 addresses whose incoming direction gets the delay. */
  readonly destinations: readonly string[];
  /** Milliseconds added to every packet. */
  readonly delayMs: number;
}

const ip = async (...args: string[]): Promise<string> => (await run('ip', args)).stdout;

/** Routes `destinations` through a new delaying relay in `netns`. */
export async function delayPath(options: DelayOptions): Promise<DelayedPath> {
  const binary = await buildDelayRelay();
  const { netns, destinations } = options;
  // The usual next hops, before we change anything: "198.18.9.3 via 198.18.12.3 dev eth0 src …".
  const usualRoutes = await Promise.all(destinations.map(async (destination) => {
    const usual = await ip('-n', netns, '-4', 'route', 'get', destination);
    const dev = /\bdev (\S+)/.exec(usual)?.[1];
    if (!dev) throw new Error(`no route to ${destination} in ${netns}: ${usual}`);
    return { destination, dev, via: /\bvia (\S+)/.exec(usual)?.[1] };
  }));
  const id = randomBytes(3).toString('hex');
  const tun = `cndly${id}`;
  const table = String(1000 + (Number.parseInt(id, 16) % 30_000));
  // SCHED_FIFO: on a busy machine a normal thread wakes milliseconds late (see main.go).
  const child = spawn('ip', ['netns', 'exec', netns, 'chrt', '--fifo', '50', binary, '-dev', tun, '-delay', `${Math.round(options.delayMs * 1000)}us`], { stdio: ['pipe', 'pipe', 'pipe'] });
  let last: RelayStats | undefined;
  let acknowledged: ((delayUs: number) => void) | undefined;
  let final: RelayStats | undefined;
  let errors = '';
  const ready = new Promise<void>((resolve, reject) => {
    let buffered = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      for (;;) {
        const newline = buffered.indexOf('\n');
        if (newline === -1) break;
        const line = JSON.parse(buffered.slice(0, newline)) as Record<string, number | boolean | string>;
        buffered = buffered.slice(newline + 1);
        if (line['ready']) resolve();
        else if (typeof line['delay_us'] === 'number') acknowledged?.(line['delay_us']);
        if (typeof line['released'] === 'number') {
          const stats = { released: line['released'], lateUsP50: Number(line['late_us_p50']), lateUsP99: Number(line['late_us_p99']), lateUsMax: Number(line['late_us_max']) };
          if (line['final']) final = stats;
          else if (Number(line['window']) > 0) last = stats;
        }
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => { errors += chunk.toString(); });
    child.once('exit', (code) => reject(new Error(`delayrelay exited (${code}): ${errors}`)));
  });
  await ready;
  const undo: Array<() => Promise<unknown>> = [];
  try {
    await ip('-n', netns, 'link', 'set', tun, 'up');
    // Packets come back out of the tun device with pod A's source; a strict reverse-path check
    // would drop them (the effective value is the larger of `all` and the device's).
    await run('ip', ['netns', 'exec', netns, 'sysctl', '-qw', `net.ipv4.conf.${tun}.rp_filter=0`, `net.ipv4.conf.${tun}.accept_local=1`]);
    const allRpFilter = (await run('ip', ['netns', 'exec', netns, 'sysctl', '-n', 'net.ipv4.conf.all.rp_filter'])).stdout.trim();
    if (allRpFilter === '1') {
      await run('ip', ['netns', 'exec', netns, 'sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=2']);
      undo.push(() => run('ip', ['netns', 'exec', netns, 'sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=1']));
    }
    for (const { destination, dev, via } of usualRoutes) await ip('-n', netns, 'route', 'add', `${destination}/32`, ...(via ? ['via', via] : []), 'dev', dev, 'table', table);
    undo.push(() => ip('-n', netns, 'route', 'flush', 'table', table));
    await ip('-n', netns, 'rule', 'add', 'iif', tun, 'lookup', table, 'priority', table);
    undo.push(() => ip('-n', netns, 'rule', 'del', 'iif', tun, 'lookup', table, 'priority', table));
    for (const { destination } of usualRoutes) {
      await ip('-n', netns, 'route', 'add', `${destination}/32`, 'dev', tun);
      undo.push(() => ip('-n', netns, 'route', 'del', `${destination}/32`, 'dev', tun));
    }
  } catch (err) {
    for (const step of undo.reverse()) await step().catch(() => {});
    child.kill('SIGTERM');
    throw err;
  }
  return {
    lastWindow: () => last,
    setDelay: async (delayMs) => {
      const taken = new Promise<number>((resolve) => { acknowledged = resolve; });
      child.stdin!.write(`delay ${Math.round(delayMs * 1000)}us\n`);
      await taken;
    },
    stop: async () => {
      for (const step of undo.reverse()) await step().catch(() => {});
      await stopChild(child);
      return final ?? last;
    },
  };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
  await exited;
  clearTimeout(timer);
}
