/**
 * `crowsnest inventory collect` and `crowsnest inventory diff`: the inventory capability's commands.
 * Heavy modules (the kubeconfig loader and HTTP client, pino, the collector) load inside the actions.
 */
import type { Command } from 'commander';
import { abortOnTermination, EXIT_FAILURE, kubeClientFor, processIO, requireGlobals, type CliIO, type RunState } from './command.ts';
import { FlagResolver, OptionError } from '../flags.ts';
import { DEFAULT_CONFIG_DIR, inventoryCollectFlagList, inventoryDiffFlags, resolveInventoryCollectOptions } from '../inventory/flags.ts';
import { addFlags } from './flags.ts';
import { basename } from 'node:path';
import { escapeControl } from '../terminal-text.ts';

/** Adds `collect` and `diff` to the `inventory` command (named and described by `main.ts`). */
export function defineInventoryCommand(inventory: Command, io: CliIO, state: RunState): void {
  addCollectCommand(inventory, io, state);
  addDiffCommand(inventory, io, state);
}

function addCollectCommand(parent: Command, io: CliIO, state: RunState): void {
  const command = parent
    .command('collect')
    .argument('[clusterId]', 'cluster id, ^[a-z0-9-_]+$ (default: $CLUSTER_ID)')
    .description('collect one snapshot of the cluster (meant for a CronJob; runs by hand too)')
    .addHelpText('after', collectHelpFooter);

  const flagValues = addFlags(command, inventoryCollectFlagList);

  command.action(async (clusterIdArgument: string | undefined) => {
    // A snapshot streams: its live heap is a few pages (~20 MB) whatever the cluster size, but by
    // default V8 lets garbage grow the heap with the data (180 MB RSS at 20,000 ConfigMaps).
    // Collecting early keeps the peak flat (~120 MB) for ~15 % more CPU: a batch job's right trade.
    (await import('node:v8')).setFlagsFromString('--optimize-for-size');
    const globals = requireGlobals(state);
    const options = resolveInventoryCollectOptions({ flags: flagValues(), env: io.env, ...(clusterIdArgument !== undefined ? { clusterIdArgument } : {}) });

    const [{ createLogger }, collect, { renderSummaryText }, { buildInfo }] = await Promise.all([
      import('../observe/logger.ts'),
      import('../inventory/collect.ts'),
      import('../inventory/summary-format.ts'),
      import('../version.ts'),
    ]);
    const logger = createLogger({ level: options.debug ? 'debug' : globals.logLevel, format: globals.logFormat });
    for (const warning of options.warnings) logger.warn({}, warning);

    const client = await kubeClientFor(globals, io.env);

    const runId = (await import('node:crypto')).randomUUID();
    // One session for the run: the kept snapshots it re-sends and its own share one token.
    const { LoginSession, loginUrlFor } = await import('../inventory/endpoint-login.ts');
    const session = options.endpoint && options.accessKey && options.secretKey
      ? new LoginSession({ loginUrl: loginUrlFor(options.endpoint, options.loginEndpoint), accessKey: options.accessKey, secretKey: options.secretKey })
      : undefined;
    const sink: import('../inventory/collect.ts').SinkOptions = options.dryRun
      ? { kind: 'stdout', write: (text) => writeWithBackpressure(io, text) }
      : options.endpoint
        ? {
            kind: 'endpoint',
            dir: options.reportDir,
            retention: options.retention,
            endpoint: {
              url: options.endpoint,
              ...(session ? { session } : {}),
              chunkBytes: options.chunkBytes,
              timeoutMs: options.timeoutMs,
              maxAttempts: options.uploadAttempts,
              retryInitialMs: 1_000,
              userAgent: `crowsnest/${buildInfo(io.env).version}`,
            },
          }
        : { kind: 'dir', dir: options.reportDir, format: options.format, gzip: options.gzip, retention: options.retention };
    if (options.endpoint && !session) logger.warn({}, 'no keys set (CROWSNEST_ACCESS_KEY/CROWSNEST_SECRET_KEY or INFRALIGHT_*): no login; chunks are sent without Authorization');
    // What an interruption does depends on how far the run got: say what is really kept.
    let phase: import('../inventory/collect.ts').RunPhase = 'collecting';
    const shutdown = abortOnTermination({ warn: (fields) => logger.warn(fields, collect.interruptMessage(phase, sink.kind)) }, 'interrupted');

    try {
      const summary = await collect.collectInventory(client, {
        clusterId: options.clusterId,
        runId,
        selectors: options.selectors,
        ...(options.namespaces ? { namespaces: options.namespaces } : {}),
        ignoreNamespaces: options.ignoreNamespaces,
        ...(options.labelSelector ? { labelSelector: options.labelSelector } : {}),
        pageSize: options.pageSize,
        concurrency: options.concurrency,
        qps: options.qps,
        burst: options.burst,
        maxObjectBytes: options.maxObjectBytes,
        redaction: options.redaction,
        ...(options.customResourcesClusterRole ? { customResourcesClusterRole: options.customResourcesClusterRole } : {}),
        sink,
        logger,
        signal: shutdown.signal,
        onPhase: (next) => (phase = next),
      });
      // In a dry run stdout carries the snapshot; the summary goes to stderr.
      const print = options.dryRun ? io.stderr : io.stdout;
      print(options.output === 'json' ? `${JSON.stringify(summary, null, 2)}\n` : renderSummaryText(summary));
      logger.info({ result: summary.result, objects: summary.objects, durationMs: summary.durationMs, runId }, 'inventory run finished');
      state.exitCode = collect.EXIT_CODE_BY_RESULT[summary.result];
    } catch (err) {
      if (shutdown.signal.aborted) {
        state.exitCode = EXIT_FAILURE;
        return;
      }
      throw usageErrorOf(err, collect.UnknownTypeError) ?? err;
    } finally {
      shutdown.dispose();
      await client.close();
    }
  });
}

