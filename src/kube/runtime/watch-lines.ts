/**
 * The framing of a Kubernetes watch response: newline-delimited JSON, one `{"type","object"}`
 * event per line, arriving in chunks that cut lines (and multi-byte characters) anywhere.
 *
 * A line that is not a JSON object with a string `type` is *malformed*: a proxy that injects
 * text, a truncated line, a server bug. It is counted and reported, never passed on and never
 * silently dropped (client-node's Watch drops them without a trace).
 */

/** One watch event as the server framed it; `object` is whatever the line held. */
export interface RawWatchEvent {
  readonly type: string;
  readonly object: unknown;
}

export interface WatchLineDecoderOptions {
  readonly onEvent: (event: RawWatchEvent) => void;
  /** Called for each malformed line (with at most its first 200 characters, for a log line). */
  readonly onMalformed?: (excerpt: string) => void;
}

const EXCERPT_CHARS = 200;
const NEWLINE = 0x0a;

export class WatchLineDecoder {
  private readonly options: WatchLineDecoderOptions;
  private readonly decoder = new TextDecoder();
  /** Text of the line begun in an earlier chunk. */
  private partial = '';
  /** Lines that were not watch events, so far. */
  malformed = 0;

  constructor(options: WatchLineDecoderOptions) {
    this.options = options;
  }

  /** Feeds one chunk of the response body; complete lines are decoded at once. */
  push(chunk: Uint8Array): void {
    let start = 0;
    for (let newline = chunk.indexOf(NEWLINE); newline >= 0; newline = chunk.indexOf(NEWLINE, start)) {
      // Decoding up to the newline byte (never inside a multi-byte character: 0x0a is ASCII).
      const line = this.partial + this.decoder.decode(chunk.subarray(start, newline), { stream: true }) + this.decoder.decode();
      this.partial = '';
      this.line(line);
      start = newline + 1;
    }
    if (start < chunk.length) this.partial += this.decoder.decode(chunk.subarray(start), { stream: true });
  }

  /**
   * The stream ended: a last line without its newline is decoded too (servers end every event
   * with one, so a cut-off line shows up as malformed).
   */
  end(): void {
    const rest = this.partial + this.decoder.decode();
    this.partial = '';
    this.line(rest);
  }

  private line(text: string): void {
    const line = text.trim();
    if (!line) return;
    let event: { type?: unknown; object?: unknown } | null;
    try {
      event = JSON.parse(line) as typeof event;
    } catch {
      this.reject(line);
      return;
    }
    if (typeof event !== 'object' || event === null || typeof event.type !== 'string') {
      this.reject(line);
      return;
    }
    this.options.onEvent({ type: event.type, object: event.object });
  }

  private reject(line: string): void {
    this.malformed++;
    this.options.onMalformed?.(line.slice(0, EXCERPT_CHARS));
  }
}
