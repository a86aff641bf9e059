/**
 * Process entry point, run by `bin/crowsnest`. Kept apart from `main.ts` so tests can import
 * `main` without running it. Sets `process.exitCode` instead of calling `process.exit()`, so
 * buffered output (and the logger) drains before the process ends.
 */
import { enableCompileCache } from 'node:module';

// Node's on-disk compile cache also keeps the type-stripped sources: it cuts `crowsnest --help`
// from ~170 ms to ~65 ms of Node time. It must be on before the CLI modules load, hence the
// dynamic import below. NODE_DISABLE_COMPILE_CACHE=1 turns it off.
enableCompileCache();

// A reader that stops early (`crowsnest ports scan | head`) closes the pipe. End as a Unix tool
// that SIGPIPE ends does, quietly and with 128 + 13, rather than with an unhandled EPIPE's stack.
// A closed stderr only loses messages nobody can read any more: the command goes on.
const EXIT_BROKEN_PIPE = 141;
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
  process.exit(EXIT_BROKEN_PIPE);
});
process.stderr.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
});

// The runtime's timers (backoff, rate limits, Retry-After, timeouts) are unref'd, so they never
// keep a process alive on their own. A command must not end because of that: with nothing else
// pending, a run waiting out a backoff would end with exit 13 ("unsettled top-level await"), no
// summary and a half-written file. This handle holds the process open until the command settles.
const holdOpen = setInterval(() => {}, 2 ** 30);
try {
  const { main } = await import('./main.ts');
  process.exitCode = await main(process.argv.slice(2));
} finally {
  clearInterval(holdOpen);
}
