/**
 * The cluster port report: one per `ports collect` run, in the report directory
 * (`PATH_REPORTS`, the seed's `PATH_REPORT`, default `./reports`), named by UTC time and run:
 * `ports-<YYYYMMDDTHHMMSS.mmmZ>-<run>.json` (the data, with the diff against the previous report)
 * and `ports-<…>.txt` (the same for people: per node its ports, the failed nodes and why, what
 * opened and closed). Files are written to a temporary name and linked into place, never over
 * another run's file, so the newest report is always a whole one — it is what the next run
 * diffs against. Reports of versions before 0.2 (`ports-<YYYYMMDDTHHMMSSZ>.json`) are still read.
 */
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  compareByStamp,
  createFileExclusively,
  FILE_TIMESTAMP_PATTERN,
  fileTimestamp,
  makeDirectories,
  RUN_SUFFIX_PATTERN,
  runNameSuffix,
  writeFileAtomically,
} from '../report-files.ts';
import { REPORT_API_VERSION } from '../kube/objects/labels.ts';
import { escapeControl } from '../terminal-text.ts';
import type { NodeScanOutcome } from './collect.ts';
import type { Family, HostSocket, Protocol, ProcessInfo } from './scan.ts';

export const CLUSTER_PORT_REPORT_KIND = 'ClusterPortReport';

/** One listening socket in a report; like {@link HostSocket} without the per-host inode and uid. */
export interface ReportedPort {
  readonly protocol: Protocol;
  readonly family: Family;
  readonly address: string;
  readonly port: number;
  readonly pid?: number;
  readonly process?: string;
}

export interface NodePorts {
  readonly node: string;
  readonly scannedAt: string;
  readonly ports: readonly ReportedPort[];
  readonly processInfo: ProcessInfo;
  readonly malformedLines: number;
}

/** A node whose scan failed, with its ports from the last report that had them. */
export interface FailedNode {
  readonly node: string;
  readonly reason: string;
  /**
   * The node's ports as last seen, carried from report to report while it keeps failing, so the
   * first successful scan afterwards is compared with them: a port opened meanwhile still shows.
   */
  readonly lastKnown?: { readonly scannedAt: string; readonly ports: readonly ReportedPort[] };
}

export interface NodePortsDiff {
  readonly node: string;
  readonly opened: readonly ReportedPort[];
  readonly closed: readonly ReportedPort[];
}

export interface PortsDiff {
  /** File name of the report compared with. */
  readonly previousReport: string;
  readonly previousRunAt: string;
  /** Nodes with ports opened or closed; nodes without changes are left out. */
  readonly nodes: readonly NodePortsDiff[];
  /** Scanned now, absent from the previous report. */
  readonly newNodes: readonly string[];
  /** In the previous report, absent now (gone from the cluster or not selected). */
  readonly goneNodes: readonly string[];
  /** Nodes that failed now or then: no comparison possible. */
  readonly notCompared: readonly string[];
}

export interface ClusterPortReport {
  readonly apiVersion: typeof REPORT_API_VERSION;
  readonly kind: typeof CLUSTER_PORT_REPORT_KIND;
  readonly runId: string;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly durationMs: number;
  readonly nodes: readonly NodePorts[];
  readonly failed: readonly FailedNode[];
  /** Nodes not scanned on purpose (Windows, virtual kubelets), with why; absent in reports of older versions. */
  readonly skipped?: readonly { readonly node: string; readonly reason: string }[];
  /** Absent on the first run (no previous report). */
  readonly diff?: PortsDiff;
}

