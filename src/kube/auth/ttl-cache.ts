/**
 * The answers an endpoint remembers about callers (token reviews, access decisions): each entry
 * until its own expiry, at most `maxEntries` of them — when full, expired entries go first, then
 * the oldest. Keys are hashes, never tokens.
 */
export class TtlCache<V> {
  private readonly maxEntries: number;
  private readonly entries = new Map<string, { readonly value: V; readonly expiresAtMs: number }>();

  constructor(maxEntries: number) {
    this.maxEntries = maxEntries;
  }

  /** The value of `key` unless it expired by `nowMs`. */
  get(key: string, nowMs: number): V | undefined {
    const entry = this.entries.get(key);
    return entry && entry.expiresAtMs > nowMs ? entry.value : undefined;
  }

  set(key: string, value: V, expiresAtMs: number, nowMs: number): void {
    if (this.entries.size >= this.maxEntries) {
      for (const [k, entry] of this.entries) if (entry.expiresAtMs <= nowMs) this.entries.delete(k);
      // Still full: drop the oldest entries (Map keeps insertion order).
      for (const k of this.entries.keys()) {
        if (this.entries.size < this.maxEntries) break;
        this.entries.delete(k);
      }
    }
    this.entries.set(key, { value, expiresAtMs });
  }

  get size(): number {
    return this.entries.size;
  }
}
