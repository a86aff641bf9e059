/**
 * One probe of one declared TCP port of a sibling container, with a deadline.
 *
 * The sidecar does not know what speaks on a port, so it finds out: the first probe that connects
 * sends `GET / HTTP/1.1` and waits for an answer. A status line back (`HTTP/1.x NNN`) makes the
 * port an **http** port: from then on each probe is that GET, healthy when the status is below
 * 500 (a 404 for `/` still says the server serves; a 5xx says it cannot). Anything else — bytes
 * that are not HTTP, a close, or silence until the deadline (servers that wait for their own
 * protocol) — makes it a **tcp** port: each probe is then a TCP connect, closed at once.
 *
 * Only the status line is read (never a body, so chunked answers and large pages cost nothing) and
 * every connection is closed after one probe: the sidecar probes every few seconds, and a kept-
 * alive connection would only hold one of the application's connection slots.
 *
 * An http port that answers something that is not HTTP (the app was replaced by another on the
 * same port) fails once with `protocol` and is found out again on the next probe; one that times
 * out or closes without answering stays http and fails (`timeout`, `reset`). A port never
 * reached yet is probed by TCP connect until a connection succeeds.
 *
 * A failure is a reason: `timeout`, `refused` (nothing listens), `reset`, `unreachable`,
 * `http_status` (5xx), `protocol`, `other`.
 */
import type { Socket } from 'node:net';
import { type ConnectionFailureReason, connectionFailureReason, HttpProtocolError, openSocket, TimeoutError } from '../../observe/lean/http.ts';

export type PortFailureReason = ConnectionFailureReason | 'http_status';
export type ProbeMethod = 'http' | 'tcp';

export type PortProbeOutcome =
  | { readonly ok: true; readonly method: ProbeMethod; readonly seconds: number }
  | { readonly ok: false; readonly method: ProbeMethod; readonly reason: PortFailureReason; readonly detail: string };

/** What the sidecar knows of a port: not reached yet, or what it speaks. */
export type PortKind = 'unknown' | ProbeMethod;

/** Longest status line read, in bytes; a longer first line is not HTTP. */
const MAX_STATUS_LINE_BYTES = 1024;
const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: |$)/;
const MS_PER_SECOND = 1000;

/** A port of the pod, probed on `host` (the pod's IP). */
export class PortProber {
  private readonly host: string;
  private readonly port: number;
  private kindOf: PortKind = 'unknown';

  constructor(host: string, port: number) {
    this.host = host;
    this.port = port;
  }

  get kind(): PortKind {
    return this.kindOf;
  }

  /** Probes once; never throws. */
  async probe(timeoutMs: number): Promise<PortProbeOutcome> {
    const started = performance.now();
    const deadline = started + timeoutMs;
    const elapsed = (): number => (performance.now() - started) / MS_PER_SECOND;
    const method: ProbeMethod = this.kindOf === 'http' ? 'http' : 'tcp';
    let socket: Socket;
    try {
      socket = await openSocket({ host: this.host, port: this.port }, deadline);
    } catch (err) {
      return { ok: false, method, reason: connectionFailureReason(err), detail: message(err) };
    }
    if (this.kindOf === 'tcp') {
      socket.destroy();
      return { ok: true, method: 'tcp', seconds: elapsed() };
    }
    try {
      const status = await requestStatus(socket, this.host, this.port, deadline);
      this.kindOf = 'http';
      if (status >= 500) return { ok: false, method: 'http', reason: 'http_status', detail: `GET / answered ${status}` };
      return { ok: true, method: 'http', seconds: elapsed() };
    } catch (err) {
      if (this.kindOf === 'http') {
        // It spoke HTTP before: a failure of the HTTP probe. Only an answer that is not HTTP makes
        // the port found out anew (a hung HTTP server must not pass as a TCP service next time).
        if (err instanceof HttpProtocolError) this.kindOf = 'unknown';
        return { ok: false, method: 'http', reason: connectionFailureReason(err), detail: message(err) };
      }
      // Connected, but no HTTP: a TCP service. The connect was the probe, and it succeeded.
      this.kindOf = 'tcp';
      return { ok: true, method: 'tcp', seconds: elapsed() };
    } finally {
      socket.destroy();
    }
  }
}

/**
 * Sends `GET /` on `socket` and resolves with the status of the answer's status line; rejects with
 * an {@link HttpProtocolError} when the first bytes are not one, a {@link TimeoutError} at the
 * deadline, or the socket's error.
 */
function requestStatus(socket: Socket, host: string, port: number, deadline: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let received = Buffer.alloc(0);
    const timer = setTimeout(() => finish(new TimeoutError('no answer before the deadline')), Math.max(0, deadline - performance.now()));
    const finish = (result: number | Error): void => {
      clearTimeout(timer);
      socket.removeAllListeners('data');
      socket.removeAllListeners('end');
      socket.removeAllListeners('error');
      socket.on('error', () => {});
      socket.destroy();
      if (typeof result === 'number') resolve(result);
      else reject(result);
    };
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n');
      if (end === -1 && received.length < MAX_STATUS_LINE_BYTES) {
        // Not HTTP as soon as the bytes so far cannot start a status line.
        if (!'HTTP/1.'.startsWith(received.subarray(0, 7).toString('latin1'))) finish(new HttpProtocolError('the answer is not HTTP'));
        return;
      }
      const match = STATUS_LINE.exec(received.subarray(0, end === -1 ? received.length : end).toString('latin1'));
      finish(match ? Number(match[1]) : new HttpProtocolError('the answer is not HTTP'));
    });
    socket.on('end', () => finish(Object.assign(new Error('closed without an answer'), { code: 'ECONNRESET' })));
    socket.on('error', (err) => finish(err));
    const hostHeader = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    socket.write(`GET / HTTP/1.1\r\nHost: ${hostHeader}\r\nUser-Agent: crowsnest-guard-sidecar\r\nAccept: */*\r\nConnection: close\r\n\r\n`);
  });
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
