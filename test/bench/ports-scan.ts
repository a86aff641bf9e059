/**
 * `BENCH=ports`: `crowsnest ports scan --output json` vs `ss -ltnup` on this host while a child
 * process holds 10,000 listening sockets (TCP and UDP, IPv4 and IPv6, on loopback), and the
 * parser's throughput on 100,000 synthetic /proc/net lines. No control plane, no root needed.
 *
 * Both tools are whole processes, timed from spawn to exit with their output read by us: ours
 * includes bash (bin/crowsnest), Node's start and the JSON it prints. Target (issue): the same
 * count as ss, in at most 2× its wall time.
 */
import { execFile, spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { isListeningState, parseProcNet, type Family } from '../../src/observe/procnet.ts';
import type { HostScan } from '../../src/ports/scan.ts';
import { parseSs } from '../../src/ports/testdata/ss.ts';
import { median } from './stats.ts';

const run = promisify(execFile);
const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SOCKETS = 10_000;
const RUNS = 5;
const PARSER_LINES = 100_000;
const TARGET_RATIO = 2;
const MAX_OUTPUT_BYTES = 512 * 1024 * 1024;

/**
 * Child process holding the sockets: argv[1] of them, a quarter each of TCP 127.0.0.1, TCP ::1,
 * UDP 127.0.0.1 and UDP ::1, all on kernel-chosen ports. Prints `ready` once all are bound and
 * exits when its stdin closes.
 */
const HOLDER = `
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
const count = Number(process.argv[1]);
const opened = [];
for (let i = 0; i < count; i++) {
  const kind = i % 4;
  opened.push(new Promise((resolve, reject) => {
    if (kind < 2) {
      const server = createServer();
      server.once('error', reject);
      server.listen({ host: kind === 0 ? '127.0.0.1' : '::1', port: 0 }, resolve);
    } else {
      const socket = createSocket(kind === 2 ? 'udp4' : 'udp6');
      socket.once('error', reject);
      socket.bind(0, kind === 2 ? '127.0.0.1' : '::1', resolve);
    }
  }));
}
try {
  await Promise.all(opened);
} catch (err) {
  process.stdout.write('failed ' + err.message + '\\n');
  process.exit(1);
}
process.stdout.write('ready\\n');
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
`;

interface HolderProcess {
  readonly pid: number;
  stop(): void;
}

/** Starts the socket holder with its open-files limit raised to the hard limit. */
async function startHolder(count: number): Promise<HolderProcess> {
  // `ulimit -n` in a shell that then execs Node: raising the limit needs no privilege up to the hard limit.
  const child = spawn(
    '/bin/sh',
    ['-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@"', process.execPath, '--input-type=module', '-e', HOLDER, String(count)],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const lines = createInterface({ input: child.stdout! });
  const first = await new Promise<string>((resolve, reject) => {
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`socket holder exited with ${code} before it was ready`)));
  });
  if (first !== 'ready') {
    child.kill();
    throw new Error(`socket holder: ${first} (raise the open-files limit: ulimit -n ${count + 100})`);
  }
  return { pid: child.pid!, stop: () => child.stdin!.end() };
}

interface Sample {
  readonly wallMs: number;
  readonly sockets: number;
  /** Sockets the holder process owns, as the tool reports them. */
  readonly held: number;
}

async function ours(holderPid: number): Promise<Sample> {
  const started = performance.now();
  const { stdout } = await run(join(repo, 'bin', 'crowsnest'), ['ports', 'scan', '--output', 'json'], { maxBuffer: MAX_OUTPUT_BYTES });
  const wallMs = performance.now() - started;
  const scan = JSON.parse(stdout) as HostScan;
  return { wallMs, sockets: scan.sockets.length, held: scan.sockets.filter((s) => s.owners?.some((o) => o.pid === holderPid)).length };
}

async function ss(holderPid: number, args: readonly string[]): Promise<Sample> {
  const started = performance.now();
  const { stdout } = await run('ss', args, { maxBuffer: MAX_OUTPUT_BYTES });
  const wallMs = performance.now() - started;
  // Counted from ss's own output: one line per socket after the header.
  const lines = stdout.split('\n').filter((line) => line.trim() !== '');
  const sockets = lines.length - 1;
  const held = args.includes('-ltnup') ? parseSs(lines.slice(1).join('\n')).filter((s) => s.users.some((u) => u.pid === holderPid)).length : NaN;
  return { wallMs, sockets, held };
}


function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

const hex = (value: number, digits: number): string => value.toString(16).toUpperCase().padStart(digits, '0');

/**
 * `count` rows as the kernel writes them: a third listening, the rest established or in
 * TIME_WAIT, ports and inodes varying, IPv4 or IPv6 loopback addresses.
 */
