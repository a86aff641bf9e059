/**
 * `crowsnest ports collect`: scan every node with a short-lived pod, write the cluster report and
 * its diff against the previous one into the report directory.
 */
import { Option, type Command } from 'commander';
import { abortOnTermination, kubeClientFor, requireGlobals, type CliIO, type RunState } from './command.ts';
import { asString, OptionError, parseNamespace, parsePositiveDurationMs, parsePositiveInteger, parseReportDir } from './options.ts';
import { checkLabelSelector } from '../kube/label-selector.ts';
import { version } from '../version.ts';
import { escapeControl } from '../terminal-text.ts';

/** Exit codes of `ports collect`: every node scanned / some failed / none could be scanned. */
export const PORTS_EXIT = { complete: 0, failed: 1, partial: 3 } as const;

export interface PortsCollectCliOptions {
  readonly namespace: string;
  readonly image: string;
  readonly imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  readonly processInfo: boolean;
  readonly concurrency: number;
  readonly nodeTimeoutMs: number;
  readonly nodeSelector?: string;
  readonly reportDir: string;
  readonly keepLast: number;
  readonly priorityClassName?: string;
  readonly output: 'text' | 'json';
}

const DEFAULT_IMAGE = `ghcr.io/crowsnest/crowsnest:${version}`;

/**
 * Resolves the options: flag > env (`CROWSNEST_*`; `PATH_REPORTS`/`PATH_REPORT` for the report
 * directory, `POD_NAMESPACE` for the namespace, as the chart sets them) > default.
 */
