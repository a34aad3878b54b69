/**
 * Routing of outgoing messages to live connections (PROTOCOL.md §1.8, §1.9).
 * `poll://uni@g/id` reaches only a connection registered as (g, id);
 * `poll://any@g/id` prefers (g, id) and otherwise takes any connection of g;
 * `poll://any@g` takes any connection of g (round-robin, so load spreads);
 * `http(s)://` addresses are pushed with a POST. Anything else has no route.
 */
import type { OutgoingMessage } from "../protocol/records.js";

export interface Connection {
  readonly group: string;
  readonly id: string;
  /** Queues the message on the connection; false when its buffer is full (the message is not taken). */
  send(message: OutgoingMessage): boolean;
}

export type Route =
  | { kind: "poll"; mode: "uni" | "any"; group: string; id?: string }
  | { kind: "http"; url: string }
  | { kind: "none" };

export function parseAddress(address: string): Route {
  if (address.startsWith("http://") || address.startsWith("https://")) return { kind: "http", url: address };
  if (!address.startsWith("poll://")) return { kind: "none" };
  const rest = address.slice("poll://".length);
  const at = rest.indexOf("@");
  if (at < 0) return { kind: "none" };
  const mode = rest.slice(0, at);
  if (mode !== "uni" && mode !== "any") return { kind: "none" };
  const path = rest.slice(at + 1);
  const slash = path.indexOf("/");
  const group = slash < 0 ? path : path.slice(0, slash);
  const id = slash < 0 ? undefined : path.slice(slash + 1);
  if (group.length === 0) return { kind: "none" };
  if (mode === "uni" && (id === undefined || id.length === 0)) return { kind: "none" };
  return id === undefined || id.length === 0
    ? { kind: "poll", mode, group }
    : { kind: "poll", mode, group, id };
}

/** The addresses a connection answers to, for reading its waiting messages from the outbox. */
/**
 * Address prefixes of the messages a connection may take: its unicast address and
 * every anycast of its group. (A prefix may also match another group whose name
 * extends this one; routing each message by its own address sends it right.)
 */
export function addressesOf(connection: { group: string; id: string }): string[] {
  return [`poll://uni@${connection.group}/${connection.id}`, `poll://any@${connection.group}`];
}

export class ConnectionRegistry {
  private readonly groups = new Map<string, Connection[]>();
  private readonly cursor = new Map<string, number>();

  get size(): number {
    let count = 0;
    for (const connections of this.groups.values()) count += connections.length;
    return count;
  }

  add(connection: Connection): void {
    const connections = this.groups.get(connection.group) ?? [];
    connections.push(connection);
    this.groups.set(connection.group, connections);
  }

  remove(connection: Connection): void {
    const connections = this.groups.get(connection.group);
    if (connections === undefined) return;
    const remaining = connections.filter((candidate) => candidate !== connection);
    if (remaining.length === 0) this.groups.delete(connection.group);
    else this.groups.set(connection.group, remaining);
  }

  /** Candidates for a poll route, preferred first. */
  candidates(route: Extract<Route, { kind: "poll" }>): Connection[] {
    const connections = this.groups.get(route.group) ?? [];
    const exact =
      route.id === undefined ? [] : connections.filter((connection) => connection.id === route.id);
    if (route.mode === "uni") return exact;
    if (connections.length === 0) return exact;
    const start = (this.cursor.get(route.group) ?? 0) % connections.length;
    this.cursor.set(route.group, start + 1);
    const rotated = [...connections.slice(start), ...connections.slice(0, start)];
    return [...exact, ...rotated.filter((connection) => !exact.includes(connection))];
  }

  /** Hands `message` to the first candidate that takes it; false when none did. */
  deliver(route: Extract<Route, { kind: "poll" }>, message: OutgoingMessage): boolean {
    for (const connection of this.candidates(route)) if (connection.send(message)) return true;
    return false;
  }
}
