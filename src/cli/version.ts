/**
 * `crowsnest version`: this build, the Node.js running it, and — when a cluster is configured —
 * the API server's version. The server part is best effort: an unreachable cluster is reported,
 * never turned into a failing exit code, so `version` stays usable for bug reports.
 */
import type { Command } from 'commander';
import { flag, FlagResolver } from '../flags.ts';
import { oneOf } from '../flag-values.ts';
import { realClock, type Clock } from '../kube/clock.ts';
import type { ConnectionSource } from '../kube/client/connection.ts';
import { buildInfo, type BuildInfo } from '../version.ts';
import { escapeControl } from '../terminal-text.ts';
import { requireGlobals, type CliIO, type RunState } from './command.ts';
import { addFlags, type GlobalOptions } from './flags.ts';

/** How long to wait for the API server's `/version`. */
export const SERVER_VERSION_TIMEOUT_MS = 5_000;

/** The API server's `/version` answer (`version.Info`); printed as the server sent it. */
export interface VersionInfo {
  readonly major: string;
  readonly minor: string;
  readonly gitVersion: string;
  readonly gitCommit?: string;
  readonly gitTreeState?: string;
  readonly buildDate?: string;
  readonly goVersion?: string;
  readonly compiler?: string;
  readonly platform?: string;
}

/** Output formats of `crowsnest version --output`. */
export const versionOutputs = ['text', 'json'] as const;
export type VersionOutput = (typeof versionOutputs)[number];

/** Flags of `crowsnest version`: how to print, nothing else (no environment). */
export const versionFlags = {
  output: flag({ name: 'output', short: 'o', valueName: '<format>', description: 'output format', default: 'text', choices: versionOutputs, env: false, parse: oneOf<VersionOutput>(versionOutputs) }),
};

/** What the server part of the report says. */
export type ServerVersionResult =
  | { readonly kind: 'unconfigured' }
  | { readonly kind: 'available'; readonly info: VersionInfo }
  | { readonly kind: 'unavailable'; readonly reason: string };

export interface VersionCommandInput {
  readonly output: VersionOutput;
  readonly globals: Pick<GlobalOptions, 'kubeconfig' | 'context'>;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdout: (text: string) => void;
  /** Default: the real clock. */
  readonly clock?: Clock;
}

/** Adds the `--output` flag and the action to `command` (named and described by `main.ts`). */
export function defineVersionCommand(command: Command, io: CliIO, state: RunState): void {
  const flagValues = addFlags(command, Object.values(versionFlags));
  command.action(async () => {
    const globals = requireGlobals(state);
    state.exitCode = await runVersionCommand({
      output: new FlagResolver({ flags: flagValues(), env: io.env }).get(versionFlags.output),
      globals,
      env: io.env,
      stdout: io.stdout,
    });
  });
}

/** Runs `crowsnest version`. Always exits 0: the report itself says what could not be found. */
export async function runVersionCommand(input: VersionCommandInput): Promise<number> {
  const client = buildInfo(input.env);
  const server = await serverVersion(input.globals, input.env, input.clock ?? realClock);
  input.stdout(input.output === 'json' ? renderJson(client, server) : renderText(client, server));
  return 0;
}

/**
 * Asks the configured cluster for its version. "No configuration at all" is not a failure here;
 * a configuration that does not work is reported with its reason.
 */
async function serverVersion(
  globals: Pick<GlobalOptions, 'kubeconfig' | 'context'>,
  env: Readonly<Record<string, string | undefined>>,
  clock: Clock,
): Promise<ServerVersionResult> {
  // Loaded here, not at the top: the YAML parser and HTTP client are not needed by `--help`.
  const { loadKubeConfig, KubeConfigNotFoundError } = await import('../kube/client/config.ts');
  let kc: ConnectionSource;
  try {
    kc = loadKubeConfig({ kubeconfig: globals.kubeconfig, context: globals.context }, { env });
  } catch (err) {
    if (err instanceof KubeConfigNotFoundError) return { kind: 'unconfigured' };
    return { kind: 'unavailable', reason: describeError(err) };
  }
  try {
    return { kind: 'available', info: await fetchServerVersion(kc, { timeoutMs: SERVER_VERSION_TIMEOUT_MS, clock }) };
  } catch (err) {
    return { kind: 'unavailable', reason: describeError(err) };
  }
}

export interface FetchServerVersionOptions {
  /** Abort the request after this long. */
  readonly timeoutMs: number;
  readonly clock: Clock;
}

/** `GET /version` on the current context's API server, aborted after `timeoutMs`. */
export async function fetchServerVersion(kc: ConnectionSource, options: FetchServerVersionOptions): Promise<VersionInfo> {
  const { KubeClient, KubeConnectionError } = await import('../kube/client/client.ts');
  // A connection attempt outlives the request aborted below: bounded by the same time, so a stuck
  // server holds the process no longer than the answer takes.
  const client = new KubeClient(kc, { connectTimeoutMs: options.timeoutMs });
  const controller = new AbortController();
  const timer = options.clock.setTimer(
    () => controller.abort(new DOMException(`no answer within ${options.timeoutMs / 1_000}s`, 'TimeoutError')),
    options.timeoutMs,
  );
  try {
    // Our own timer (on the injected clock), not the client's default request timeout.
    return await client.json<VersionInfo>('/version', { signal: controller.signal, timeoutMs: 0 });
  } catch (err) {
    // The fetch rejects with a generic AbortError: say which server did not answer, and that it timed out.
    if (controller.signal.aborted) {
      const server = await kc.connection().then((connection) => new URL(connection.server).host, () => 'of the kubeconfig');
      throw new KubeConnectionError(server, controller.signal.reason, options.timeoutMs);
    }
    throw err;
  } finally {
    options.clock.clearTimer(timer);
    // Not awaited: closing waits for the aborted request's connection attempt (see above).
    void client.close().catch(() => {});
  }
}

/**
 * A one-line reason: an HTTP error is named by its status (its message embeds the body), and
 * undici's "fetch failed" hides the socket error in `cause`, so that is unwrapped.
 */
function describeError(err: unknown): string {
  // KubeApiError, recognised by shape so this module does not load the HTTP client up front.
  if (err instanceof Error && 'status' in err && typeof err.status === 'number') return `HTTP ${err.status}`;
  // KubeConnectionError already names the server and the cause.
  if (err instanceof Error && err.name === 'KubeConnectionError') return err.message;
  let current: unknown = err;
  while (current instanceof Error && current.cause instanceof Error) current = current.cause;
  const message = current instanceof Error ? current.message : String(current);
  return message.split('\n')[0] ?? message;
}

function renderText(client: BuildInfo, server: ServerVersionResult): string {
  const commit = client.gitCommit ? ` (commit ${client.gitCommit})` : '';
  const lines = [`crowsnest ${client.version}${commit}`, `node ${client.nodeVersion}`];
  if (server.kind === 'available') lines.push(`server: ${server.info.gitVersion}`);
  if (server.kind === 'unavailable') lines.push(`server: unavailable (${server.reason})`);
  // The reason and versions are the server's words: one escaped line each.
  return `${lines.map(escapeControl).join('\n')}\n`;
}

function renderJson(client: BuildInfo, server: ServerVersionResult): string {
  const report: Record<string, unknown> = { clientVersion: client };
  if (server.kind === 'available') report['serverVersion'] = server.info;
  if (server.kind === 'unavailable') report['serverError'] = server.reason;
  return `${JSON.stringify(report, null, 2)}\n`;
}
