/**
 * Reads the objects back out of an inventory report file, whichever of the four layouts
 * `inventory collect` wrote:
 *
 * - NDJSON (`.ndjson`, `.ndjson.gz`): one object per line. Streamed line by line, so memory holds
 *   one object at a time however large the snapshot.
 * - JSON (`.json`, `.json.gz`): one document `{"objects": [...]}` (other top-level fields are
 *   ignored; a kubectl `List` with `items` is accepted too). Parsed whole, in memory: JSON
 *   cannot be streamed without a streaming parser, and V8 caps one string at ~512 MiB, so very
 *   large snapshots should be written as NDJSON.
 *
 * Compression is recognised by the gzip magic bytes, not the name, so a renamed or
 * transparently-decompressed download still reads. The layout comes from the name when it says
 * (`.ndjson`/`.jsonl` vs `.json`, before any `.gz`), otherwise from the content: a first line that
 * is a complete JSON object without an `objects`/`items` array is NDJSON; anything else is a
 * document.
 *
 * Every failure is a {@link SnapshotFileError} naming the file, and the line where one is known.
 */
import { open } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { pipeline, type Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { createGunzip } from 'node:zlib';
import type { KubeObject } from '../kube/objects/resources.ts';

/** A report file that cannot be read as a snapshot. The message starts with `path` (and `:line`). */
export class SnapshotFileError extends Error {
  /** The file as given. */
  readonly path: string;
  /** 1-based line of the (decompressed) content the problem is on, when known. */
  readonly line: number | undefined;

  constructor(path: string, line: number | undefined, reason: string, options?: ErrorOptions) {
    super(`${line === undefined ? path : `${path}:${line}`}: ${reason}`, options);
    this.name = 'SnapshotFileError';
    this.path = path;
    this.line = line;
  }
}

/** How the objects are laid out in a report file. */
export type SnapshotLayout = 'ndjson' | 'json';

/** The layout a file name announces, or undefined when it does not say. */
export function layoutFromName(path: string): SnapshotLayout | undefined {
  const name = path.toLowerCase().replace(/\.gz$/, '');
  if (name.endsWith('.ndjson') || name.endsWith('.jsonl')) return 'ndjson';
  if (name.endsWith('.json')) return 'json';
  return undefined;
}

/**
 * The objects of the report file at `path`, in file order. Iterating again reads the file again.
 * Breaking out of the loop early closes the file.
 *
 * An empty file is zero objects when named `.ndjson`; otherwise it is an error, since an empty
 * document usually means a truncated write, and diffing against it would report every object as
 * added.
 * @throws SnapshotFileError for a missing or unreadable file, corrupt gzip, invalid JSON, or
 *   anything that is not a JSON object where an object belongs.
 */
export async function* readSnapshotObjects(path: string): AsyncGenerator<KubeObject, void, undefined> {
  const named = layoutFromName(path);
  const lines = readLines(path, await isGzip(path));
  try {
    // Sniff (when the name did not say) on the first non-blank line, keeping what was read. Not
    // a for-await loop: breaking out of one would close the file.
    const head: string[] = [];
    let layout = named;
    for (let next = await lines.next(); !next.done; next = await lines.next()) {
      head.push(next.value);
      if (next.value.trim() === '') continue;
      layout ??= sniffLayout(next.value);
      break;
    }
    if (head.every((line) => line.trim() === '')) {
      if (named === 'ndjson') return;
      throw new SnapshotFileError(path, undefined, 'empty file, expected NDJSON objects or a {"objects": [...]} document');
    }
    if (layout === 'ndjson') {
      let number = 0;
      for (const line of head) yield* objectOfLine(path, ++number, line);
      for (let next = await lines.next(); !next.done; next = await lines.next()) yield* objectOfLine(path, ++number, next.value);
    } else {
      for (let next = await lines.next(); !next.done; next = await lines.next()) head.push(next.value);
      yield* documentObjects(path, head);
    }
  } finally {
    await lines.return();
  }
}

/** NDJSON's first line is an object of its own; a document's usually is not (pretty-printed `{`). */
function sniffLayout(firstLine: string): SnapshotLayout {
  try {
    const value: unknown = JSON.parse(firstLine);
    if (!isObject(value)) return 'json';
    return Array.isArray(value['objects']) || Array.isArray(value['items']) ? 'json' : 'ndjson';
  } catch {
    return 'json';
  }
}

/** The object on one NDJSON line; nothing for a blank line (trailing newline, editors). */
function* objectOfLine(path: string, number: number, line: string): Generator<KubeObject> {
  if (line.trim() === '') return;
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    const column = (jsonErrorOffset(line) ?? 0) + 1;
    throw new SnapshotFileError(path, number, `invalid JSON at column ${column}: ${syntaxReason(err)}`, { cause: err });
  }
  if (!isObject(value)) throw new SnapshotFileError(path, number, `expected a JSON object, got ${describe(value)}`);
  yield value as KubeObject;
}

/**
 * The objects of a whole `{"objects": [...]}` document, given as its lines. Empties `lines` once
 * joined, so the text is not held twice.
 */
