/**
 * JSON Patch (RFC 6902) between two JSON documents, for mutating admission: a handler returns the
 * object as it wants it, and the patch the API server applies is computed here, so no handler
 * writes patch paths by hand (escaping `/` as `~1` and `~0` for `~`, the `-` append index, and
 * whether a parent exists are easy to get wrong).
 *
 * The patch is minimal where it matters for admission: changes inside objects become operations
 * on the changed members only, and an element inserted into or removed from an array (a sidecar
 * appended to `initContainers`, a volume prepended) is one `add` or `remove`, leaving the other
 * elements untouched — so a reinvoked webhook or another mutating webhook's change is not
 * overwritten wholesale. Other array changes are patched element by element.
 */

export type JsonPatchOperation =
  | { readonly op: 'add'; readonly path: string; readonly value: unknown }
  | { readonly op: 'remove'; readonly path: string }
  | { readonly op: 'replace'; readonly path: string; readonly value: unknown }
  | { readonly op: 'test'; readonly path: string; readonly value: unknown };

/** A JSON pointer segment: `~` → `~0`, `/` → `~1` (in that order). */
export function escapePointerSegment(segment: string): string {
  return segment.replaceAll('~', '~0').replaceAll('/', '~1');
}

function unescapePointerSegment(segment: string): string {
  return segment.replaceAll('~1', '/').replaceAll('~0', '~');
}

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Deep equality of JSON values (key order ignored; members that are undefined count as absent). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((item, i) => jsonEqual(item, b[i]));
  if (isObject(a) && isObject(b)) {
    const keysA = Object.keys(a).filter((k) => a[k] !== undefined);
    const keysB = Object.keys(b).filter((k) => b[k] !== undefined);
    return keysA.length === keysB.length && keysA.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k], b[k]));
  }
  return false;
}

export interface CreatePatchOptions {
  /**
   * The operations' values are `after`'s own members instead of copies: for a patch serialized at
   * once (the admission answer), where copying the added values was a third of a review's CPU.
   * Default false: the patch shares nothing with `after`.
   */
  readonly shareValues?: boolean;
}

/**
 * The operations that turn `before` into `after`; empty when they are equal. Members of `after`
 * that are the very objects of `before` (a copy-on-write change shares what it did not touch) are
 * skipped without being compared or named, so the work follows what changed, not the document.
 */
export function createPatch(before: unknown, after: unknown, options: CreatePatchOptions = {}): JsonPatchOperation[] {
  const ops: JsonPatchOperation[] = [];
  diffValue(before, after, '', ops, options.shareValues ? (value) => value : structuredClone);
  return ops;
}

/** How a value of `after` goes into an operation: copied, or shared. */
type Take = (value: unknown) => unknown;

function diffValue(before: unknown, after: unknown, path: string, ops: JsonPatchOperation[], take: Take): void {
  if (jsonEqual(before, after)) return;
  if (isObject(before) && isObject(after)) { diffObject(before, after, path, ops, take); return; }
  if (Array.isArray(before) && Array.isArray(after)) { diffArray(before, after, path, ops, take); return; }
  ops.push({ op: 'replace', path, value: take(after) });
}

function diffObject(before: JsonObject, after: JsonObject, path: string, ops: JsonPatchOperation[], take: Take): void {
  for (const key of Object.keys(before)) {
    if (before[key] !== undefined && after[key] === undefined) ops.push({ op: 'remove', path: `${path}/${escapePointerSegment(key)}` });
  }
  for (const [key, value] of Object.entries(after)) {
    if (value === undefined || value === before[key]) continue;
    const child = `${path}/${escapePointerSegment(key)}`;
    if (before[key] === undefined) ops.push({ op: 'add', path: child, value: take(value) });
    else diffValue(before[key], value, child, ops, take);
  }
}

