/**
 * The mutants of `npm run sim:mutants`: bugs a real engineer could write in the
 * real code, each one concept, each an exact text replacement in a source file.
 * `sim/mutants.ts` applies them one at a time to a temporary copy and runs the
 * simulator on it. Nothing here names an invariant or a checker: what catches a
 * mutant is always one of the simulator's general invariants (or the core's own
 * always-on assertions, which the simulator reports as "server invariant").
 *
 * Two lists. `MUTANTS` is the gate: each must be caught within the seed budget.
 * `SURVIVORS` are mutants investigated and found not to be caught, each with the
 * reason: `equivalent` (the system is designed to absorb the bug, so no run can
 * tell) or `blind spot` (a real bug the simulator cannot see yet; the reason
 * says what it lacks). `--survivors` runs them, so a simulator that learns to
 * see one tells us to move it into the gate.
 *
 * Invariants:
 *  M1  Every `find` occurs exactly once in its file (checked before any run): a
 *      refactor that moves the anchor stops the run instead of turning the
 *      mutant into a no-op.
 *  M2  `find` and `replace` differ, and patches touch only `src/`.
 *  M3  Names are unique across both lists.
 */

export interface Patch {
  /** Path from the repository root, always under `src/` (M2). */
  file: string;
  /** Exact text, found exactly once (M1). */
  find: string;
  replace: string;
}

export interface Mutant {
  /** kebab-case, for `--only` (M3). */
  name: string;
  /** What the bug breaks, in one line. */
  breaks: string;
  patches: Patch[];
}

export interface Survivor extends Mutant {
  verdict: "equivalent" | "blind spot";
  /** Why no seed catches it: what absorbs it, or what the simulator lacks. */
  why: string;
}

const TASKS = "src/core/task-handlers.ts";
const PROMISES = "src/core/promise-handlers.ts";
const TRANSITIONS = "src/core/transitions.ts";
const EXECUTION = "src/sdk/engine/execution.ts";
const SHELL = "src/server/shell.ts";