export function resolvePortsCollectOptions(flags: Readonly<Record<string, unknown>>, env: Readonly<Record<string, string | undefined>>): PortsCollectCliOptions {
  const pick = (flag: string, ...envNames: string[]): string | undefined => {
    // commander keys options by camelCase attribute: --node-selector → nodeSelector.
    const value = flags[flag.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase())];
    if (typeof value === 'string') return value;
    for (const name of envNames) if (env[name]) return env[name];
    return undefined;
  };
  const parse = <T>(flag: string, raw: string | undefined, fn: (value: string) => T, fallback: T): T => {
    if (raw === undefined) return fallback;
    try {
      return fn(raw);
    } catch (err) {
      throw new OptionError(`--${flag}`, `invalid value "${raw}" for --${flag}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  const pullPolicy = pick('image-pull-policy', 'CROWSNEST_IMAGE_PULL_POLICY');
  if (pullPolicy !== undefined && !['Always', 'IfNotPresent', 'Never'].includes(pullPolicy)) {
    throw new OptionError('--image-pull-policy', `invalid value "${pullPolicy}" for --image-pull-policy: must be Always, IfNotPresent or Never`);
  }
  const output = (flags['output'] as string | undefined) ?? 'text';
  const nodeSelector = parse('node-selector', pick('node-selector', 'CROWSNEST_NODE_SELECTOR'), (v) => {
    checkLabelSelector(v);
    return v.trim();
  }, undefined);
  const priorityClassName = pick('priority-class-name', 'CROWSNEST_PRIORITY_CLASS_NAME');
  return {
    namespace: parse('namespace', pick('namespace', 'CROWSNEST_NAMESPACE', 'POD_NAMESPACE'), parseNamespace, 'default'),
    image: pick('image', 'CROWSNEST_IMAGE') ?? DEFAULT_IMAGE,
    ...(pullPolicy ? { imagePullPolicy: pullPolicy as 'Always' | 'IfNotPresent' | 'Never' } : {}),
    processInfo: flags['processInfo'] !== false && env['CROWSNEST_PROCESS_INFO'] !== 'false',
    concurrency: parse('concurrency', pick('concurrency', 'CROWSNEST_CONCURRENCY'), parsePositiveInteger, 10),
    nodeTimeoutMs: parse('timeout', pick('timeout', 'CROWSNEST_TIMEOUT'), parsePositiveDurationMs, 120_000),
    ...(nodeSelector ? { nodeSelector } : {}),
    reportDir: parse('report-dir', pick('report-dir', 'CROWSNEST_REPORT_DIR', 'PATH_REPORTS', 'PATH_REPORT'), parseReportDir, './reports'),
    keepLast: parse('keep-last', pick('keep-last', 'CROWSNEST_KEEP_LAST'), (v) => {
      if (!/^\d+$/.test(v)) throw new Error('must be a whole number (0 keeps all)');
      return Number(v);
    }, 30),
    ...(priorityClassName ? { priorityClassName: asString(priorityClassName) } : {}),
    output: output === 'json' ? 'json' : 'text',
  };
}

export function addPortsCollectCommand(ports: Command, io: CliIO, state: RunState): void {
  const command = ports
    .command('collect')
    .description('scan every node with a short-lived pod (in parallel), write the cluster report and what changed since the last one')
    .addOption(new Option('--namespace <ns>', 'namespace for the scan pods (default: $POD_NAMESPACE, else default)'))
    .addOption(new Option('--image <image>', `crowsnest image the scan pods run (default: ${DEFAULT_IMAGE}; env: CROWSNEST_IMAGE)`))
    .addOption(new Option('--image-pull-policy <policy>', 'Always, IfNotPresent or Never (default: the cluster default)'))
    .addOption(new Option('--no-process-info', 'scan as non-root without capabilities: ports without their processes'))
    .addOption(new Option('--concurrency <n>', 'nodes scanned at once (default: 10)'))
    .addOption(new Option('--timeout <duration>', 'per node, from pod creation to result (default: 2m)'))
    .addOption(new Option('--node-selector <selector>', 'only nodes with these labels, e.g. "node-role.kubernetes.io/worker"'))
    .addOption(new Option('--priority-class-name <name>', 'priority class of the scan pods'))
    .addOption(new Option('--report-dir <dir>', 'where reports go (default: $PATH_REPORTS, else $PATH_REPORT, else ./reports)'))
    .addOption(new Option('--keep-last <n>', 'reports kept; 0 keeps all (default: 30)'))
    .addOption(new Option('-o, --output <format>', 'what to print: text (the changes) or json (the report)').choices(['text', 'json']).default('text'))
    .addHelpText('after', COLLECT_HELP);

  command.action(async () => {
    const globals = requireGlobals(state);
    const options = resolvePortsCollectOptions(command.opts(), io.env);
    const [{ createLogger }, collect, report, { randomUUID }, { prepareReportDir }] = await Promise.all([
      import('../observe/logger.ts'),
      import('../ports/collect.ts'),
      import('../ports/report.ts'),
      import('node:crypto'),
      import('../report-files.ts'),
    ]);
    const logger = createLogger({ level: globals.logLevel, format: globals.logFormat });
    // Before any node is scanned: finding out afterwards would throw every scan away.
    await prepareReportDir(options.reportDir).catch((err: unknown) => {
      throw new OptionError('--report-dir', `${err instanceof Error ? err.message : String(err)} (--report-dir, $PATH_REPORTS); no node was scanned`);
    });
    const client = await kubeClientFor(globals, io.env);
    const shutdown = abortOnTermination(logger, 'interrupted: deleting scan pods, then writing what was scanned');
    const runId = randomUUID().slice(0, 8);
    const startedAt = new Date();
    try {
      await collect.sweepStalePods(client, options.namespace, runId, logger);
      const outcomes = await collect.collectPorts(client, {
        namespace: options.namespace,
        image: options.image,
        ...(options.imagePullPolicy ? { imagePullPolicy: options.imagePullPolicy } : {}),
        processInfo: options.processInfo,
        ...(options.priorityClassName ? { priorityClassName: options.priorityClassName } : {}),
        concurrency: options.concurrency,
        nodeTimeoutMs: options.nodeTimeoutMs,
        ...(options.nodeSelector ? { nodeSelector: options.nodeSelector } : {}),
        runId,
        logger,
        signal: shutdown.signal,
      });
      const previous = await report.readPreviousReport(options.reportDir, (name, reason) => logger.warn({ name, reason }, 'skipping unreadable earlier report'));
      const built = report.buildReport({ runId, startedAt, finishedAt: new Date(), outcomes, ...(previous ? { previous } : {}) });
      const written = await report.writeReport(options.reportDir, built, options.keepLast);
      if (options.output === 'json') {
        io.stdout(`${JSON.stringify(built, null, 2)}\n`);
      } else {
        const skipped = built.skipped ?? [];
        const lines = [
          `ports: ${built.nodes.length} node(s) scanned, ${built.failed.length} failed${skipped.length ? `, ${skipped.length} not scanned` : ''}, in ${(built.durationMs / 1000).toFixed(1)}s`,
          `  report: ${written.text}`,
          ...built.failed.map((failure) => `  ! ${failure.node}: ${failure.reason}`),
          ...skipped.map((skip) => `  - ${skip.node}: ${skip.reason}`),
          ...report.renderDiffText(built.diff),
        ];
        // Failure reasons quote the scan pods' logs: one escaped line each.
        io.stdout(`${lines.map(escapeControl).join('\n')}\n`);
      }
      // An interrupted run still wrote what it had (the nodes not reached are listed as failed).
      state.exitCode = shutdown.signal.aborted || (built.nodes.length === 0 && built.failed.length > 0)
        ? PORTS_EXIT.failed
        : built.failed.length ? PORTS_EXIT.partial : PORTS_EXIT.complete;
    } finally {
      shutdown.dispose();
      await client.close();
    }
  });
}

const COLLECT_HELP = `
Each node gets a pod (nodeName set, tolerating every taint, hostPID, no service account token,
read-only root file system, resource limits) running \`crowsnest ports scan --output json\`
against the host's /proc/1/net; results come back through the pod logs and the pods are deleted,
also on failure, timeout or interruption. With process info (the default) the scan runs as root
with only CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH; --no-process-info runs it as non-root.

Reports: ports-<UTC time>.json and .txt in the report directory, with the ports opened and closed
per node since the previous report there.

Nodes that cannot run the scan pod (kubernetes.io/os other than linux, virtual kubelets) are
listed as not scanned, not as failures.

Exit status: 0 every node scanned, 3 some nodes failed (listed in the report), 1 none could be
scanned or the run was interrupted (the report is still written), 2 usage error.
`;
