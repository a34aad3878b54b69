/**
 * The search box's language, turned into a `promise.search` body:
 *   `order-7`            promises whose id starts with `order-7` (Pledge's `id` prefix filter)
 *   `state:pending`      by state (any of the five promise states)
 *   `env=prod`           by tag (key and value exact; a key may contain `:`, as in `resonate:origin=x`)
 * Words combine (all must hold); an empty box lists every promise.
 *
 * I1. A query is either a body the server accepts or one reason naming the word
 *     at fault; nothing half-parsed is ever sent.
 */
import type { PromiseState, Tags } from "../protocol/records.js";

const STATES: readonly PromiseState[] = [
  "pending",
  "resolved",
  "rejected",
  "rejected_canceled",
  "rejected_timedout",
];

export interface PromiseQuery {
  id?: string;
  state?: PromiseState;
  tags?: Tags;
}

export type ParsedQuery = { ok: true; query: PromiseQuery } | { ok: false; reason: string };

export function parseQuery(text: string): ParsedQuery {
  const query: PromiseQuery = {};
  const tags: Tags = {};
  for (const word of text
    .trim()
    .split(/\s+/)
    .filter((part) => part !== "")) {
    const state = /^state:(.*)$/.exec(word);
    if (state !== null) {
      const name = state[1] as PromiseState;
      if (!STATES.includes(name))
        return { ok: false, reason: `"${word}": a state is one of ${STATES.join(", ")}` };
      if (query.state !== undefined && query.state !== name)
        return { ok: false, reason: `"${word}": only one state at a time` };
      query.state = name;
      continue;
    }
    const equals = word.indexOf("=");
    if (equals === 0) return { ok: false, reason: `"${word}": a tag needs a key before "="` };
    if (equals > 0) {
      tags[word.slice(0, equals)] = word.slice(equals + 1);
      continue;
    }
    if (query.id !== undefined) return { ok: false, reason: `"${word}": only one id prefix at a time` };
    query.id = word.endsWith("*") ? word : `${word}*`;
  }
  if (Object.keys(tags).length > 0) query.tags = tags;
  return { ok: true, query };
}
