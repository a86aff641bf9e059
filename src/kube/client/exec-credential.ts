/**
 * Exec credential plugins (`users[].user.exec` in a kubeconfig): the way managed clusters hand
 * out credentials today (`aws eks get-token`, `gke-gcloud-auth-plugin`, `kubelogin`). Behaves like
 * client-go's `plugin/pkg/client/auth/exec`:
 *
 * - the command runs with the kubeconfig's `args` and `env` on top of our environment, plus
 *   `KUBERNETES_EXEC_INFO` (an `ExecCredential` whose `spec` says whether we are interactive and,
 *   with `provideClusterInfo`, which cluster the credential is for);
 * - it prints an `ExecCredential` whose `status` holds a bearer `token` or a client certificate
 *   and key, optionally with an `expirationTimestamp`;
 * - the result is reused until that timestamp (for ever without one, until the API server answers
 *   401); concurrent requests share one run of the plugin.
 */
import { spawn } from 'node:child_process';
import { realClock, type Clock } from '../clock.ts';

/** API versions of `ExecCredential` we speak; v1alpha1 is gone from client-go too. */
const SUPPORTED_API_VERSIONS: ReadonlySet<string> = new Set(['client.authentication.k8s.io/v1', 'client.authentication.k8s.io/v1beta1']);

/** Most a plugin may print before we call it broken. */
const MAX_OUTPUT_BYTES = 1024 * 1024;
/** How much of the plugin's stderr an error message quotes. */
const STDERR_TAIL_CHARS = 1000;

/** A `user.exec` stanza, with the command path already resolved against the kubeconfig's directory. */
export interface ExecConfig {
  readonly apiVersion: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env: readonly { readonly name: string; readonly value: string }[];
  /** Shown when the command is not found (e.g. how to install it). */
  readonly installHint?: string;
  /** Pass the cluster's connection details in `KUBERNETES_EXEC_INFO`. */
  readonly provideClusterInfo: boolean;
  /** `Never`, `IfAvailable` or `Always`; client-go's default is `IfAvailable`. */
  readonly interactiveMode: string;
}

/** The cluster as `KUBERNETES_EXEC_INFO` describes it (field names as on the wire). */
export interface ExecClusterInfo {
  readonly server: string;
  readonly 'tls-server-name'?: string;
  readonly 'insecure-skip-tls-verify'?: boolean;
  /** Base64 of the PEM CA bundle. */
  readonly 'certificate-authority-data'?: string;
  /** The cluster's `client.authentication.k8s.io/exec` extension, passed through. */
  readonly config?: unknown;
}

/** What a plugin returned, checked. */
export interface ExecCredentialStatus {
  readonly token?: string;
  /** PEM, not base64 (as the plugin prints it). */
  readonly clientCertificateData?: string;
  readonly clientKeyData?: string;
  /** Epoch ms after which the credential must not be used; undefined: no expiry given. */
  readonly expiresAtMs?: number;
}

/** The parts of the machine a plugin run sees; injected so tests control them. */
export interface ExecEnvironment {
  /** Environment the plugin inherits. Default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Default {@link realClock}. */
  readonly clock?: Clock;
  /** Where the plugin's stderr goes (prompts, progress); default our stderr, as kubectl does. */
  readonly stderr?: (chunk: Buffer) => void;
  /** Whether a human can answer prompts. Default: stdin is a terminal. */
  readonly stdinIsTerminal?: boolean;
}

/** Runs one user's exec plugin and caches what it returns. */
export class ExecCredentialPlugin {
  private readonly config: ExecConfig;
  private readonly userName: string;
  private readonly cluster: () => Promise<ExecClusterInfo>;
  private readonly environment: ExecEnvironment;
  private readonly clock: Clock;
  private cached: ExecCredentialStatus | undefined;
  private running: Promise<ExecCredentialStatus> | undefined;

  /**
   * @param cluster the cluster the credential is for; only asked when `provideClusterInfo` is set.
   */
  constructor(config: ExecConfig, userName: string, cluster: () => Promise<ExecClusterInfo>, environment: ExecEnvironment = {}) {
    if (!SUPPORTED_API_VERSIONS.has(config.apiVersion)) {
      throw new Error(
        `exec plugin of user "${userName}": apiVersion "${config.apiVersion}" is not supported; use one of ${[...SUPPORTED_API_VERSIONS].join(', ')}`,
      );
    }
    this.config = config;
    this.userName = userName;
    this.cluster = cluster;
    this.environment = environment;
    this.clock = environment.clock ?? realClock;
  }

  /** The current credential: the cached one while it has not expired, else a fresh run's. */
  async credential(): Promise<ExecCredentialStatus> {
    const cached = this.cached;
    if (cached && (cached.expiresAtMs === undefined || this.clock.now() < cached.expiresAtMs)) return cached;
    this.running ??= this.run().finally(() => {
      this.running = undefined;
    });
    const fresh = await this.running;
    this.cached = fresh;
    return fresh;
  }

