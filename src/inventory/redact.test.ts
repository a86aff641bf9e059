import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import type { KubeObject } from '../kube/objects/resources.ts';
import {
  DEFAULT_REDACTION_OPTIONS,
  HELM_RELEASE_FIELD,
  LAST_APPLIED_ANNOTATION,
  REDACTED,
  redactObject,
  type RedactionOptions,
} from './redact.ts';

const PASSWORD = 'hunter2-Sup3rS3cret';
const MANIFEST_TOKEN = 'manifest-token-0xDEADBEEF';
const CHART_DEFAULT = 'chart-default-admin-pass';
const digest: RedactionOptions = { enabled: true, secretValueDigest: true };

const b64 = (text: string | Buffer): string => Buffer.from(text).toString('base64');
const sha256 = (text: string): string => `sha256:${createHash('sha256').update(text).digest('hex')}`;

/** A Helm 3 release record as Helm writes it: JSON, gzipped, base64'd by Helm. */
function helmRecord(release: unknown, gzip = true): string {
  const json = Buffer.from(JSON.stringify(release));
  return b64(gzip ? gzipSync(json) : json);
}

const release = {
  name: 'shop',
  namespace: 'prod',
  version: 7,
  info: {
    first_deployed: '2024-01-02T03:04:05.123456789Z',
    last_deployed: '2024-05-06T07:08:09.5Z',
    deleted: '',
    description: 'Upgrade complete',
    status: 'deployed',
    notes: `login with ${PASSWORD}`,
  },
  chart: {
    metadata: { name: 'shop-chart', version: '1.2.3', appVersion: '4.5.6', apiVersion: 'v2' },
    templates: [{ name: 'templates/secret.yaml', data: b64(`password: {{ .Values.db.password }} # ${CHART_DEFAULT}`) }],
    values: { db: { password: CHART_DEFAULT } },
  },
  config: { db: { password: PASSWORD } },
  manifest: `---\napiVersion: v1\nkind: Secret\nstringData:\n  token: ${MANIFEST_TOKEN}\n  password: ${PASSWORD}\n`,
};

/** A Helm release Secret as the API returns it: the API's base64 around Helm's record. */
function helmSecret(record: string): KubeObject & Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'helm.sh/release.v1',
    metadata: {
      name: 'sh.helm.release.v1.shop.v7',
      namespace: 'prod',
      labels: { name: 'shop', owner: 'helm', status: 'deployed', version: '7' },
    },
    data: { release: b64(record) },
  };
}

function secret(extra: Record<string, unknown> = {}): KubeObject & Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: {
      name: 'db',
      namespace: 'prod',
      uid: 'u1',
      managedFields: [{ manager: 'kubectl', fieldsV1: { 'f:data': { 'f:password': {} } } }],
      annotations: {
        [LAST_APPLIED_ANNOTATION]: JSON.stringify({ kind: 'Secret', stringData: { password: PASSWORD } }),
        team: 'payments',
      },
    },
    data: { password: b64(PASSWORD), user: b64('app') },
    ...extra,
  };
}

const leaks = (value: unknown, ...needles: string[]): string[] => {
  const text = JSON.stringify(value);
  return needles.filter((needle) => text.includes(needle) || text.includes(b64(needle)));
};

