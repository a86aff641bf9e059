import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TtlCache } from './ttl-cache.ts';

describe('TtlCache', () => {
  it('keeps an entry until its expiry', () => {
    const cache = new TtlCache<string>(10);
    cache.set('a', 'A', 1_000, 0);
    assert.equal(cache.get('a', 999), 'A');
    assert.equal(cache.get('a', 1_000), undefined);
  });

  it('when full, drops expired entries first, then the oldest', () => {
    const cache = new TtlCache<number>(3);
    cache.set('old', 1, 5_000, 0);
    cache.set('expired', 2, 10, 0);
    cache.set('young', 3, 5_000, 0);
    cache.set('new', 4, 5_000, 100);
    assert.deepEqual(['old', 'expired', 'young', 'new'].map((k) => cache.get(k, 100)), [1, undefined, 3, 4]);
    cache.set('newer', 5, 5_000, 100);
    assert.deepEqual(['old', 'young', 'new', 'newer'].map((k) => cache.get(k, 100)), [undefined, 3, 4, 5]);
    assert.equal(cache.size, 3);
  });
});