/** Builds the report from the per-node outcomes and, when there is one, the previous report. */
export function buildReport(input: {
  readonly runId: string;
  readonly startedAt: Date;
  readonly finishedAt: Date;
  readonly outcomes: readonly NodeScanOutcome[];
  readonly previous?: { readonly name: string; readonly report: ClusterPortReport };
}): ClusterPortReport {
  const nodes: NodePorts[] = [];
  const failed: FailedNode[] = [];
  const skipped: { node: string; reason: string }[] = [];
  for (const outcome of input.outcomes) {
    if (!outcome.ok && outcome.skipped) {
      skipped.push({ node: outcome.node, reason: outcome.reason });
      continue;
    }
    if (!outcome.ok) {
      const lastKnown = input.previous ? lastKnownPorts(input.previous.report, outcome.node) : undefined;
      failed.push({ node: outcome.node, reason: outcome.reason, ...(lastKnown ? { lastKnown } : {}) });
      continue;
    }
    nodes.push({
      node: outcome.node,
      scannedAt: outcome.scan.scannedAt,
      ports: outcome.scan.sockets.map(toReportedPort),
      processInfo: outcome.scan.processInfo,
      malformedLines: outcome.scan.malformedLines,
    });
  }
  nodes.sort((a, b) => a.node.localeCompare(b.node));
  failed.sort((a, b) => a.node.localeCompare(b.node));
  skipped.sort((a, b) => a.node.localeCompare(b.node));
  const report: ClusterPortReport = {
    apiVersion: REPORT_API_VERSION,
    kind: CLUSTER_PORT_REPORT_KIND,
    runId: input.runId,
    startedAt: input.startedAt.toISOString(),
    finishedAt: input.finishedAt.toISOString(),
    durationMs: input.finishedAt.getTime() - input.startedAt.getTime(),
    nodes,
    failed,
    skipped,
  };
  return input.previous ? { ...report, diff: diffReports(input.previous.name, input.previous.report, report) } : report;
}

/** A node's ports in `report`: scanned there, or carried there from an earlier report while failing. */
function lastKnownPorts(report: ClusterPortReport, node: string): FailedNode['lastKnown'] {
  const scanned = report.nodes.find((n) => n.node === node);
  if (scanned) return { scannedAt: scanned.scannedAt, ports: scanned.ports };
  return report.failed.find((f) => f.node === node)?.lastKnown;
}

function toReportedPort(socket: HostSocket): ReportedPort {
  return {
    protocol: socket.protocol,
    family: socket.family,
    address: socket.address,
    port: socket.port,
    ...(socket.pid !== undefined ? { pid: socket.pid } : {}),
    ...(socket.process !== undefined ? { process: socket.process } : {}),
  };
}

/**
 * A port's identity across runs: protocol, family, address, port and the program holding it (a
 * port taken over by another program is a close and an open). The pid is left out: a restart
 * is not a change. SO_REUSEPORT siblings collapse into one.
 */
function portKey(port: ReportedPort): string {
  return `${port.protocol}|${port.family}|${port.address}|${port.port}|${port.process ?? ''}`;
}

/** Ports opened and closed per node between two reports. */
export function diffReports(previousName: string, previous: ClusterPortReport, current: Pick<ClusterPortReport, 'nodes' | 'failed'>): PortsDiff {
  const before = new Map(previous.nodes.map((node) => [node.node, node.ports]));
  // A node that failed last time is compared with its ports from before it failed.
  for (const failure of previous.failed) if (failure.lastKnown) before.set(failure.node, failure.lastKnown.ports);
  const knownBefore = new Set([...previous.nodes.map((n) => n.node), ...previous.failed.map((f) => f.node)]);
  const now = new Map(current.nodes.map((node) => [node.node, node]));
  const failedNow = new Set(current.failed.map((f) => f.node));
  const nodes: NodePortsDiff[] = [];
  const newNodes: string[] = [];
  const notCompared = new Set<string>();
  for (const [name, node] of now) {
    const oldPorts = before.get(name);
    if (!oldPorts) {
      if (knownBefore.has(name)) notCompared.add(name); // failed every time we have seen it
      else newNodes.push(name);
      continue;
    }
    const oldKeys = new Map(oldPorts.map((port) => [portKey(port), port]));
    const newKeys = new Map(node.ports.map((port) => [portKey(port), port]));
    const opened = [...newKeys].filter(([key]) => !oldKeys.has(key)).map(([, port]) => port);
    const closed = [...oldKeys].filter(([key]) => !newKeys.has(key)).map(([, port]) => port);
    if (opened.length || closed.length) nodes.push({ node: name, opened, closed });
  }
  for (const name of failedNow) notCompared.add(name);
  const goneNodes = [...knownBefore].filter((name) => !now.has(name) && !failedNow.has(name));
  return {
    previousReport: previousName,
    previousRunAt: previous.startedAt,
    nodes: nodes.sort((a, b) => a.node.localeCompare(b.node)),
    newNodes: newNodes.sort(),
    goneNodes: goneNodes.sort(),
    notCompared: [...notCompared].sort(),
  };
}

