/**
 * A tar writer for image layers whose bytes depend only on the files: entries in a fixed order,
 * every mtime the same, owner 0:0 (or as given) with no user or group names, no atime/ctime, no
 * device numbers, no PAX record that a timestamp or the host could leak into. Same input, same
 * bytes, on any machine — the ground of a reproducible image digest.
 *
 * Format: POSIX ustar; a name or link target longer than ustar's 100 bytes gets a PAX extended
 * header (`path=` / `linkpath=`), which containerd, runc's applier and GNU tar all read.
 */

/** One thing in a layer. Paths are relative (`usr/bin/node`), `/`-separated, no `.`/`..` parts. */
export type TarEntry =
  | { readonly type: 'dir'; readonly path: string; readonly mode: number; readonly uid?: number; readonly gid?: number }
  | { readonly type: 'file'; readonly path: string; readonly mode: number; readonly content: Uint8Array; readonly uid?: number; readonly gid?: number }
  | { readonly type: 'symlink'; readonly path: string; readonly target: string; readonly uid?: number; readonly gid?: number };

export interface TarOptions {
  /** Modification time of every entry, in seconds since the epoch. */
  readonly mtimeSeconds: number;
}

const BLOCK = 512;
const NAME_FIELD_BYTES = 100;
/** Octal fields hold at most 11 digits: 8 GiB - 1, far above any file in our images. */
const MAX_SIZE_BYTES = 0o77777777777;

/**
 * Orders entries so a directory comes before everything in it and siblings sort by bytewise
 * name: the order `tar --sort=name` gives, and the one every build reproduces.
 */
export function compareTarPaths(a: string, b: string): number {
  const pa = a.split('/');
  const pb = b.split('/');
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const cmp = Buffer.compare(Buffer.from(pa[i] ?? ''), Buffer.from(pb[i] ?? ''));
    if (cmp !== 0) return cmp;
  }
  return pa.length - pb.length;
}

/**
 * The tar stream of `entries`, as chunks (one header or file body each, so a 100 MB binary is
 * never copied). Entries are sorted with {@link compareTarPaths}; a missing parent directory is
 * an error, as is a path given twice, so a layer never depends on how a runtime fills gaps.
 */
export function* tarChunks(entries: readonly TarEntry[], options: TarOptions): Generator<Uint8Array> {
  const sorted = [...entries].sort((x, y) => compareTarPaths(x.path, y.path));
  const seen = new Map<string, TarEntry['type']>();
  for (const entry of sorted) {
    validatePath(entry.path);
    if (seen.has(entry.path)) throw new Error(`tar: ${entry.path} is given twice`);
    const parent = entry.path.includes('/') ? entry.path.slice(0, entry.path.lastIndexOf('/')) : '';
    if (parent !== '' && seen.get(parent) !== 'dir') throw new Error(`tar: ${entry.path} comes without its directory ${parent}`);
    seen.set(entry.path, entry.type);
    yield* entryChunks(entry, options.mtimeSeconds);
  }
  // End of archive: two zero blocks.
  yield new Uint8Array(BLOCK * 2);
}

/** The whole tar stream in one buffer (small layers and tests). */
export function tarBuffer(entries: readonly TarEntry[], options: TarOptions): Buffer {
  return Buffer.concat([...tarChunks(entries, options)]);
}

function validatePath(path: string): void {
  if (path === '' || path.startsWith('/') || path.endsWith('/') || path.split('/').some((p) => p === '' || p === '.' || p === '..')) {
    throw new Error(`tar: bad entry path ${JSON.stringify(path)} (relative, no empty, '.' or '..' parts)`);
  }
}