export const MUTANTS: Mutant[] = [
  {
    name: "fulfil-any-version",
    breaks: "task.fulfill skips the version check: a holder that lost its lease still settles the task",
    patches: [
      {
        file: TASKS,
        find: `export function taskFulfill(ctx: StepContext, { data }: TaskFulfillRequest): Response {
  const held = guard(ctx, data.id, data.version, "acquired");`,
        replace: `export function taskFulfill(ctx: StepContext, { data }: TaskFulfillRequest): Response {
  const held = guard(ctx, data.id, undefined, "acquired");`,
      },
    ],
  },
  {
    name: "settle-twice",
    breaks: "promise.settle on a settled promise settles it again instead of absorbing the late settle",
    patches: [
      {
        file: PROMISES,
        find: `  if (promise.state !== "pending") return ok({ promise: projectPromise(promise, ctx.now) });
  const settled = settlePromise(ctx, promise, {`,
        replace: `  const settled = settlePromise(ctx, promise, {`,
      },
    ],
  },
  {
    name: "settle-overwrites",
    breaks:
      "a late settle overwrites the settled record (last writer wins), written straight to the working state",
    patches: [
      {
        file: PROMISES,
        find: `  if (promise.state !== "pending") return ok({ promise: projectPromise(promise, ctx.now) });`,
        replace: `  if (promise.state !== "pending") {
    const again = { ...promise, state: data.state, value: data.value ?? {}, settledAt: ctx.now };
    ctx.working.putPromise(again);
    return ok({ promise: projectPromise(again, ctx.now) });
  }`,
      },
    ],
  },
  {
    name: "drop-callback",
    breaks:
      "task.suspend answers 200 but stores no callback (inverted membership test): nothing wakes the task",
    patches: [
      {
        file: TASKS,
        find: `    if (!awaiters.includes(data.id)) ctx.working.setCallbacks(promise.id, [...awaiters, data.id]);`,
        replace: `    if (awaiters.includes(data.id)) ctx.working.setCallbacks(promise.id, [...awaiters, data.id]);`,
      },
    ],
  },
  {
    name: "resume-wrong-task",
    breaks: "the callback drain judges the settled promise's task instead of the awaiter's (a wrong-id slip)",
    patches: [
      {
        file: TRANSITIONS,
        find: `    const task = ctx.working.task(awaiterId);`,
        replace: `    const task = ctx.working.task(settled.id);`,
      },
    ],
  },
  {
    name: "rerun-settled-step",
    breaks: "replay ignores a settled local step's record and runs its function again",
    patches: [
      {
        file: EXECUTION,
        find: `    if (recorded !== undefined && recorded.state !== "pending") {
      this.settleFrom(future, recorded);
      return future;
    }
    const timeoutAt = this.timeoutAt(frame, options.timeout, false);`,
        replace: `    const timeoutAt = this.timeoutAt(frame, options.timeout, false);`,
      },
    ],
  },
  {
    name: "suspend-ignores-settled",
    breaks: "task.suspend trusts the worker's view and suspends even when an awaited promise already settled",
    patches: [
      {
        file: TASKS,
        find: `  if (awaited.some((promise) => promise.state !== "pending")) {
    writeTask(ctx, { ...held.task, resumeIds: [] });
    return { status: 300, data: { preload: preload(ctx, held.promise) } };
  }
`,
        replace: ``,
      },
    ],
  },
  {
    name: "deliver-to-other-group",
    breaks: "when no connection of the target group is live, delivery falls back to any connection",
    patches: [
      {
        file: "src/server/delivery.ts",
        find: `    const connections = this.groups.get(route.group) ?? [];`,
        replace: `    const connections = this.groups.get(route.group) ?? [...this.groups.values()].flat();`,
      },
    ],
  },
  {
    name: "lease-tenth",
    breaks: "a lease expires after a tenth of its ttl, while its holder is alive and heartbeating",
    patches: [
      {
        file: TASKS,
        find: `    expiresAt: later(ctx.now, ttl),`,
        replace: `    expiresAt: later(ctx.now, ttl / 10),`,
      },
    ],
  },
  {
    name: "acquire-no-bump",
    breaks: "acquisition keeps the version: two successive claims share one fencing token",
    patches: [{ file: TASKS, find: `    version: task.version + 1,`, replace: `    version: task.version,` }],
  },
  {
    name: "fence-any-version",
    breaks: "task.fence skips the version check: a holder that lost its lease still creates and settles",
    patches: [
      {
        file: TASKS,
        find: `  const held = guard(ctx, data.id, data.version, "acquired");
  if (!held.ok) return held.response;
  const action = data.action;`,
        replace: `  const held = guard(ctx, data.id, undefined, "acquired");
  if (!held.ok) return held.response;
  const action = data.action;`,
      },
    ],
  },
  {
    name: "settle-ignores-state",
    breaks: "promise.settle records every settlement as resolved, whatever state it was given",
    patches: [{ file: PROMISES, find: `    state: data.state,`, replace: `    state: "resolved",` }],
  },
  {
    name: "callback-wrong-awaiter",
    breaks: "task.suspend registers the awaited promise as its own awaiter instead of the suspending task",
    patches: [
      {
        file: TASKS,
        find: `    if (!awaiters.includes(data.id)) ctx.working.setCallbacks(promise.id, [...awaiters, data.id]);`,
        replace: `    if (!awaiters.includes(data.id)) ctx.working.setCallbacks(promise.id, [...awaiters, promise.id]);`,
      },
    ],
  },
  {
    name: "detached-not-awaited",
    breaks: "a frame completes before its detached calls were created (the fix of 821cac5 undone)",
    patches: [{ file: EXECUTION, find: `      await Promise.all(frame.creations);\n`, replace: `` }],
  },
  {
    name: "generator-swallows-errors",
    breaks:
      "the generator engine sends a failed call back as undefined instead of throwing it into the generator",
    patches: [
      {
        file: EXECUTION,
        find: `"error" in input ? generator.throw(input.error) : generator.next(input.value);`,
        replace: `generator.next("value" in input ? input.value : undefined);`,
      },
    ],
  },
  {
    name: "no-timeout-projection",
    breaks: "reads show the stored record: a pending promise past its timeoutAt reads as pending",
    patches: [
      {
        file: "src/core/project.ts",
        find: `  if (!isTimedOut(promise, now)) return promise.state;`,
        replace: `  return promise.state;`,
      },
      {
        file: "src/core/project.ts",
        find: `  const timedOut = isTimedOut(promise, now);`,
        replace: `  const timedOut = false;`,
      },
    ],
  },
  {
    name: "resume-dead-awaiter",
    breaks: "the callback drain wakes an awaiter whose task is already fulfilled (C6 gate removed)",
    patches: [
      {
        file: TRANSITIONS,
        find: `    if (awaiter === undefined || task === undefined || task.state === "fulfilled") continue;`,
        replace: `    if (awaiter === undefined || task === undefined) continue;`,
      },
    ],
  },
  {
    name: "heartbeat-no-extend",
    breaks: "heartbeats are answered but do not extend the lease",
    patches: [
      {
        file: TASKS,
        find: `    writeTask(ctx, { ...task, expiresAt: later(ctx.now, task.ttl) });`,
        replace: `    writeTask(ctx, { ...task });`,
      },
    ],
  },
  {
    name: "fulfil-ignores-state",
    breaks: "task.fulfill records every result as resolved, whatever state it was given",
    patches: [
      {
        file: TASKS,
        find: `  const settled = settlePromise(ctx, held.promise, {
    state: data.action.data.state,`,
        replace: `  const settled = settlePromise(ctx, held.promise, {
    state: "resolved",`,
      },
    ],
  },
  {
    name: "sweep-not-applied",
    breaks: "the shell's sweep computes what fired (and delivers its messages) but never applies the changes",
    patches: [
      {
        file: SHELL,
        find: `            const events = observed ? describeChanges(tx, result.changes, now, "timer") : [];
            tx.apply(result.changes);`,
        replace: `            const events = observed ? describeChanges(tx, result.changes, now, "timer") : [];`,
      },
    ],
  },
];

