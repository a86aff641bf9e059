/**
 * The CRI container log format, as containerd and CRI-O write `/var/log/pods/.../<n>.log`:
 *
 *   <RFC3339Nano time> <stdout|stderr> <P|F>[:<more tags>] <text>\n
 *
 * `P` marks a partial line: the runtime split a long line (containerd at 16 KiB) and the next
 * record of the same stream continues it; `F` ends it. A logical line is every `P` record up to
 * and including the next `F` record, joined without separators.
 *
 * Pure functions over bytes: no files, no clock.
 */

export interface CriRecord {
  readonly stream: 'stdout' | 'stderr';
  /** True for a `P` record: the line goes on in the next record. */
  readonly partial: boolean;
  /** The text after the tag, without the trailing newline. */
  readonly text: Buffer;
}

const SPACE = 0x20;

/**
 * One physical line (without its `\n`), or undefined when it is not a CRI record (the caller
 * counts it as malformed and moves on: a corrupt byte never stops the tail).
 */
export function parseCriRecord(line: Buffer): CriRecord | undefined {
  const timeEnd = line.indexOf(SPACE);
  if (timeEnd < 20) return undefined; // shortest RFC 3339: 2006-01-02T15:04:05Z
  const streamEnd = line.indexOf(SPACE, timeEnd + 1);
  if (streamEnd === -1) return undefined;
  const stream = line.toString('latin1', timeEnd + 1, streamEnd);
  if (stream !== 'stdout' && stream !== 'stderr') return undefined;
  // The tag field: `P` or `F`, optionally followed by `:`-separated further tags.
  let tagEnd = line.indexOf(SPACE, streamEnd + 1);
  // A record with empty text may end right after its tag.
  if (tagEnd === -1) tagEnd = line.length;
  const tag = line[streamEnd + 1];
  if (tagEnd === streamEnd + 1 || (tag !== 0x50 && tag !== 0x46) || (tagEnd > streamEnd + 2 && line[streamEnd + 2] !== 0x3a)) return undefined;
  return { stream, partial: tag === 0x50, text: line.subarray(Math.min(line.length, tagEnd + 1)) };
}

/**
 * Joins `P` records into logical lines, per stream (stdout and stderr interleave in one file, and
 * a partial stdout line is not ended by a stderr record). Keeps at most `maxLineBytes` of a line
 * for matching; the rest is dropped, the line still counts once.
 */
export class LineJoiner {
  private readonly maxLineBytes: number;
  private readonly pending = new Map<'stdout' | 'stderr', Buffer[]>();
  private readonly pendingBytes = new Map<'stdout' | 'stderr', number>();

  constructor(maxLineBytes: number) {
    this.maxLineBytes = maxLineBytes;
  }

  /** The whole line `record` completes, or undefined while it is partial. */
  push(record: CriRecord): Buffer | undefined {
    const parts = this.pending.get(record.stream);
    if (record.partial) {
      const held = this.pendingBytes.get(record.stream) ?? 0;
      const room = Math.max(0, this.maxLineBytes - held);
      const kept = record.text.length > room ? record.text.subarray(0, room) : record.text;
      // Copied: the record points into a read buffer that is reused.
      if (parts) parts.push(Buffer.from(kept));
      else this.pending.set(record.stream, [Buffer.from(kept)]);
      this.pendingBytes.set(record.stream, held + kept.length);
      return undefined;
    }
    if (!parts) return record.text.length > this.maxLineBytes ? record.text.subarray(0, this.maxLineBytes) : record.text;
    this.pending.delete(record.stream);
    const held = this.pendingBytes.get(record.stream) ?? 0;
    this.pendingBytes.delete(record.stream);
    const room = Math.max(0, this.maxLineBytes - held);
    parts.push(record.text.length > room ? record.text.subarray(0, room) : record.text);
    return Buffer.concat(parts);
  }

  /** Whether a line is unfinished (its `P` records seen, its `F` not yet). */
  get holding(): boolean {
    return this.pending.size > 0;
  }

  /** The unfinished lines' kept prefixes, per stream (to persist with a cursor). */
  save(): { stdout?: Buffer; stderr?: Buffer } {
    const saved: { stdout?: Buffer; stderr?: Buffer } = {};
    for (const [stream, parts] of this.pending) saved[stream] = Buffer.concat(parts);
    return saved;
  }

  /** Takes up unfinished lines {@link save} returned. */
  restore(saved: { readonly stdout?: Buffer; readonly stderr?: Buffer }): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      const prefix = saved[stream];
      if (!prefix) continue;
      this.pending.set(stream, [prefix]);
      this.pendingBytes.set(stream, prefix.length);
    }
  }

  /** Ends every unfinished line (the container that wrote them is gone): each counts as a line. */
  flush(): Buffer[] {
    const lines = [...this.pending.values()].map((parts) => Buffer.concat(parts));
    this.pending.clear();
    this.pendingBytes.clear();
    return lines;
  }
}
