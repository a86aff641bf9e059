import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, test } from 'node:test';
import { describeFlag, envVarFor, flag, FlagResolver, OptionError, readConfigDirectory } from './flags.ts';
import { parseBool, parsePositiveInteger } from './flag-values.ts';

test('env variable names are CROWSNEST_ plus the flag in upper snake case', () => {
  assert.equal(envVarFor('health-probe-bind-address'), 'CROWSNEST_HEALTH_PROBE_BIND_ADDRESS');
  assert.equal(envVarFor('workers'), 'CROWSNEST_WORKERS');
});

describe('FlagResolver', () => {
  const count = flag({ name: 'page-size', valueName: '<n>', description: 'objects per page', default: '500', env: ['SEED_PAGE_SIZE'], configKey: 'pageSize', parse: parsePositiveInteger });
  const optional = flag({ name: 'label-selector', valueName: '<selector>', description: 'only these', parse: (v) => String(v) });
  const local = flag({ name: 'proc', valueName: '<dir>', description: 'proc root', env: false, parse: (v) => String(v) });
  const config = { dir: '/cfg', values: { pageSize: '30' } };

  const precedence: { name: string; flags?: Record<string, string>; env?: Record<string, string>; withConfig?: boolean; expected: number }[] = [
    { name: 'the flag wins over everything', flags: { 'page-size': '10' }, env: { CROWSNEST_PAGE_SIZE: '20', SEED_PAGE_SIZE: '25' }, withConfig: true, expected: 10 },
    { name: 'CROWSNEST_<FLAG> wins over the aliases and the config directory', env: { CROWSNEST_PAGE_SIZE: '20', SEED_PAGE_SIZE: '25' }, withConfig: true, expected: 20 },
    { name: 'an alias is read after CROWSNEST_<FLAG>', env: { SEED_PAGE_SIZE: '25' }, withConfig: true, expected: 25 },
    { name: 'an empty variable counts as unset', env: { CROWSNEST_PAGE_SIZE: '', SEED_PAGE_SIZE: '' }, withConfig: true, expected: 30 },
    { name: 'the config directory comes before the default', withConfig: true, expected: 30 },
    { name: 'the default comes last', expected: 500 },
  ];
  for (const c of precedence) {
    test(c.name, () => {
      const flags = new FlagResolver({ flags: c.flags ?? {}, env: c.env ?? {}, ...(c.withConfig ? { config } : {}) });
      assert.equal(flags.get(count), c.expected);
    });
  }

  test('a computed fallback is parsed like any value and loses to every source', () => {
    assert.equal(new FlagResolver({ flags: {}, env: {} }).get(optional, 'a=b'), 'a=b');
    assert.equal(new FlagResolver({ flags: {}, env: { CROWSNEST_LABEL_SELECTOR: 'c=d' } }).get(optional, 'a=b'), 'c=d');
    assert.equal(new FlagResolver({ flags: {}, env: {} }).get(count, '7'), 7, 'a fallback wins over the default');
  });

  test('a flag without default, fallback or source is undefined, and not given', () => {
    const flags = new FlagResolver({ flags: { 'label-selector': undefined }, env: {} });
    assert.equal(flags.get(optional), undefined);
    assert.equal(flags.given(optional), false);
    assert.equal(flags.given(count), false, 'a default is not "given"');
  });

  test('a flag with env: false reads no variable', () => {
    assert.equal(new FlagResolver({ flags: {}, env: { CROWSNEST_PROC: '/host/proc' } }).get(local), undefined);
  });

  const errors: { name: string; flags?: Record<string, string>; env?: Record<string, string>; message: string }[] = [
    { name: 'a bad flag names only the flag', flags: { 'page-size': 'lots' }, message: 'invalid value "lots" for --page-size: must be a whole number of at least 1' },
    { name: 'a bad variable names it', env: { CROWSNEST_PAGE_SIZE: 'lots' }, message: 'invalid value "lots" for --page-size (from CROWSNEST_PAGE_SIZE): must be a whole number of at least 1' },
    { name: 'a bad alias names it', env: { SEED_PAGE_SIZE: '0' }, message: 'invalid value "0" for --page-size (from SEED_PAGE_SIZE): must be a whole number of at least 1' },
  ];
  for (const c of errors) {
    test(`${c.name}, in an OptionError for the flag`, () => {
      assert.throws(
        () => new FlagResolver({ flags: c.flags ?? {}, env: c.env ?? {} }).get(count),
        (err: unknown) => err instanceof OptionError && err.flag === '--page-size' && err.message === c.message,
      );
    });
  }

  test('a bad config value names its file', () => {
    assert.throws(() => new FlagResolver({ flags: {}, env: {}, config: { dir: '/cfg', values: { pageSize: 'x' } } }).get(count), {
      message: 'invalid value "x" for --page-size (from /cfg/pageSize): must be a whole number of at least 1',
    });
  });

  test('showValue decides how a bad value is quoted', () => {
    const secret = flag({ name: 'endpoint', valueName: '<url>', description: 'where', showValue: () => '***', parse: (): string => {
      throw new Error('no');
    } });
    assert.throws(() => new FlagResolver({ flags: { endpoint: 'https://u:pw@x' }, env: {} }).get(secret), { message: 'invalid value "***" for --endpoint: no' });
  });
});