function addDiffCommand(parent: Command, io: CliIO, state: RunState): void {
  const command = parent
    .command('diff')
    .argument('<old>', 'older snapshot file (.ndjson, .json, optionally .gz)')
    .argument('<new>', 'newer snapshot file')
    .description('objects added, removed, changed or replaced between two snapshots')
    .addHelpText('after', `
Objects are matched by group, kind, namespace and name; a different uid under the same name is
"replaced". resourceVersion, managedFields, the last-applied annotation and status timestamps are
ignored. Exit status: 0 no differences, 1 differences found, 2 usage or unreadable file (as diff(1)).
`);
  const flagValues = addFlags(command, Object.values(inventoryDiffFlags));
  command.action(async (oldPath: string, newPath: string) => {
    requireGlobals(state);
    const output = new FlagResolver({ flags: flagValues(), env: io.env }).get(inventoryDiffFlags.output);
    const [{ readSnapshotObjects }, { diffSnapshots }, { renderDiffJson, renderDiffTable }] = await Promise.all([
      import('../inventory/snapshot-file.ts'),
      import('../inventory/diff.ts'),
      import('../inventory/diff-format.ts'),
    ]);
    let diff: Awaited<ReturnType<typeof diffSnapshots>>;
    const counts = { old: 0, new: 0 };
    try {
      diff = await diffSnapshots(counted(readSnapshotObjects(oldPath), () => counts.old++), counted(readSnapshotObjects(newPath), () => counts.new++));
    } catch (err) {
      throw new OptionError('<file>', err instanceof Error ? err.message : String(err));
    }
    // Legitimate but rarely meant: said on stderr, so the diff on stdout stays as it is.
    for (const warning of diffWarnings(oldPath, newPath, counts)) io.stderr(`warning: ${escapeControl(warning)}\n`);
    io.stdout(output === 'json' ? renderDiffJson(diff) : renderDiffTable(diff));
    const differs = diff.added.length + diff.removed.length + diff.changed.length + diff.replaced.length > 0;
    state.exitCode = differs ? EXIT_FAILURE : 0;
  });
}

/** Calls `onEach` for every item `items` yields, passing them on. */
async function* counted<T>(items: AsyncIterable<T>, onEach: () => void): AsyncGenerator<T> {
  for await (const item of items) {
    onEach();
    yield item;
  }
}

/** The cluster id a snapshot's file name carries (`inventory-<cluster>-<time>[-<run>].…`), if it has one. */
export function clusterOfSnapshotName(path: string): string | undefined {
  return /^inventory-(.+)-\d{8}T\d{6}(?:\.\d{3})?Z(?:-[0-9a-f]{8})?\.(?:ndjson|json)(?:\.gz)?$/.exec(basename(path))?.[1];
}

