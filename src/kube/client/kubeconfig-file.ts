/**
 * Reading kubeconfig files (YAML or JSON) into {@link ClientConfigEntries}, and merging several
 * of them the way kubectl merges a `KUBECONFIG` list.
 *
 * Parsing is lenient where kubectl is lenient (unknown fields, entries nobody selects) and strict
 * where a mistake would silently change what we connect to (a list that is not a list, a name
 * missing). Relative file paths inside a file are resolved against that file's directory, as
 * kubectl does, so the entries carry absolute paths from here on.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { boolCoreTag, FAILSAFE_SCHEMA, load, nullCoreTag, Schema } from 'js-yaml';
import type { ExecConfig } from './exec-credential.ts';
import { EXEC_EXTENSION_NAME, type ClientConfigEntries, type Cluster, type Context, type User } from './kubeconfig.ts';

/**
 * Strings, lists, maps, null and booleans — but no numbers: an unquoted `token: 0123` or
 * `password: 1e5` must stay the string it was written as, which YAML's core schema would not keep.
 */
const KUBECONFIG_SCHEMA = new Schema([...FAILSAFE_SCHEMA.tags, nullCoreTag, boolCoreTag]);

const NO_ENTRIES: ClientConfigEntries = { clusters: [], users: [], contexts: [], currentContext: '' };

/**
 * Reads and parses the kubeconfig at `path`.
 *
 * @throws Error naming `path` when it cannot be read, is not YAML, or has a malformed entry.
 */
export function readKubeconfigFile(path: string): ClientConfigEntries {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${path}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  return parseKubeconfig(text, path);
}

/**
 * Parses kubeconfig `text` read from `path` (used for relative paths and in errors). An empty
 * file is an empty configuration, as for kubectl.
 */
