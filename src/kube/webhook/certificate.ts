/**
 * The webhook's serving certificate, read from files (a mounted Secret: `tls.crt`, `tls.key`) and
 * read again when they change, so a rotated certificate is served without a restart.
 *
 * A Secret volume is updated by swapping a symlink (`..data`) in the directory, which `fs.watch`
 * on the directory reports; a poll every few seconds catches what a watch misses (some volume
 * types, editors that write in place). A pair that does not load — half written, or a key that
 * does not match the certificate — is not taken: the previous pair keeps serving until a good one
 * arrives, so a rotation never makes a handshake fail.
 */
import { type FSWatcher, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import type { Server } from 'node:net';
import type { Logger } from '../logger-type.ts';

export interface ServingCertificate {
  readonly context: SecureContext;
  readonly cert: Buffer;
  readonly key: Buffer;
  /** SHA-256 fingerprint of the certificate, as `openssl x509 -fingerprint -sha256` prints it. */
  readonly fingerprint: string;
  /** Expiry, in milliseconds since the epoch. */
  readonly notAfterMs: number;
}

export interface CertificateWatcherOptions {
  readonly certFile: string;
  readonly keyFile: string;
  /** Called with each newly loaded pair (not for the same pair read again). */
  readonly onChange: (certificate: ServingCertificate) => void;
  /** Called when the files changed but do not load; the previous pair stays. */
  readonly onRejected?: (error: Error) => void;
  /** How often the files are read even without a watch event. Default 10 s. */
  readonly pollIntervalMs?: number;
  readonly logger?: Logger;
}

const DEFAULT_POLL_INTERVAL_MS = 10_000;
/** Lets the writes of a rotation (certificate, key, symlink swap) finish before reading. */
const SETTLE_MS = 50;

export class CertificateWatcher {
  private readonly options: CertificateWatcherOptions;
  private current: ServingCertificate | undefined;
  private watchers: FSWatcher[] = [];
  private pollTimer: NodeJS.Timeout | undefined;
  private settleTimer: NodeJS.Timeout | undefined;
  private loading: Promise<boolean> | undefined;
  private reloadAgain = false;

  constructor(options: CertificateWatcherOptions) {
    this.options = options;
  }

  /** The pair being served, if one has loaded. */
  get certificate(): ServingCertificate | undefined {
    return this.current;
  }

  /** Loads the files once (a missing or bad pair is not an error: readiness says so) and starts watching. */
  async start(): Promise<void> {
    await this.reload();
    const dirs = new Set([dirname(this.options.certFile), dirname(this.options.keyFile)]);
    for (const dir of dirs) {
      try {
        const watcher = watch(dir, () => this.scheduleReload());
        watcher.on('error', () => {}); // the directory went away: the poll still runs
        watcher.unref();
        this.watchers.push(watcher);
      } catch {
        // No directory yet (the Secret is not mounted): the poll picks the files up.
      }
    }
    this.pollTimer = setInterval(() => void this.reload(), this.options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS);
    this.pollTimer.unref();
  }

  stop(): void {
    for (const w of this.watchers) w.close();
    this.watchers = [];
    clearInterval(this.pollTimer);
    clearTimeout(this.settleTimer);
  }

  /**
   * Reads the files and takes the pair if it is new and loads. Resolves true when the served pair
   * changed. Concurrent calls share one read (and one more runs after it if asked meanwhile).
   */
  async reload(): Promise<boolean> {
    if (this.loading) {
      // A read is under way and may have read the files before the change this caller saw: it
      // waits for the read that runs after it, not just for the one under way.
      this.reloadAgain = true;
      return await this.loading;
    }
    this.loading = (async () => {
      let changed = await this.load();
      while (this.reloadAgain) {
        this.reloadAgain = false;
        changed = (await this.load()) || changed;
      }
      return changed;
    })();
    try {
      return await this.loading;
    } finally {
      this.loading = undefined;
    }
  }

  private scheduleReload(): void {
    clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => void this.reload(), SETTLE_MS);
    this.settleTimer.unref();
  }

  private async load(): Promise<boolean> {
    let cert: Buffer;
    let key: Buffer;
    try {
      [cert, key] = await Promise.all([readFile(this.options.certFile), readFile(this.options.keyFile)]);
    } catch (err) {
      if (this.current) this.options.logger?.warn({ err: String(err) }, 'webhook certificate files unreadable; serving the previous certificate');
      return false;
    }
    if (this.current && cert.equals(this.current.cert) && key.equals(this.current.key)) return false;
    let loaded: ServingCertificate;
    try {
      const x509 = new X509Certificate(cert);
      loaded = { context: createSecureContext({ cert, key }), cert, key, fingerprint: x509.fingerprint256, notAfterMs: Date.parse(x509.validTo) };
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      this.options.logger?.warn({ err: error.message, certFile: this.options.certFile }, 'webhook certificate does not load (half written, or key and certificate do not match); keeping the previous one');
      this.options.onRejected?.(error);
      return false;
    }
    this.current = loaded;
    this.options.logger?.info({ fingerprint: loaded.fingerprint, notAfter: new Date(loaded.notAfterMs).toISOString() }, 'webhook serving certificate loaded');
    this.options.onChange(loaded);
    return true;
  }
}

/**
 * Starts `certificates` watching, then `server` listening on `port` (every interface unless
 * `host`): a TLS server that serves the watched certificate. A port that cannot be bound stops the
 * watcher again, so a failed start leaves nothing polling.
 */
export async function listenWithCertificates(server: Server, certificates: CertificateWatcher, port: number, host: string | undefined): Promise<void> {
  await certificates.start();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host ?? '', () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    certificates.stop();
    throw err;
  }
}
