// How far a `send` run has settled each input, so that a rerun of the same command resumes where
// it stopped: every event that was delivered, skipped, rejected or written to the failures file is
// not sent again. Events settle out of order (requests run concurrently, and a failing contact
// waits for its retries), so each input keeps the position below which all is settled, plus the
// settled positions above it, as ranges. The file is replaced whole (write, then rename) after every
// change, so a kill at any moment leaves the last complete one.

import { readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";

export interface InputId {
  path: string;
  size: number;
  mtimeMs: number;
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
  version: 1;
  inputs: (InputId & { below: number; above: [number, number][]; total?: number })[];
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

/** The identity of a file input: a changed file is not resumed. */
export function inputId(path: string): InputId | undefined {
  try {
    const { size, mtimeMs } = statSync(path);
    return { path: resolve(path), size, mtimeMs };
  } catch {
    return undefined;
  }
}

export interface Resumed {
  settled: Settled[];
  parked: Set<string>;
  totals: Totals;
}

/**
 * The saved state for exactly these inputs, or undefined when there is none or it was written for
 * other inputs (another command, or files that changed since).
 */
export function loadCheckpoint(path: string, inputs: (InputId | undefined)[]): Resumed | undefined {
  let saved: Saved;
  try {
    saved = JSON.parse(readFileSync(path, "utf8")) as Saved;
  } catch {
    return undefined;
  }
  if (saved?.version !== 1 || saved.inputs.length !== inputs.length) return undefined;
  const same = saved.inputs.every((input, i) => {
    const now = inputs[i];
    return (
      now !== undefined &&
      input.path === now.path &&
      input.size === now.size &&
      input.mtimeMs === now.mtimeMs
    );
  });
  if (!same) return undefined;
  return {
    settled: saved.inputs.map((input) => Settled.from(input.below, input.above, input.total)),
    parked: new Set(saved.parked),
    totals: saved.totals,
  };
}

export function saveCheckpoint(
  path: string,
  inputs: InputId[],
  settled: Settled[],
  parked: Set<string>,
  totals: Totals,
): void {
  const saved: Saved = {
    version: 1,
    inputs: inputs.map((input, i) => {
      const state = settled[i] as Settled;
      return { ...input, below: state.below, above: state.ranges(), total: state.total };
    }),
    parked: [...parked],
    totals,
  };
  const temporary = `${path}.tmp`;
  writeFileSync(temporary, JSON.stringify(saved));
  renameSync(temporary, path);
}

export function removeCheckpoint(path: string): void {
  rmSync(path, { force: true });
}
