#!/usr/bin/env node
// Static server for the demo SPA: demo/ at / and the JS client at /clients/js/. No dependencies.
// Listens on 127.0.0.1 only. Port: first argument, else $PORT, else 5173 (0 picks a free one).
// authd's URL, which the page reads from /config.json: second argument, else $AUTHD_URL, else
// http://localhost:8080 (authd's email links carry no query, so the page must learn it here).
// Prints "demo listening on http://localhost:<port>" once ready.
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const demoDir = fileURLToPath(new URL(".", import.meta.url));
const mounts = [
  ["/clients/js/", resolve(demoDir, "../clients/js")],
  ["/", resolve(demoDir)],
];
const types = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".png": "image/png",
};
const headers = {
  "Cache-Control": "no-store",
  "X-Content-Type-Options": "nosniff",
  // In-memory tokens are only as safe as the page is from injected scripts.
  "Content-Security-Policy": "default-src 'self'; connect-src *; frame-ancestors 'none'",
};

/** The SPA's own routes, where authd's email links land: they get index.html. */
const appRoutes = new Set(["/verify-email", "/reset-password", "/email-sign-in"]);
const authdUrl = process.argv[3] ?? process.env.AUTHD_URL ?? "http://localhost:8080";
const config = JSON.stringify({ authd: authdUrl });

/** The file a URL path names, or null if it is outside the mounts. */
function fileFor(pathname) {
  if (appRoutes.has(pathname)) pathname = "/";
  const [prefix, dir] = mounts.find(([p]) => pathname.startsWith(p));
  let rel = decodeURIComponent(pathname.slice(prefix.length));
  if (rel === "" || rel.endsWith("/")) rel += "index.html";
  const file = resolve(dir, rel);
  return file.startsWith(dir + sep) ? file : null;
}

const server = createServer(async (req, res) => {
  try {
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { ...headers, Allow: "GET, HEAD" }).end();
      return;
    }
    const { pathname } = new URL(req.url, "http://localhost");
    if (pathname === "/config.json") {
      res.writeHead(200, { ...headers, "Content-Type": "application/json" });
      res.end(req.method === "HEAD" ? undefined : config);
      return;
    }
    const file = fileFor(pathname);
    const type = file && types[extname(file)];
    if (!type) throw Object.assign(new Error("not served"), { code: "ENOENT" });
    const body = await readFile(file);
    res.writeHead(200, { ...headers, "Content-Type": type });
    res.end(req.method === "HEAD" ? undefined : body);
  } catch (err) {
    const missing = err.code === "ENOENT" || err.code === "EISDIR" || err instanceof URIError;
    res.writeHead(missing ? 404 : 500, { ...headers, "Content-Type": "text/plain" });
    res.end(missing ? "not found\n" : "error\n");
  }
});

const port = Number(process.argv[2] ?? process.env.PORT ?? 5173);
server.listen(port, "127.0.0.1", () => {
  console.log(`demo listening on http://localhost:${server.address().port}`);
});
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(0));
