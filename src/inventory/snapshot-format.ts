/**
 * How objects are laid out in a snapshot file. Kept apart from the writer so the CLI can offer
 * `--format` without loading zlib and the file streams at start-up (every command pays for what
 * main.ts imports).
 */
export const snapshotFormats = ['ndjson', 'json'] as const;
export type SnapshotFormat = (typeof snapshotFormats)[number];
