/**
 * Test support: a kubelet-like pod log directory in a scratch directory, written the way
 * containerd and the kubelet write it (CRI records, rotation by rename, compression of older
 * rotated files, a new file per container run).
 */
import { appendFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

let tick = 0;

/** One CRI record line (with its newline); times increase so no two records look alike. */
export function criRecord(text: string, options: { stream?: 'stdout' | 'stderr'; partial?: boolean } = {}): string {
  const time = new Date(Date.UTC(2026, 11, 7, 3, 0, 0) + tick++).toISOString().replace('Z', '123456Z');
  return `${time} ${options.stream ?? 'stdout'} ${options.partial ? 'P' : 'F'} ${text}\n`;
}

/** A container's log directory under `root`, with the kubelet's operations on it. */
export class FakeContainerLog {
  readonly dir: string;
  run = 0;
  private rotations = 0;

  constructor(root: string, namespace: string, pod: string, uid: string, container: string) {
    this.dir = join(root, `${namespace}_${pod}_${uid}`, container);
  }

  async create(): Promise<this> {
    await mkdir(this.dir, { recursive: true });
    await writeFile(this.live, '');
    return this;
  }

  get live(): string {
    return join(this.dir, `${this.run}.log`);
  }

  /** Appends records (or raw text) to the live file. */
  async write(...records: string[]): Promise<void> {
    await appendFile(this.live, records.join(''));
  }

  /** Appends `count` lines `<prefix> <i>` (from `from`), `every`-th one containing ERROR. */
  async lines(count: number, options: { from?: number; errorEvery?: number; prefix?: string } = {}): Promise<void> {
    const from = options.from ?? 0;
    const records: string[] = [];
    for (let i = from; i < from + count; i++) records.push(criRecord(`${options.prefix ?? 'line'} ${i}${options.errorEvery && i % options.errorEvery === 0 ? ' ERROR' : ''}`));
    await this.write(...records);
  }

  /** The kubelet's rotation: rename the live file to `<run>.log.<time>`, the runtime reopens a new one. Returns the rotated name. */
  async rotate(): Promise<string> {
    const name = `${this.run}.log.20261207-0300${String(10 + this.rotations++).padStart(2, '0')}`;
    await rename(this.live, join(this.dir, name));
    await writeFile(this.live, '');
    return name;
  }

  /** The kubelet's compression of a rotated file: `<name>.gz` written, `<name>` removed. */
  async compress(name: string): Promise<void> {
    await writeFile(join(this.dir, `${name}.gz`), gzipSync(await readFile(join(this.dir, name))));
    await rm(join(this.dir, name));
  }

  async remove(name: string): Promise<void> {
    await rm(join(this.dir, name));
  }

  /** The container restarts: a new run, a new file. */
  async restart(): Promise<void> {
    this.run++;
    await writeFile(this.live, '');
  }
}
