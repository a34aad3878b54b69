/**
 * `promise.*` handlers (PROTOCOL.md §4). Each handler first materialises the
 * promises its request names (L1), then applies the checks in the spec's order;
 * a failed check writes nothing.
 */
import { isExternal, isTargeted, isTimer, type PromiseState, SETTLE_ON_CREATE } from "../protocol/records.js";
import type {
  PromiseCreateRequest,
  PromiseGetRequest,
  PromiseRegisterCallbackRequest,
  PromiseRegisterListenerRequest,
  PromiseSearchRequest,
  PromiseSettleRequest,
  Response,
} from "../protocol/requests.js";
import { projectedState, projectPromise } from "./project.js";
import { fail, ok } from "./responses.js";
import type { StoredPromise } from "./state.js";
import { createPromise, materialize, type StepContext, settlePromise } from "./transitions.js";

export function promiseGet(ctx: StepContext, { data }: PromiseGetRequest): Response {
  const promise = materialize(ctx, data.id);
  if (promise === undefined) return fail(404, `promise ${data.id} not found`);
  return ok({ promise: projectPromise(promise, ctx.now) });
}

/**
 * §4.2, and Pledge's `pledge:settle` (ADR 0005): a promise created already settled
 * is exactly a create followed by a settle at the same `now`, so a retry finds it
 * and answers it as §4.2 step 2 answers any existing promise. Only a promise
 * nothing waits on to run may be born settled: not a targeted one (its task) nor
 * a timer (its deadline is its settlement).
 */
export function promiseCreate(ctx: StepContext, { data }: PromiseCreateRequest): Response {
  const settle = data[SETTLE_ON_CREATE];
  const tags = data.tags ?? {};
  if (settle !== undefined && (isTargeted(tags) || isTimer(tags)))
    return fail(400, `data["${SETTLE_ON_CREATE}"]: a targeted promise or a timer is never created settled`);
  const existing = materialize(ctx, data.id);
  if (existing !== undefined) return ok({ promise: projectPromise(existing, ctx.now) });
  const created = createPromise(ctx, data, ctx.now);
  if (settle === undefined || created.state !== "pending")
    return ok({ promise: projectPromise(created, ctx.now) });
  const settled = settlePromise(ctx, created, {
    state: settle.state,
    value: settle.value ?? {},
    settledAt: ctx.now,
  });
  return ok({ promise: projectPromise(settled, ctx.now) });
}

export function promiseSettle(ctx: StepContext, { data }: PromiseSettleRequest): Response {
  const promise = materialize(ctx, data.id);
  if (promise === undefined) return fail(404, `promise ${data.id} not found`);
  if (promise.state !== "pending") return ok({ promise: projectPromise(promise, ctx.now) });
  const settled = settlePromise(ctx, promise, {
    state: data.state,
    value: data.value ?? {},
    settledAt: ctx.now,
  });
  return ok({ promise: projectPromise(settled, ctx.now) });
}

export function promiseRegisterCallback(
  ctx: StepContext,
  { data }: PromiseRegisterCallbackRequest,
): Response {
  const awaited = materialize(ctx, data.awaited);
  const awaiter = materialize(ctx, data.awaiter);
  if (awaited === undefined) return fail(404, `awaited promise ${data.awaited} not found`);
  if (awaiter === undefined) return fail(422, `awaiter promise ${data.awaiter} not found`);
  if (!isTargeted(awaiter.tags))
    return fail(422, `awaiter ${data.awaiter} is not targeted (no resonate:target)`);
  if (!isExternal(awaited.tags))
    return fail(422, `awaited promise ${data.awaited} is internal; only external promises can be awaited`);
  if (awaited.state === "pending" && awaiter.state === "pending") {
    const awaiters = ctx.working.callbacks(awaited.id);
    if (!awaiters.includes(awaiter.id)) ctx.working.setCallbacks(awaited.id, [...awaiters, awaiter.id]);
  }
  return ok({ promise: projectPromise(awaited, ctx.now) });
}

export function promiseRegisterListener(
  ctx: StepContext,
  { data }: PromiseRegisterListenerRequest,
): Response {
  const awaited = materialize(ctx, data.awaited);
  if (awaited === undefined) return fail(404, `awaited promise ${data.awaited} not found`);
  if (!isExternal(awaited.tags))
    return fail(422, `promise ${data.awaited} is internal; only external promises can be listened to`);
  if (awaited.state === "pending") {
    const addresses = ctx.working.listeners(awaited.id);
    if (!addresses.includes(data.address)) ctx.working.setListeners(awaited.id, [...addresses, data.address]);
  }
  return ok({ promise: projectPromise(awaited, ctx.now) });
}

/** Stored states that can project to `state` (a pending promise may project to a timeout state). */
const STORED_CANDIDATES: Record<PromiseState, PromiseState[]> = {
  pending: ["pending"],
  resolved: ["resolved", "pending"],
  rejected: ["rejected"],
  rejected_canceled: ["rejected_canceled"],
  rejected_timedout: ["rejected_timedout", "pending"],
};

export const DEFAULT_PROMISE_SEARCH_LIMIT = 100;

export function promiseSearch(ctx: StepContext, { data }: PromiseSearchRequest): Response {
  const limit = data.limit ?? DEFAULT_PROMISE_SEARCH_LIMIT;
  const pattern = data.id;
  const idPrefix = pattern?.endsWith("*") ? pattern.slice(0, -1) : undefined;
  const exactId = pattern !== undefined && idPrefix === undefined ? pattern : undefined;
  const matches = (promise: StoredPromise) =>
    (exactId === undefined || promise.id === exactId) &&
    (data.state === undefined || projectedState(promise, ctx.now) === data.state);
  const found = collectPage(
    (after, pageSize) =>
      ctx.working.reader.searchPromises({
        ...(idPrefix !== undefined && { idPrefix }),
        ...(exactId !== undefined && { idPrefix: exactId }),
        ...(data.state !== undefined && { states: STORED_CANDIDATES[data.state] }),
        ...(data.tags !== undefined && { tags: data.tags }),
        ...(after !== undefined && { after }),
        limit: pageSize,
      }),
    matches,
    data.cursor,
    limit,
  );
  return ok({
    promises: found.items.map((promise) => projectPromise(promise, ctx.now)),
    ...(found.cursor !== undefined && { cursor: found.cursor }),
  });
}

/**
 * Reads store pages in id order, keeps the items `matches` accepts, and stops at
 * `limit` of them; `cursor` is the last id returned, present only when more exist.
 */
export function collectPage<T extends { id: string }>(
  read: (after: string | undefined, pageSize: number) => T[],
  matches: (item: T) => boolean,
  cursor: string | undefined,
  limit: number,
): { items: T[]; cursor?: string } {
  const items: T[] = [];
  let after = cursor;
  const pageSize = Math.min(limit + 1, 1000);
  for (;;) {
    const page = read(after, pageSize);
    for (const item of page) {
      if (!matches(item)) continue;
      if (items.length === limit) return { items, cursor: items[items.length - 1]?.id as string };
      items.push(item);
    }
    if (page.length < pageSize) return { items };
    after = page[page.length - 1]?.id;
  }
}
