// One `send` run per checkpoint: two runs on one checkpoint would each resume from the other's
// progress and send events twice. The lock is a file beside the checkpoint (CHECKPOINT.lock) with
// the pid and host of the run that holds it. It is created whole or not at all (written aside, then
// linked into place, which fails if it exists), and removed when the run ends. A lock left by a
// run that was killed is taken over when its pid is no longer alive on this host; a lock from
// another host (a shared folder) is left for the user to judge.

import { linkSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";

interface Holder {
  pid: number;
  host: string;
  since: string;
}

export type Lock = { release(): void };

/** Takes the lock, or returns why not (a sentence for the user). */
export function lockCheckpoint(checkpoint: string): Lock | string {
  const path = `${checkpoint}.lock`;
  const mine: Holder = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
  const aside = `${path}.${process.pid}`;
  writeFileSync(aside, JSON.stringify(mine));
  try {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        linkSync(aside, path);
        return held(path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      }
      const holder = readHolder(path);
      if (holder && !stale(holder)) {
        return `another run is using ${checkpoint} (pid ${holder.pid} on ${holder.host}, since ${holder.since}). Wait for it to end, or give this one its own --checkpoint FILE. If no such run is left, delete ${path}.`;
      }
      rmSync(path, { force: true }); // left by a run that is gone
    }
    return `${path} could not be taken; delete it if no other run is using ${checkpoint}.`;
  } finally {
    rmSync(aside, { force: true });
  }
}

function held(path: string): Lock {
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    if (readHolder(path)?.pid === process.pid) rmSync(path, { force: true });
    process.off("exit", release);
  };
  // Whatever way the process ends (short of SIGKILL), the lock goes with it.
  process.on("exit", release);
  return { release };
}

function readHolder(path: string): Holder | undefined {
  try {
    const holder = JSON.parse(readFileSync(path, "utf8")) as Partial<Holder>;
    if (typeof holder.pid === "number" && typeof holder.host === "string") {
      return { pid: holder.pid, host: holder.host, since: String(holder.since) };
    }
  } catch {
    // unreadable: taken for stale below
  }
  return undefined;
}

/** A holder on this host whose process is gone. */
function stale(holder: Holder): boolean {
  if (holder.host !== hostname()) return false;
  if (holder.pid === process.pid) return false;
  try {
    process.kill(holder.pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH";
  }
}