export function parseKubeconfig(text: string, path: string): ClientConfigEntries {
  let doc: unknown;
  try {
    // js-yaml refuses an empty document; kubectl reads it as an empty config.
    const onlyComments = text.replace(/^\s*#.*$/gm, '').trim() === '';
    doc = onlyComments ? null : load(text, { schema: KUBECONFIG_SCHEMA });
  } catch (err) {
    throw new Error(`${path} is not valid YAML: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`, { cause: err });
  }
  if (doc === null || doc === undefined) return NO_ENTRIES;
  const reader = new EntryReader(path);
  const root = reader.map(doc, 'the document');
  return {
    clusters: reader.list(root['clusters'], 'clusters').map((item, i) => reader.cluster(item, `clusters[${i}]`)),
    users: reader.list(root['users'], 'users').map((item, i) => reader.user(item, `users[${i}]`)),
    contexts: reader.list(root['contexts'], 'contexts').map((item, i) => reader.context(item, `contexts[${i}]`)),
    currentContext: reader.string(root['current-context'], 'current-context') ?? '',
  };
}

/**
 * Merges configurations with kubectl's rules: for clusters, users and contexts of the same name
 * the first file wins, and so does the first file that sets `current-context`.
 */
export function mergeKubeconfigs(files: readonly ClientConfigEntries[]): ClientConfigEntries {
  const clusters: Cluster[] = [];
  const users: User[] = [];
  const contexts: Context[] = [];
  let currentContext = '';
  for (const file of files) {
    appendNew(clusters, file.clusters);
    appendNew(users, file.users);
    appendNew(contexts, file.contexts);
    if (!currentContext && file.currentContext) currentContext = file.currentContext;
  }
  return { clusters, users, contexts, currentContext };
}

function appendNew<T extends { readonly name: string }>(into: T[], from: readonly T[]): void {
  for (const item of from) if (!into.some((existing) => existing.name === item.name)) into.push(item);
}

/** Reads the entries of one file; every error names the file and the field. */
class EntryReader {
  private readonly path: string;
  private readonly dir: string;

  constructor(path: string) {
    this.path = path;
    this.dir = dirname(resolve(path));
  }

  cluster(item: unknown, where: string): Cluster {
    const entry = this.map(item, where);
    const name = this.name(entry, where);
    const fields = this.map(entry['cluster'] ?? {}, `${where}.cluster`);
    const at = (field: string): string => `${where}.cluster.${field}`;
    const caData = this.base64(fields['certificate-authority-data'], at('certificate-authority-data'));
    const caFile = this.file(fields['certificate-authority'], at('certificate-authority'));
    const tlsServerName = this.string(fields['tls-server-name'], at('tls-server-name'));
    const proxyUrl = this.string(fields['proxy-url'], at('proxy-url'));
    const execExtension = this.list(fields['extensions'], at('extensions'))
      .map((ext, i) => this.map(ext, `${at('extensions')}[${i}]`))
      .find((ext) => ext['name'] === EXEC_EXTENSION_NAME)?.['extension'];
    return {
      name,
      server: this.string(fields['server'], at('server')) ?? '',
      ...(caData ? { caData } : {}),
      ...(caFile ? { caFile } : {}),
      skipTLSVerify: this.bool(fields['insecure-skip-tls-verify'], at('insecure-skip-tls-verify')),
      ...(tlsServerName ? { tlsServerName } : {}),
      ...(proxyUrl ? { proxyUrl } : {}),
      ...(execExtension !== undefined ? { execExtension } : {}),
    };
  }

  user(item: unknown, where: string): User {
    const entry = this.map(item, where);
    const name = this.name(entry, where);
    const fields = this.map(entry['user'] ?? {}, `${where}.user`);
    const at = (field: string): string => `${where}.user.${field}`;
    const authProvider = fields['auth-provider'];
    return withoutUndefined<User>({
      name,
      token: this.string(fields['token'], at('token')),
      tokenFile: this.file(fields['tokenFile'], at('tokenFile')),
      username: this.string(fields['username'], at('username')),
      password: this.string(fields['password'], at('password')),
      certData: this.base64(fields['client-certificate-data'], at('client-certificate-data')),
      certFile: this.file(fields['client-certificate'], at('client-certificate')),
      keyData: this.base64(fields['client-key-data'], at('client-key-data')),
      keyFile: this.file(fields['client-key'], at('client-key')),
      exec: isSet(fields['exec']) ? this.exec(fields['exec'], at('exec')) : undefined,
      authProvider: isSet(authProvider)
        ? { name: this.string(this.map(authProvider, at('auth-provider'))['name'], at('auth-provider.name')) ?? '' }
        : undefined,
      impersonates: ['as', 'as-uid', 'as-groups', 'as-user-extra'].some((field) => isSet(fields[field])) || undefined,
    });
  }

  context(item: unknown, where: string): Context {
    const entry = this.map(item, where);
    const name = this.name(entry, where);
    const fields = this.map(entry['context'] ?? {}, `${where}.context`);
    const namespace = this.string(fields['namespace'], `${where}.context.namespace`);
    return {
      name,
      cluster: this.string(fields['cluster'], `${where}.context.cluster`) ?? '',
      user: this.string(fields['user'], `${where}.context.user`) ?? '',
      ...(namespace ? { namespace } : {}),
    };
  }

  private exec(value: unknown, where: string): ExecConfig {
    const fields = this.map(value, where);
    const command = this.string(fields['command'], `${where}.command`);
    if (!command) throw this.error(`${where}.command is required`);
    const apiVersion = this.string(fields['apiVersion'], `${where}.apiVersion`);
    if (!apiVersion) throw this.error(`${where}.apiVersion is required`);
    const installHint = this.string(fields['installHint'], `${where}.installHint`);
    return {
      apiVersion,
      // kubectl resolves a command with a directory part (./bin/plugin) against the file; a bare
      // name is looked up on PATH.
      command: command.includes('/') && !isAbsolute(command) ? resolve(this.dir, command) : command,
      args: this.list(fields['args'], `${where}.args`).map((arg, i) => this.string(arg, `${where}.args[${i}]`) ?? ''),
      env: this.list(fields['env'], `${where}.env`).map((item, i) => {
        const variable = this.map(item, `${where}.env[${i}]`);
        const name = this.string(variable['name'], `${where}.env[${i}].name`);
        if (!name) throw this.error(`${where}.env[${i}].name is required`);
        return { name, value: this.string(variable['value'], `${where}.env[${i}].value`) ?? '' };
      }),
      ...(installHint ? { installHint } : {}),
      provideClusterInfo: this.bool(fields['provideClusterInfo'], `${where}.provideClusterInfo`),
      interactiveMode: this.string(fields['interactiveMode'], `${where}.interactiveMode`) || 'IfAvailable',
    };
  }

  map(value: unknown, where: string): Record<string, unknown> {
    if (value === null) return {};
    if (typeof value !== 'object' || Array.isArray(value)) throw this.error(`${where} must be a mapping`);
    return value as Record<string, unknown>;
  }

  list(value: unknown, where: string): unknown[] {
    if (value === null || value === undefined) return [];
    if (!Array.isArray(value)) throw this.error(`${where} must be a list`);
    return value;
  }

  string(value: unknown, where: string): string | undefined {
    if (value === null || value === undefined) return undefined;
    if (typeof value !== 'string') throw this.error(`${where} must be a string`);
    return value;
  }

  private name(entry: Record<string, unknown>, where: string): string {
    const name = this.string(entry['name'], `${where}.name`);
    if (!name) throw this.error(`${where} has no name`);
    return name;
  }

  private bool(value: unknown, where: string): boolean {
    if (value === null || value === undefined) return false;
    if (typeof value !== 'boolean') throw this.error(`${where} must be true or false`);
    return value;
  }

  private base64(value: unknown, where: string): Buffer | undefined {
    const text = this.string(value, where);
    if (!text) return undefined;
    if (!/^[A-Za-z0-9+/=\s_-]*$/.test(text)) throw this.error(`${where} is not base64`);
    return Buffer.from(text, 'base64');
  }

  private file(value: unknown, where: string): string | undefined {
    const path = this.string(value, where);
    if (!path) return undefined;
    return isAbsolute(path) ? path : resolve(this.dir, path);
  }

  private error(message: string): Error {
    return new Error(`${this.path}: ${message}`);
  }
}

/** `value` without its undefined properties, so entries compare and print without noise. */
function withoutUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

function isSet(value: unknown): boolean {
  if (value === null || value === undefined || value === '') return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === 'object') return Object.keys(value).length > 0;
  return true;
}