describe('redactObject: Secrets', () => {
  it('keeps Secret keys and replaces every value with a marker', () => {
    const { object, notes } = redactObject(secret({ stringData: { apiKey: PASSWORD } }), DEFAULT_REDACTION_OPTIONS);
    const out = object as Record<string, unknown>;
    assert.deepEqual(out['data'], { password: REDACTED, user: REDACTED });
    assert.deepEqual(out['stringData'], { apiKey: REDACTED });
    assert.equal(out['type'], 'Opaque');
    assert.deepEqual(notes, []);
    assert.deepEqual(leaks(object, PASSWORD), []);
  });

  it('with digests, each value becomes the sha256 of its plain value, as `printf %s value | sha256sum` prints it', () => {
    const { object } = redactObject(secret({ stringData: { apiKey: PASSWORD } }), digest);
    const out = object as Record<string, unknown>;
    assert.deepEqual(out['data'], { password: sha256(PASSWORD), user: sha256('app') });
    assert.deepEqual(out['stringData'], { apiKey: sha256(PASSWORD) });
  });

  it('redacts a Secret-kind object of any API group (fail closed)', () => {
    const { object } = redactObject({ ...secret(), apiVersion: 'example.com/v1' }, DEFAULT_REDACTION_OPTIONS);
    assert.deepEqual(leaks(object, PASSWORD), []);
  });

  const malformed: { name: string; data: unknown; note: RegExp; expected: unknown }[] = [
    { name: 'data that is not a map becomes an empty map', data: [b64(PASSWORD)], note: /data is not a key\/value map/, expected: {} },
    { name: 'a non-string value is still redacted', data: { password: { nested: PASSWORD } }, note: /data\.password is not a string/, expected: { password: REDACTED } },
  ];
  for (const { name, data, note, expected } of malformed) {
    it(`malformed: ${name}, with a note`, () => {
      const { object, notes } = redactObject(secret({ data }), digest);
      assert.deepEqual((object as Record<string, unknown>)['data'], expected);
      assert.match(notes.join('\n'), note);
      assert.deepEqual(leaks({ object, notes }, PASSWORD), []);
    });
  }
});

describe('redactObject: metadata on every kind', () => {
  const cases: { name: string; annotations: Record<string, string> | undefined; expected: Record<string, string> | undefined }[] = [
    { name: 'other annotations are kept', annotations: { [LAST_APPLIED_ANNOTATION]: '{}', team: 'payments' }, expected: { team: 'payments' } },
    { name: 'annotations emptied by the drop disappear', annotations: { [LAST_APPLIED_ANNOTATION]: '{}' }, expected: undefined },
    { name: 'objects without annotations stay without', annotations: undefined, expected: undefined },
  ];
  for (const { name, annotations, expected } of cases) {
    it(`drops managedFields and the last-applied annotation: ${name}`, () => {
      const input: KubeObject = {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'web', namespace: 'prod', managedFields: [{ manager: 'kubectl' }], ...(annotations ? { annotations } : {}) },
      };
      const { object } = redactObject(input, DEFAULT_REDACTION_OPTIONS);
      assert.equal(Object.hasOwn(object.metadata!, 'managedFields'), false);
      assert.deepEqual(object.metadata!.annotations, expected);
      assert.equal(Object.hasOwn(object.metadata!, 'annotations'), expected !== undefined);
      assert.equal(object.metadata!.name, 'web');
    });
  }

  it('removes a Secret value hiding in the last-applied annotation', () => {
    const { object } = redactObject(secret(), DEFAULT_REDACTION_OPTIONS);
    assert.deepEqual(object.metadata!.annotations, { team: 'payments' });
    assert.deepEqual(leaks(object, PASSWORD), []);
  });

  it('leaves ordinary ConfigMaps alone apart from bookkeeping metadata', () => {
    const input = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cfg' }, data: { 'app.conf': 'level=debug' } };
    const { object, notes } = redactObject(input, DEFAULT_REDACTION_OPTIONS);
    assert.equal(object, input, 'nothing to remove: the very same object');
    assert.deepEqual(notes, []);
  });

  it('never mutates the input', () => {
    const input = secret();
    const before = structuredClone(input);
    redactObject(input, digest);
    redactObject(helmSecret(helmRecord(release)), digest);
    assert.deepEqual(input, before);
  });

  it('returns the input untouched when redaction is off (--no-redact)', () => {
    const input = secret();
    const { object, notes } = redactObject(input, { enabled: false, secretValueDigest: true });
    assert.equal(object, input);
    assert.deepEqual(notes, []);
  });
});

