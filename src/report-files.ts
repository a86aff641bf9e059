/**
 * What the report writers (inventory snapshots and summaries, port reports) share: names that
 * sort by time, whole-or-nothing writes, and name patterns built from user-given ids.
 */
import { rename, writeFile } from 'node:fs/promises';

/** `20261123T141500Z`: ISO 8601 basic format in UTC, sortable and safe in file names. */
export function fileTimestamp(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z').replaceAll('-', '').replaceAll(':', '');
}

/** The time a {@link fileTimestamp} stands for, in epoch milliseconds (NaN if it is not one). */
export function parseFileTimestamp(stamp: string): number {
  const iso = `${stamp.slice(0, 4)}-${stamp.slice(4, 6)}-${stamp.slice(6, 8)}T${stamp.slice(9, 11)}:${stamp.slice(11, 13)}:${stamp.slice(13, 15)}Z`;
  return Date.parse(iso);
}

/**
 * Writes `content` to `<path>.tmp`, then renames it to `path`: a reader sees the old file or the
 * new one, never half of one.
 */
export async function writeFileAtomically(path: string, content: string, mode: number): Promise<void> {
  const temp = `${path}.tmp`;
  await writeFile(temp, content, { mode });
  await rename(temp, path);
}

/** `text` with regular-expression metacharacters escaped, to match it literally inside a pattern. */
export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
