/** `schedule.*` handlers (PROTOCOL.md §6); firing (R7) lives in `transitions.ts`. */
import type {
  Response,
  ScheduleCreateRequest,
  ScheduleDeleteRequest,
  ScheduleGetRequest,
  ScheduleSearchRequest,
} from "../protocol/requests.js";
import { nextOccurrence } from "./cron.js";
import { collectPage } from "./promise-handlers.js";
import { fail, ok } from "./responses.js";
import type { StepContext } from "./transitions.js";

export function scheduleGet(ctx: StepContext, { data }: ScheduleGetRequest): Response {
  const schedule = ctx.working.schedule(data.id);
  if (schedule === undefined) return fail(404, `schedule ${data.id} not found`);
  return ok({ schedule });
}

export function scheduleCreate(ctx: StepContext, { data }: ScheduleCreateRequest): Response {
  const existing = ctx.working.schedule(data.id);
  if (existing !== undefined) return ok({ schedule: existing });
  const schedule = {
    id: data.id,
    cron: data.cron,
    promiseId: data.promiseId,
    promiseTimeout: data.promiseTimeout,
    promiseParam: data.promiseParam ?? {},
    promiseTags: data.promiseTags ?? {},
    createdAt: ctx.now,
    nextRunAt: nextOccurrence(data.cron, ctx.now),
  };
  ctx.working.putSchedule(schedule);
  return ok({ schedule });
}

export function scheduleDelete(ctx: StepContext, { data }: ScheduleDeleteRequest): Response {
  if (ctx.working.schedule(data.id) === undefined) return fail(404, `schedule ${data.id} not found`);
  ctx.working.deleteSchedule(data.id);
  return ok({});
}

export const DEFAULT_SCHEDULE_SEARCH_LIMIT = 10;

export function scheduleSearch(ctx: StepContext, { data }: ScheduleSearchRequest): Response {
  const found = collectPage(
    (after, pageSize) =>
      ctx.working.reader.searchSchedules({
        ...(data.tags !== undefined && { tags: data.tags }),
        ...(after !== undefined && { after }),
        limit: pageSize,
      }),
    () => true,
    data.cursor,
    data.limit ?? DEFAULT_SCHEDULE_SEARCH_LIMIT,
  );
  return ok({ schedules: found.items, ...(found.cursor !== undefined && { cursor: found.cursor }) });
}
