/**
 * The product's own version, for `crowsnest version`, the `crowsnest_build_info` metric and the
 * startup log line. package.json is the single source: releases bump it, nothing else.
 */
import { readFileSync } from 'node:fs';

/** What this build is. */
export interface BuildInfo {
  /** Product version from package.json, e.g. `0.1.0`. */
  readonly version: string;
  /** Git commit the image was built from (`CROWSNEST_GIT_COMMIT`, set by the image build); absent in a checkout. */
  readonly gitCommit?: string;
  /** Node.js running us, e.g. `v24.21.0`. */
  readonly nodeVersion: string;
}

/** package.json sits at the repository root, one level above `src/`. */
const PACKAGE_JSON_URL = new URL('../package.json', import.meta.url);

/** The `version` field of package.json. Read once; throws if the checkout is broken. */
export const version: string = readPackageVersion();

function readPackageVersion(): string {
  const manifest: unknown = JSON.parse(readFileSync(PACKAGE_JSON_URL, 'utf8'));
  const found = (manifest as { version?: unknown }).version;
  if (typeof found !== 'string' || found === '') {
    throw new Error(`${PACKAGE_JSON_URL.pathname} has no "version" field`);
  }
  return found;
}

/**
 * The build information of this process.
 *
 * @param env where to read `CROWSNEST_GIT_COMMIT`; default `process.env`.
 */
export function buildInfo(env: Readonly<Record<string, string | undefined>> = process.env): BuildInfo {
  const gitCommit = env['CROWSNEST_GIT_COMMIT']?.trim();
  return gitCommit ? { version, gitCommit, nodeVersion: process.version } : { version, nodeVersion: process.version };
}