const REPORT_PATTERN = new RegExp(`^ports-(${FILE_TIMESTAMP_PATTERN})(?:-${RUN_SUFFIX_PATTERN})?\\.json$`);

/** The report JSON files in `dir`, newest first. */
async function reportNamesNewestFirst(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [] as string[]))
    .flatMap((name) => {
      const stamp = REPORT_PATTERN.exec(name)?.[1];
      return stamp === undefined ? [] : [{ name, stamp }];
    })
    .sort((a, b) => compareByStamp(b, a))
    .map((entry) => entry.name);
}

/** The newest complete report in `dir`, if any; an unreadable one is skipped with `onSkip`. */
export async function readPreviousReport(dir: string, onSkip: (name: string, reason: string) => void = () => {}): Promise<{ name: string; report: ClusterPortReport } | undefined> {
  const names = await reportNamesNewestFirst(dir);
  for (const name of names) {
    try {
      const report = JSON.parse(await readFile(join(dir, name), 'utf8')) as ClusterPortReport;
      if (report.kind === CLUSTER_PORT_REPORT_KIND && Array.isArray(report.nodes)) return { name, report };
      onSkip(name, `not a ${CLUSTER_PORT_REPORT_KIND}`);
    } catch (err) {
      onSkip(name, err instanceof Error ? err.message : String(err));
    }
  }
  return undefined;
}

/**
 * Writes the report's JSON and text files (temp + rename) and removes reports beyond `keepLast`
 * (0 keeps all). @returns the paths written.
 */
