/**
 * `pledge tree --watch` (issue 6 item 3), in process against a real server: the
 * tree is drawn, redrawn when the server reports a change on `GET /events`, and
 * the command ends with exit 0 when stopped. Not a terminal here, so each
 * rendering follows a blank line and carries no colour.
 */
import { afterEach, describe, expect, it } from "vitest";
import { type CliIo, runCli } from "../../src/cli/program.js";
import { cleanUp, ok, serve, sleep } from "../server/helpers.js";

afterEach(cleanUp);

async function until(probe: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe("pledge tree --watch", () => {
  it("redraws when a child appears and settles, and exits 0 when stopped", async () => {
    const server = await serve();
    const timeoutAt = Date.now() + 600_000;
    await ok(server.url, "promise.create", { id: "w", timeoutAt });
    let output = "";
    let stop: (signal: string) => void = () => {};
    const io: CliIo = {
      stdout: (text) => {
        output += text;
      },
      stderr: () => {},
      env: {},
      now: () => Date.now(),
      waitForStop: () => new Promise((resolve) => (stop = resolve)),
      stdoutIsTty: false,
    };
    const exit = runCli(["tree", "w", "--watch", "--url", server.url], io);
    await until(() => output.startsWith("w "), "the first rendering");

    await ok(server.url, "promise.create", { id: "w.1", timeoutAt, tags: { "resonate:parent": "w" } });
    await until(() => /└─ w\.1 +pending/.test(output), "the child to appear");
    await ok(server.url, "promise.settle", { id: "w.1", state: "resolved", value: { data: "" } });
    await until(() => /└─ w\.1 +resolved/.test(output), "the child to settle");

    stop("SIGINT");
    expect(await exit).toBe(0);
    expect(output).not.toContain("\u001b");
  });
});
