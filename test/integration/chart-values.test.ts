/**
 * The chart's values: `values.schema.json` refuses what the chart does not know (helm names the
 * key), declares everything the templates read, the README documents and the tests set; and
 * k8s-collector's chart values (top level: clusterId, accessKey, secretKey, schedule, addTypes,
 * removeTypes) install the collector. Rendered with the testbed's helm (`helm template`).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile, writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { DEFAULT_TYPE_SELECTORS } from '../../src/inventory/types.ts';
import { testbedChartValues } from '../../testbed/images.ts';
import { chart, helmTemplate, repo } from './helm.ts';
import { testbed } from './testbed.ts';

const run = promisify(execFile);

interface Schema {
  type?: string | string[];
  properties?: Record<string, Schema>;
  additionalProperties?: boolean | Schema;
}

/** Whether `path` (`inventory.reports.keepLast`) is a value the schema declares (free-form objects take anything below). */
function declared(schema: Schema, path: string): boolean {
  let node: Schema | undefined = schema;
  for (const key of path.split('.')) {
    if (!node) return false;
    if (node.properties && key in node.properties) node = node.properties[key];
    else if (typeof node.additionalProperties === 'object') node = node.additionalProperties;
    else if (node.additionalProperties === false) return false;
    else return true; // a free-form object (resources, nodeSelector, …)
  }
  return true;
}

/** Renders the chart; `{ ok: false, err }` with helm's message when it refuses. */
async function render(args: readonly string[]): Promise<{ ok: true; out: string } | { ok: false; err: string }> {
  try {
    return { ok: true, out: await helmTemplate('values', 'values-test', args) };
  } catch (err) {
    return { ok: false, err: String((err as { stderr?: string }).stderr ?? err) };
  }
}

/** The YAML documents of `out` holding `kind: <kind>`, as text. */
function documents(out: string, kind: string): string[] {
  return out.split(/^---$/m).filter((doc) => new RegExp(`^kind: ${kind}$`, 'm').test(doc));
}