function diffArray(before: readonly unknown[], after: readonly unknown[], path: string, ops: JsonPatchOperation[], take: Take): void {
  let prefix = 0;
  while (prefix < before.length && prefix < after.length && jsonEqual(before[prefix], after[prefix])) prefix++;
  let suffix = 0;
  while (suffix < before.length - prefix && suffix < after.length - prefix && jsonEqual(before[before.length - 1 - suffix], after[after.length - 1 - suffix])) suffix++;
  const removed = before.length - prefix - suffix;
  const inserted = after.length - prefix - suffix;
  if (removed === 0) {
    // Pure insertion: appended elements use the `-` index, inserted ones their position.
    const appended = suffix === 0;
    for (let i = 0; i < inserted; i++) {
      const at = appended ? '-' : String(prefix + i);
      ops.push({ op: 'add', path: `${path}/${at}`, value: take(after[prefix + i]) });
    }
    return;
  }
  if (inserted === 0) {
    // Pure removal: the same index each time, as the elements after it move up.
    for (let i = 0; i < removed; i++) ops.push({ op: 'remove', path: `${path}/${prefix}` });
    return;
  }
  // Anything else: element by element, then the tail.
  const common = Math.min(before.length, after.length);
  for (let i = 0; i < common; i++) diffValue(before[i], after[i], `${path}/${i}`, ops, take);
  for (let i = common; i < after.length; i++) ops.push({ op: 'add', path: `${path}/-`, value: take(after[i]) });
  for (let i = before.length - 1; i >= common; i--) ops.push({ op: 'remove', path: `${path}/${i}` });
}

/**
 * Applies `ops` to a copy of `document` (RFC 6902 add, remove, replace, test); throws on a path
 * that does not exist or a failed test. For tests and for checking a patch before sending it.
 */
export function applyPatch<T>(document: T, ops: readonly JsonPatchOperation[]): T {
  let root: unknown = structuredClone(document);
  for (const op of ops) {
    if (op.path === '') {
      if (op.op === 'test') {
        if (!jsonEqual(root, op.value)) throw new Error('test failed at the document root');
        continue;
      }
      if (op.op === 'remove') throw new Error('cannot remove the document root');
      root = structuredClone(op.value);
      continue;
    }
    const segments = op.path.split('/').slice(1).map(unescapePointerSegment);
    const last = segments.pop()!;
    let parent: unknown = root;
    for (const segment of segments) {
      parent = Array.isArray(parent) ? parent[arrayIndex(parent, segment, false)] : isObject(parent) ? parent[segment] : undefined;
      if (parent === undefined) throw new Error(`path ${op.path}: ${segment} does not exist`);
    }
    if (Array.isArray(parent)) {
      const index = arrayIndex(parent, last, op.op === 'add');
      if (op.op === 'add') parent.splice(index, 0, structuredClone(op.value));
      else if (op.op === 'remove') parent.splice(index, 1);
      else if (op.op === 'replace') parent[index] = structuredClone(op.value);
      else if (!jsonEqual(parent[index], op.value)) throw new Error(`test failed at ${op.path}`);
    } else if (isObject(parent)) {
      if (op.op !== 'add' && !Object.hasOwn(parent, last)) throw new Error(`path ${op.path} does not exist`);
      if (op.op === 'add' || op.op === 'replace') parent[last] = structuredClone(op.value);
      else if (op.op === 'remove') delete parent[last];
      else if (!jsonEqual(parent[last], op.value)) throw new Error(`test failed at ${op.path}`);
    } else {
      throw new Error(`path ${op.path}: parent is not an object or array`);
    }
  }
  return root as T;
}

function arrayIndex(array: readonly unknown[], segment: string, forAdd: boolean): number {
  if (forAdd && segment === '-') return array.length;
  if (!/^(0|[1-9][0-9]*)$/.test(segment)) throw new Error(`"${segment}" is not an array index`);
  const index = Number(segment);
  if (index > array.length || (!forAdd && index === array.length)) throw new Error(`array index ${index} out of bounds`);
  return index;
}
