/**
 * Schedules (`schedule.search`): id, cron, the promise each occurrence makes,
 * next and last run, and the tags of those promises. Read again whenever
 * `/events` tells of a schedule created, fired or deleted (`version` bumps).
 */
import { useEffect, useState } from "preact/hooks";
import type { ScheduleRecord } from "../protocol/records.js";
import { type Request, searchAll, Unauthorized } from "./api.js";
import { ErrorLine, message } from "./parts.js";
import { formatInstant } from "./values.js";

interface SchedulesProps {
  request: Request;
  now: number;
  version: number;
  onUnauthorized(): void;
}

export function SchedulesView({ request, now, version, onUnauthorized }: SchedulesProps) {
  const [schedules, setSchedules] = useState<ScheduleRecord[] | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  useEffect(() => {
    let current = true;
    searchAll<ScheduleRecord>(request, "schedule.search", "schedules", {}).then(
      (records) => {
        if (!current) return;
        setSchedules(records);
        setError(undefined);
      },
      (searchError: unknown) => {
        if (!current) return;
        if (searchError instanceof Unauthorized) onUnauthorized();
        else setError(message(searchError));
      },
    );
    return () => {
      current = false;
    };
  }, [request, version]);

  return (
    <section class="panel" aria-label="schedules">
      <header class="panel-head">
        <h2>Schedules</h2>
        {schedules !== undefined && <span class="muted">{schedules.length}</span>}
      </header>
      <ErrorLine error={error} />
      {schedules === undefined && error === undefined && <p class="muted">Loading…</p>}
      {schedules !== undefined && schedules.length === 0 && <p class="muted">No schedules.</p>}
      {schedules !== undefined && schedules.length > 0 && (
        <table class="table">
          <thead>
            <tr>
              <th>id</th>
              <th>cron (UTC)</th>
              <th>promise id</th>
              <th>next run</th>
              <th>last run</th>
              <th>tags</th>
            </tr>
          </thead>
          <tbody>
            {schedules.map((schedule) => (
              <tr key={schedule.id} data-schedule-id={schedule.id}>
                <td class="mono">{schedule.id}</td>
                <td class="mono">{schedule.cron}</td>
                <td class="mono">{schedule.promiseId}</td>
                <td>{formatInstant(schedule.nextRunAt, now)}</td>
                <td>{schedule.lastRunAt === undefined ? "never" : formatInstant(schedule.lastRunAt, now)}</td>
                <td class="mono small">
                  {Object.entries(schedule.promiseTags)
                    .map(([key, value]) => `${key}=${value}`)
                    .join(" ")}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
