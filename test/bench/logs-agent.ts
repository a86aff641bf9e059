/**
 * `BENCH=logs-agent`: guard's node log agent reading a CRI pod log as containerd writes it
 * (`BENCH_LOGS_AGENT_LINES`, default 1,000,000 lines of ~100 bytes; every 10th matches `ERROR`,
 * every 100th is split into three partial records), counting lines against one pattern and
 * committing batches (state file fsync'ed per batch) — beside the OpenTelemetry Collector's filelog
 * receiver (contrib v0.165.1, built from Go modules: test/bench/otelcol-filelog) doing the same
 * reading: the container operator (CRI, partial lines recombined) and a filter operator matching
 * `ERROR` on every line, into the nop exporter.
 *
 * Both run as processes of their own on the same file. Measured from the first line read to the
 * last one counted (ours: in the process, from its first cycle to the sink's last count; the
 * collector: from its otelcol_receiver_accepted_log_records metric first moving to it reaching
 * the non-matching lines' number, CPU from /proc/<pid>/stat): start-up is in neither. Lines/s per
 * core = lines in that window ÷ CPU seconds (user + system); RSS is the process's peak (maxRSS /
 * VmHWM). Ours runs the .ts sources, so its peak includes Node's type stripping (~40 MiB, which
 * the image, shipping stripped JavaScript, does not load): the growth while reading is shown too.
 * No control plane.
 */
