/** Registered durable functions, by name and version. */
import type { DurableFunction, RegisteredFunction, Registry } from "./engine/execution.js";

export class FunctionRegistry implements Registry {
  private readonly byName = new Map<string, Map<number, RegisteredFunction>>();
  private readonly names = new Map<DurableFunction, string>();

  register(name: string, fn: DurableFunction, version = 1): RegisteredFunction {
    if (name.length === 0)
      throw new TypeError("register: a function needs a name; pass one: register(name, fn)");
    if (!Number.isSafeInteger(version) || version < 1)
      throw new RangeError(`register ${name}: version must be a positive integer, got ${version}`);
    const versions = this.byName.get(name) ?? new Map<number, RegisteredFunction>();
    const existing = versions.get(version);
    if (existing !== undefined && existing.fn !== fn)
      throw new Error(`register: ${name} version ${version} is already registered with another function`);
    const registered: RegisteredFunction = { name, version, fn };
    versions.set(version, registered);
    this.byName.set(name, versions);
    this.names.set(fn, name);
    return registered;
  }

  /** The function at `version`; the latest when `version` is absent or 0 (the SDKs' "latest"). */
  get(name: string, version?: number): RegisteredFunction | undefined {
    const versions = this.byName.get(name);
    if (versions === undefined) return undefined;
    if (version !== undefined && version !== 0) return versions.get(version);
    return versions.get(Math.max(...versions.keys()));
  }

  nameOf(fn: DurableFunction): string | undefined {
    return this.names.get(fn);
  }

  /** Every registered function, each of its versions (what `pledge/testing` copies onto simulated workers). */
  entries(): RegisteredFunction[] {
    return [...this.byName.values()].flatMap((versions) => [...versions.values()]);
  }
}