/** Report layouts `ports collect --report-format` writes: ours alone, or ours and k8s-node-collector's. */
export const REPORT_FORMATS = ['crowsnest', 'node-collector'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const two = (n: number): string => String(n).padStart(2, '0');

/** k8s-node-collector's report name, `date +%d-%b-%H:%M` (UTC, as in its pod), e.g. `07-Dec-02:15`. */
export function nodeCollectorReportName(at: Date): string {
  return `${two(at.getUTCDate())}-${MONTHS[at.getUTCMonth()]}-${two(at.getUTCHours())}:${two(at.getUTCMinutes())}`;
}
const NODE_COLLECTOR_NAME = /^\d\d-[A-Z][a-z]{2}-\d\d:\d\d$/;

/**
 * The report as k8s-node-collector wrote it, for scripts that parse it: per node (its
 * `kubectl get nodes` order, by name) a line `Ports opened in Node: <node>`, then one line per
 * port its `netstat -putan | grep LISTEN | grep 0.0.0.0.0` kept — TCP listeners on 0.0.0.0 —
 * with the port alone. A node whose scan failed gets its header and no ports, as when the tool's
 * `kubectl exec` failed (our own report beside it says why).
 */
export function renderNodeCollectorReport(report: ClusterPortReport): string {
  const nodes = [...report.nodes.map((n) => ({ node: n.node, ports: n.ports })), ...report.failed.map((f) => ({ node: f.node, ports: [] as readonly ReportedPort[] }))]
    .sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  const lines: string[] = [];
  for (const { node, ports } of nodes) {
    lines.push(`Ports opened in Node: ${escapeControl(node)}`);
    const wildcard = ports.filter((p) => p.protocol === 'tcp' && p.family === 'ipv4' && p.address === '0.0.0.0').map((p) => p.port).sort((a, b) => a - b);
    for (const port of wildcard) lines.push(String(port));
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Writes k8s-node-collector's report into `dir` under its name; a run in the same minute replaces
 * it, as the tool's did (ours, beside it, is never replaced). Keeps the newest `keepLast`.
 * @returns the path written.
 */
export async function writeNodeCollectorReport(dir: string, report: ClusterPortReport, keepLast: number): Promise<string> {
  const path = join(dir, nodeCollectorReportName(new Date(report.startedAt)));
  await rm(path, { force: true });
  await writeFileAtomically(path, renderNodeCollectorReport(report), 0o644);
  if (keepLast > 0) {
    const names = (await readdir(dir)).filter((name) => NODE_COLLECTOR_NAME.test(name));
    const dated = await Promise.all(names.map(async (name) => ({ name, mtimeMs: (await stat(join(dir, name))).mtimeMs })));
    dated.sort((a, b) => b.mtimeMs - a.mtimeMs);
    for (const { name } of dated.slice(keepLast)) await rm(join(dir, name), { force: true });
  }
  return path;
}

export async function writeReport(dir: string, report: ClusterPortReport, keepLast: number): Promise<{ json: string; text: string }> {
  await makeDirectories(dir);
  const base = `ports-${fileTimestamp(new Date(report.startedAt))}-${runNameSuffix(report.runId)}`;
  const json = join(dir, `${base}.json`);
  const text = join(dir, `${base}.txt`);
  // The text first: the JSON's arrival is what marks the report complete for the next run.
  await createFileExclusively(text, renderReportText(report), 0o644);
  await createFileExclusively(json, `${JSON.stringify(report, null, 2)}\n`, 0o644);
  if (keepLast > 0) {
    const names = await reportNamesNewestFirst(dir);
    for (const name of names.slice(keepLast)) {
      await rm(join(dir, name), { force: true });
      await rm(join(dir, name.replace(/\.json$/, '.txt')), { force: true });
    }
  }
  return { json, text };
}

function formatPort(port: ReportedPort): string {
  const address = port.family === 'ipv6' ? `[${port.address}]` : port.address;
  // The process name is whatever the process set (prctl): never raw on a terminal.
  const owner = port.process ? `  ${escapeControl(port.process)}${port.pid !== undefined ? ` (pid ${port.pid})` : ''}` : '';
  return `${port.protocol.padEnd(3)} ${escapeControl(address)}:${port.port}${owner}`;
}

/** The report for people: per node its ports, then failed nodes, then the changes. */
export function renderReportText(report: ClusterPortReport): string {
  const e = escapeControl;
  const lines: string[] = [
    `Listening ports of ${report.nodes.length + report.failed.length + (report.skipped?.length ?? 0)} node(s), run ${e(report.runId)}`,
    `started ${e(report.startedAt)}, took ${(report.durationMs / 1000).toFixed(1)}s; ${report.failed.length} node(s) failed`,
    '',
  ];
  for (const node of report.nodes) {
    lines.push(`== ${e(node.node)} (${node.ports.length} ports, scanned ${e(node.scannedAt)})`);
    for (const port of node.ports) lines.push(`  ${formatPort(port)}`);
    if (!node.processInfo.available) lines.push(`  (processes unknown for ${node.processInfo.unavailableSockets} socket(s)${node.processInfo.reason ? `: ${e(node.processInfo.reason)}` : ''})`);
    if (node.malformedLines) lines.push(`  (${node.malformedLines} malformed /proc line(s) skipped)`);
    lines.push('');
  }
  if (report.failed.length) {
    lines.push('== failed nodes');
    // A failure reason quotes the scan pod's log: the pod's text, not ours.
    for (const failure of report.failed) lines.push(`  ${e(failure.node)}: ${e(failure.reason)}`);
    lines.push('');
  }
  if (report.skipped?.length) {
    lines.push('== nodes not scanned');
    for (const skip of report.skipped) lines.push(`  ${e(skip.node)}: ${e(skip.reason)}`);
    lines.push('');
  }
  lines.push(...renderDiffText(report.diff));
  return `${lines.join('\n')}\n`;
}

/** The diff part of the text report (also printed by `ports collect`). */
export function renderDiffText(diff: PortsDiff | undefined): string[] {
  const e = escapeControl;
  if (!diff) return ['== changes: none to show (first report in this directory)'];
  const lines = [`== changes since ${e(diff.previousReport)} (${e(diff.previousRunAt)})`];
  if (!diff.nodes.length && !diff.newNodes.length && !diff.goneNodes.length) lines.push('  no ports opened or closed');
  for (const node of diff.nodes) {
    lines.push(`  ${e(node.node)}:`);
    for (const port of node.opened) lines.push(`    + ${formatPort(port)}`);
    for (const port of node.closed) lines.push(`    - ${formatPort(port)}`);
  }
  if (diff.newNodes.length) lines.push(`  new nodes: ${diff.newNodes.map(e).join(', ')}`);
  if (diff.goneNodes.length) lines.push(`  nodes gone: ${diff.goneNodes.map(e).join(', ')}`);
  if (diff.notCompared.length) lines.push(`  not compared (a scan failed): ${diff.notCompared.map(e).join(', ')}`);
  return lines;
}