describe('describeFlag', () => {
  test('says the default and every variable that sets the flag, in the order they are read', () => {
    const reportDir = flag({ name: 'report-dir', valueName: '<dir>', description: 'where reports go', default: './reports', env: ['PATH_REPORTS', 'PATH_REPORT'], parse: String });
    assert.equal(describeFlag(reportDir), 'where reports go (default: ./reports; env: CROWSNEST_REPORT_DIR, PATH_REPORTS, PATH_REPORT)');
  });

  test('prefers defaultText to the raw default, and leaves out what a flag does not have', () => {
    assert.equal(describeFlag(flag({ name: 'keep-last', valueName: '<n>', description: 'runs kept', default: '96', defaultText: '96 (a day)', parse: Number })), 'runs kept (default: 96 (a day); env: CROWSNEST_KEEP_LAST)');
    assert.equal(describeFlag(flag({ name: 'redact', valueName: '[bool]', description: 'redact', default: true, parse: parseBool })), 'redact (default: true; env: CROWSNEST_REDACT)');
    assert.equal(describeFlag(flag({ name: 'proc', valueName: '<dir>', description: 'proc root', env: false, parse: String })), 'proc root');
  });
});

describe('readConfigDirectory', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'crowsnest-config-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  /** Lays `files` out as the kubelet mounts a ConfigMap: `..<timestamp>/` + `..data` + one symlink per key. */
  async function configMapVolume(name: string, files: Record<string, string>): Promise<string> {
    const dir = join(root, name);
    const versioned = join(dir, '..2026_01_02_03_04_05.000000001');
    await mkdir(versioned, { recursive: true });
    for (const [key, value] of Object.entries(files)) await writeFile(join(versioned, key), value);
    await symlink('..2026_01_02_03_04_05.000000001', join(dir, '..data'));
    for (const key of Object.keys(files)) await symlink(join('..data', key), join(dir, key));
    return dir;
  }

  it('reads a mounted ConfigMap through its symlinks, trimming values and skipping hidden entries', async () => {
    const dir = await configMapVolume('mounted', { addTypes: 'secrets\nevents\n', endpoint: '  https://inventory.example.com \n' });
    await writeFile(join(dir, '.hidden'), 'ignored');
    await mkdir(join(dir, 'subdir'));
    assert.deepEqual(readConfigDirectory(dir), { addTypes: 'secrets\nevents', endpoint: 'https://inventory.example.com' });
  });

  it('reads an empty directory as no keys', async () => {
    const dir = join(root, 'empty');
    await mkdir(dir);
    assert.deepEqual(readConfigDirectory(dir), {});
  });

  it('returns undefined for a directory that does not exist', () => {
    assert.equal(readConfigDirectory(join(root, 'missing')), undefined);
  });

  it('throws for a path that is not a directory', async () => {
    const file = join(root, 'a-file');
    await writeFile(file, 'x');
    assert.throws(() => readConfigDirectory(file), { code: 'ENOTDIR' });
  });
});
