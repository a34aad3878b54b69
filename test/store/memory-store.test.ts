import { MemoryStore } from "../../src/store/memory-store.js";
import { describeStore } from "./store-suite.js";

describeStore("memory", async () => new MemoryStore());
