/**
 * A stand-in for the operator's receiving side of `POST /v1/guard/logs` (guard-core owns the real
 * one): it keeps each batch once per node and batch id, as contract.ts asks of the operator, and
 * hands out the watches a test sets. {@link LogReceiver.accept} is the logic, for unit tests;
 * {@link startLogReceiver} serves it over HTTPS with a CA of its own, for tests of the agent in a
 * real pod.
 */
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { issueCertificateAuthority, issueServingCertificate } from '../../src/kube/webhook/x509.ts';
import { LOGS_PATH, type LogAnswer, type LogBatch, type LogWatch } from '../../src/guard/contract.ts';

export class LogReceiver {
  watches: LogWatch[] = [];
  sendAfterMs = 100;
  /** Batches kept, in arrival order (one per node and id). */
  readonly kept: LogBatch[] = [];
  /** Batches received again under an id already kept. */
  duplicates = 0;
  /** Every request's batch, duplicates included. */
  received = 0;
  private readonly seen = new Set<string>();

  accept(batch: LogBatch): LogAnswer {
    this.received++;
    const key = `${batch.node}/${batch.batchId}`;
    if (this.seen.has(key)) this.duplicates++;
    else {
      this.seen.add(key);
      this.kept.push(batch);
    }
    return { accepted: true, watches: this.watches, sendAfterMs: this.sendAfterMs };
  }

  /** Lines and matched lines kept for a pod's container (all policies summed per policy: pass one). */
  total(filter: { podUid?: string; pod?: string; container?: string; policy?: string } = {}): { lines: number; matched: number } {
    let lines = 0;
    let matched = 0;
    for (const batch of this.kept) {
      for (const count of batch.counts) {
        if (filter.podUid !== undefined && count.podUid !== filter.podUid) continue;
        if (filter.pod !== undefined && count.pod !== filter.pod) continue;
        if (filter.container !== undefined && count.container !== filter.container) continue;
        if (filter.policy !== undefined && count.policy !== filter.policy) continue;
        lines += count.lines;
        matched += count.matched;
      }
    }
    return { lines, matched };
  }
}

export interface RunningLogReceiver {
  readonly receiver: LogReceiver;
  /** `https://host:port`. */
  readonly url: string;
  /** PEM of the CA that signed the server's certificate. */
  readonly caPem: string;
  /** Bearer tokens seen. */
  readonly tokens: Set<string>;
  /** Answer the next requests with this status instead (e.g. 503), until set back to undefined. */
  failWith: number | undefined;
  close(): Promise<void>;
}

/** Serves a {@link LogReceiver} over HTTPS on `host` (an address the agent reaches). */
export async function startLogReceiver(host: string): Promise<RunningLogReceiver> {
  const now = Date.now();
  const ca = issueCertificateAuthority({ commonName: 'log-receiver-ca', notBeforeMs: now - 60_000, notAfterMs: now + 86_400_000 });
  const serving = issueServingCertificate({ commonName: 'log-receiver', hosts: [host], notBeforeMs: now - 60_000, notAfterMs: now + 86_400_000 }, ca);
  const receiver = new LogReceiver();
  const tokens = new Set<string>();
  const state: { failWith: number | undefined } = { failWith: undefined };
  const server: Server = createServer({ cert: serving.certPem, key: serving.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      if (req.method !== 'POST' || req.url !== LOGS_PATH) return void res.writeHead(404).end();
      if (!token) return void res.writeHead(401).end('no token\n');
      tokens.add(token);
      if (state.failWith !== undefined) return void res.writeHead(state.failWith, { 'retry-after': '1' }).end('failing on purpose\n');
      let batch: LogBatch;
      try {
        batch = JSON.parse(Buffer.concat(chunks).toString('utf8')) as LogBatch;
      } catch {
        return void res.writeHead(400).end('not JSON\n');
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(receiver.accept(batch)));
    });
  });
  server.listen(0, host);
  await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
  const { port } = server.address() as AddressInfo;
  return {
    receiver, tokens, caPem: ca.certPem,
    url: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    get failWith() {
      return state.failWith;
    },
    set failWith(value) {
      state.failWith = value;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
