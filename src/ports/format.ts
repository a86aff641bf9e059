/**
 * How `crowsnest ports scan` shows a {@link HostScan}: an aligned table for people, the document
 * itself for programs, and one-line warnings (for stderr) about what the scan could not see.
 */
import { escapeControl } from '../terminal-text.ts';
import type { HostScan, HostSocket } from './scan.ts';

/** Output formats of `crowsnest ports scan --output`. */
export const scanOutputs = ['table', 'json'] as const;
/** One of {@link scanOutputs}. */
export type ScanOutput = (typeof scanOutputs)[number];

const COLUMNS = ['PROTO', 'FAMILY', 'ADDRESS', 'PORT', 'PID', 'PROCESS'] as const;
/** Numbers read best right-aligned. */
const RIGHT_ALIGNED: ReadonlySet<string> = new Set(['PORT', 'PID']);
const UNKNOWN = '-';

/**
 * One line per socket under a header, columns padded to their widest cell and separated by two
 * spaces. A socket shared by several processes shows the lowest pid and how many more hold it.
 * Only the header when there are no sockets.
 */
export function renderTable(scan: HostScan): string {
  const rows = scan.sockets.map(tableRow);
  // A loop, not Math.max(...cells): a host can have more sockets than a call has room for arguments.
  const widths = COLUMNS.map((title, i) => rows.reduce((width, row) => Math.max(width, row[i]!.length), title.length));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, i) => (RIGHT_ALIGNED.has(COLUMNS[i]!) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return `${[line(COLUMNS), ...rows.map(line)].join('\n')}\n`;
}

function tableRow(socket: HostSocket): string[] {
  const others = (socket.owners?.length ?? 1) - 1;
  // Any process can name itself anything (prctl PR_SET_NAME), escape sequences and newlines included.
  const process = escapeControl(socket.process ?? UNKNOWN) + (others > 0 ? ` (+${others} more)` : '');
  return [socket.protocol, socket.family, escapeControl(socket.address), String(socket.port), socket.pid === undefined ? UNKNOWN : String(socket.pid), process];
}

/**
 * The document as JSON, newline-terminated: one field per line, and one line per socket and per
 * source, so `grep` works on it and people can read it. Fully indented JSON of a busy host is
 * several megabytes and took four times as long to write.
 */
export function renderJson(scan: HostScan): string {
  const fields = Object.entries(scan).map(([key, value]) => {
    const text = Array.isArray(value) ? oneItemPerLine(value) : JSON.stringify(value);
    return `  ${JSON.stringify(key)}: ${text}`;
  });
  return `{\n${fields.join(',\n')}\n}\n`;
}

function oneItemPerLine(items: readonly unknown[]): string {
  if (items.length === 0) return '[]';
  return `[\n${items.map((item) => `    ${JSON.stringify(item)}`).join(',\n')}\n  ]`;
}

/**
 * What the scan could not see, one sentence per problem, for stderr: sockets without a known
 * process (and why), and tables with malformed lines (with the first one's line number and
 * reason). Empty when the scan is complete. Control characters are escaped: a reason may quote
 * what it read.
 */
export function scanWarnings(scan: HostScan): string[] {
  const warnings: string[] = [];
  const info = scan.processInfo;
  if (info.unavailableSockets > 0) {
    const sockets = info.unavailableSockets === 1 ? '1 socket' : `${info.unavailableSockets} sockets`;
    warnings.push(`process info unavailable for ${sockets} (${info.reason ?? 'reason unknown'})`);
  }
  for (const source of scan.sources) {
    if (source.malformedLines === 0) continue;
    const first = source.malformed[0];
    const example = first ? `; first at line ${first.line}: ${first.reason}` : '';
    const lines = source.malformedLines === 1 ? '1 malformed line' : `${source.malformedLines} malformed lines`;
    warnings.push(`skipped ${lines} in ${source.path}${example}`);
  }
  return warnings.map(escapeControl);
}
