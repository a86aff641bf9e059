/**
 * The run summary as people read it at the end of `inventory collect` (the JSON form is the
 * summary object itself).
 */
import { escapeControl } from '../terminal-text.ts';
import type { RunSummary } from './summary.ts';

/**
 * Renders `summary` as a short report: outcome, sink, per-type counts, then what went wrong.
 * Each line is one line: control characters in what others wrote (an endpoint's error body, an
 * API server's message, object names) are escaped.
 */
export function renderSummaryText(summary: RunSummary): string {
  const lines: string[] = [];
  const seconds = (summary.durationMs / 1000).toFixed(1);
  const stored = summary.sink.storedBytes;
  const ratio = stored && summary.rawBytes ? ` (${formatBytes(summary.rawBytes)} JSON, ${(summary.rawBytes / stored).toFixed(1)}× gzip)` : '';
  lines.push(`inventory ${summary.result}: ${summary.objects} objects of ${summary.types.length} types from cluster ${summary.clusterId} in ${seconds}s${ratio}`);
  const sink = summary.sink;
  if (sink.kind === 'dir') lines.push(`  written to ${sink.path ?? '?'}`);
  if (sink.kind === 'endpoint') {
    if (sink.delivered) lines.push(`  sent to ${sink.url ?? '?'} in ${sink.chunks ?? 0} request(s), ${sink.retries ?? 0} retried`);
    else lines.push(`  NOT delivered to ${sink.url ?? '?'}: ${sink.error ?? 'unknown error'}`, `  kept in ${sink.path ?? '?'}`);
  }
  if (sink.kind === 'stdout') lines.push('  dry run: printed to stdout, nothing written or sent');
  lines.push(`  run id ${summary.runId}, redaction ${summary.redaction.enabled ? 'on' : 'OFF'}`);
  for (const resent of summary.resent ?? []) {
    lines.push(resent.delivered
      ? `  re-sent the snapshot kept by run ${resent.runId}`
      : `  ! the snapshot kept by run ${resent.runId} is still not delivered: ${resent.error ?? 'unknown error'}`);
  }

  // Types with nothing in them are counted, not listed: on most clusters they are half the set.
  const shown = summary.types.filter((type) => type.objects > 0 || type.error);
  const empty = summary.types.length - shown.length;
  const width = Math.max(4, ...shown.map((type) => type.type.length));
  lines.push('', `  ${'TYPE'.padEnd(width)}  OBJECTS  PAGES`);
  for (const type of shown) {
    const flag = type.error ? '  (incomplete)' : '';
    lines.push(`  ${type.type.padEnd(width)}  ${String(type.objects).padStart(7)}  ${String(type.pages).padStart(5)}${flag}`);
  }
  if (empty) lines.push(`  (${empty} more type(s) with no objects)`);
  const problems: string[] = [];
  for (const group of summary.failedGroups) problems.push(`API group ${group.groupVersion} skipped: ${group.reason}`);
  for (const type of summary.skippedTypes) problems.push(`type ${type.type} incomplete: ${type.reason}`);
  if (summary.dropped.count) {
    problems.push(`${summary.dropped.count} object(s) dropped:`);
    for (const object of summary.dropped.objects) {
      problems.push(`  ${object.type} ${object.namespace ? `${object.namespace}/` : ''}${object.name ?? '?'}: ${object.reason}`);
    }
  }
  for (const selector of summary.unmatchedSelectors) problems.push(`type selector "${selector}" matched nothing this cluster serves`);
  const retention = summary.retention;
  if (retention?.undeliveredKept) problems.push(`${retention.undeliveredKept} undelivered snapshot(s) kept in the report directory, to be re-sent`);
  for (const warning of summary.warnings) problems.push(warning);
  if (problems.length) lines.push('', ...problems.map((problem) => `  ! ${problem}`));
  return `${lines.map(escapeControl).join('\n')}\n`;
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