describe('redactObject: Helm release records', () => {
  const summary = {
    name: 'shop',
    namespace: 'prod',
    chart: 'shop-chart',
    chartVersion: '1.2.3',
    appVersion: '4.5.6',
    status: 'deployed',
    revision: 7,
    firstDeployed: '2024-01-02T03:04:05.123456789Z',
    lastDeployed: '2024-05-06T07:08:09.5Z',
  };

  for (const gzip of [true, false]) {
    it(`decodes a ${gzip ? 'gzipped' : 'plain (pre-gzip)'} release Secret to its metadata and nothing else`, () => {
      const { object, notes } = redactObject(helmSecret(helmRecord(release, gzip)), DEFAULT_REDACTION_OPTIONS);
      const out = object as Record<string, unknown>;
      assert.deepEqual(out[HELM_RELEASE_FIELD], summary);
      assert.deepEqual(out['data'], { release: REDACTED });
      assert.deepEqual(object.metadata!.labels, { name: 'shop', owner: 'helm', status: 'deployed', version: '7' });
      assert.deepEqual(notes, []);
      assert.deepEqual(leaks(object, PASSWORD, MANIFEST_TOKEN, CHART_DEFAULT, 'Upgrade complete'), []);
    });
  }

  it('decodes a Helm ConfigMap-driver record (one base64 layer) and redacts its data', () => {
    const input = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'sh.helm.release.v1.shop.v7', namespace: 'prod', labels: { owner: 'helm', name: 'shop' } },
      data: { release: helmRecord(release) },
    };
    const { object, notes } = redactObject(input, DEFAULT_REDACTION_OPTIONS);
    assert.deepEqual((object as Record<string, unknown>)[HELM_RELEASE_FIELD], summary);
    assert.deepEqual((object as Record<string, unknown>)['data'], { release: REDACTED });
    assert.deepEqual(notes, []);
    assert.deepEqual(leaks(object, PASSWORD, MANIFEST_TOKEN, CHART_DEFAULT), []);
  });

  it('redacts Helm 2 (Tiller) ConfigMaps without decoding them', () => {
    const input = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'shop.v1', labels: { OWNER: 'TILLER' } }, data: { release: b64(PASSWORD) } };
    const { object, notes } = redactObject(input, DEFAULT_REDACTION_OPTIONS);
    assert.deepEqual((object as Record<string, unknown>)['data'], { release: REDACTED });
    assert.match(notes.join('\n'), /Tiller/);
  });

  it('keeps only well-typed scalars: object-valued fields never reach the summary', () => {
    const hostile = { ...release, name: { password: PASSWORD }, version: '7', info: { status: [PASSWORD] } };
    const { object } = redactObject(helmSecret(helmRecord(hostile)), DEFAULT_REDACTION_OPTIONS);
    assert.deepEqual((object as Record<string, unknown>)[HELM_RELEASE_FIELD], {
      namespace: 'prod', chart: 'shop-chart', chartVersion: '1.2.3', appVersion: '4.5.6',
    });
    assert.deepEqual(leaks(object, PASSWORD), []);
  });

  const undecodable: { name: string; data: unknown; note: RegExp }[] = [
    { name: 'no release key', data: { other: b64(PASSWORD) }, note: /no "release" value/ },
    { name: 'not base64 of JSON', data: { release: b64(b64(`{"config":{"password":"${PASSWORD}"`)) }, note: /not gzip or JSON/ },
    { name: 'truncated gzip', data: { release: b64(b64(gzipSync(JSON.stringify(release)).subarray(0, 40))) }, note: /corrupt or oversized gzip/ },
    { name: 'JSON that is not an object', data: { release: b64(helmRecord([PASSWORD])) }, note: /not a JSON object/ },
  ];
  for (const { name, data, note } of undecodable) {
    it(`an undecodable release (${name}) is still redacted, and a note says why without quoting it`, () => {
      const input = { ...helmSecret(''), data };
      for (const options of [DEFAULT_REDACTION_OPTIONS, digest]) {
        const { object, notes } = redactObject(input, options);
        const out = object as Record<string, unknown>;
        assert.equal(Object.hasOwn(out, HELM_RELEASE_FIELD), false);
        assert.deepEqual(Object.keys(out['data'] as object), Object.keys(data as object));
        assert.equal(notes.length, 1);
        assert.match(notes[0]!, note);
        assert.match(notes[0]!, /helm release could not be decoded/);
        assert.deepEqual(leaks({ object, notes }, PASSWORD, '"config"'), []);
      }
    });
  }
});
