// Memory probe for bench/verifier/run.mjs: heap and RSS of this process before a verifier, and
// with the verifier holding every live revocation of the feed's snapshot. Prints one line
// "MEMORY {json}".
import { fileURLToPath } from "node:url";
import { join } from "node:path";

const repo = fileURLToPath(new URL("../..", import.meta.url));
const { createVerifier } = await import(join(repo, "clients/node/src/index.js"));
const settle = () => {
  globalThis.gc?.();
  const m = process.memoryUsage();
  return { heap_mib: m.heapUsed / 2 ** 20, rss_mib: m.rss / 2 ** 20 };
};
const before = settle();
const t0 = performance.now();
const verifier = createVerifier({
  authdUrl: process.env.AUTHD_URL,
  resourceSecret: process.env.AUTHD_RESOURCE_SECRET,
});
await verifier.ready();
const snapshot_ms = performance.now() - t0;
const after = settle();
console.log(
  `MEMORY ${JSON.stringify({
    snapshot_ms,
    before,
    after,
    heap_delta_mib: after.heap_mib - before.heap_mib,
    rss_delta_mib: after.rss_mib - before.rss_mib,
  })}`,
);
await verifier.close();
process.exit(0);
