/** One process's memory and CPU as /proc shows them, for the benchmarks that watch a command they ran or the processes in their pods. */
import { readFile } from 'node:fs/promises';

/** USER_HZ: /proc/<pid>/stat counts CPU time in these ticks. */
const CLOCK_TICKS_PER_SECOND = 100;

export interface ProcessSample {
  readonly rssKiB: number;
  readonly anonKiB: number;
  /** Mapped files (the node binary above all), shared with other processes through the page cache. */
  readonly fileKiB: number;
  /** User + system time so far. */
  readonly cpuTicks: number;
  readonly atMs: number;
}

/** `pid`'s RSS split (/proc/<pid>/status) and CPU time so far (/proc/<pid>/stat). */
export async function sampleProcess(pid: number): Promise<ProcessSample> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  const kib = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rssKiB: kib('VmRSS'), anonKiB: kib('RssAnon'), fileKiB: kib('RssFile'), cpuTicks: Number(stat[11]) + Number(stat[12]), atMs: performance.now() };
}

/** Cores used between two samples of one process (CPU seconds per second). */
export function coresBetween(first: ProcessSample, last: ProcessSample): number {
  return (last.cpuTicks - first.cpuTicks) / CLOCK_TICKS_PER_SECOND / ((last.atMs - first.atMs) / 1000);
}
