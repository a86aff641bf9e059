/**
 * `crowsnest ports collect`: scan every node with a short-lived pod, write the cluster report and
 * its diff against the previous one into the report directory.
 */
import type { Command } from 'commander';
import { OptionError } from '../flags.ts';
import { portsCollectFlagList, resolvePortsCollectOptions } from '../ports/flags.ts';
import { escapeControl } from '../terminal-text.ts';
import { abortOnTermination, kubeClientFor, requireGlobals, type CliIO, type RunState } from './command.ts';
import { addFlags } from './flags.ts';

/** Exit codes of `ports collect`: every node scanned / some failed / none could be scanned. */
export const PORTS_EXIT = { complete: 0, failed: 1, partial: 3 } as const;

export function addPortsCollectCommand(ports: Command, io: CliIO, state: RunState): void {
  const command = ports
    .command('collect')
    .description('scan every node with a short-lived pod (in parallel), write the cluster report and what changed since the last one')
    .addHelpText('after', COLLECT_HELP);
  const flagValues = addFlags(command, portsCollectFlagList);

  command.action(async () => {
    const globals = requireGlobals(state);
    const options = resolvePortsCollectOptions({ flags: flagValues(), env: io.env });
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
      const compatible = options.reportFormat === 'node-collector' ? await report.writeNodeCollectorReport(options.reportDir, built, options.keepLast) : undefined;
      if (options.output === 'json') {
        io.stdout(`${JSON.stringify(built, null, 2)}\n`);
      } else {
        const skipped = built.skipped ?? [];
        const lines = [
          `ports: ${built.nodes.length} node(s) scanned, ${built.failed.length} failed${skipped.length ? `, ${skipped.length} not scanned` : ''}, in ${(built.durationMs / 1000).toFixed(1)}s`,
          `  report: ${written.text}`,
          ...(compatible ? [`  k8s-node-collector report: ${compatible}`] : []),
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
