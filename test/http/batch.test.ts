/**
 * Pledge's `batch` extension (ADR 0006), black box: a `POST /` body that is an
 * array of request envelopes is answered, under HTTP 200, by an array of their
 * answers in the same order, each what the request would have got alone, with
 * the requests applied in order.
 */
import { describe, expect, test } from "vitest";
import { post, VERSION } from "../support/client.js";
import { AUTH_TOKEN, useServer } from "../support/server.js";

let corr = 0;
function envelope(kind: string, data: unknown, head: Record<string, unknown> = {}) {
  corr += 1;
  return { kind, head: { corrId: `b${corr}`, version: VERSION, "resonate:debug_time": 100, ...head }, data };
}

async function batch(url: string, requests: unknown[], headers: Record<string, string> = {}) {
  const reply = await post(url, JSON.stringify(requests), headers);
  return {
    httpStatus: reply.httpStatus,
    answers: reply.body as { kind: string; head: { corrId: string; status: number }; data: unknown }[],
  };
}

describe("batch (ADR 0006)", () => {
  const h = useServer();

  test("answers each request in its slot, in order, as it would alone; a bad one fails only its slot", async () => {
    const requests = [
      envelope("promise.create", { id: "p", timeoutAt: 10_000 }),
      envelope("promise.get", { id: "p" }),
      envelope("promise.create", { timeoutAt: 10_000 }), // no id
      envelope("promise.settle", { id: "p", state: "resolved" }),
      envelope("promise.get", { id: "p" }),
      envelope("promise.get", { id: "missing" }),
      7,
      envelope("no.such.kind", {}),
    ];
    const { httpStatus, answers } = await batch(h.url, requests);
    expect(httpStatus).toBe(200);
    expect(answers.map((answer) => answer.head.status)).toEqual([200, 200, 400, 200, 200, 404, 400, 400]);
    expect(answers.map((answer) => answer.head.corrId)).toEqual([
      ...requests.slice(0, 6).map((request) => (request as { head: { corrId: string } }).head.corrId),
      "0",
      (requests[7] as { head: { corrId: string } }).head.corrId,
    ]);
    expect(answers.map((answer) => answer.kind)).toEqual([
      "promise.create",
      "promise.get",
      "promise.create",
      "promise.settle",
      "promise.get",
      "promise.get",
      "unknown",
      "no.such.kind",
    ]);
    expect(answers[1]?.data).toMatchObject({ promise: { id: "p", state: "pending" } });
    expect(answers[2]?.data).toMatch(/^data\.id: /);
    expect(answers[4]?.data).toMatchObject({ promise: { id: "p", state: "resolved" } });
    // The same requests alone answer the same (the record now exists, settled).
    const alone = await post(h.url, JSON.stringify(envelope("promise.get", { id: "p" })));
    expect(alone.data).toStrictEqual(answers[4]?.data);
  });

  test("an empty batch, or one of more than 1000 requests, answers 400 naming the body", async () => {
    for (const size of [0, 1001]) {
      const reply = await post(
        h.url,
        JSON.stringify(Array.from({ length: size }, () => envelope("promise.get", { id: "x" }))),
      );
      expect(reply.httpStatus).toBe(400);
      expect(reply.data).toBe(`body: a batch holds 1 to 1000 requests, not ${size}`);
    }
  });
});

describe("batch with a token (ADR 0006)", () => {
  const h = useServer({ auth: true });

  test("the header's token covers every request; without it the batch is one 401, whatever it holds", async () => {
    const covered = await batch(
      h.url,
      [envelope("promise.get", { id: "x" }), envelope("promise.get", { id: "y" })],
      { authorization: `Bearer ${AUTH_TOKEN}` },
    );
    expect(covered.answers.map((answer) => answer.head.status)).toEqual([404, 404]);
    const requests = [
      envelope("promise.get", { id: "x" }, { auth: AUTH_TOKEN }),
      envelope("promise.create", { id: "sneaky", timeoutAt: 10_000 }),
    ];
    for (const headers of [{}, { authorization: "Bearer guess" }] as Record<string, string>[]) {
      const reply = await post(h.url, JSON.stringify(requests), headers);
      expect(reply.httpStatus).toBe(401);
      expect(reply).toMatchObject({ kind: "unknown", corrId: "0", status: 401 });
    }
    const checked = await batch(h.url, [envelope("promise.get", { id: "sneaky" })], {
      authorization: `Bearer ${AUTH_TOKEN}`,
    });
    expect(checked.answers[0]?.head.status).toBe(404); // the refused create did nothing
  });

  test("an empty batch without the token answers 401 before anything else", async () => {
    const reply = await post(h.url, "[]");
    expect(reply.httpStatus).toBe(401);
  });
});
