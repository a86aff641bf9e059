import assert from 'node:assert/strict';
import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { useScratchDir } from '../test/helpers/scratch.ts';
import { LayerBuilder } from './layer.ts';

const scratch = useScratchDir('crowsnest-layer-');

describe('layer builder', () => {
  it('adds the parents of what it is given, as mkdir -p would', () => {
    const entries = new LayerBuilder().file('usr/local/bin/node', 'x', 0o755).symlink('usr/bin/x', '../local/bin/node').build();
    assert.deepEqual(entries.map((e) => `${e.type} ${e.path}`).sort(), [
      'dir usr', 'dir usr/bin', 'dir usr/local', 'dir usr/local/bin', 'file usr/local/bin/node', 'symlink usr/bin/x',
    ]);
  });

  it('refuses a path given twice and a file where a directory must be', () => {
    assert.throws(() => new LayerBuilder().file('a', 'x').file('a', 'y'), /added twice/);
    assert.throws(() => new LayerBuilder().file('a', 'x').file('a/b', 'y'), /needs a to be a directory, but it is a file/);
  });

  it('takes a staged tree with its modes kept, or normalised so a umask cannot change the layer', async () => {
    const dir = await scratch.fresh();
    await mkdir(join(dir, 'bin'), { mode: 0o700 });
    await writeFile(join(dir, 'bin', 'tool'), '#!/bin/sh\n');
    await chmod(join(dir, 'bin', 'tool'), 0o750);
    await writeFile(join(dir, 'notes.md'), 'hi');
    await chmod(join(dir, 'notes.md'), 0o600);
    await symlink('bin/tool', join(dir, 'link'));
    const mode = (layer: LayerBuilder, path: string): number | undefined => {
      const entry = layer.build().find((e) => e.path === path);
      return entry && entry.type !== 'symlink' ? entry.mode : undefined;
    };
    const kept = await new LayerBuilder().tree(dir, 'opt/app', { modes: 'keep' });
    assert.equal(mode(kept, 'opt/app/bin'), 0o700);
    assert.equal(mode(kept, 'opt/app/bin/tool'), 0o750);
    assert.equal(mode(kept, 'opt/app/notes.md'), 0o600);
    const normal = await new LayerBuilder().tree(dir, 'opt/app', { modes: 'normalize', exclude: (p) => p.endsWith('.md') });
    assert.equal(mode(normal, 'opt/app/bin'), 0o755);
    assert.equal(mode(normal, 'opt/app/bin/tool'), 0o755);
    assert.equal(normal.has('opt/app/notes.md'), false, 'excluded');
    const link = normal.build().find((e) => e.path === 'opt/app/link');
    assert.deepEqual(link, { type: 'symlink', path: 'opt/app/link', target: 'bin/tool' });
  });
});