function* documentObjects(path: string, lines: string[]): Generator<KubeObject> {
  let text: string;
  let doc: unknown;
  try {
    text = lines.join('\n');
    lines.length = 0;
    doc = JSON.parse(text);
  } catch (err) {
    if (err instanceof RangeError) {
      throw new SnapshotFileError(path, undefined, 'too large to load as one JSON document; write the snapshot as NDJSON', { cause: err });
    }
    const at = locate(text!, jsonErrorOffset(text!));
    const where = at ? ` at column ${at.column}` : '';
    throw new SnapshotFileError(path, at?.line, `invalid JSON${where}: ${syntaxReason(err)}`, { cause: err });
  }
  const field = isObject(doc) && Array.isArray(doc['objects']) ? 'objects' : 'items';
  const items = isObject(doc) ? doc[field] : undefined;
  if (!Array.isArray(items)) throw new SnapshotFileError(path, undefined, `expected a JSON object with an "objects" array, got ${describe(doc)}`);
  for (const [index, item] of items.entries()) {
    if (!isObject(item)) throw new SnapshotFileError(path, undefined, `${field}[${index}] is not a JSON object but ${describe(item)}`);
    yield item as KubeObject;
  }
}

/** 1-based line and column of `offset` in `text`. */
function locate(text: string, offset: number | undefined): { line: number; column: number } | undefined {
  if (offset === undefined) return undefined;
  let line = 1;
  let lineStart = 0;
  for (let nl = text.indexOf('\n'); nl !== -1 && nl < offset; nl = text.indexOf('\n', nl + 1)) {
    line++;
    lineStart = nl + 1;
  }
  return { line, column: offset - lineStart + 1 };
}

/**
 * V8's reason without its position and input excerpt: `Unexpected token 'o'`. The excerpt can
 * span lines or be long, and positions are given by {@link jsonErrorOffset} instead.
 */
function syntaxReason(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split(/, (?:\.\.\.)?"| in JSON at position /)[0]!.replace(/\s+/g, ' ');
}

/**
 * Where `text` stops being JSON: the offset of the first character no JSON grammar allows there,
 * or `text.length` when it ends early. Only run after `JSON.parse` failed, because V8's messages
 * do not always carry a position ("Unexpected token" does not) and never one per line.
 * Undefined when the text is valid after all, or nests too deep to scan.
 */
export function jsonErrorOffset(text: string): number | undefined {
  let i = 0;
  const stop = (at: number): never => { throw new JsonStop(at); };
  const ws = (): void => { while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++; };
  const expect = (char: string): void => { if (text[i] !== char) stop(i); i++; };
  const number = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  const string = (): void => {
    expect('"');
    for (;;) {
      if (i >= text.length) stop(i);
      const c = text.charCodeAt(i);
      if (c === 0x22) { i++; return; }
      if (c < 0x20) stop(i);
      if (c === 0x5c) {
        const escaped = text[i + 1];
        if (escaped === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) stop(i);
          i += 6;
        } else if (escaped !== undefined && '"\\/bfnrt'.includes(escaped)) i += 2;
        else stop(i);
      } else i++;
    }
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i++;
      ws();
      if (text[i] === close) { i++; return; }
      for (;;) {
        if (close === '}') { ws(); string(); ws(); expect(':'); }
        value();
        ws();
        if (text[i] === ',') { i++; continue; }
        expect(close);
        return;
      }
    }
    if (c === '"') { string(); return; }
    for (const word of ['true', 'false', 'null']) if (text.startsWith(word, i)) { i += word.length; return; }
    number.lastIndex = i;
    if (!number.test(text)) stop(i);
    i = number.lastIndex;
  };
  try {
    value();
    ws();
    return i < text.length ? i : undefined;
  } catch (err) {
    if (err instanceof JsonStop) return Math.min(err.offset, text.length);
    return undefined; // RangeError: nesting deeper than the stack
  }
}

class JsonStop {
  readonly offset: number;
  constructor(offset: number) { this.offset = offset; }
}

/** Whether the file starts with the gzip magic bytes `1f 8b`. */
async function isGzip(path: string): Promise<boolean> {
  try {
    const file = await open(path, 'r');
    try {
      const { bytesRead, buffer } = await file.read(Buffer.alloc(2), 0, 2, 0);
      return bytesRead === 2 && buffer[0] === 0x1f && buffer[1] === 0x8b;
    } finally {
      await file.close();
    }
  } catch (err) {
    throw new SnapshotFileError(path, undefined, `cannot read: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The lines of the (decompressed) file, without terminators (`\n` or `\r\n`) and without a
 * leading byte-order mark. Scans each chunk once, so a single huge line (a minified document)
 * costs linear time.
 */
async function* readLines(path: string, gzip: boolean): AsyncGenerator<string, void, undefined> {
  const file = createReadStream(path);
  // pipeline destroys every stage when one fails or the consumer stops, so the file closes.
  const source: Readable = gzip ? pipeline(file, createGunzip(), () => {}) : file;
  const decoder = new StringDecoder('utf8');
  let partial = '';
  let first = true;
  const finish = (line: string): string => {
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (first && line.startsWith('\uFEFF')) line = line.slice(1);
    first = false;
    return line;
  };
  try {
    for await (const chunk of source) {
      const text = decoder.write(chunk as Buffer);
      let start = 0;
      for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', start)) {
        yield finish(partial + text.slice(start, end));
        partial = '';
        start = end + 1;
      }
      partial += text.slice(start);
    }
  } catch (err) {
    const what = gzip ? 'cannot read or decompress' : 'cannot read';
    throw new SnapshotFileError(path, undefined, `${what}: ${(err as Error).message}`, { cause: err });
  } finally {
    source.destroy();
  }
  partial += decoder.end();
  if (partial !== '') yield finish(partial);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object without one' : `a ${typeof value}`;
}
