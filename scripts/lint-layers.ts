/**
 * `make lint`: the layers of src/ import downward only, and no module imports itself back through
 * a cycle (docs: ARCHITECTURE.md "Layers").
 *
 *   cli → operator → capabilities (logaccess, inventory, ports, prober, guard, hub) → observe → kube
 *
 * - src/kube imports nothing else from src/ (the runtime under everything);
 * - src/observe imports only src/kube and the top-level files (version.ts, …);
 * - a capability imports src/kube, src/observe and the top-level files, never src/operator,
 *   src/cli or another capability;
 * - src/operator imports anything but src/cli; src/cli anything;
 * - the top-level files (src/*.ts) import only each other;
 * - nothing in src/ imports test/, testbed/ or scripts/, except unit tests (test support);
 * - no import cycle between files (type-only imports count: a cycle of types is a cycle of
 *   concepts), except those listed in {@link KNOWN_CYCLES}, each to be cut by a named change. A
 *   listed cycle that no longer exists fails too, so the list only shrinks.
 *
 *   node scripts/lint-layers.ts [root]     exit 0: clean; 1: violations, one per line
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** Layer of each top-level folder of src/; files directly in src/ are `shared`. */
const CAPABILITIES = ['logaccess', 'inventory', 'ports', 'prober', 'guard', 'hub'] as const;

export type Layer = 'kube' | 'observe' | 'capability' | 'operator' | 'cli' | 'shared';

/** A cycle that exists and is being cut elsewhere: the sorted list of its files, and by what change. */
export interface KnownCycle {
  readonly files: readonly string[];
  readonly why: string;
}

/** Cycles that exist today and are being cut elsewhere (none: the last, inventory's collect ↔ resend, went with issue 12). */
export const KNOWN_CYCLES: readonly KnownCycle[] = [];

/** A module's place: its layer and, for capabilities, which one. */
export interface Place {
  readonly layer: Layer;
  readonly capability?: string;
}

/** Where a repository-relative path (`src/kube/runtime/cache.ts`) sits; undefined outside src/. */
export function placeOf(path: string): Place | undefined {
  const parts = path.split('/');
  if (parts[0] !== 'src') return undefined;
  if (parts.length === 2) return { layer: 'shared' };
  const top = parts[1]!;
  if (top === 'kube' || top === 'observe' || top === 'operator' || top === 'cli') return { layer: top };
  if ((CAPABILITIES as readonly string[]).includes(top)) return { layer: 'capability', capability: top };
  // A new top-level folder must be given a layer here before it can be imported.
  return { layer: 'shared', capability: `unknown folder src/${top}` };
}

/** What each layer may import (besides itself). */
const ALLOWED: Readonly<Record<Layer, readonly Layer[]>> = {
  shared: ['shared'],
  kube: [],
  observe: ['kube', 'shared'],
  capability: ['kube', 'observe', 'shared'],
  operator: ['capability', 'kube', 'observe', 'shared'],
  cli: ['operator', 'capability', 'kube', 'observe', 'shared'],
};

/** Test support a unit test in src/ may use. */
const TEST_SUPPORT = /^(test|testbed)\//;

/** Why `from` may not import `to` (both repository-relative), or undefined when it may. */
export function layerViolation(from: string, to: string): string | undefined {
  const source = placeOf(from);
  if (!source) return undefined;
  const target = placeOf(to);
  if (!target && from.endsWith('.test.ts') && TEST_SUPPORT.test(to)) return undefined;
  if (!target) return `${from} imports ${to}: src/ imports nothing from outside src/ (tests may use test/ and testbed/)`;
  if (source.capability?.startsWith('unknown') || target.capability?.startsWith('unknown')) {
    return `${from} imports ${to}: give the new folder a layer in scripts/lint-layers.ts`;
  }
  if (source.layer === target.layer) {
    if (source.layer === 'capability' && source.capability !== target.capability) {
      return `${from} imports ${to}: a capability does not import another (move what they share to src/kube)`;
    }
    return undefined;
  }
  if (!ALLOWED[source.layer].includes(target.layer)) return `${from} imports ${to}: ${source.layer} must not import ${target.layer} (layers import downward only)`;
  return undefined;
}

/** Every cycle in `graph` (file → files it imports), each as its sorted files; one per strongly connected component. */
export function findCycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  // Tarjan's strongly connected components; a component of more than one file (or a file that
  // imports itself) is a cycle.
  let index = 0;
  const indices = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (node: string): void => {
    indices.set(node, index);
    low.set(node, index);
    index++;
    stack.push(node);
    onStack.add(node);
    for (const next of graph.get(node) ?? []) {
      if (!indices.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node)!, low.get(next)!));
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node)!, indices.get(next)!));
      }
    }
    if (low.get(node) === indices.get(node)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      if (component.length > 1 || (graph.get(node) ?? []).includes(node)) cycles.push(component.sort());
    }
  };
  for (const node of [...graph.keys()].sort()) if (!indices.has(node)) visit(node);
  return cycles.sort((a, b) => a[0]!.localeCompare(b[0]!));
}

/** Repository-relative paths of the relative imports of `file` (static, dynamic, type-only and re-exports). */
export function importsOf(root: string, file: string, text: string): string[] {
  const info = ts.preProcessFile(text, true, true);
  return info.importedFiles
    .map((f) => f.fileName)
    .filter((name) => name.startsWith('.'))
    .map((name) => relative(root, resolve(root, dirname(file), name)).split(sep).join('/'));
}

function sourceFiles(root: string, dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(root, dir))) {
    const path = `${dir}/${entry}`;
    if (statSync(join(root, path)).isDirectory()) out.push(...sourceFiles(root, path));
    else if (entry.endsWith('.ts')) out.push(path);
  }
  return out;
}

/** The import graph of src/ (repository-relative paths). */
export function importGraph(root: string): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(root, 'src')) graph.set(file, importsOf(root, file, readFileSync(join(root, file), 'utf8')));
  return graph;
}

/** Every problem of the tree at `root`, one line each; `knownCycles` are tolerated (until gone). */
export function check(root: string, knownCycles: readonly KnownCycle[] = KNOWN_CYCLES): string[] {
  const graph = importGraph(root);
  const problems: string[] = [];
  for (const [file, imports] of graph) {
    for (const target of imports) {
      const why = layerViolation(file, target);
      if (why) problems.push(why);
    }
  }
  const known = new Map(knownCycles.map((c) => [c.files.join(' ↔ '), c]));
  const found = new Set<string>();
  for (const cycle of findCycles(graph)) {
    const key = cycle.join(' ↔ ');
    found.add(key);
    if (!known.has(key)) problems.push(`import cycle: ${key}`);
  }
  for (const [key, cycle] of known) {
    if (!found.has(key)) problems.push(`known cycle ${key} is gone (${cycle.why}): remove it from KNOWN_CYCLES in scripts/lint-layers.ts`);
  }
  return problems;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..'));
  const problems = check(root);
  for (const line of problems) process.stderr.write(`[layers] ${line}\n`);
  if (problems.length > 0) process.exit(1);
  process.stdout.write(`[layers] ${importGraph(root).size} modules: imports point down, ${KNOWN_CYCLES.length > 0 ? `no cycles beyond the ${KNOWN_CYCLES.length} known` : 'no import cycles'}\n`);
}
