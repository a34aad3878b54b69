import { describe, expect, it } from "vitest";
import { ProtocolClient, ProtocolNetworkError, ProtocolResponseError } from "../../src/lib/http-client.js";

interface Sent {
  url: string;
  headers: Record<string, string>;
  body: { kind: string; head: Record<string, unknown>; data: unknown };
}

function fakeFetch(answer: (sent: Sent) => Response): { fetch: typeof fetch; sent: Sent[] } {
  const sent: Sent[] = [];
  const fetchFunction = (async (url: string | URL | Request, init?: RequestInit) => {
    const request: Sent = {
      url: String(url),
      headers: init?.headers as Record<string, string>,
      body: JSON.parse(String(init?.body)),
    };
    sent.push(request);
    return answer(request);
  }) as typeof fetch;
  return { fetch: fetchFunction, sent };
}

function envelope(
  sent: Sent,
  status: number,
  data: unknown,
  extraHead: Record<string, unknown> = {},
): Response {
  return new Response(
    JSON.stringify({
      kind: sent.body.kind,
      head: { corrId: sent.body.head.corrId, status, version: "2026-04-01", ...extraHead },
      data,
    }),
    { status, headers: { "content-type": "application/json" } },
  );
}

describe("ProtocolClient", () => {
  it("posts the §1.2 envelope with a fresh corrId, the version and the bearer token", async () => {
    const transport = fakeFetch((sent) => envelope(sent, 200, { promise: { id: "a" } }));
    let counter = 0;
    const client = new ProtocolClient({
      url: "http://server:1/",
      token: "secret",
      fetch: transport.fetch,
      newCorrId: () => `c${++counter}`,
    });
    const first = await client.call("promise.get", { id: "a" });
    await client.call("promise.get", { id: "a" });
    expect(first).toEqual({ status: 200, data: { promise: { id: "a" } } });
    expect(transport.sent[0]?.url).toBe("http://server:1/");
    expect(transport.sent[0]?.headers.authorization).toBe("Bearer secret");
    expect(transport.sent[0]?.body).toEqual({
      kind: "promise.get",
      head: { corrId: "c1", version: "2026-04-01", auth: "secret" },
      data: { id: "a" },
    });
    expect(transport.sent[1]?.body.head.corrId).toBe("c2");
  });

  it("sends no Authorization header without a token", async () => {
    const transport = fakeFetch((sent) => envelope(sent, 200, {}));
    await new ProtocolClient({ url: "http://server:1", fetch: transport.fetch }).call("debug.snap", {});
    expect(transport.sent[0]?.headers.authorization).toBeUndefined();
    expect(transport.sent[0]?.body.head.auth).toBeUndefined();
  });

  it("answers an error status with its message and head.error instead of throwing", async () => {
    const transport = fakeFetch((sent) =>
      envelope(sent, 404, "promise a not found", { error: { code: "not_found", retryable: false } }),
    );
    const result = await new ProtocolClient({ url: "http://s", fetch: transport.fetch }).call("promise.get", {
      id: "a",
    });
    expect(result).toEqual({
      status: 404,
      data: "promise a not found",
      error: { code: "not_found", retryable: false },
    });
  });

  it("throws a ProtocolNetworkError when nothing answers", async () => {
    const client = new ProtocolClient({ url: "http://127.0.0.1:9", timeoutMs: 5000 });
    await expect(client.call("promise.get", { id: "a" })).rejects.toBeInstanceOf(ProtocolNetworkError);
    await expect(client.call("promise.get", { id: "a" })).rejects.toThrow(
      /cannot reach http:\/\/127\.0\.0\.1:9/,
    );
  });

  it("throws a ProtocolResponseError for a body that is not an envelope or answers another request", async () => {
    const plain = fakeFetch(() => new Response("Payload Too Large", { status: 413 }));
    await expect(
      new ProtocolClient({ url: "http://s", fetch: plain.fetch }).call("promise.get", {}),
    ).rejects.toThrow(ProtocolResponseError);
    const other = fakeFetch((sent) =>
      envelope(
        { ...sent, body: { ...sent.body, head: { ...sent.body.head, corrId: "someone-else" } } },
        200,
        {},
      ),
    );
    await expect(
      new ProtocolClient({ url: "http://s", fetch: other.fetch }).call("promise.get", {}),
    ).rejects.toThrow(/does not answer this request/);
  });
});
