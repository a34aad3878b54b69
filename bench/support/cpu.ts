/**
 * CPU use over a measured window, read from /proc (Linux; zeros elsewhere):
 * the whole machine's busy share, and the cores used by given processes, by
 * PostgreSQL's processes and by this one. Shared by bench:sdk and bench:server.
 */
import fs from "node:fs";

const CLOCK_TICKS_PER_SECOND = 100;

/** User + system seconds of a process, 0 once it is gone. */
export function processCpuSeconds(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

/** Every process whose command is `postgres` (the server and its backends). */
export function postgresPids(): number[] {
  try {
    return fs
      .readdirSync("/proc")
      .filter((name) => /^\d+$/.test(name))
      .filter((name) => {
        try {
          return fs.readFileSync(`/proc/${name}/comm`, "utf8").trim() === "postgres";
        } catch {
          return false;
        }
      })
      .map(Number);
  } catch {
    return [];
  }
}

/** The machine's busy and total jiffies (all cores) from /proc/stat. */
export function machineJiffies(): { busy: number; total: number } {
  try {
    const line = fs.readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
    const values = line.trim().split(/\s+/).slice(1).map(Number);
    const total = values.slice(0, 8).reduce((sum, value) => sum + value, 0);
    const idle = (values[3] ?? 0) + (values[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return { busy: 0, total: 0 };
  }
}

export interface CpuSample {
  atMs: number;
  machine: { busy: number; total: number };
  servers: number;
  /** CPU seconds per PostgreSQL process id, so backends that come and go are counted by difference. */
  postgres: Map<number, number>;
  here: number;
}

export function sampleCpu(serverPids: number[]): CpuSample {
  const here = process.cpuUsage();
  return {
    atMs: performance.now(),
    machine: machineJiffies(),
    servers: serverPids.reduce((sum, pid) => sum + processCpuSeconds(pid), 0),
    postgres: new Map(postgresPids().map((pid) => [pid, processCpuSeconds(pid)])),
    here: (here.user + here.system) / 1e6,
  };
}

export interface CpuUse {
  /** Busy share of all cores of the machine, 0–1. */
  machineBusy: number;
  /** Cores used (CPU seconds per second) by each role in the window. */
  servers: number;
  workers: number;
  postgres: number;
}

/**
 * `workers` is the load's side: with `embedded` this process (which then runs
 * it), otherwise the CPU time the worker processes reported.
 */
export function cpuUse(
  before: CpuSample,
  after: CpuSample,
  workerCpuMicros: number,
  embedded: boolean,
): CpuUse {
  const seconds = (after.atMs - before.atMs) / 1000;
  const total = after.machine.total - before.machine.total;
  return {
    machineBusy: total > 0 ? (after.machine.busy - before.machine.busy) / total : Number.NaN,
    servers: (after.servers - before.servers) / seconds,
    workers: embedded ? (after.here - before.here) / seconds : workerCpuMicros / 1e6 / seconds,
    postgres: postgresSecondsBetween(before.postgres, after.postgres) / seconds,
  };
}

/**
 * CPU the PostgreSQL processes alive at the end used since the start; one born
 * in between counts whole. A backend that exits in between (another client's,
 * or a pool's) drops out and is not counted: summing totals instead would go
 * negative when it does.
 */
function postgresSecondsBetween(before: Map<number, number>, after: Map<number, number>): number {
  let seconds = 0;
  for (const [pid, total] of after) seconds += Math.max(0, total - (before.get(pid) ?? 0));
  return seconds;
}