function syntheticTable(count: number, family: Family): string {
  const local = family === 'ipv4' ? '0100007F' : '00000000000000000000000001000000';
  const rows = ['  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode'];
  for (let i = 0; i < count; i++) {
    const state = ['0A', '01', '06'][i % 3]!;
    const remote = state === '0A' ? `${'0'.repeat(local.length)}:0000` : `${local}:${hex(30_000 + (i % 30_000), 4)}`;
    rows.push(
      `${String(i).padStart(4)}: ${local}:${hex(1_024 + (i % 60_000), 4)} ${remote} ${state} 00000000:00000000 00:00000000 00000000  1000        0 ${state === '06' ? 0 : 100_000 + i} 1 0000000000000000 100 0 0 10 0`,
    );
  }
  return `${rows.join('\n')}\n`;
}

function parserRows(): string[][] {
  return (['ipv4', 'ipv6'] as const).map((family) => {
    const text = syntheticTable(PARSER_LINES, family);
    const times: number[] = [];
    let kept = 0;
    for (let i = 0; i < RUNS + 1; i++) {
      const started = performance.now();
      const table = parseProcNet(text, { family, keep: isListeningState });
      times.push(performance.now() - started);
      kept = table.sockets.length;
      if (table.lines !== PARSER_LINES || table.malformedCount !== 0) throw new Error(`parser read ${table.lines} lines, ${table.malformedCount} malformed`);
    }
    const warm = median(times.slice(1));
    return [
      family === 'ipv4' ? 'tcp (IPv4)' : 'tcp6 (IPv6)',
      PARSER_LINES.toLocaleString('en-US'),
      `${(text.length / 2 ** 20).toFixed(1)} MiB`,
      kept.toLocaleString('en-US'),
      times[0]!.toFixed(1),
      warm.toFixed(1),
      `${((PARSER_LINES / warm) * 1000 / 1e6).toFixed(2)} M`,
    ];
  });
}

/**
 * Runs the benchmark and prints its two tables (markdown) on stdout.
 *
 * @param log progress lines, e.g. to stderr.
 */
export async function benchPortsScan(log: (line: string) => void): Promise<void> {
  log(`opening ${SOCKETS} sockets in a child process`);
  const holder = await startHolder(SOCKETS);
  const samples = { ours: [] as Sample[], ss: [] as Sample[], ssNoProcesses: [] as Sample[] };
  try {
    // One unmeasured round: fills Node's compile cache and the kernel's dentry caches for both.
    await ours(holder.pid);
    await ss(holder.pid, ['-ltnup']);
    for (let i = 0; i < RUNS; i++) {
      log(`round ${i + 1}/${RUNS}`);
      samples.ours.push(await ours(holder.pid));
      samples.ss.push(await ss(holder.pid, ['-ltnup']));
      samples.ssNoProcesses.push(await ss(holder.pid, ['-ltnu']));
    }
  } finally {
    holder.stop();
  }

  const ssWall = median(samples.ss.map((s) => s.wallMs));
  const row = (tool: string, list: readonly Sample[]): string[] => {
    const wall = median(list.map((s) => s.wallMs));
    const held = median(list.map((s) => s.held));
    return [
      tool,
      median(list.map((s) => s.sockets)).toLocaleString('en-US'),
      Number.isNaN(held) ? 'n/a' : held.toLocaleString('en-US'),
      wall.toFixed(0),
      (wall / ssWall).toFixed(2),
    ];
  };
  const oursWall = median(samples.ours.map((s) => s.wallMs));
  const sameCount = median(samples.ours.map((s) => s.sockets)) === median(samples.ss.map((s) => s.sockets));
  const allHeld = samples.ours.every((s) => s.held === SOCKETS) && samples.ss.every((s) => s.held === SOCKETS);

  console.log(`\nports scan: ${SOCKETS.toLocaleString('en-US')} sockets held by one child process (TCP and UDP, 127.0.0.1 and ::1), whole processes, median of ${RUNS}`);
  console.log(`'sockets found' is the whole host (other programs' sockets included); 'held by child' those owned by the benchmark's process`);
  const cpus = availableParallelism();
  console.log(`CPUs available: ${cpus} (${cpus >= 2 ? 'the scan reads the socket tables on a second thread' : 'one: the scan reads the socket tables and walks the fds one after the other'})\n`);
  console.log(
    markdownTable(
      ['tool', 'sockets found', 'held by child', 'wall median ms', 'ratio vs ss'],
      [
        row('crowsnest ports scan --output json', samples.ours),
        row('ss -ltnup', samples.ss),
        row('ss -ltnu (no processes, reference)', samples.ssNoProcesses),
      ],
    ),
  );
  console.log(
    `\nsame count as ss: ${sameCount ? 'yes' : 'NO'}; every child socket found with its pid by both: ${allHeld ? 'yes' : 'NO'}; ` +
      `target ratio <= ${TARGET_RATIO}: ${oursWall / ssWall <= TARGET_RATIO ? 'met' : 'NOT met'} (${(oursWall / ssWall).toFixed(2)})`,
  );

  console.log(`\nparser throughput: ${PARSER_LINES.toLocaleString('en-US')} synthetic lines (1/3 LISTEN), in this process; first run, then median of ${RUNS}\n`);
  console.log(markdownTable(['table', 'lines', 'size', 'listening kept', 'first run ms', 'median ms', 'lines/s'], parserRows()));
}
