/**
 * Batches to the operator's guard endpoint: `POST /v1/guard/logs` over HTTPS, trusting only the
 * CA the agent was given, with the agent's projected ServiceAccount token (audience
 * crowsnest.dev/guard), read from its file for every request because the kubelet rotates it.
 * One kept-alive connection; 429 and 503 are retried after their `Retry-After`.
 */
import { readFile } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { LOGS_PATH, type LogAnswer, type LogBatch } from '../contract.ts';
import type { LogSink, SendOutcome } from './agent.ts';

export interface HttpsLogSinkOptions {
  /** `https://host:port` of the operator's guard endpoint. */
  readonly url: string;
  /** PEM bundle trusted for it. */
  readonly ca: string;
  readonly tokenFile: string;
  /** Per request. Default 10 s. */
  readonly timeoutMs?: number;
}

export class HttpsLogSink implements LogSink {
  private readonly options: HttpsLogSinkOptions;
  private readonly target: URL;
  private readonly agent: Agent;

  constructor(options: HttpsLogSinkOptions) {
    this.options = options;
    this.target = new URL(LOGS_PATH, options.url);
    if (this.target.protocol !== 'https:') throw new Error(`the guard endpoint must be https: ${options.url}`);
    this.agent = new Agent({ keepAlive: true, maxSockets: 1, ca: options.ca });
  }

  async send(batch: LogBatch): Promise<SendOutcome> {
    let token: string;
    try {
      token = (await readFile(this.options.tokenFile, 'utf8')).trim();
    } catch (err) {
      return { kind: 'retry', reason: 'token', detail: `cannot read the ServiceAccount token at ${this.options.tokenFile}: ${(err as Error).message}` };
    }
    const body = JSON.stringify(batch);
    let response: { status: number; headers: Record<string, string | string[] | undefined>; body: string };
    try {
      response = await this.post(body, token);
    } catch (err) {
      return { kind: 'retry', reason: 'unavailable', detail: `guard endpoint unreachable: ${(err as Error).message}` };
    }
    const text = response.body.trim().slice(0, 300);
    if (response.status === 429 || response.status === 503) {
      return { kind: 'retry', reason: response.status === 429 ? 'throttled' : 'unavailable', detail: `the guard endpoint answered ${response.status}: ${text}`, ...retryAfter(response.headers['retry-after']) };
    }
    if (response.status === 401) return { kind: 'retry', reason: 'unauthorized', detail: `the guard endpoint refused this agent's token (401): ${text}` };
    if (response.status === 403) return { kind: 'retry', reason: 'forbidden', detail: `the guard endpoint refused this batch (403): ${text}` };
    if (response.status !== 200) return { kind: 'retry', reason: 'error', detail: `the guard endpoint answered ${response.status}: ${text}` };
    try {
      const answer = JSON.parse(response.body) as LogAnswer;
      if (typeof answer.accepted !== 'boolean' || !Array.isArray(answer.watches)) throw new Error('not a LogAnswer');
      return { kind: 'answer', answer };
    } catch (err) {
      return { kind: 'retry', reason: 'error', detail: `the guard endpoint answered something that is not a LogAnswer: ${(err as Error).message}` };
    }
  }

  close(): void {
    this.agent.destroy();
  }

  private post(body: string, token: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request(this.target, {
        method: 'POST', agent: this.agent, timeout: this.options.timeoutMs ?? 10_000,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json', 'content-length': Buffer.byteLength(body) },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error('no answer in time')));
      req.on('error', reject);
      req.end(body);
    });
  }
}

function retryAfter(header: string | string[] | undefined): { afterMs?: number } {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined || !/^\d+$/.test(value.trim())) return {};
  return { afterMs: Math.min(300, Number(value.trim())) * 1000 };
}
