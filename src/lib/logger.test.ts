import { describe, expect, it } from "vitest";
import { createLogger, readableLine } from "./logger.js";

function capture(options: { tty: boolean; color?: boolean }) {
  const lines: string[] = [];
  const logger = createLogger("info", { ...options, destination: { write: (text) => lines.push(text) } });
  return { logger, lines };
}

describe("createLogger", () => {
  it("writes one JSON object per line when the output is not a terminal", () => {
    const { logger, lines } = capture({ tty: false });
    logger.info({ port: 8001, store: "memory" }, "serving");
    logger.debug("below the level");
    logger.warn({ err: new Error("boom") }, "sweep failed");
    const text = lines.join("");
    const records = text
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(records).toHaveLength(2);
    expect(records[0]).toMatchObject({ level: 30, msg: "serving", port: 8001, service: "pledge" });
    expect(records[1]).toMatchObject({ level: 40, msg: "sweep failed", err: { message: "boom" } });
  });

  it("writes readable lines on a terminal, every field kept, and no colour when told so", () => {
    const { logger, lines } = capture({ tty: true, color: false });
    logger.info({ port: 8001, store: "memory" }, "serving");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\d\d:\d\d:\d\d\.\d{3} INFO {2}serving port=8001 store=memory\n$/);
    expect(lines[0]).not.toContain("\u001b[");
  });

  it("colours the level on a terminal and prints an error's stack under its line", () => {
    const line = readableLine(
      JSON.stringify({
        level: 50,
        time: 0,
        msg: "failed",
        err: { message: "boom", stack: "Error: boom\n    at x" },
      }),
      true,
    );
    expect(line).toContain('\u001b[31mERROR\u001b[0m failed err="boom"\n');
    expect(line).toContain("    Error: boom\n");
  });
});
