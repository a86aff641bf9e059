/**
 * Parser of the kernel's socket tables `/proc/net/{tcp,tcp6,udp,udp6}`: pure text in, socket
 * entries out. No file access here, so every rule is tested on captured fixtures.
 *
 * Line format (net/ipv4/tcp_ipv4.c, net/ipv6/tcp_ipv6.c, net/ipv4/udp.c, net/ipv6/datagram.c),
 * fields separated by one or more spaces:
 *
 *   sl: local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …
 *   0: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000  0 207171 …
 *
 * Addresses are hex dumps of `__be32` words printed as native integers, so each 32-bit word comes
 * out byte-swapped on little-endian hosts (`0100007F` is 127.0.0.1 on x86); ports are already in
 * host order. IPv4 tables have 8 hex digits per address, IPv6 tables 32.
 *
 * A 10,000-socket host has 10,000 lines, and a busy one with connections far more, so the parser
 * finds fields with `indexOf` (native) and reads numbers by character code, allocating only for
 * the rows it keeps; no split, no regular expression. About 30 ms per 100,000 lines on one core
 * (`BENCH=ports`).
 */
import { endianness } from 'node:os';

/** Transport protocol of a socket table. */
export type Protocol = 'tcp' | 'udp';

/** Address family of a socket, told by the width of its address (8 or 32 hex digits). */
export type Family = 'ipv4' | 'ipv6';

/** Byte order of the host that wrote the table: decides how address words are read. */
export type ByteOrder = 'LE' | 'BE';

/** Kernel state `TCP_LISTEN` (`0A`): a TCP socket accepting connections. */
export const STATE_LISTEN = 0x0a;

/**
 * Kernel state `TCP_CLOSE` (`07`): for UDP, a bound socket with no connected peer — what `ss`
 * calls `UNCONN`. (A connected UDP socket is `01`, `TCP_ESTABLISHED`.)
 */
export const STATE_CLOSE = 0x07;

/**
 * Whether `ss -l` lists a socket in this kernel state: `ss` asks for `LISTEN` and `CLOSE`, for TCP
 * and UDP alike. For TCP that is, in practice, listeners only (a closed TCP socket is unhashed
 * and no longer in the table).
 */
export function isListeningState(state: number): boolean {
  return state === STATE_LISTEN || state === STATE_CLOSE;
}

/** One row of a socket table. */
export interface ProcNetSocket {
  readonly family: Family;
  /** Local address, formatted like `inet_ntop` (glibc), so it reads as `ss -n` prints it: `::ffff:127.0.0.1`. */
  readonly address: string;
  /** Local port, 0–65535. */
  readonly port: number;
  /** Kernel socket state, e.g. {@link STATE_LISTEN}. */
  readonly state: number;
  /** Owner's user id. */
  readonly uid: number;
  /** Socket inode; `/proc/<pid>/fd/<n>` links to `socket:[<inode>]` for each process holding it. */
  readonly inode: number;
}

/** A line that could not be read as a socket; skipped, never fatal. */
export interface MalformedLine {
  /** 1-based line number in the table, header included. */
  readonly line: number;
  /** What was wrong, e.g. `bad local address`. */
  readonly reason: string;
  /** The line as found, cut to {@link MALFORMED_TEXT_MAX_CHARS} characters. */
  readonly text: string;
}

/** The result of parsing one table. */
export interface ProcNetTable {
  /** Sockets kept by {@link ParseOptions.keep}, in table order. */
  readonly sockets: ProcNetSocket[];
  /** Data lines read (blank lines and the header line excluded), kept or not, malformed or not. */
  readonly lines: number;
  /** How many lines were malformed. */
  readonly malformedCount: number;
  /** Details of the first {@link ParseOptions.maxMalformedDetails} malformed lines. */
  readonly malformed: MalformedLine[];
}

/** Options of {@link parseProcNet}. */
export interface ParseOptions {
  /**
   * The family the table holds (`tcp6` → `ipv6`); rows of the other address width are then
   * malformed. Default: each row's family is told by its width.
   */
  readonly family?: Family;
  /**
   * Which sockets to return, by kernel state; the others are skipped before their address is
   * formatted, which is most of the cost on a host with many connections. Default: all.
   */
  readonly keep?: (state: number) => boolean;
  /** Byte order of the host that wrote the table. Default: this host's (`os.endianness()`). */
  readonly byteOrder?: ByteOrder;
  /** How many malformed lines to describe; all are counted. Default {@link DEFAULT_MAX_MALFORMED_DETAILS}. */
  readonly maxMalformedDetails?: number;
}

/** Default of {@link ParseOptions.maxMalformedDetails}. */
export const DEFAULT_MAX_MALFORMED_DETAILS = 10;

/** Length at which {@link MalformedLine.text} is cut. */
export const MALFORMED_TEXT_MAX_CHARS = 200;

/** Fields up to and including the inode: sl, local, remote, st, queues, timer, retrnsmt, uid, timeout, inode. */
const FIELDS_NEEDED = 10;
const F_SLOT = 0;
const F_LOCAL = 1;
const F_REMOTE = 2;
const F_STATE = 3;
const F_UID = 7;
const F_INODE = 9;