describe('chart values and their schema', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });
  const valuesFile = async (text: string): Promise<string> => {
    const dir = await mkdtemp(join(tmpdir(), 'crowsnest-values-'));
    dirs.push(dir);
    await writeFile(join(dir, 'values.yaml'), text);
    return join(dir, 'values.yaml');
  };

  it('lints and renders with the defaults', async () => {
    const plane = await testbed();
    const lint = await run(join(plane.binDir, 'helm'), ['lint', chart, '--kube-version', 'v1.35.4']);
    assert.match(lint.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    assert.ok((await render([])).ok);
  });

  for (const [value, key, at] of [
    ['foo=1', 'foo', ''],
    ['inventory.enbled=true', 'enbled', '/inventory'],
    ['inventory.reports.persistence.sise=2Gi', 'sise', '/inventory/reports/persistence'],
    ['fetchEverything=false', 'fetchEverything', ''],
  ] as const) {
    it(`refuses ${value}, naming the key`, async () => {
      const result = await render(['--set', value]);
      assert.equal(result.ok, false, `${value} was accepted`);
      if (!result.ok) assert.match(result.err, new RegExp(`at '${at}': additional properties '${key}' not allowed`));
    });
  }

  it('refuses a value of the wrong type, naming it', async () => {
    const result = await render(['--set', 'prober.podMonitor.enabled=sometimes']);
    assert.equal(result.ok, false);
    if (!result.ok) assert.match(result.err, /prober\/podMonitor\/enabled/);
  });

  it('declares every value the templates read', async () => {
    const schema = JSON.parse(await readFile(join(chart, 'values.schema.json'), 'utf8')) as Schema;
    const aliases: Record<string, string> = { $inv: 'inventory', $p: 'ports' };
    const used = new Set<string>();
    for (const name of await readdir(join(chart, 'templates'))) {
      const text = await readFile(join(chart, 'templates', name), 'utf8');
      for (const match of text.matchAll(/\.Values((?:\.[A-Za-z][A-Za-z0-9]*)+)/g)) used.add(match[1]!.slice(1));
      for (const match of text.matchAll(/(\$inv|\$p)((?:\.[A-Za-z][A-Za-z0-9]*)+)/g)) used.add(`${aliases[match[1]!]}${match[2]}`);
    }
    assert.ok(used.size > 50, `found ${used.size} values`);
    const missing = [...used].filter((path) => !declared(schema, path));
    assert.deepEqual(missing, []);
  });

  it('declares every value the README documents and the integration tests set', async () => {
    const schema = JSON.parse(await readFile(join(chart, 'values.schema.json'), 'utf8')) as Schema;
    const sections = '(?:image|operator|logaccess|metrics|inventory|ports|webhook|prober|guard)';
    const documented = [...(await readFile(join(repo, 'README.md'), 'utf8')).matchAll(new RegExp(`\`(${sections}(?:\\.[A-Za-z]+)+)(?=[\`=\\s])`, 'g'))].map((m) => m[1]!);
    const set: string[] = [];
    const testsDir = join(repo, 'test', 'integration');
    for (const name of await readdir(testsDir)) {
      if (!name.endsWith('.ts') || name === 'chart-values.test.ts') continue; // this file sets wrong ones on purpose
      const text = await readFile(join(testsDir, name), 'utf8');
      for (const match of text.matchAll(new RegExp(`['\`](${sections}(?:\\.[A-Za-z]+)+)=`, 'g'))) set.push(match[1]!);
    }
    assert.ok(documented.length > 10 && set.length > 10, `${documented.length} documented, ${set.length} set`);
    assert.deepEqual([...new Set([...documented, ...set])].filter((path) => !declared(schema, path)), []);
  });

  it('accepts the testbed\'s values file (.cluster/values-testbed.yaml)', async () => {
    // What testbed code writes, for an image of the testbed's registry (the function is pure).
    const text = testbedChartValues({ crowsnest: '127.0.0.1:5000/crowsnest:0.1.0' }, { crowsnest: `sha256:${'ab'.repeat(32)}` });
    assert.ok(text);
    const result = await render(['-f', await valuesFile(text)]);
    assert.ok(result.ok, result.ok ? '' : result.err);
  });

  it('collects the CLI\'s default types, no more and no fewer', async () => {
    const result = await render(['--set', 'inventory.enabled=true', '--set', 'inventory.clusterId=c', '--show-only', 'templates/inventory.yaml']);
    assert.ok(result.ok, result.ok ? '' : result.err);
    const resources = /^ {2}resources: "([^"]*)"$/m.exec(documents(result.out, 'ConfigMap')[0] ?? '')?.[1];
    assert.deepEqual(new Set(resources?.split(',')), new Set(DEFAULT_TYPE_SELECTORS));
  });

  it('installs the collector from k8s-collector\'s chart values, top level as that chart spells them', async () => {
    // A values file of k8s-collector's chart (charts/chart/values.yaml), as its users have one.
    const seedValues = await valuesFile([
      'clusterId: "prod-eu"',
      'schedule: "*/5 * * * *"',
      'accessKey: "ak-seed"',
      'secretKey: "sk-seed"',
      'addTypes: [events, secrets]',
      'removeTypes: [leases]',
      '',
    ].join('\n'));
    const result = await render(['-f', seedValues, '--show-only', 'templates/inventory.yaml']);
    assert.ok(result.ok, result.ok ? '' : result.err);
    const cronJob = documents(result.out, 'CronJob')[0] ?? '';
    assert.match(cronJob, /schedule: "\*\/5 \* \* \* \*"/);
    assert.match(cronJob, /args: \["inventory", "collect", "prod-eu",/);
    const secret = documents(result.out, 'Secret')[0] ?? '';
    assert.match(secret, /accessKey: "ak-seed"/);
    assert.match(secret, /secretKey: "sk-seed"/);
    const configMap = documents(result.out, 'ConfigMap')[0] ?? '';
    assert.match(configMap, /addTypes: "events,secrets"/);
    assert.match(configMap, /removeTypes: "leases"/);
    assert.doesNotMatch(configMap, /leases\.coordination\.k8s\.io/, 'a removed type is not in the set');
    const role = documents(result.out, 'ClusterRole').find((doc) => /name: values-crowsnest-inventory$/m.test(doc)) ?? '';
    assert.match(role, /apiGroups: \[""\]\n {4}resources: \["events","secrets"\]\n {4}verbs: \["get", "list"\]/, 'added types are granted');
    assert.doesNotMatch(role, /leases/, 'a removed type is not granted');
  });

  it('refuses a top-level clusterId the collector would refuse, saying which value', async () => {
    const result = await render(['--set', 'clusterId=Prod EU']);
    assert.equal(result.ok, false);
    if (!result.ok) assert.match(result.err, /inventory\.clusterId \(or k8s-collector's top-level clusterId\) is required and must match/);
  });

  it('renders --set addTypes=… (which rendered nothing before) and takes the tool\'s apiEndpoint', async () => {
    const result = await render(['--set', 'clusterId=c1', '--set', 'addTypes={events}', '--set', 'apiEndpoint=https://collector.example', '--show-only', 'templates/inventory.yaml']);
    assert.ok(result.ok, result.ok ? '' : result.err);
    const configMap = documents(result.out, 'ConfigMap')[0] ?? '';
    assert.match(configMap, /addTypes: "events"/);
    assert.match(configMap, /endpoint: "https:\/\/collector.example"/);
  });
});
