/**
 * `crowsnest version`: this build, the Node.js running it, and — when a cluster is configured —
 * the API server's version. The server part is best effort: an unreachable cluster is reported,
 * never turned into a failing exit code, so `version` stays usable for bug reports.
 */
import type { KubeConfig, VersionInfo } from '@kubernetes/client-node';
import { realClock, type Clock } from '../kube/clock.ts';
import { buildInfo, type BuildInfo } from '../version.ts';
import type { GlobalOptions } from './options.ts';

/** How long to wait for the API server's `/version`. */
export const SERVER_VERSION_TIMEOUT_MS = 5_000;

/** Output formats of `crowsnest version --output`. */
export const versionOutputs = ['text', 'json'] as const;
export type VersionOutput = (typeof versionOutputs)[number];

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
  // Loaded here, not at the top: client-node takes longer to import than the rest of the CLI
  // takes to run, and `crowsnest --help` must not pay for it.
  const { loadKubeConfig, KubeConfigNotFoundError } = await import('../kube/config.ts');
  let kc: KubeConfig;
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
export async function fetchServerVersion(kc: KubeConfig, options: FetchServerVersionOptions): Promise<VersionInfo> {
  const { VersionApi, Observable } = await import('@kubernetes/client-node');
  const controller = new AbortController();
  const timer = options.clock.setTimer(
    () => controller.abort(new Error(`no answer within ${options.timeoutMs / 1_000}s`)),
    options.timeoutMs,
  );
  try {
    // The generated client has no timeout option; a middleware attaches our abort signal.
    return await kc.makeApiClient(VersionApi).getCode(
      {},
      {
        middleware: [
          {
            pre: (context) => {
              context.setSignal(controller.signal);
              return new Observable(Promise.resolve(context));
            },
            post: (context) => new Observable(Promise.resolve(context)),
          },
        ],
        middlewareMergeStrategy: 'append',
      },
    );
  } catch (err) {
    // The fetch rejects with a generic AbortError; the reason we gave is the useful part.
    if (controller.signal.aborted) throw controller.signal.reason;
    throw err;
  } finally {
    options.clock.clearTimer(timer);
  }
}

/**
 * A one-line reason: client-node's ApiException message embeds headers and body, and undici's
 * "fetch failed" hides the socket error in `cause`, so both are unwrapped.
 */
function describeError(err: unknown): string {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'number') {
    return `HTTP ${err.code}`;
  }
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
  return `${lines.join('\n')}\n`;
}

function renderJson(client: BuildInfo, server: ServerVersionResult): string {
  const report: Record<string, unknown> = { clientVersion: client };
  if (server.kind === 'available') report['serverVersion'] = server.info;
  if (server.kind === 'unavailable') report['serverError'] = server.reason;
  return `${JSON.stringify(report, null, 2)}\n`;
}
