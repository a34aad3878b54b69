/**
 * `GET /events` as a web-standard streaming `Response` (docs/events.md): one SSE
 * frame per server event, for the dashboard and `pledge tail`. It owns one
 * subscriber's buffer; the events themselves come from the shell's `EventHub`.
 * Frames wait in a queue of our own, handed to the HTTP layer only when it asks
 * for more (it asks once the socket drained), so a slow reader shows up here.
 *
 * Invariants:
 *  F1  A client's queued frames never exceed `bufferBytes`: the frame that would
 *      pass the limit drops the client instead — its queue is emptied, it is
 *      unsubscribed, and its response ends cleanly (an `EventSource` reconnects
 *      by itself and re-reads). Memory per client stays under twice `bufferBytes`
 *      (the queue, and one chunk the HTTP layer may still hold).
 *  F2  Every frame is `id: <seq>` plus exactly one `data:` line (compact JSON has
 *      no newline; checked before writing, W3 in `app.ts`).
 *  F3  The subscription, and its keep-alive timer, end with the stream, whichever
 *      side ends it.
 */
import { assert } from "../../lib/assert.js";
import type { Logger } from "../../lib/logger.js";
import type { EventsHello, ServerEvent } from "../../protocol/events.js";
import type { EventHub } from "../events.js";

export interface EventStreamOptions {
  /** Queued bytes a client may have before it is dropped (F1). */
  bufferBytes: number;
  /** Interval of keep-alive comments. */
  keepAliveMs: number;
  /** The reconnection delay suggested to `EventSource` clients. */
  retryMs: number;
  logger: Logger;
  /** Called once when the stream ends, for whatever reason. */
  onEnd(): void;
}

const encoder = new TextEncoder();

function frame(data: string, id?: number): string {
  assert(!data.includes("\n") && !data.includes("\r"), "F2 an SSE data line has no line break");
  return id === undefined ? `data: ${data}\n\n` : `id: ${id}\ndata: ${data}\n\n`;
}

export function eventStreamResponse(hub: EventHub, options: EventStreamOptions): Response {
  let queue: string[] = [];
  let queuedBytes = 0;
  let ended = false;
  let wake: (() => void) | undefined;
  let unsubscribe = (): void => {};
  let keepAlive: ReturnType<typeof setInterval> | undefined;
  const notify = (): void => {
    const waiting = wake;
    wake = undefined;
    waiting?.();
  };
  const end = (): void => {
    if (ended) return;
    ended = true;
    unsubscribe();
    clearInterval(keepAlive);
    options.onEnd();
    notify();
  };
  /** Queues a frame, or drops the client when it would pass its buffer (F1). */
  const push = (text: string): void => {
    if (ended) return;
    const bytes = Buffer.byteLength(text);
    if (queuedBytes + bytes > options.bufferBytes) {
      options.logger.warn({ bufferBytes: options.bufferBytes }, "dropping a slow /events client");
      queue = [];
      queuedBytes = 0;
      end();
      return;
    }
    queue.push(text);
    queuedBytes += bytes;
    notify();
  };

  const hello: EventsHello = { kind: "events.hello", seq: hub.lastSeq };
  push(`retry: ${options.retryMs}\n${frame(JSON.stringify(hello))}`);
  unsubscribe = hub.subscribe((event: ServerEvent) => push(frame(JSON.stringify(event), event.seq)));
  keepAlive = setInterval(() => push(":\n\n"), options.keepAliveMs);

  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        while (queue.length === 0 && !ended) await new Promise<void>((resolve) => (wake = resolve));
        if (queue.length > 0) {
          const chunk = encoder.encode(queue.join(""));
          queue = [];
          queuedBytes = 0;
          controller.enqueue(chunk);
          return;
        }
        try {
          controller.close();
        } catch {
          // Already cancelled by the client: nothing to close.
        }
      },
      cancel() {
        end(); // F3: the client went away.
      },
    },
    { highWaterMark: 0 },
  );
  return new Response(body, {
    status: 200,
    headers: {
      "Content-Type": "text/event-stream",
      "Cache-Control": "no-cache",
      Connection: "keep-alive",
      "X-Accel-Buffering": "no",
    },
  });
}
