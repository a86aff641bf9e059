/**
 * The CA bundle an injecting webhook hands to the processes it injects: `ca.crt` beside the
 * webhook server's serving certificate, read again when the certificate is rotated.
 */
import { readFileSync, statSync } from 'node:fs';

/**
 * A PEM file read again when it changes (checked by its size and mtime at most once a second),
 * for the CA bundle: `ca.crt` beside the serving certificate.
 */
export class WatchedPemFile {
  private readonly path: string;
  private lastCheckMs: number | undefined;
  private stamp = '';
  private content: string | undefined;

  constructor(path: string) {
    this.path = path;
  }

  /** The file's content, or undefined when it is missing or holds no certificate. */
  read(nowMs = Date.now()): string | undefined {
    if (this.lastCheckMs !== undefined && nowMs - this.lastCheckMs < 1000) return this.content;
    this.lastCheckMs = nowMs;
    try {
      const stat = statSync(this.path);
      const stamp = `${stat.size}/${stat.mtimeMs}/${stat.ino}`;
      if (stamp !== this.stamp) {
        const text = readFileSync(this.path, 'utf8');
        this.content = text.includes('-----BEGIN CERTIFICATE-----') ? text : undefined;
        this.stamp = stamp;
      }
    } catch {
      this.content = undefined;
      this.stamp = '';
    }
    return this.content;
  }
}
