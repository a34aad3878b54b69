/**
 * The dashboard's static files over HTTP: `GET /` is its page and
 * `GET /assets/<name>` its script and styles, built by `npm run build` from
 * `src/dashboard` and handed in by the composition root (reading files is
 * Node's business, `src/node/dashboard-files.ts`).
 *
 * Invariants:
 *  D1  The files hold no data, so they are served without a token; everything
 *      the page shows comes through `POST /` and `GET /events`, which ask for one.
 *  D2  The page may load nothing but its own origin (Content-Security-Policy):
 *      nothing is fetched from the internet at run time.
 *  D3  Only names the build produced are served; nothing is read by a path
 *      taken from the request.
 */

export interface DashboardFile {
  body: Uint8Array<ArrayBuffer>;
  contentType: string;
}

/** The built files by name: `index.html`, and the assets it names (`app.js`, `app.css`). */
export type DashboardFiles = ReadonlyMap<string, DashboardFile>;

const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const NOT_BUILT = `<!doctype html><meta charset="utf-8"><title>Pledge</title>
<p>The dashboard is not built. Run <code>npm run build</code> and restart the server.</p>\n`;

/** The response for dashboard file `name` (`index.html` for `/`). */
export function dashboardResponse(files: DashboardFiles | undefined, name: string): Response {
  const file = files?.get(name); // D3
  if (file === undefined) {
    if (name === "index.html")
      return new Response(NOT_BUILT, {
        status: 503,
        headers: { "Content-Type": "text/html; charset=utf-8" },
      });
    return Response.json({ error: `no dashboard file ${name}` }, { status: 404 });
  }
  return new Response(file.body, {
    status: 200,
    headers: {
      "Content-Type": file.contentType,
      "Cache-Control": "no-cache",
      "X-Content-Type-Options": "nosniff",
      "Content-Security-Policy": CONTENT_SECURITY_POLICY, // D2
      "Referrer-Policy": "no-referrer",
    },
  });
}
