import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { startLogReceiver } from '../../../test/helpers/guard-log-receiver.ts';
import { useScratchDir } from '../../../test/helpers/scratch.ts';
import { issueCertificateAuthority } from '../../kube/webhook/x509.ts';
import { HttpsLogSink } from './sink.ts';

const scratch = useScratchDir('guard-sink-');
const batch = (batchId: number) => ({ node: 'node-a', batchId, counts: [] });

describe('sending batches to the guard endpoint', () => {
  it('posts over HTTPS with the token read from its file for every request', async () => {
    const running = await startLogReceiver('127.0.0.1');
    const tokenFile = scratch.path('token');
    const sink = new HttpsLogSink({ url: running.url, ca: running.caPem, tokenFile });
    try {
      await writeFile(tokenFile, 'first-token\n');
      const answer = await sink.send(batch(1));
      assert.equal(answer.kind, 'answer');
      await writeFile(tokenFile, 'rotated-token\n');
      await sink.send(batch(2));
      assert.deepEqual([...running.tokens], ['first-token', 'rotated-token']);
      assert.deepEqual(running.receiver.kept.map((b) => b.batchId), [1, 2]);
    } finally {
      sink.close();
      await running.close();
    }
  });

  it('turns 503 into a retry after Retry-After, and a missing token file into a retry naming it', async () => {
    const running = await startLogReceiver('127.0.0.1');
    const tokenFile = scratch.path('token');
    const sink = new HttpsLogSink({ url: running.url, ca: running.caPem, tokenFile });
    try {
      const missing = await sink.send(batch(1));
      assert.equal(missing.kind, 'retry');
      assert.match(missing.kind === 'retry' ? missing.detail : '', /cannot read the ServiceAccount token/);
      await writeFile(tokenFile, 't');
      running.failWith = 503;
      const refused = await sink.send(batch(1));
      assert.deepEqual(refused.kind === 'retry' ? { reason: refused.reason, afterMs: refused.afterMs } : refused, { reason: 'unavailable', afterMs: 1_000 });
      assert.equal(running.receiver.kept.length, 0);
    } finally {
      sink.close();
      await running.close();
    }
  });

  it('refuses a server its CA does not vouch for (the token never leaves)', async () => {
    const running = await startLogReceiver('127.0.0.1');
    const tokenFile = scratch.path('token');
    await writeFile(tokenFile, 'secret');
    const other = issueCertificateAuthority({ commonName: 'other', notBeforeMs: Date.now() - 60_000, notAfterMs: Date.now() + 60_000 });
    const sink = new HttpsLogSink({ url: running.url, ca: other.certPem, tokenFile });
    try {
      const outcome = await sink.send(batch(1));
      assert.equal(outcome.kind, 'retry');
      assert.equal(running.tokens.size, 0);
    } finally {
      sink.close();
      await running.close();
    }
  });
});