/** `addr:port` lengths: 8 or 32 hex digits, a colon, 4 hex digits. */
const IPV4_ENDPOINT_LENGTH = 8 + 1 + 4;
const IPV6_ENDPOINT_LENGTH = 32 + 1 + 4;
const PORT_HEX_DIGITS = 4;

const CHAR_SPACE = 0x20;
const CHAR_COLON = 0x3a;

/** Where {@link checkRow} leaves the numbers it read, so they are parsed once. */
const V_PORT = 0;
const V_STATE = 1;
const V_UID = 2;
const V_INODE = 3;

/**
 * Parses one socket table. Every line that is not a socket row is counted as malformed and
 * skipped; nothing in the input makes it throw.
 *
 * @param text the whole file, e.g. the contents of `/proc/net/tcp6`.
 */
export function parseProcNet(text: string, options: ParseOptions = {}): ProcNetTable {
  const keep = options.keep;
  const littleEndian = (options.byteOrder ?? hostByteOrder()) === 'LE';
  const maxDetails = options.maxMalformedDetails ?? DEFAULT_MAX_MALFORMED_DETAILS;
  const onlyWidth = options.family === undefined ? 0 : options.family === 'ipv4' ? IPV4_ENDPOINT_LENGTH : IPV6_ENDPOINT_LENGTH;
  const sockets: ProcNetSocket[] = [];
  const malformed: MalformedLine[] = [];
  let malformedCount = 0;
  let lines = 0;

  // Field i spans [bounds[2i], bounds[2i+1]) of the text.
  const bounds = new Int32Array(FIELDS_NEEDED * 2);
  const values = new Float64Array(4);
  // Hosts have few distinct local addresses (wildcards, loopback, a few interfaces): format each once.
  const addressCache = new Map<string, string>();
  const length = text.length;
  let lineStart = 0;
  let lineNumber = 0;

  while (lineStart < length) {
    let lineEnd = text.indexOf('\n', lineStart);
    if (lineEnd === -1) lineEnd = length;
    lineNumber++;
    const from = lineStart;
    lineStart = lineEnd + 1;

    const count = splitFields(text, from, lineEnd, bounds);
    if (count === 0) continue; // blank line, e.g. after the last row
    if (bounds[1]! - bounds[0]! === 2 && text.startsWith('sl', bounds[0]!)) continue; // header
    lines++;
    const reason = count < FIELDS_NEEDED ? `expected at least ${FIELDS_NEEDED} fields, found ${count}` : checkRow(text, bounds, onlyWidth, values);
    if (reason !== undefined) {
      malformedCount++;
      if (malformed.length < maxDetails) {
        malformed.push({ line: lineNumber, reason, text: text.slice(from, Math.min(lineEnd, from + MALFORMED_TEXT_MAX_CHARS)) });
      }
      continue;
    }

    const state = values[V_STATE]!;
    if (keep !== undefined && !keep(state)) continue;
    const localStart = bounds[2 * F_LOCAL]!;
    const hexDigits = bounds[2 * F_LOCAL + 1]! - localStart - 1 - PORT_HEX_DIGITS;
    const hex = text.slice(localStart, localStart + hexDigits);
    let address = addressCache.get(hex);
    if (address === undefined) {
      address = hexDigits === 8 ? formatIPv4(hex, littleEndian) : formatIPv6(hex, littleEndian);
      addressCache.set(hex, address);
    }
    sockets.push({
      family: hexDigits === 8 ? 'ipv4' : 'ipv6',
      address,
      port: values[V_PORT]!,
      state,
      uid: values[V_UID]!,
      inode: values[V_INODE]!,
    });
  }
  return { sockets, lines, malformedCount, malformed };
}

/**
 * Finds the first {@link FIELDS_NEEDED} space-separated fields of the line [from, to) and
 * records their bounds. The kernel separates fields with spaces only.
 *
 * @returns how many fields were found.
 */
function splitFields(text: string, from: number, to: number, bounds: Int32Array): number {
  let count = 0;
  let i = from;
  while (count < FIELDS_NEEDED) {
    while (i < to && text.charCodeAt(i) === CHAR_SPACE) i++;
    if (i >= to) break;
    // indexOf runs natively: much faster than a character loop over the fields in between.
    let end = text.indexOf(' ', i);
    if (end === -1 || end > to) end = to;
    bounds[2 * count] = i;
    bounds[2 * count + 1] = end;
    count++;
    i = end;
  }
  return count;
}

/**
 * Validates the fields of a row and writes port, state, uid and inode into `values`.
 *
 * @param onlyWidth the endpoint length the table must use, or 0 for either.
 * @returns why the row is malformed, or `undefined` when it is fine.
 */