export const SURVIVORS: Survivor[] = [
  {
    name: "forget-outbox-on-restart",
    breaks: "a restarted shell does not redeliver what its predecessor left in the outbox",
    patches: [
      {
        file: SHELL,
        find: `    this.scheduleMaintenance();
    void this.sweepNow();
    void this.redeliver();`,
        replace: `    this.scheduleMaintenance();
    void this.sweepNow();`,
      },
    ],
    verdict: "equivalent",
    why:
      "message loss is survived by design: each worker reconnecting to the new shell gets its outbox read " +
      "(connect → redeliver), a pending task is dispatched again every retryTimeoutMs, and a waiting handle " +
      "re-reads its promise every 5 s; see outbox-never-reread for the stronger form",
  },
  {
    name: "outbox-never-reread",
    breaks: "the outbox is never read back (no redelivery on start, on connect or in the repair loop)",
    patches: [
      {
        file: SHELL,
        find: `    this.scheduleMaintenance();\n    void this.sweepNow();\n    void this.redeliver();\n`,
        replace: `    this.scheduleMaintenance();\n    void this.sweepNow();\n`,
      },
      { file: SHELL, find: `    void this.redeliver(addressesOf(connection));\n`, replace: `` },
      {
        file: SHELL,
        find: `      void this.sweepNow();\n      void this.redeliver();\n      this.scheduleMaintenance();`,
        replace: `      void this.sweepNow();\n      this.scheduleMaintenance();`,
      },
    ],
    verdict: "equivalent",
    why:
      "the outbox only speeds delivery up: a message without a live route when committed is never sent, " +
      "yet the retry timer (R6) dispatches a pending task again and handles poll; nothing in the protocol " +
      "depends on an execute or an unblock arriving",
  },
];
