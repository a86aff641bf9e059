import assert from 'node:assert/strict';
import { failing } from './testdata/failing-fs.ts';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { findSocketOwners, socketInode } from './processes.ts';

/** A proc root on disk: `<pid>/fd/<n>` links and `<pid>/comm`, plus entries a walk must ignore. */
function makeProcRoot(): string {
  const root = mkdtempSync(join(tmpdir(), 'crowsnest-proc-'));
  const processes: Record<string, { comm: string; fds: Record<string, string> }> = {
    // A pre-forking server: parent and worker share listening socket 5001.
    '100': { comm: 'nginx', fds: { '0': '/dev/null', '3': 'socket:[5001]', '4': 'socket:[5002]', '5': 'pipe:[77]', '6': 'socket:[5001]' } },
    '101': { comm: 'nginx', fds: { '3': 'socket:[5001]' } },
    '200': { comm: 'sshd', fds: { '7': 'socket:[6001]', '8': 'anon_inode:[eventpoll]' } },
  };
  for (const [pid, { comm, fds }] of Object.entries(processes)) {
    mkdirSync(join(root, pid, 'fd'), { recursive: true });
    writeFileSync(join(root, pid, 'comm'), `${comm}\n`);
    // Link targets need not exist: the walk reads links, it does not follow them.
    for (const [fd, target] of Object.entries(fds)) symlinkSync(target, join(root, pid, 'fd', fd));
  }
  mkdirSync(join(root, 'net'));
  symlinkSync('100', join(root, 'self'));
  return root;
}


describe('finding the processes that hold sockets', () => {
  let root = '';
  before(() => {
    root = makeProcRoot();
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  test('each socket maps to every process holding it, lowest pid first, with its command', async () => {
    const owners = await findSocketOwners({ procRoot: root });
    assert.deepEqual(Object.fromEntries(owners.byInode), {
      5001: [
        { pid: 100, command: 'nginx' },
        { pid: 101, command: 'nginx' },
      ],
      5002: [{ pid: 100, command: 'nginx' }],
      6001: [{ pid: 200, command: 'sshd' }],
    });
    assert.deepEqual([owners.processesRead, owners.processesDenied, owners.processesGone], [3, 0, 0]);
  });

  test('only the sockets asked for are reported', async () => {
    const owners = await findSocketOwners({ procRoot: root, wanted: new Set([6001, 9999]) });
    assert.deepEqual([...owners.byInode.keys()], [6001]);
  });

  test("processes whose files may not be read are counted, and the others' sockets still found", async () => {
    const fs = failing({ '/200/fd': 'EACCES', '/101/fd/3': 'EPERM' });
    const owners = await findSocketOwners({ procRoot: root, fs });
    assert.equal(owners.processesDenied, 2);
    assert.equal(owners.processesRead, 1);
    assert.deepEqual(owners.byInode.get(5001), [{ pid: 100, command: 'nginx' }]);
    assert.equal(owners.byInode.has(6001), false);
  });

  test('processes exiting and fds closing during the walk are skipped without failing it', async () => {
    const fs = failing({
      '/101/fd': 'ENOENT', // exited before its fds were listed
      '/100/fd/4': 'ENOENT', // fd closed between listing and reading
      '/200/comm': 'ESRCH', // exited after its fds were read
    });
    const owners = await findSocketOwners({ procRoot: root, fs });
    assert.deepEqual(Object.fromEntries(owners.byInode), { 5001: [{ pid: 100, command: 'nginx' }] });
    assert.equal(owners.processesGone, 2);
    assert.equal(owners.processesDenied, 0);
  });

  test('a process name that cannot be read leaves just the pid', async () => {
    const owners = await findSocketOwners({ procRoot: root, fs: failing({ '/200/comm': 'EIO' }) });
    assert.deepEqual(owners.byInode.get(6001), [{ pid: 200 }]);
  });

  test('the walk yields to the event loop between batches', async () => {
    const order: string[] = [];
    setImmediate(() => order.push('other work'));
    await findSocketOwners({ procRoot: root, batchSize: 1 });
    order.push('walk done');
    assert.deepEqual(order, ['other work', 'walk done']);

    const unbatched: string[] = [];
    setImmediate(() => unbatched.push('other work'));
    await findSocketOwners({ procRoot: root, batchSize: 1_000_000 });
    unbatched.push('walk done');
    assert.deepEqual(unbatched, ['walk done'], 'without yields the walk finishes first: the check above can fail');
    await new Promise((resolve) => setImmediate(resolve));
  });

  test('a proc root that cannot be listed is an error', async () => {
    await assert.rejects(findSocketOwners({ procRoot: join(root, 'missing') }), { code: 'ENOENT' });
  });
});

test('socket links are told from other fd targets', () => {
  assert.equal(socketInode('socket:[207171]'), 207171);
  for (const other of ['pipe:[77]', 'anon_inode:[eventpoll]', '/dev/null', 'socket:[]', 'socket:[12a]', 'socket:[1']) {
    assert.equal(socketInode(other), undefined, other);
  }
});
