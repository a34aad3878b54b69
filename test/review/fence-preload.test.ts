/**
 * Review: preload (Pledge's decisions, §3.8) is "the promises whose resonate:branch
 * equals the task promise's, excluding itself, sorted by id", projected. A
 * `task.fence` that creates a branch-mate returns a preload computed from the
 * store's pre-request rows (`reader.promisesInBranch`), so the promise this very
 * request created is missing, while a task.acquire right after lists it.
 */
import { describe, expect, it } from "vitest";
import { useServer } from "../support/server.js";

const TARGET = "poll://any@workers";

describe("review: task.fence preload", () => {
  const h = useServer();

  it("includes a branch-mate created by the fence itself", async () => {
    const created = await h.c.at(0).taskCreate("r", 1_000_000, {
      tags: { "resonate:target": TARGET, "resonate:branch": "r" },
    });
    expect(created.status).toBe(200);
    const fenced = await h.c.ok("task.fence", {
      id: "r",
      version: 1,
      action: {
        kind: "promise.create",
        head: {},
        data: { id: "r.1", timeoutAt: 1_000_000, tags: { "resonate:branch": "r" } },
      },
    });
    expect(fenced.action.head.status).toBe(200);
    expect(fenced.preload.map((p: { id: string }) => p.id)).toEqual(["r.1"]);
  });
});
