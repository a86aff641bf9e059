/**
 * How `crowsnest inventory diff` prints a {@link SnapshotDiff}: a plain-text listing for people
 * (no colour, so it pastes into tickets and survives pipes) or JSON for tools.
 */
import { escapeControl } from '../terminal-text.ts';
import type { ObjectRef, SnapshotDiff } from './diff.ts';

/**
 * The human listing: one section per kind of difference (empty sections left out), one line per
 * object, then a summary line. Markers: `+` added, `-` removed, `~` changed (with the differing
 * paths), `!` replaced. Objects read `apps/Deployment shop/web`; core kinds have no group
 * (`ConfigMap shop/cfg`), cluster-scoped objects no namespace (`Namespace shop`).
 *
 * ```text
 * Added (1):
 *   + apps/Deployment shop/web
 * Changed (1):
 *   ~ ConfigMap shop/cfg: data["app.conf"], metadata.labels.tier
 *
 * 1 added, 0 removed, 1 changed, 0 replaced, 120 unchanged
 * ```
 * Ends with a newline.
 */
export function renderDiffTable(diff: SnapshotDiff): string {
  const lines: string[] = [];
  const section = (title: string, refs: readonly ObjectRef[], marker: string, suffix?: (index: number) => string): void => {
    if (refs.length === 0) return;
    lines.push(`${title} (${refs.length}):`);
    refs.forEach((ref, index) => { lines.push(`  ${marker} ${describeRef(ref)}${suffix?.(index) ?? ''}`); });
  };
  section('Added', diff.added, '+');
  section('Removed', diff.removed, '-');
  section('Changed', diff.changed.map((entry) => entry.ref), '~', (index) => {
    const { paths, morePaths } = diff.changed[index]!;
    // Paths are made of the objects' own keys: whatever the snapshot file holds.
    return paths.length === 0 ? '' : `: ${paths.map(escapeControl).join(', ')}${morePaths > 0 ? ` (+${morePaths} more)` : ''}`;
  });
  section('Replaced (uid changed)', diff.replaced, '!');
  if (lines.length === 0) lines.push('No differences.');
  lines.push('', summaryLine(diff));
  return `${lines.join('\n')}\n`;
}

/**
 * `3 added, 1 removed, 2 changed, 0 replaced, 120 unchanged`, plus `, N skipped (…)` when objects
 * could not be compared.
 */
export function summaryLine(diff: SnapshotDiff): string {
  const { duplicates, unidentified } = diff.skipped;
  const skipped = duplicates + unidentified;
  const why = [duplicates > 0 ? `${duplicates} duplicate` : '', unidentified > 0 ? `${unidentified} without kind or name` : '']
    .filter(Boolean)
    .join(', ');
  return `${diff.added.length} added, ${diff.removed.length} removed, ${diff.changed.length} changed, ` +
    `${diff.replaced.length} replaced, ${diff.unchanged} unchanged${skipped > 0 ? `, ${skipped} skipped (${why})` : ''}`;
}

/**
 * The diff as pretty-printed JSON, ending with a newline: `summary` (the counts), then the lists
 * exactly as in {@link SnapshotDiff} (cluster-scoped refs have no `namespace` key).
 *
 * ```json
 * { "summary": { "added": 1, "removed": 0, "changed": 1, "replaced": 0, "unchanged": 120,
 *                "skipped": { "duplicates": 0, "unidentified": 0 } },
 *   "added": [{ "group": "apps", "kind": "Deployment", "namespace": "shop", "name": "web", "apiVersion": "apps/v1" }],
 *   "removed": [], "changed": [{ "ref": { … }, "paths": ["data[\"app.conf\"]"], "morePaths": 0 }], "replaced": [] }
 * ```
 */
export function renderDiffJson(diff: SnapshotDiff): string {
  const summary = {
    added: diff.added.length,
    removed: diff.removed.length,
    changed: diff.changed.length,
    replaced: diff.replaced.length,
    unchanged: diff.unchanged,
    skipped: diff.skipped,
  };
  const { added, removed, changed, replaced } = diff;
  return `${JSON.stringify({ summary, added, removed, changed, replaced }, null, 2)}\n`;
}

/**
 * `apps/Deployment shop/web`, `ConfigMap shop/cfg`, `Namespace shop`, with control characters
 * escaped: a snapshot file can hold anything.
 */
export function describeRef(ref: ObjectRef): string {
  const type = ref.group ? `${ref.group}/${ref.kind}` : ref.kind;
  return escapeControl(`${type} ${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}`);
}