  /** Forgets the cached credential, so the next request runs the plugin again (after a 401). */
  invalidate(): void {
    this.cached = undefined;
  }

  private async run(): Promise<ExecCredentialStatus> {
    const interactive = this.config.interactiveMode !== 'Never' && (this.environment.stdinIsTerminal ?? process.stdin.isTTY === true);
    if (this.config.interactiveMode === 'Always' && !interactive) {
      throw this.error('needs an interactive terminal (interactiveMode: Always), and standard input is not one');
    }
    const spec: Record<string, unknown> = { interactive };
    if (this.config.provideClusterInfo) spec['cluster'] = await this.cluster();
    const execInfo = { apiVersion: this.config.apiVersion, kind: 'ExecCredential', spec };
    const env: Record<string, string> = {};
    for (const [name, value] of Object.entries(this.environment.env ?? process.env)) if (value !== undefined) env[name] = value;
    for (const { name, value } of this.config.env) env[name] = value;
    env['KUBERNETES_EXEC_INFO'] = JSON.stringify(execInfo);

    const { code, stdout, stderrTail } = await this.spawn(env, interactive);
    if (code !== 0) {
      throw this.error(`exited with ${code}${stderrTail ? `: ${stderrTail}` : ''}`);
    }
    return this.parse(stdout);
  }

  private spawn(env: Record<string, string>, interactive: boolean): Promise<{ code: number | string; stdout: string; stderrTail: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.config.command, [...this.config.args], { env, stdio: [interactive ? 'inherit' : 'ignore', 'pipe', 'pipe'] });
      const stdout: Buffer[] = [];
      let stdoutBytes = 0;
      let stderrTail = '';
      child.stdout.on('data', (chunk: Buffer) => {
        stdoutBytes += chunk.length;
        if (stdoutBytes > MAX_OUTPUT_BYTES) {
          child.kill();
          reject(this.error(`printed more than ${MAX_OUTPUT_BYTES} bytes`));
          return;
        }
        stdout.push(chunk);
      });
      child.stderr.on('data', (chunk: Buffer) => {
        // Passed on like kubectl does: plugins print prompts and login URLs there.
        (this.environment.stderr ?? ((c: Buffer) => process.stderr.write(c)))(chunk);
        stderrTail = (stderrTail + chunk.toString('utf8')).slice(-STDERR_TAIL_CHARS);
      });
      child.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') {
          const hint = this.config.installHint ? `\n${this.config.installHint.trim()}` : '';
          reject(this.error(`command "${this.config.command}" not found${hint}`));
        } else {
          reject(this.error(`could not be started: ${err.message}`, err));
        }
      });
      child.on('close', (code, signal) => {
        resolve({ code: code ?? `signal ${signal}`, stdout: Buffer.concat(stdout).toString('utf8'), stderrTail: stderrTail.trim() });
      });
    });
  }

  private parse(stdout: string): ExecCredentialStatus {
    let credential: unknown;
    try {
      credential = JSON.parse(stdout);
    } catch {
      throw this.error('did not print an ExecCredential (output is not JSON)');
    }
    if (!isRecord(credential) || credential['kind'] !== 'ExecCredential') throw this.error('did not print an ExecCredential');
    if (credential['apiVersion'] !== this.config.apiVersion) {
      throw this.error(`returned apiVersion "${String(credential['apiVersion'])}", but the kubeconfig asks for "${this.config.apiVersion}"`);
    }
    const status = credential['status'];
    if (!isRecord(status)) throw this.error('returned an ExecCredential without status');
    const token = optionalString(status['token']);
    const cert = optionalString(status['clientCertificateData']);
    const key = optionalString(status['clientKeyData']);
    if (!token && !(cert && key)) throw this.error('returned neither a token nor a client certificate and key');
    if (!!cert !== !!key) throw this.error('returned a client certificate without its key, or a key without its certificate');
    const expiration = optionalString(status['expirationTimestamp']);
    let expiresAtMs: number | undefined;
    if (expiration) {
      expiresAtMs = Date.parse(expiration);
      if (Number.isNaN(expiresAtMs)) throw this.error(`returned an unparseable expirationTimestamp "${expiration}"`);
    }
    return {
      ...(token ? { token } : {}),
      ...(cert && key ? { clientCertificateData: cert, clientKeyData: key } : {}),
      ...(expiresAtMs !== undefined ? { expiresAtMs } : {}),
    };
  }

  private error(what: string, cause?: unknown): Error {
    return new Error(`exec plugin "${this.config.command}" of user "${this.userName}" ${what}`, cause ? { cause } : undefined);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function optionalString(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}
