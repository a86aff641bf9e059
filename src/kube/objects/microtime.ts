/**
 * Kubernetes `MicroTime` values (Event `eventTime`, Lease `renewTime`, …). The API server parses
 * them with exactly six fractional digits and rejects the three that `Date.toJSON` writes.
 */

/** `ms` (epoch milliseconds) as a MicroTime string: `2023-11-14T22:13:20.123000Z`. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}
