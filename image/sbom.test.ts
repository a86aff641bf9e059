import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DebianPackage } from './debian.ts';
import { type SbomInput, spdxDocument } from './sbom.ts';

const libc: DebianPackage = {
  name: 'libc6', version: '2.36-9+deb12u14', architecture: 'amd64', source: 'glibc', sourceVersion: '2.36-9+deb12u14',
  control: 'Package: libc6\n', debPath: '/x.deb', sha256: 'ab'.repeat(32), pinned: true,
};
const input: SbomInput = {
  imageName: 'crowsnest', version: '0.1.0', gitCommit: 'abc', createdSeconds: 0, distro: 'debian-12',
  debian: [libc, { ...libc, name: 'tzdata', version: '2026f-0+deb12u1', architecture: 'all', source: 'tzdata', sourceVersion: '2026f-0+deb12u1', pinned: false }],
  npm: [{ name: 'undici', version: '8.12.4', license: 'MIT', integrity: `sha512-${Buffer.alloc(64, 1).toString('base64')}` }, { name: '@pinojs/redact', version: '0.4.0' }],
  node: { version: '24.21.0', sha256: 'cd'.repeat(32) },
};
type Doc = { packages: Array<{ name: string; SPDXID: string; comment?: string; licenseDeclared: string; checksums?: Array<{ algorithm: string; checksumValue: string }>; externalRefs?: Array<{ referenceLocator: string }> }>; relationships: Array<{ relationshipType: string; relatedSpdxElement: string }>; documentNamespace: string; creationInfo: { created: string } };

describe('SPDX SBOM', () => {
  const doc = spdxDocument(input) as unknown as Doc;
  const purl = (name: string): string | undefined => doc.packages.find((p) => p.name === name)?.externalRefs?.[0]?.referenceLocator;

  it('gives each package a package URL scanners match: Debian with distro and source, npm with its scope encoded', () => {
    assert.equal(purl('libc6'), 'pkg:deb/debian/libc6@2.36-9%2Bdeb12u14?arch=amd64&distro=debian-12&upstream=glibc');
    assert.equal(purl('tzdata'), 'pkg:deb/debian/tzdata@2026f-0%2Bdeb12u1?arch=all&distro=debian-12');
    assert.equal(purl('@pinojs/redact'), 'pkg:npm/%40pinojs/redact@0.4.0');
    assert.equal(purl('node'), 'pkg:generic/node@24.21.0');
  });

  it('says when a Debian package is not the pinned version, and carries npm licences and checksums', () => {
    assert.match(doc.packages.find((p) => p.name === 'tzdata')?.comment ?? '', /not the version image\/debian.lock pins/);
    assert.equal(doc.packages.find((p) => p.name === 'libc6')?.comment, undefined);
    const undici = doc.packages.find((p) => p.name === 'undici');
    assert.equal(undici?.licenseDeclared, 'MIT');
    assert.deepEqual(undici?.checksums, [{ algorithm: 'SHA512', checksumValue: '01'.repeat(64) }]);
    assert.equal(doc.packages.find((p) => p.name === '@pinojs/redact')?.licenseDeclared, 'NOASSERTION');
  });

  it('has the image contain every package, and is the same document for the same input', () => {
    const contained = doc.relationships.filter((r) => r.relationshipType === 'CONTAINS').map((r) => r.relatedSpdxElement);
    assert.deepEqual(contained.sort(), doc.packages.filter((p) => p.SPDXID !== 'SPDXRef-Image').map((p) => p.SPDXID).sort());
    assert.equal(new Set(doc.packages.map((p) => p.SPDXID)).size, doc.packages.length, 'ids are unique');
    assert.equal(JSON.stringify(spdxDocument({ ...input, npm: [...input.npm].reverse() })), JSON.stringify(doc));
    assert.equal(doc.creationInfo.created, '1970-01-01T00:00:00Z');
    assert.notEqual((spdxDocument({ ...input, version: '0.2.0' }) as unknown as Doc).documentNamespace, doc.documentNamespace);
  });
});
