import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { WatchedPemFile } from './watched-pem.ts';

describe('WatchedPemFile', () => {
  it('reads the file again when it changes, at most once a second, and nothing when it is missing or not PEM', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pem-'));
    try {
      const path = join(dir, 'ca.crt');
      const file = new WatchedPemFile(path);
      assert.equal(file.read(0), undefined);
      await writeFile(path, '-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n');
      assert.equal(file.read(500), undefined, 'checked again only after a second');
      assert.match(file.read(1_000) ?? '', /\nA\n/);
      await writeFile(path, '-----BEGIN CERTIFICATE-----\nBB\n-----END CERTIFICATE-----\n');
      assert.match(file.read(2_000) ?? '', /\nBB\n/);
      await writeFile(path, 'garbage');
      assert.equal(file.read(3_000), undefined);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
