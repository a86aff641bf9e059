/**
 * The process logger: pino, writing JSON lines for collectors or compact text lines for humans.
 *
 * Text rendering is our own synchronous destination rather than pino-pretty: it keeps the
 * dependency list short, and a synchronous write means the last lines before an exit are never
 * lost in a worker thread's buffer.
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import { escapeControl, escapeControlKeepingLines } from '../terminal-text.ts';

export type { Logger } from 'pino';

/** Log levels Crowsnest uses, most verbose first. */
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

/** `json`: one pino JSON object per line. `text`: `<time> <LEVEL> <msg> key=value ...`. */
export type LogFormat = 'json' | 'text';

export interface LoggerOptions {
  /** Minimum level written. Default `info`. */
  readonly level?: LogLevel;
  /** Default `json`. */
  readonly format?: LogFormat;
  /**
   * Where lines go. Default: stderr, written synchronously, so stdout stays free for command
   * output (`crowsnest version -o json | jq`).
   */
  readonly destination?: DestinationStream;
}

/** Value of the `name` field on every JSON line, to tell our lines from a sidecar's. */
const LOGGER_NAME = 'crowsnest';
const STDERR_FD = 2;

/** Levels at which text lines include error stacks: a stack helps while debugging, not in a terminal tail. */
const STACK_LEVELS: ReadonlySet<LogLevel> = new Set(['trace', 'debug']);

/**
 * Creates the root logger. Components derive children with `logger.child({ controller })`.
 *
 * JSON lines carry `level` as a label (`"info"`), `time` as ISO 8601 and `name: "crowsnest"`
 * besides pino's `pid` and `hostname`, so they read well in any log backend without a level map.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? 'info';
  const out = options.destination ?? pino.destination({ dest: STDERR_FD, sync: true });
  const destination =
    options.format === 'text' ? new TextDestination(out, { includeStacks: STACK_LEVELS.has(level) }) : out;
  return pino(
    {
      name: LOGGER_NAME,
      level,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

// ---------------------------------------------------------------------------------------------
// Text format

/** Fields shown in the fixed columns of a text line, or not at all (they are the same on every line). */
const TEXT_HIDDEN_FIELDS = new Set(['time', 'level', 'msg', 'name', 'pid', 'hostname']);

/** Width of the level column: the longest label we use (`ERROR`, `DEBUG`, `TRACE`). */
const LEVEL_COLUMN_WIDTH = 5;

export interface TextFormatOptions {
  /** Whether to append an error's stack (indented) below the line. */
  readonly includeStacks: boolean;
}

/**
 * A pino destination that re-renders each JSON line as text and writes it to `out`. pino hands
 * over one complete line per `write`; partial input is still buffered up to the next newline so
 * the destination is correct for any writer.
 */
export class TextDestination implements DestinationStream {
  private readonly out: DestinationStream;
  private readonly options: TextFormatOptions;
  private pending = '';

  constructor(out: DestinationStream, options: TextFormatOptions) {
    this.out = out;
    this.options = options;
  }

  write(chunk: string): void {
    this.pending += chunk;
    let newline = this.pending.indexOf('\n');
    while (newline >= 0) {
      const line = this.pending.slice(0, newline);
      this.pending = this.pending.slice(newline + 1);
      if (line !== '') this.out.write(`${formatTextLine(line, this.options)}\n`);
      newline = this.pending.indexOf('\n');
    }
  }
}

/**
 * Renders one pino JSON line as `2026-11-23T12:00:00.000Z INFO  message key=value ...`.
 * A line that is not a JSON object is returned unchanged rather than dropped.
 */
export function formatTextLine(jsonLine: string, options: TextFormatOptions): string {
  let record: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(jsonLine);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return jsonLine;
    record = parsed as Record<string, unknown>;
  } catch {
    return jsonLine;
  }

  const time = typeof record['time'] === 'string' ? record['time'] : new Date().toISOString();
  const level = String(record['level'] ?? 'info').toUpperCase().padEnd(LEVEL_COLUMN_WIDTH);
  const parts = [time, level, escapeControl(String(record['msg'] ?? ''))];
  let stack: string | undefined;

  for (const [key, value] of Object.entries(record)) {
    if (TEXT_HIDDEN_FIELDS.has(key)) continue;
    if (isSerializedError(value)) {
      // pino's err serializer yields {type, message, stack}; the message is what a human scans for.
      parts.push(`${key}=${formatValue(value.message)}`);
      if (options.includeStacks && typeof value.stack === 'string') stack = value.stack;
      continue;
    }
    parts.push(`${key}=${formatValue(value)}`);
  }

  const line = parts.join(' ');
  if (stack === undefined) return line;
  return `${line}\n${escapeControlKeepingLines(stack).split('\n').map((stackLine) => `    ${stackLine}`).join('\n')}`;
}

function isSerializedError(value: unknown): value is { message: string; stack?: unknown } {
  return typeof value === 'object' && value !== null && typeof (value as { message?: unknown }).message === 'string' &&
    'stack' in value;
}

/**
 * Bare when unambiguous (`ns=default`), JSON-quoted otherwise (`msg="a b"`), objects as JSON;
 * control characters JSON leaves alone (C1, bidi overrides, ESC when bare) escaped too.
 */
function formatValue(value: unknown): string {
  if (typeof value === 'string') return escapeControl(/^[^\s"=\\]+$/.test(value) ? value : JSON.stringify(value));
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  return escapeControl(JSON.stringify(value) ?? String(value));
}
