/**
 * Reading HTTP response bodies of servers we do not control with a bound: an endpoint answering
 * 200 with an endless body must not fill memory (and, read whole before its status was looked
 * at, it did: 2.7 GB in 10 s). The caller's request signal (a timeout) covers the body too, so a
 * body that trickles in forever ends with the timeout as well.
 */

/** A body read up to a bound. */
export interface BoundedText {
  readonly text: string;
  /** Whether the body went on past the bound (the rest was not read; the stream was cancelled). */
  readonly truncated: boolean;
}

/**
 * Reads at most `maxBytes` bytes of `body` (a Node stream or a web ReadableStream) as UTF-8 and
 * stops reading there: leaving the loop early destroys (or cancels) the stream, which closes
 * its connection instead of draining it.
 */
export async function readBoundedText(body: AsyncIterable<Uint8Array> | null | undefined, maxBytes: number): Promise<BoundedText> {
  if (!body) return { text: '', truncated: false };
  const chunks: Buffer[] = [];
  let bytes = 0;
  let truncated = false;
  for await (const chunk of body) {
    const buffer = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (bytes + buffer.length > maxBytes) {
      chunks.push(buffer.subarray(0, maxBytes - bytes));
      bytes = maxBytes;
      truncated = true;
      break;
    }
    chunks.push(buffer);
    bytes += buffer.length;
  }
  return { text: Buffer.concat(chunks, bytes).toString('utf8'), truncated };
}

/** `text` cut to `maxChars` characters, with `…` when it was longer; for quoting a body in a message. */
export function excerpt(text: string, maxChars: number): string {
  const trimmed = text.trim();
  return trimmed.length > maxChars ? `${trimmed.slice(0, maxChars)}…` : trimmed;
}