/** What a diff should not let pass without a word: snapshots of two clusters, an empty snapshot. */
export function diffWarnings(oldPath: string, newPath: string, counts: { readonly old: number; readonly new: number }): string[] {
  const warnings: string[] = [];
  const [oldCluster, newCluster] = [clusterOfSnapshotName(oldPath), clusterOfSnapshotName(newPath)];
  if (oldCluster !== undefined && newCluster !== undefined && oldCluster !== newCluster) {
    warnings.push(`the snapshots are of different clusters: ${oldCluster} (${basename(oldPath)}) and ${newCluster} (${basename(newPath)})`);
  }
  for (const [path, count, shows] of [[oldPath, counts.old, 'added'], [newPath, counts.new, 'removed']] as const) {
    if (count === 0) warnings.push(`${path} holds no objects: everything in the other snapshot shows as ${shows}`);
  }
  return warnings;
}

/** The flag a type selector list comes from. */
const SELECTOR_FLAGS = { base: '--resources', add: '--add-types', remove: '--remove-types' } as const;

/**
 * The usage error (exit 2) a run failed with before doing any work: a type selector that matches
 * nothing this cluster serves, or a report directory that cannot be written. `undefined` for
 * anything else.
 */
function usageErrorOf(err: unknown, unknownTypeError: typeof import('../inventory/collect.ts').UnknownTypeError): OptionError | undefined {
  if (err instanceof unknownTypeError) {
    const first = err.unknown[0]!;
    const flag = SELECTOR_FLAGS[first.list];
    const each = err.unknown.map((u) => `${SELECTOR_FLAGS[u.list]} "${u.selector}" matches no resource type this cluster serves${u.nearest ? ` (did you mean "${u.nearest}"?)` : ''}`);
    return new OptionError(flag, `${each.join('; ')}; nothing was collected`);
  }
  if (err instanceof Error && err.name === 'ReportDirError') {
    return new OptionError('--report-dir', `${err.message} (--report-dir, $PATH_REPORTS); nothing was collected`);
  }
  return undefined;
}

/** Writes to stdout and waits when the pipe is full, so a dry run of a big cluster stays small. */
async function writeWithBackpressure(io: CliIO, text: string): Promise<void> {
  if (io !== processIO) {
    io.stdout(text);
    return;
  }
  if (!process.stdout.write(text)) await new Promise((resolve) => process.stdout.once('drain', resolve));
}

const collectHelpFooter = `
Where the snapshot goes:
  --dry-run        {"objects":[…]} on stdout (summary on stderr); nothing written or sent
  --endpoint URL   POSTed in gzip chunks; kept in the report directory if the endpoint stays down
  otherwise        a file in the report directory: inventory-<cluster>-<UTC time>.ndjson.gz,
                   with <…>.summary.json beside it

Configuration, highest precedence first: flags, CROWSNEST_<FLAG> environment variables, files in
the config directory (--config, default ${DEFAULT_CONFIG_DIR}: one file per key named like the flag
in camelCase — endpoint, resources, addTypes, removeTypes, namespaces, ignoreNamespaces,
labelSelector, pageSize, concurrency, qps, burst, redact, …), defaults. Lists are comma- or
newline-separated. Keys come from CROWSNEST_ACCESS_KEY / CROWSNEST_SECRET_KEY (or the seed's
INFRALIGHT_ACCESS_KEY / INFRALIGHT_SECRET_KEY) and are only sent to the login, as k8s-collector
did: POST {"accessKey","secretKey"} to <endpoint>/sink/login (or
<login-endpoint>/account/access_keys/login), then every chunk to <endpoint>/sink/send with
Authorization: Bearer <access_token>; the token is kept until its expires_in and renewed once on
a 401. The seed's -external, -config, -debug and -dry-run flags are accepted.

Examples:
  # One snapshot of the current context into ./reports
  crowsnest inventory collect my-cluster

  # Secrets too (values redacted), without Events or custom resources
  crowsnest inventory collect my-cluster --add-types secrets --remove-types customresources

  # Send to an endpoint
  CROWSNEST_ACCESS_KEY=… CROWSNEST_SECRET_KEY=… crowsnest inventory collect prod --endpoint https://inventory.example

Exit status: 0 complete, 3 partial (delivered, but a type, group or object was skipped — see the
summary), 1 failed (the endpoint stayed down: the snapshot is kept in the report directory),
2 usage error.
`;