import { execFile, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { load } from 'js-yaml';
import { median } from './stats.ts';

const run = promisify(execFile);
const LINES = Number(process.env['BENCH_LOGS_AGENT_LINES'] ?? 1_000_000);
const RUNS = 3;
const POD_UID = '0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7';

/** The agent's NODE_OPTIONS: the chart's default (guard.logsAgent.nodeOptions) unless BENCH_LOGS_AGENT_NODE_OPTIONS says otherwise. */
async function agentNodeOptions(): Promise<string> {
  const override = process.env['BENCH_LOGS_AGENT_NODE_OPTIONS'];
  if (override !== undefined) return override;
  const values = load(await readFile(join(import.meta.dirname, '..', '..', 'deploy', 'helm', 'crowsnest', 'values.yaml'), 'utf8')) as { guard: { logsAgent: { nodeOptions: string } } };
  return values.guard.logsAgent.nodeOptions;
}

interface Result { wallMs: number; cpuMs: number; maxRssBytes: number; lines: number; matched: number; rssLoadedBytes?: number }

/** The pod log, as `<root>/var/log/pods/bench_talker_<uid>/app/0.log`; returns the expected counts. */
async function writeLog(root: string): Promise<{ podLogsDir: string; lines: number; matched: number; bytes: number }> {
  const podLogsDir = join(root, 'var', 'log', 'pods');
  const dir = join(podLogsDir, `bench_talker_${POD_UID}`, 'app');
  await mkdir(dir, { recursive: true });
  const out = createWriteStream(join(dir, '0.log'));
  let matched = 0;
  let bytes = 0;
  const base = Date.UTC(2026, 11, 7, 3, 0, 0);
  let chunk = '';
  for (let i = 0; i < LINES; i++) {
    const time = new Date(base + Math.floor(i / 10)).toISOString().replace('Z', `${String(i % 1_000_000).padStart(6, '0')}Z`);
    const error = i % 10 === 0;
    if (error) matched++;
    const text = `${error ? 'ERROR' : 'INFO'} request ${i} served path=/api/v1/items/${i % 977} user=u${i % 131} took=${i % 300}ms`;
    if (i % 100 === 50) {
      const third = Math.floor(text.length / 3);
      chunk += `${time} stdout P ${text.slice(0, third)}\n${time} stdout P ${text.slice(third, 2 * third)}\n${time} stdout F ${text.slice(2 * third)}\n`;
    } else {
      chunk += `${time} ${i % 7 === 0 ? 'stderr' : 'stdout'} F ${text}\n`;
    }
    if (chunk.length > 1 << 20) {
      bytes += chunk.length;
      if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
      chunk = '';
    }
  }
  bytes += chunk.length;
  out.end(chunk);
  await new Promise<void>((resolve) => out.once('finish', () => resolve()));
  return { podLogsDir, lines: LINES, matched, bytes };
}

async function ours(podLogsDir: string, scratch: string, lines: number, nodeOptions: string): Promise<Result> {
  const stateDir = await mkdtemp(join(scratch, 'state-'));
  const { stdout } = await run(process.execPath, [join(import.meta.dirname, 'logs-agent-child.ts'), podLogsDir, stateDir, POD_UID, String(lines)], {
    maxBuffer: 1 << 20, env: { ...process.env, NODE_OPTIONS: nodeOptions },
  });
  return JSON.parse(stdout) as Result;
}

/** The collector, built once from test/bench/otelcol-filelog; undefined (with the reason logged) when it cannot be built here. */
async function buildCollector(scratch: string, log: (line: string) => void): Promise<string | undefined> {
  const binary = join(scratch, 'otelcol-filelog');
  try {
    const started = performance.now();
    await run(process.env['GO'] ?? '/usr/local/go/bin/go', ['build', '-trimpath', '-o', binary, '.'], {
      cwd: join(import.meta.dirname, 'otelcol-filelog'), env: { ...process.env, CGO_ENABLED: '0', GOTOOLCHAIN: 'local' }, maxBuffer: 16 << 20,
    });
    log(`otelcol-filelog built in ${((performance.now() - started) / 1000).toFixed(0)} s`);
    return binary;
  } catch (err) {
    log(`otelcol-filelog could not be built (${String((err as { stderr?: string }).stderr ?? err).trim().split('\n').slice(-3).join(' | ')}); only ours is measured`);
    return undefined;
  }
}

async function collector(binary: string, root: string, podLogsDir: string, expectedAccepted: number, port: number): Promise<Result> {
  const dir = await mkdtemp(join(root, 'otelcol-'));
  const config = join(dir, 'config.yaml');
  await writeFile(config, [
    'receivers:',
    '  filelog:',
    `    include: ["${podLogsDir}/*/*/*.log"]`,
    '    start_at: beginning',
    // The container operator recombines partial records per file (its source identifier).
    '    include_file_path: true',
    '    operators:',
    '      - type: container',
    '        format: containerd',
    '      - type: filter',
    '        expr: \'body matches "ERROR"\'',
    'exporters:',
    '  nop: {}',
    'service:',
    '  telemetry:',
    '    logs: { level: warn }',
    `    metrics: { level: basic, readers: [ { pull: { exporter: { prometheus: { host: 127.0.0.1, port: ${port} } } } } ] }`,
    '  pipelines:',
    '    logs: { receivers: [filelog], exporters: [nop] }',
    '',
  ].join('\n'));
  const started = performance.now();
  const child = spawn(binary, ['--config', `file:${config}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const pid = child.pid!;
  const cpuTicks = async (): Promise<number> => {
    const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
    return Number(fields[11]) + Number(fields[12]); // utime + stime, fields 14 and 15 of stat(5)
  };
  const acceptedNow = async (): Promise<number> => await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text()).then((text) => {
    const values = [...text.matchAll(/^otelcol_receiver_accepted_log_records(?:_total)?\{[^}]*\} (\S+)$/gm)].map((m) => Number(m[1]));
    return values.reduce((a, b) => a + b, 0);
  }).catch(() => 0);
  try {
    // The window measured starts with the first records read (the collector's start-up is not
    // in it, as Node's is not in ours) and ends when the last one is through.
    let first: { accepted: number; ticks: number; atMs: number } | undefined;
    let last = { accepted: 0, ticks: 0, atMs: 0 };
    for (;;) {
      if (child.exitCode !== null) throw new Error(`otelcol-filelog exited ${child.exitCode}: ${stderr.slice(-500)}`);
      if (performance.now() - started > 600_000) throw new Error('otelcol-filelog did not read the log within 10 minutes');
      const accepted = await acceptedNow();
      const now = performance.now();
      if (accepted > 0 && !first) first = { accepted, ticks: await cpuTicks(), atMs: now };
      if (accepted !== last.accepted) last = { accepted, ticks: await cpuTicks(), atMs: now };
      // Done once it passed (at least) the non-matching lines and nothing moved for a second.
      if (first && accepted >= expectedAccepted && now - last.atMs > 1_000) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const wallMs = last.atMs - first!.atMs;
    // Records the filter dropped do not show in the metric: scale by the share it passed.
    const linesInWindow = Math.round(((last.accepted - first!.accepted) / last.accepted) * LINES);
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const hwm = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1]) * 1024;
    return { wallMs, cpuMs: (last.ticks - first!.ticks) * 10, maxRssBytes: hwm, lines: linesInWindow, matched: LINES - last.accepted };
  } finally {
    child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
}

export async function benchLogsAgent(log: (line: string) => void): Promise<void> {
  const scratch = await mkdtemp(join(tmpdir(), 'bench-logs-agent-'));
  try {
    const written = await writeLog(scratch);
    log(`CRI log: ${written.lines.toLocaleString('en')} lines, ${(written.bytes / 2 ** 20).toFixed(0)} MiB, ${written.matched.toLocaleString('en')} matching`);
    const nodeOptions = await agentNodeOptions();
    const mine: Result[] = [];
    for (let i = 0; i < RUNS; i++) {
      const result = await ours(written.podLogsDir, scratch, written.lines, nodeOptions);
      if (result.lines !== written.lines || result.matched !== written.matched) throw new Error(`ours counted ${result.lines}/${result.matched}, expected ${written.lines}/${written.matched}`);
      mine.push(result);
    }
    const binary = await buildCollector(scratch, log);
    const theirs: Result[] = [];
    if (binary) {
      try {
        await access(binary);
        for (let i = 0; i < RUNS; i++) theirs.push(await collector(binary, scratch, written.podLogsDir, written.lines - written.matched, 18_888 + i));
      } catch (err) {
        log(`otelcol-filelog run failed: ${(err as Error).message}`);
      }
    }
    const row = (name: string, results: readonly Result[]): string[] => {
      const cpu = median(results.map((r) => r.cpuMs));
      const perCore = median(results.map((r) => r.lines / (r.cpuMs / 1000)));
      return [
        name,
        `${Math.round(median(results.map((r) => r.wallMs))).toLocaleString('en')} ms`,
        `${Math.round(cpu).toLocaleString('en')} ms`,
        `${Math.round(perCore).toLocaleString('en')}`,
        `${(median(results.map((r) => r.maxRssBytes)) / 2 ** 20).toFixed(0)} MiB`,
        results[0]!.rssLoadedBytes === undefined ? '' : `+${(median(results.map((r) => r.maxRssBytes - r.rssLoadedBytes!)) / 2 ** 20).toFixed(0)} MiB`,
        results.map((r) => r.matched.toLocaleString('en')).join(' / '),
      ];
    };
    const rows = [row('crowsnest logs-agent', mine), ...(theirs.length > 0 ? [row('otelcol filelog (contrib v0.165.1)', theirs)] : [])];
    console.log('');
    console.log(`logs-agent: ${written.lines.toLocaleString('en')} CRI lines (${(written.bytes / 2 ** 20).toFixed(0)} MiB, 1 % split into partial records), one pattern, median of ${RUNS}; ours with NODE_OPTIONS="${nodeOptions}"`);
    const header = ['reader', 'wall', 'CPU', 'lines/s per core', 'peak RSS', 'of it while reading', `lines matched (expected ${written.matched.toLocaleString('en')})`];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    for (const cells of [header, ...rows]) console.log(cells.map((c, i) => c.padStart(widths[i]!)).join('  '));
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
