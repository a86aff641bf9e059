import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { useScratchDir } from '../test/helpers/scratch.ts';
import {
  commitExclusively,
  createFileExclusively,
  fileTimestamp,
  isTemporaryNameOf,
  makeDirectories,
  parseFileTimestamp,
  prepareReportDir,
  ReportDirError,
  runNameSuffix,
  temporaryPathFor,
  writeFileAtomically,
} from './report-files.ts';

const scratch = useScratchDir('crowsnest-report-files-');

describe('file time stamps', () => {
  it('read back the time of this version\'s stamps and of older whole-second ones', () => {
    const at = new Date('2026-11-23T14:15:00.789Z');
    assert.equal(parseFileTimestamp(fileTimestamp(at)), at.getTime());
    assert.equal(parseFileTimestamp('20261123T141500Z'), Date.parse('2026-11-23T14:15:00Z'));
    assert.ok(Number.isNaN(parseFileTimestamp('2026-11-23')));
  });

  it('run suffixes are the run id\'s first 8 hex digits, or a digest of an id that has none', () => {
    assert.equal(runNameSuffix('A1B2C3D4-0000-4000-8000-000000000000'), 'a1b2c3d4');
    assert.match(runNameSuffix('run-1'), /^[0-9a-f]{8}$/);
    assert.notEqual(runNameSuffix('run-1'), runNameSuffix('run-2'));
  });
});

describe('exclusive and atomic writes', () => {
  it('createFileExclusively never replaces a file, and leaves no temporary file either way', async () => {
    const dir = await scratch.fresh();
    const path = join(dir, 'report.json');
    await createFileExclusively(path, 'first', 0o640);
    await assert.rejects(createFileExclusively(path, 'second', 0o640), { code: 'EEXIST' });
    assert.equal(await readFile(path, 'utf8'), 'first');
    assert.deepEqual(await readdir(dir), ['report.json']);
  });

  it('commitExclusively refuses an existing name and keeps the temporary file for the caller', async () => {
    const dir = await scratch.fresh();
    const path = join(dir, 'a');
    const temp = temporaryPathFor(path);
    await writeFile(path, 'old');
    await writeFile(temp, 'new');
    await assert.rejects(commitExclusively(temp, path), { code: 'EEXIST' });
    assert.equal(await readFile(path, 'utf8'), 'old');
  });

  it('writeFileAtomically replaces the file whole, through a temporary name of its own', async () => {
    const dir = await scratch.fresh();
    const path = join(dir, 'summary.json');
    await writeFile(path, 'old');
    await writeFileAtomically(path, 'new', 0o640);
    assert.equal(await readFile(path, 'utf8'), 'new');
    assert.deepEqual(await readdir(dir), ['summary.json']);
  });

  it('temporary names are hidden, unique, and recognised as belonging to their final name', () => {
    const a = temporaryPathFor('/r/ports-x.json');
    assert.notEqual(a, temporaryPathFor('/r/ports-x.json'));
    const name = a.slice('/r/'.length);
    assert.match(name, /^\.ports-x\.json\.[0-9a-f]{8}\.tmp$/);
    assert.ok(isTemporaryNameOf(name, (final) => final === 'ports-x.json'));
    assert.ok(isTemporaryNameOf('.ports-x.json.tmp', (final) => final === 'ports-x.json'), 'the old style without a random part');
    assert.ok(!isTemporaryNameOf('ports-x.json.tmp', () => true), 'not hidden');
  });
});

describe('report directory', () => {
  it('creates missing parents one by one', async () => {
    const dir = join(await scratch.fresh(), 'a', 'b', 'c');
    await prepareReportDir(dir);
    assert.deepEqual(await readdir(dir), [], 'the probe file is gone');
  });

  // Node's mkdir({ recursive: true }) spins at 100 % CPU forever here (/proc refuses children with ENOENT).
  it('fails at once, naming the directory, where /proc refuses to create one', { timeout: 5_000 }, async () => {
    await assert.rejects(makeDirectories('/proc/nope/reports'), (err: unknown) => {
      assert.ok(err instanceof ReportDirError);
      assert.equal(err.code, 'ENOENT');
      assert.match(err.message, /^report directory \/proc\/nope\/reports: cannot create \/proc\/nope \(ENOENT/);
      return true;
    });
    await assert.rejects(prepareReportDir('/proc/nope'), ReportDirError);
  });

  it('fails when a path component is a file', async () => {
    const parent = await scratch.fresh();
    await writeFile(join(parent, 'file'), '');
    await assert.rejects(prepareReportDir(join(parent, 'file', 'reports')), { name: 'ReportDirError', message: /file exists and is not a directory/ });
  });

  it('fails when nothing can be created in the directory', async () => {
    // /proc/self exists and is a directory, but even root cannot create files in it.
    await assert.rejects(prepareReportDir('/proc/self'), { name: 'ReportDirError', message: /^report directory \/proc\/self: cannot create files in it/ });
  });

  it('refuses the empty path', async () => {
    await assert.rejects(prepareReportDir(''), { name: 'ReportDirError', message: /the path is empty/ });
  });

  it('accepts an existing directory and leaves its files alone', async () => {
    const dir = await scratch.fresh();
    await mkdir(join(dir, 'sub'));
    await writeFile(join(dir, 'keep'), 'x');
    await prepareReportDir(dir);
    assert.deepEqual((await readdir(dir)).sort(), ['keep', 'sub']);
  });
});