function checkRow(text: string, bounds: Int32Array, onlyWidth: number, values: Float64Array): string | undefined {
  const slotEnd = bounds[2 * F_SLOT + 1]!;
  if (text.charCodeAt(slotEnd - 1) !== CHAR_COLON || decimalValue(text, bounds[2 * F_SLOT]!, slotEnd - 1) < 0) {
    return 'bad slot number';
  }

  const localStart = bounds[2 * F_LOCAL]!;
  const localEnd = bounds[2 * F_LOCAL + 1]!;
  const localLength = localEnd - localStart;
  if (localLength !== IPV4_ENDPOINT_LENGTH && localLength !== IPV6_ENDPOINT_LENGTH) return 'bad local address';
  if (onlyWidth !== 0 && localLength !== onlyWidth) return `not an ${onlyWidth === IPV4_ENDPOINT_LENGTH ? 'ipv4' : 'ipv6'} address`;
  const colon = localEnd - PORT_HEX_DIGITS - 1;
  if (text.charCodeAt(colon) !== CHAR_COLON || !isHex(text, localStart, colon)) return 'bad local address';
  const port = hexValue(text, colon + 1, localEnd);
  if (port < 0) return 'bad local port';
  // The remote endpoint is not reported, but a width mismatch means fields are shifted or cut.
  if (bounds[2 * F_REMOTE + 1]! - bounds[2 * F_REMOTE]! !== localLength) return 'bad remote address';

  const stateStart = bounds[2 * F_STATE]!;
  const stateEnd = bounds[2 * F_STATE + 1]!;
  const state = stateEnd - stateStart === 2 ? hexValue(text, stateStart, stateEnd) : -1;
  if (state < 0) return 'bad state';
  const uid = decimalValue(text, bounds[2 * F_UID]!, bounds[2 * F_UID + 1]!);
  if (uid < 0) return 'bad uid';
  const inode = decimalValue(text, bounds[2 * F_INODE]!, bounds[2 * F_INODE + 1]!);
  if (inode < 0) return 'bad inode';

  values[V_PORT] = port;
  values[V_STATE] = state;
  values[V_UID] = uid;
  values[V_INODE] = inode;
  return undefined;
}

/** Whether [from, to) holds only hex digits (addresses are longer than a safe integer, so not summed). */
function isHex(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (hexDigit(text.charCodeAt(i)) < 0) return false;
  return true;
}

/** Value of the hex digits in [from, to) (at most 8), or -1 when one is not a hex digit. */
function hexValue(text: string, from: number, to: number): number {
  let value = 0;
  for (let i = from; i < to; i++) {
    const digit = hexDigit(text.charCodeAt(i));
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

/** Value of the decimal digits in [from, to), or -1 when empty, not digits, or past 2^53. */
function decimalValue(text: string, from: number, to: number): number {
  if (to <= from) return -1;
  let value = 0;
  for (let i = from; i < to; i++) {
    const digit = text.charCodeAt(i) - 0x30;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return Number.isSafeInteger(value) ? value : -1;
}

/** 0–15 for `0-9a-fA-F`, else -1. */
function hexDigit(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  const lower = code | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

/** This host's byte order, as {@link ParseOptions.byteOrder} spells it. */
export function hostByteOrder(): ByteOrder {
  return endianness();
}

/**
 * The 4 or 16 address bytes, in network order, of a table's hex address. Each group of 8 hex
 * digits is one 32-bit word, printed as a native integer: on little-endian hosts its bytes come
 * out reversed.
 */
function addressBytes(hex: string, littleEndian: boolean): number[] {
  const bytes: number[] = [];
  for (let word = 0; word < hex.length; word += 8) {
    for (let b = 0; b < 4; b++) {
      const at = littleEndian ? word + 6 - 2 * b : word + 2 * b;
      bytes.push(parseInt(hex.slice(at, at + 2), 16));
    }
  }
  return bytes;
}

function formatIPv4(hex: string, littleEndian: boolean): string {
  return addressBytes(hex, littleEndian).join('.');
}

/**
 * IPv6 text as glibc's `inet_ntop` writes it (what `ss -n` shows): lower-case hex, the first
 * longest run of two or more zero groups as `::`, and the last 32 bits dotted for IPv4-mapped
 * (`::ffff:a.b.c.d`) and IPv4-compatible (`::a.b.c.d`) addresses.
 */
function formatIPv6(hex: string, littleEndian: boolean): string {
  const bytes = addressBytes(hex, littleEndian);
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes[i]! * 256 + bytes[i + 1]!);

  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let end = i;
    while (end < 8 && groups[end] === 0) end++;
    if (end - i > bestLength) {
      bestStart = i;
      bestLength = end - i;
    }
    i = end;
  }
  if (bestLength < 2) bestStart = -1;

  let out = '';
  for (let i = 0; i < 8; i++) {
    if (bestStart !== -1 && i >= bestStart && i < bestStart + bestLength) {
      if (i === bestStart) out += ':';
      continue;
    }
    if (i !== 0) out += ':';
    if (i === 6 && bestStart === 0 && (bestLength === 6 || (bestLength === 5 && groups[5] === 0xffff))) {
      return `${out}${bytes.slice(12).join('.')}`;
    }
    out += groups[i]!.toString(16);
  }
  if (bestStart !== -1 && bestStart + bestLength === 8) out += ':';
  return out;
}
