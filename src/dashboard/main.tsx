/**
 * The dashboard's entry point, bundled by `scripts/build-dashboard.ts` into
 * `dist/dashboard/app.js`: renders the page into `#app`.
 */
import { render } from "preact";
import { App } from "./app.js";

const mount = document.getElementById("app");
if (mount !== null) {
  mount.replaceChildren();
  render(<App />, mount);
}
