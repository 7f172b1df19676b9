// How far a `send` run has settled each input, so that a rerun of the same command resumes where
// it stopped: every event that was delivered, skipped, rejected or written to the failures file is
// not sent again. Events settle out of order (requests run concurrently, and a failing contact
// waits for its retries), so each input keeps the position below which all is settled, plus the
// settled positions above it, as ranges. The file is replaced whole (write, then rename) after every
// change, so a kill at any moment leaves the last complete one.
//
// An input is known by its content, not its modification time: the checkpoint keeps the SHA-256 of
// the input's first bytes, as many as the run had read (compressed bytes, for a .gz), and a rerun
// resumes only when the file still begins with exactly those bytes. A file touched, copied over or
// downloaded again resumes; one whose read part changed is refused, never silently sent again.

import { createHash, type Hash } from "node:crypto";
import {
  closeSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { resolve } from "node:path";

export interface InputId {
  path: string;
  size: number;
}

/** How much of an input a run has read, and the hash of those bytes. */
export interface Prefix {
  bytes: number;
  sha256: string;
}

/** Hashes an input's raw bytes as they are read; `prefix()` at any moment. */
export class PrefixHash {
  private readonly hash: Hash = createHash("sha256");
  private bytes = 0;
  private last: Prefix | undefined;

  /** `verified`: what the checkpoint held and the file still begins with; never less is saved. */
  constructor(private readonly verified: Prefix | undefined) {}

  update(chunk: Buffer): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
  }

  prefix(): Prefix {
    if (this.verified && this.verified.bytes >= this.bytes) return this.verified;
    // The checkpoint is saved after every answer: an input not read since keeps its digest.
    if (this.last?.bytes !== this.bytes) {
      this.last = { bytes: this.bytes, sha256: this.hash.copy().digest("hex") };
    }
    return this.last;
  }
}

/** Settled events by outcome; what was read but not settled is not counted, so a rerun counts it. */
export interface Totals {
  delivered: number;
  rejected: number;
  undelivered: number;
  unreadable: number;
  requests: number;
  skipped: Record<string, number>;
}

interface Saved {
  version: 2;
  inputs: (InputId & Prefix & { below: number; above: [number, number][]; total?: number })[];
  /** Contacts with an undelivered event: the rest of their events go to the failures file. */
  parked: string[];
  totals: Totals;
}

/** Which positions of one input are settled. */
export class Settled {
  below = 0;
  readonly above = new Set<number>();
  /** How many positions the input has, once it was read to its end. */
  total: number | undefined;

  /** Every position of the input is settled: it need not be read again. */
  get done(): boolean {
    return this.total !== undefined && this.below >= this.total;
  }

  has(index: number): boolean {
    return index < this.below || this.above.has(index);
  }

  add(index: number): void {
    if (index !== this.below) {
      this.above.add(index);
      return;
    }
    this.below += 1;
    while (this.above.delete(this.below)) this.below += 1;
  }

  ranges(): [number, number][] {
    const sorted = [...this.above].sort((a, b) => a - b);
    const ranges: [number, number][] = [];
    for (const index of sorted) {
      const last = ranges.at(-1);
      if (last && last[1] === index) last[1] = index + 1;
      else ranges.push([index, index + 1]);
    }
    return ranges;
  }

  static from(below: number, above: [number, number][], total: number | undefined): Settled {
    const settled = new Settled();
    settled.below = below;
    for (const [start, end] of above) for (let i = start; i < end; i++) settled.above.add(i);
    settled.total = total;
    return settled;
  }
}

export function emptyTotals(): Totals {
  return {
    delivered: 0,
    rejected: 0,
    undelivered: 0,
    unreadable: 0,
    requests: 0,
    skipped: {},
  };
}

/** A file input's path and size, or undefined when it cannot be read. */
export function inputId(path: string): InputId | undefined {
  try {
    const { size } = statSync(path);
    return { path: resolve(path), size };
  } catch {
    return undefined;
  }
}

export interface Resumed {
  settled: Settled[];
  parked: Set<string>;
  totals: Totals;
  /** What each input was read to, as verified now. */
  prefixes: Prefix[];
}

/** Why a checkpoint cannot be resumed: it is kept, and nothing is sent. */
export class CheckpointMismatch extends Error {}

/**
 * The saved state for exactly these inputs, or undefined when there is none. Throws
 * CheckpointMismatch when there is one for other inputs, or for inputs whose read part changed.
 */
export function loadCheckpoint(path: string, inputs: InputId[]): Resumed | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new CheckpointMismatch(`${path} cannot be read (${(error as Error).message})`);
  }
  let saved: Saved;
  try {
    saved = JSON.parse(text) as Saved;
  } catch {
    throw new CheckpointMismatch(`${path} is not a checkpoint this command wrote`);
  }
  if (saved?.version !== 2) {
    throw new CheckpointMismatch(`${path} was written by another version of this command`);
  }
  const names = (list: { path: string }[]) => list.map((input) => input.path).join(", ");
  if (
    saved.inputs.length !== inputs.length ||
    saved.inputs.some((input, i) => input.path !== inputs[i]?.path)
  ) {
    throw new CheckpointMismatch(
      `${path} belongs to a run over other inputs (${names(saved.inputs)})`,
    );
  }
  const changed = saved.inputs.filter((input) => !startsWith(input.path, input));
  if (changed.length) {
    throw new CheckpointMismatch(
      `what was read of ${names(changed)} has changed since ${path} was saved`,
    );
  }
  return {
    settled: saved.inputs.map((input) => Settled.from(input.below, input.above, input.total)),
    parked: new Set(saved.parked),
    totals: saved.totals,
    prefixes: saved.inputs.map(({ bytes, sha256 }) => ({ bytes, sha256 })),
  };
}

/** Whether the file at `path` begins with the bytes the prefix describes. */
function startsWith(path: string, prefix: Prefix): boolean {
  if (prefix.bytes === 0) return true; // nothing was read (a file that could not be opened)
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return false;
  }
  try {
    const hash = createHash("sha256");
    const buffer = Buffer.alloc(1024 * 1024);
    let left = prefix.bytes;
    while (left > 0) {
      const read = readSync(fd, buffer, 0, Math.min(buffer.length, left), null);
      if (read === 0) return false;
      hash.update(buffer.subarray(0, read));
      left -= read;
    }
    return hash.digest("hex") === prefix.sha256;
  } finally {
    closeSync(fd);
  }
}

export function saveCheckpoint(
  path: string,
  inputs: InputId[],
  prefixes: Prefix[],
  settled: Settled[],
  parked: Set<string>,
  totals: Totals,
): void {
  const saved: Saved = {
    version: 2,
    inputs: inputs.map((input, i) => {
      const state = settled[i] as Settled;
      const prefix = prefixes[i] as Prefix;
      return {
        ...input,
        ...prefix,
        below: state.below,
        above: state.ranges(),
        total: state.total,
      };
    }),
    parked: [...parked],
    totals,
  };
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, JSON.stringify(saved));
  renameSync(temporary, path);
}

export function removeCheckpoint(path: string): void {
  rmSync(path, { force: true });
}
