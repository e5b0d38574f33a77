// Takes docs/demo.png: the demo signed in, with two devices in its session list.
// Run with `npm run screenshot` (starts its own authd and demo server, like the tests).
import { fileURLToPath } from "node:url";
import { PASSWORD, login, startStack } from "./harness.mjs";

const stack = await startStack();
try {
  const email = "ada@example.com";
  await stack.api("POST", "/auth/register", { body: { email, password: PASSWORD } });
  const phone = await stack.newContext({
    userAgent: "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
  });
  await login(await stack.openDemo(phone), email);

  const laptop = await stack.newContext({ viewport: { width: 900, height: 720 } });
  const page = await stack.openDemo(laptop, { poll: 2000 });
  await login(page, email);
  await page.click("#ping");
  await page.waitForSelector("#sessions li + li");
  await page.waitForFunction(() => Number(document.querySelector("#calls-ok").textContent) >= 3);
  const path = fileURLToPath(new URL("../../docs/demo.png", import.meta.url));
  await page.screenshot({ path, fullPage: true });
  console.log(`wrote ${path}`);
} finally {
  await stack.stop();
}
