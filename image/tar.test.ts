import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstatSync, readFileSync, readlinkSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { useScratchDir } from '../test/helpers/scratch.ts';
import { compareTarPaths, type TarEntry, tarBuffer } from './tar.ts';

const scratch = useScratchDir('crowsnest-tar-');

const longName = `${'deep/'.repeat(30)}file-with-a-long-name.txt`;
const sample: TarEntry[] = [
  { type: 'file', path: 'usr/bin/tool', mode: 0o755, content: Buffer.from('#!/bin/sh\necho hi\n') },
  { type: 'dir', path: 'usr', mode: 0o755 },
  { type: 'dir', path: 'usr/bin', mode: 0o755 },
  { type: 'symlink', path: 'usr/bin/alias', target: 'tool' },
  { type: 'dir', path: 'home', mode: 0o750, uid: 65532, gid: 65532 },
  ...longName.split('/').slice(0, -1).map((_, i, parts): TarEntry => ({ type: 'dir', path: parts.slice(0, i + 1).join('/'), mode: 0o755 })),
  { type: 'file', path: longName, mode: 0o644, content: Buffer.alloc(1000, 7) },
];

describe('tar writer', () => {
  it('writes the same bytes whatever order the entries come in', () => {
    const a = tarBuffer(sample, { mtimeSeconds: 0 });
    const b = tarBuffer([...sample].reverse(), { mtimeSeconds: 0 });
    assert.ok(a.equals(b));
    assert.equal(a.length % 512, 0);
  });

  it('is read back by GNU tar: names (long ones through PAX), modes, owners, link targets and a fixed mtime', async () => {
    const file = scratch.path('sample', '.tar');
    await writeFile(file, tarBuffer(sample, { mtimeSeconds: 1_700_000_000 }));
    const listing = execFileSync('tar', ['--numeric-owner', '--full-time', '-tvf', file], { encoding: 'utf8', env: { TZ: 'UTC' } });
    const lines = listing.trim().split('\n');
    assert.equal(lines.length, sample.length);
    assert.ok(lines.some((l) => /^drwxr-x--- 65532\/65532 +0 2023-11-14 22:13:20 home\/$/.test(l)), listing);
    assert.ok(lines.some((l) => l.startsWith('-rwxr-xr-x 0/0') && l.endsWith(' usr/bin/tool')));
    assert.ok(lines.some((l) => l.startsWith('lrwxrwxrwx 0/0') && l.endsWith(' usr/bin/alias -> tool')));
    assert.ok(lines.some((l) => l.endsWith(` ${longName}`)), 'the long name survives whole');
    assert.ok(lines.every((l) => l.includes('2023-11-14 22:13:20')), 'one mtime for all');

    const out = await scratch.fresh();
    execFileSync('tar', ['-xf', file, '-C', out]);
    assert.equal(readFileSync(join(out, 'usr/bin/tool'), 'utf8'), '#!/bin/sh\necho hi\n');
    assert.equal(readlinkSync(join(out, 'usr/bin/alias')), 'tool');
    assert.equal(lstatSync(join(out, longName)).size, 1000);
    assert.equal(lstatSync(join(out, 'usr/bin/tool')).mode & 0o7777, 0o755);
  });

  it('puts a directory before its contents and orders siblings bytewise', () => {
    const paths = ['b', 'a/b', 'a', 'a-b', 'a/a/z', 'a/a', 'B'];
    assert.deepEqual([...paths].sort(compareTarPaths), ['B', 'a', 'a/a', 'a/a/z', 'a/b', 'a-b', 'b']);
  });

  it('refuses an entry without its directory, a duplicate, or a path that climbs out', () => {
    const file = (path: string): TarEntry => ({ type: 'file', path, mode: 0o644, content: Buffer.alloc(0) });
    assert.throws(() => tarBuffer([file('etc/passwd')], { mtimeSeconds: 0 }), /without its directory etc/);
    assert.throws(() => tarBuffer([file('a'), file('a')], { mtimeSeconds: 0 }), /given twice/);
    for (const bad of ['/etc/passwd', '../x', 'a/./b', 'a//b', 'a/']) {
      assert.throws(() => tarBuffer([file(bad)], { mtimeSeconds: 0 }), /bad entry path/, bad);
    }
  });
});
