import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DEBIAN_PACKAGES, excludedFromDebian } from './crowsnest.ts';
import { parseLock, pinsFor } from './debian.ts';
import { repoDir } from './paths.ts';

describe('debian.lock', () => {
  it('reads "<package> <version>" lines, epochs included, skipping comments', () => {
    assert.deepEqual(parseLock('# pins\n\nlibc6 2.36-9+deb12u14\nbusybox-static 1:1.35.0-4+deb12u1+b1  # the test image\n'), [
      { name: 'libc6', version: '2.36-9+deb12u14' },
      { name: 'busybox-static', version: '1:1.35.0-4+deb12u1+b1' },
    ]);
  });

  it('names the line it cannot read', () => {
    assert.throws(() => parseLock('libc6 2.36\nlibc6\n'), /line 2: expected "<package> <version>"/);
    assert.throws(() => parseLock('Bad_Name 1.0\n'), /line 1/);
  });

  it('pins every package the images take, and refuses one it does not pin', () => {
    const lock = parseLock(readFileSync(join(repoDir, 'image', 'debian.lock'), 'utf8'));
    assert.deepEqual(pinsFor(lock, [...DEBIAN_PACKAGES, 'busybox-static']).map((p) => p.name), [...DEBIAN_PACKAGES, 'busybox-static']);
    assert.throws(() => pinsFor(lock, ['openssl']), /no pin for openssl/);
  });

  it('leaves documentation and gconv out of the image but keeps each copyright and the libraries', () => {
    for (const kept of ['usr/share/doc/libc6/copyright', 'lib/x86_64-linux-gnu/libc.so.6', 'usr/share/zoneinfo/UTC', 'usr/share/doc', 'usr/share/doc/libc6']) {
      assert.equal(excludedFromDebian(kept), false, kept);
    }
    for (const dropped of ['usr/share/doc/libc6/changelog.Debian.gz', 'usr/share/doc/libc6/NEWS.gz', 'usr/share/man/man1',
      'usr/share/lintian/overrides/libc6', 'usr/lib/x86_64-linux-gnu/gconv', 'usr/lib/x86_64-linux-gnu/gconv/IBM1390.so', 'usr/share/gdb/auto-load']) {
      assert.equal(excludedFromDebian(dropped), true, dropped);
    }
  });
});
