/**
 * Store URLs (INTERFACES.md "Stores") to opened stores: `memory`,
 * `sqlite:<path>` or a bare path, `postgres://…`.
 */

import { MemoryStore } from "../store/memory-store.js";
import type { Store } from "../store/store.js";

export type StoreLocation =
  | { kind: "memory" }
  | { kind: "sqlite"; path: string }
  | { kind: "postgres"; url: string };

export function parseStoreUrl(url: string): StoreLocation {
  const trimmed = url.trim();
  if (trimmed.length === 0)
    throw new Error("store: empty store URL; use memory, sqlite:<path> or postgres://…");
  if (trimmed === "memory") return { kind: "memory" };
  if (trimmed.startsWith("postgres://") || trimmed.startsWith("postgresql://"))
    return { kind: "postgres", url: trimmed };
  if (trimmed.startsWith("sqlite:")) {
    const path = trimmed.slice("sqlite:".length);
    if (path.length === 0) throw new Error("store: sqlite: needs a path, e.g. sqlite:./pledge.db");
    return { kind: "sqlite", path };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed))
    throw new Error(`store: unknown store URL ${trimmed}; use memory, sqlite:<path> or postgres://…`);
  return { kind: "sqlite", path: trimmed };
}

export interface OpenStoreOptions {
  sync?: "full" | "normal";
  /** Recorded in a SQLite file's owner lock so a second process can say where to reach us. */
  ownerUrl?: string;
}

export async function openStore(url: string, options: OpenStoreOptions = {}): Promise<Store> {
  const location = parseStoreUrl(url);
  switch (location.kind) {
    case "memory":
      return new MemoryStore();
    case "sqlite": {
      const { openSqliteStore } = await import("../store/sqlite/sqlite-store.js");
      return openSqliteStore({
        path: location.path,
        ...(options.sync !== undefined && { sync: options.sync }),
        ...(options.ownerUrl !== undefined && { ownerUrl: options.ownerUrl }),
      });
    }
    case "postgres": {
      // `pg` is an optional peer dependency: load it (through the store) only when asked for.
      let module: typeof import("../store/postgres/postgres-store.js");
      try {
        module = await import("../store/postgres/postgres-store.js");
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ERR_MODULE_NOT_FOUND")
          throw new Error("store: postgres:// needs the pg package; install it with `npm install pg`", {
            cause: error,
          });
        throw error;
      }
      // `?schema=name` keeps Pledge's tables in their own schema (created if missing).
      const parsed = new URL(location.url);
      const schema = parsed.searchParams.get("schema") ?? undefined;
      parsed.searchParams.delete("schema");
      return module.openPostgresStore({ url: parsed.toString(), ...(schema !== undefined && { schema }) });
    }
  }
}
