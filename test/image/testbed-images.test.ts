/**
 * The testbed's pause and testbox images: reproducible, named under localhost/, accepted by
 * containerd and by the loopback registry, and doing what a node needs of them — pause holds
 * PID 1, reaps what it inherits and ends on TERM; testbox has a shell, httpd and nc.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { BuiltImage } from '../../image/oci.ts';
import { unpackLayout } from '../../image/oci.ts';
import { buildPauseImage, buildTestboxImage, PAUSE_REPOSITORY, registryReference, TESTBOX_REPOSITORY } from '../../image/testbed-images.ts';
import { freePort } from '../../testbed/controlplane.ts';
import { eventually } from '../../testbed/kubelet.ts';
import { buildImageTools, LoopbackRegistry, pushOciLayout, remoteDigest } from '../../testbed/registry.ts';
import { useScratchDir } from '../helpers/scratch.ts';
import { childProcesses, containerdAvailable, hostPidOfCommand, killInRootfs, PrivateContainerd, rootSkipReason, runInRootfs, spawnInRootfs } from './runtimes.ts';

const execFileAsync = promisify(execFile);
const scratch = useScratchDir('crowsnest-testbed-images-');

describe('testbed images', () => {
  let binDir: string;
  let pause: BuiltImage;
  let testbox: BuiltImage;
  let pauseRoot: string;
  let testboxRoot: string;

  before(async () => {
    binDir = await buildImageTools();
    pause = await buildPauseImage(binDir, { outDir: join(scratch.root, 'a'), log: () => {} });
    testbox = await buildTestboxImage({ outDir: join(scratch.root, 'a'), log: () => {} });
    pauseRoot = join(scratch.root, 'pause-root');
    testboxRoot = join(scratch.root, 'testbox-root');
    await unpackLayout(pause.layoutDir, pauseRoot);
    await unpackLayout(testbox.layoutDir, testboxRoot);
  });

  it('are named under localhost/ and built the same twice', async () => {
    const key = (await execFileAsync(join(binDir, 'pause'), ['--version'])).stdout.trim().split(' ').pop();
    assert.equal(pause.name, `${PAUSE_REPOSITORY}:${key}`);
    assert.match(testbox.name, new RegExp(`^${TESTBOX_REPOSITORY}:1\\.\\d+\\.\\d+-[\\w.-]+$`));
    const pause2 = await buildPauseImage(binDir, { outDir: join(scratch.root, 'b'), log: () => {} });
    const testbox2 = await buildTestboxImage({ outDir: join(scratch.root, 'b'), log: () => {} });
    assert.equal(pause2.manifest.digest, pause.manifest.digest);
    assert.equal(testbox2.manifest.digest, testbox.manifest.digest);
    assert.equal(registryReference('127.0.0.1:5000', testbox.name), `127.0.0.1:5000/crowsnest/testbox:${testbox.name.split(':').pop()}`);
  });

  it('pause runs as PID 1, reaps the orphans it inherits, and exits 0 on SIGTERM', { skip: rootSkipReason() }, async () => {
    const unshare = spawnInRootfs(pauseRoot, { user: '65535:65535', env: ['PATH=/'], argv: ['/pause'] });
    let stderr = '';
    unshare.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => unshare.on('close', (code) => resolve(code)));
    try {
      const pausePid = await hostPidOfCommand(unshare);
      // An orphan in pause's PID namespace: sh starts sleep and exits, so sleep is reparented to
      // PID 1 of the namespace. Once it ends, only pause can collect it. (sleep gets its own
      // stdio, or execFile would wait for it to close ours.)
      await execFileAsync('nsenter', ['--target', String(pausePid), '--pid', '--', 'sh', '-c', 'sleep 1 </dev/null >/dev/null 2>&1 & exit 0']);
      await eventually('the orphaned sleep becomes a child of pause', () => childProcesses(pausePid).length === 1);
      await eventually('pause reaps it when it exits (no zombie left)', () => childProcesses(pausePid).length === 0, 5_000);

      process.kill(pausePid, 'SIGTERM');
      assert.equal(await exited, 0, stderr);
      assert.match(stderr, /Shutting down, got signal: terminated/);
    } finally {
      await killInRootfs(unshare);
    }
  });

  it('testbox has a shell, sleep, httpd and nc', { skip: rootSkipReason() }, async () => {
    const env = ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'];
    const shell = await runInRootfs(testboxRoot, { user: '0:0', env, argv: ['sh', '-c', 'sleep 0.01 && echo "$(id -u) $(cat /etc/hostname 2>/dev/null || echo ok)"'] });
    assert.equal(shell.code, 0, shell.stderr);
    assert.match(shell.stdout, /^0 /);

    // nc from the image to a server of the test's.
    const received = new Promise<string>((resolve) => {
      const server = createServer((socket) => {
        let data = '';
        socket.on('data', (c) => (data += c.toString()));
        socket.on('end', () => {
          resolve(data);
          server.close();
        });
      }).listen(0, '127.0.0.1', async () => {
        const port = (server.address() as { port: number }).port;
        await runInRootfs(testboxRoot, { user: '65532:65532', env, argv: ['sh', '-c', `echo hello-from-nc | nc 127.0.0.1 ${port}`] });
      });
    });
    assert.equal((await received).trim(), 'hello-from-nc');

    // httpd from the image, fetched by the test.
    const port = await freePort();
    const httpd = spawnInRootfs(testboxRoot, { user: '65532:65532', env, argv: ['httpd', '-f', '-p', `127.0.0.1:${port}`, '-h', '/etc'] });
    try {
      await eventually('httpd serves /etc/group', async () => {
        try {
          const res = await fetch(`http://127.0.0.1:${port}/group`);
          return res.status === 200 && (await res.text()).includes('nonroot:x:65532:');
        } catch {
          return false;
        }
      });
    } finally {
      await killInRootfs(httpd);
    }
  });

  it('are imported by containerd from their .tar files under their names and digests', { skip: rootSkipReason() || (!containerdAvailable() && 'containerd, ctr or runc not installed') }, async () => {
    const containerd = await PrivateContainerd.start(join(scratch.root, 'containerd'));
    try {
      for (const image of [pause, testbox]) {
        assert.ok(image.tarPath);
        const imported = await containerd.ctr(['images', 'import', image.tarPath]);
        assert.equal(imported.code, 0, imported.stderr);
      }
      const listed = (await containerd.ctr(['images', 'ls', '--quiet'])).stdout.trim().split('\n').sort();
      assert.deepEqual(listed, [pause.name, testbox.name].sort());
      const run = await containerd.ctr(['run', '--rm', '--read-only', testbox.name, 'testbox-echo', 'sh', '-c', 'echo $((6 * 7))']);
      assert.equal(run.stdout.trim(), '42', run.stderr);
    } finally {
      await containerd.stop();
    }
  });

  it('are pushed to the loopback registry under their digests, and containerd pulls them from it over plain HTTP', async (t) => {
    const registry = await LoopbackRegistry.start({ dir: join(scratch.root, 'registry'), binDir, log: () => {} });
    try {
      const references: string[] = [];
      for (const image of [pause, testbox]) {
        const reference = registryReference(registry.host, image.name);
        await pushOciLayout(registry.crane, image.layoutDir, reference);
        assert.equal(await remoteDigest(registry.crane, reference), image.manifest.digest);
        references.push(reference);
      }
      const skip = rootSkipReason() || (!containerdAvailable() && 'containerd, ctr or runc not installed');
      if (skip) {
        t.diagnostic(`containerd pull not tried: ${skip}`);
        return;
      }
      const containerd = await PrivateContainerd.start(join(scratch.root, 'containerd-pull'));
      try {
        for (const [i, reference] of references.entries()) {
          const pulled = await containerd.ctr(['images', 'pull', '--plain-http', reference]);
          assert.equal(pulled.code, 0, pulled.stderr);
          const listed = await containerd.ctr(['images', 'ls']);
          assert.match(listed.stdout, new RegExp(`${reference.replace(/[.]/g, '\\.')}\\s+\\S+\\s+${[pause, testbox][i]?.manifest.digest}`));
        }
      } finally {
        await containerd.stop();
      }
    } finally {
      await registry.stop();
    }
  });
});
