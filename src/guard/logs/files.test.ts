import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { useScratchDir } from '../../../test/helpers/scratch.ts';
import { FakeContainerLog } from './fake-pod-logs.ts';
import { FileMovedError, findFile, identify, listLogFiles, openListed } from './files.ts';

const scratch = useScratchDir('guard-files-');

describe('a container\'s log files', () => {
  it('are listed in reading order: by run, rotated files by time, the live file last', async () => {
    const log = await new FakeContainerLog(await scratch.fresh(), 'shop', 'web-0', 'uid-0', 'app').create();
    await log.lines(1);
    const first = await log.rotate();
    await log.lines(1);
    await log.rotate();
    await log.compress(first);
    await log.restart();
    await log.lines(1);
    assert.deepEqual((await listLogFiles(log.dir)).map((f) => f.name), ['0.log.20261207-030010.gz', '0.log.20261207-030011', '0.log', '1.log']);
  });

  it('refuse to be read through a name that now holds another file (rotated since the listing)', async () => {
    const log = await new FakeContainerLog(await scratch.fresh(), 'shop', 'web-0', 'uid-0', 'app').create();
    await log.lines(3);
    const [live] = await listLogFiles(log.dir);
    await log.rotate();
    await assert.rejects(openListed(log.dir, live!), FileMovedError);
  });

  it('are found again by identity after a rename and after compression, never by a reused name', async () => {
    const log = await new FakeContainerLog(await scratch.fresh(), 'shop', 'web-0', 'uid-0', 'app').create();
    await log.lines(20);
    const identity = await identify(log.dir, (await listLogFiles(log.dir))[0]!);
    const rotated = await log.rotate();
    await log.lines(20, { from: 100 });
    assert.equal((await findFile(log.dir, await listLogFiles(log.dir), identity))?.name, rotated);
    await log.compress(rotated);
    assert.equal((await findFile(log.dir, await listLogFiles(log.dir), identity))?.name, `${rotated}.gz`);
  });
});
