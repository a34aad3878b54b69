// Usage: node concurrent-create.mjs <url> <count> <id-prefix> <timeoutAt>
// Sends <count> promise.create requests at once with fetch and prints one JSON
// line: the HTTP status of each, in order. A separate process, so that the
// requests reach the server the way concurrent clients' requests do.
const [url, count, prefix, timeoutAt] = process.argv.slice(2);
const statuses = await Promise.all(
  Array.from({ length: Number(count) }, (_, index) =>
    fetch(`${url}/`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        kind: "promise.create",
        head: { corrId: `c-${index}`, version: "2026-04-01" },
        data: { id: `${prefix}${index}`, timeoutAt: Number(timeoutAt) },
      }),
    }).then(async (response) => {
      await response.arrayBuffer();
      return response.status;
    }),
  ),
);
process.stdout.write(`${JSON.stringify(statuses)}\n`);