function* entryChunks(entry: TarEntry, mtimeSeconds: number): Generator<Uint8Array> {
  const name = entry.type === 'dir' ? `${entry.path}/` : entry.path;
  const target = entry.type === 'symlink' ? entry.target : '';
  const pax: Array<[string, string]> = [];
  if (Buffer.byteLength(name) > NAME_FIELD_BYTES || !isAscii(name)) pax.push(['path', name]);
  if (Buffer.byteLength(target) > NAME_FIELD_BYTES || !isAscii(target)) pax.push(['linkpath', target]);
  if (pax.length > 0) {
    const body = Buffer.from(pax.map(([key, value]) => paxRecord(key, value)).join(''));
    // The extended header's own name is derived from the entry's, so it is as stable as the entry.
    yield header({ name: truncate(`PaxHeaders/${name}`), mode: 0o644, uid: 0, gid: 0, size: body.length, mtimeSeconds, typeflag: 'x', linkname: '' });
    yield* padded(body);
  }
  const uid = entry.uid ?? 0;
  const gid = entry.gid ?? 0;
  switch (entry.type) {
    case 'dir':
      yield header({ name: truncate(name), mode: entry.mode, uid, gid, size: 0, mtimeSeconds, typeflag: '5', linkname: '' });
      return;
    case 'symlink':
      yield header({ name: truncate(name), mode: 0o777, uid, gid, size: 0, mtimeSeconds, typeflag: '2', linkname: truncate(target) });
      return;
    case 'file':
      if (entry.content.length > MAX_SIZE_BYTES) throw new Error(`tar: ${entry.path} is larger than 8 GiB`);
      yield header({ name: truncate(name), mode: entry.mode, uid, gid, size: entry.content.length, mtimeSeconds, typeflag: '0', linkname: '' });
      yield* padded(entry.content);
      return;
  }
}

function* padded(body: Uint8Array): Generator<Uint8Array> {
  if (body.length > 0) yield body;
  const rest = body.length % BLOCK;
  if (rest !== 0) yield new Uint8Array(BLOCK - rest);
}

/** A PAX record: "<length> <key>=<value>\n", where the length counts its own digits. */
function paxRecord(key: string, value: string): string {
  const payload = ` ${key}=${value}\n`;
  const payloadBytes = Buffer.byteLength(payload);
  let digits = 1;
  while (String(payloadBytes + digits).length !== digits) digits++;
  return `${payloadBytes + digits}${payload}`;
}

function isAscii(s: string): boolean {
  return /^[\x20-\x7e]*$/.test(s);
}

/** Cuts to the 100-byte name field on a character boundary (the full name travels in PAX). */
function truncate(s: string): string {
  let out = s;
  while (Buffer.byteLength(out) > NAME_FIELD_BYTES) out = out.slice(0, -1);
  return out;
}

interface HeaderFields {
  readonly name: string;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly mtimeSeconds: number;
  readonly typeflag: '0' | '2' | '5' | 'x';
  readonly linkname: string;
}

function header(fields: HeaderFields): Buffer {
  const block = Buffer.alloc(BLOCK);
  block.write(fields.name, 0, NAME_FIELD_BYTES, 'utf8');
  octal(block, 100, 8, fields.mode & 0o7777);
  octal(block, 108, 8, fields.uid);
  octal(block, 116, 8, fields.gid);
  octal(block, 124, 12, fields.size);
  octal(block, 136, 12, fields.mtimeSeconds);
  block.fill(0x20, 148, 156); // checksum field counts as spaces while summing
  block.write(fields.typeflag, 156, 1, 'ascii');
  block.write(fields.linkname, 157, NAME_FIELD_BYTES, 'utf8');
  block.write('ustar\u000000', 257, 8, 'ascii');
  // uname/gname stay empty: names would make the layer depend on the build machine's users.
  octal(block, 329, 8, 0);
  octal(block, 337, 8, 0);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 8, 'ascii');
  return block;
}

/** Writes `value` as zero-padded octal digits followed by a NUL, filling `width` bytes. */
function octal(block: Buffer, offset: number, width: number, value: number): void {
  if (!Number.isInteger(value) || value < 0) throw new Error(`tar: bad numeric field ${value}`);
  const digits = value.toString(8).padStart(width - 1, '0');
  if (digits.length > width - 1) throw new Error(`tar: ${value} does not fit a ${width}-byte field`);
  block.write(`${digits}\u0000`, offset, width, 'ascii');
}
