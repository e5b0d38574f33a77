// The email flows in the browser: verification, password reset and sign-in codes, with authd
// mailing through a real SMTP server and the links opened in the demo like a user would.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe } from "node:test";
import { PASSWORD, appState, browserTest, eventually, login, startStack } from "./harness.mjs";

describe("email flows in the browser", () => {
  let stack;
  before(async () => {
    stack = await startStack({ env: { AUTHD_APP_NAME: "authd demo" } });
  });
  after(() => stack?.stop());
  const it = (name, fn) => browserTest(name, () => stack, fn);

  /** Opens an email link in a new tab of `context`, as a mail client would. */
  async function openLink(context, link) {
    const page = await context.newPage();
    await page.goto(link);
    await page.waitForSelector('#status:not([data-state="loading"])');
    // The token left the address bar at once (the route too: the page is back at /).
    assert.equal(await page.evaluate(() => location.href), `${stack.demoUrl}/`);
    return page;
  }

  /** Requests a sign-in code through the demo's form. */
  async function requestCode(page, email) {
    await page.click('#view-login [data-view="code"]');
    await page.fill('#code-request-form input[name="email"]', email);
    await page.click('#code-request-form button[type="submit"]');
    await expectNotice(page, "ok", "a code is on its way");
    await page.waitForSelector("#code-form", { state: "visible" });
  }

  async function typeCode(page, code) {
    await page.fill('#code-form input[name="code"]', code);
    await page.click('#code-form button[type="submit"]');
  }

  it("register mails a verification link; opening it verifies the address in every tab", async () => {
    const email = `verify-${randomBytes(4).toString("hex")}@example.com`;
    const context = await stack.newContext();
    const page = await stack.openDemo(context);
    await page.fill('#login-form input[name="email"]', email);
    await page.fill('#login-form input[name="password"]', PASSWORD);
    await page.click("#register");
    await page.waitForSelector('#form-message:has-text("Registered")');
    const message = await stack.waitForMail(email, "/verify-email");
    assert.match(message.subject, /authd demo/, "AUTHD_APP_NAME is in the subject");

    await login(page, email);
    assert.equal(await page.getAttribute("#user-verified", "data-verified"), "false");
    assert.ok(await page.isVisible("#send-verification"));

    const linkPage = await openLink(context, message.link);
    await expectNotice(linkPage, "ok", `Email verified: ${email}`);
    await linkPage.waitForSelector('#status[data-state="signed-in"]');
    await linkPage.waitForSelector('#user-verified[data-verified="true"]');
    assert.ok(!(await linkPage.isVisible("#send-verification")));
    // The other tab learns it from the first (its session's user object changed), not from authd.
    await page.waitForSelector('#user-verified[data-verified="true"]', { timeout: 5_000 });

    const res = await stack.api("POST", "/auth/login", { body: { email, password: PASSWORD } });
    assert.equal(res.body.user.email_verified, true);

    // Single use: the same link again is refused, and the page says so.
    const again = await openLink(context, message.link);
    await expectNotice(again, "error", "Verification failed: email_token_invalid");
  });

  it("the 'send verification email' button mails a new link that works on another device", async () => {
    const user = await stack.createUser("resend"); // registering mailed the first link
    const context = await stack.newContext();
    const requests = [];
    context.on("request", (req) => requests.push(req));
    const page = await stack.openDemo(context, { poll: 0 });
    await login(page, user.email);

    await page.click("#send-verification");
    await expectNotice(page, "ok", `Verification email sent to ${user.email}`);
    const first = await stack.waitForMail(user.email, "/verify-email", 1);
    const second = await stack.waitForMail(user.email, "/verify-email", 2);
    assert.notEqual(second.link, first.link);

    const phone = await openLink(await stack.newContext(), second.link);
    await expectNotice(phone, "ok", `Email verified: ${user.email}`);
    assert.equal((await appState(phone)).state, "signed-out", "a link is no sign-in");

    // This browser's session gets the verified user from its next refresh.
    await page.reload();
    await page.waitForSelector('#user-verified[data-verified="true"]');
    assert.ok(!(await page.isVisible("#send-verification")));

    // Only the cookie endpoints got the refresh cookie (here: the reload's refresh).
    const cookieSentTo = [];
    for (const req of requests) {
      const { pathname } = new URL(req.url());
      if ((await req.allHeaders()).cookie) cookieSentTo.push(`${req.method()} ${pathname}`);
    }
    assert.deepEqual(cookieSentTo, ["POST /auth/refresh"]);
    assert.ok(
      requests.some((r) => new URL(r.url()).pathname === "/auth/email/verify/request"),
      "the button called authd",
    );
  });

  it("forgot password: the reset link sets a new password and ends every session", async () => {
    const user = await stack.createUser("reset");
    const laptop = await stack.openDemo(await stack.newContext()); // signed in elsewhere
    await login(laptop, user.email);

    const context = await stack.newContext();
    const page = await stack.openDemo(context, { poll: 0 });
    await page.click('#view-login [data-view="forgot"]');
    await page.fill('#forgot-form input[name="email"]', user.email);
    await page.click('#forgot-form button[type="submit"]');
    await expectNotice(page, "ok", "a reset link is on its way");
    const message = await stack.waitForMail(user.email, "/reset-password");

    const resetPage = await openLink(context, message.link);
    await resetPage.waitForSelector("#reset-form", { state: "visible" });
    const newPassword = `a new passphrase ${randomBytes(4).toString("hex")}`;
    await resetPage.fill('#reset-form input[name="password"]', newPassword);
    await resetPage.click('#reset-form button[type="submit"]');
    await expectNotice(resetPage, "ok", "Password changed");
    await resetPage.waitForSelector("#reset-form", { state: "hidden" });

    // The other device's session ended, and its tab says why.
    await laptop.waitForSelector('#status[data-state="signed-out"]', { timeout: 5_000 });
    const { events } = await appState(laptop);
    assert.deepEqual(endings(events), ["session ended: session_revoked"]);
    assert.equal(
      await stack.sql(`SELECT DISTINCT revoked_reason FROM sessions WHERE user_id = '${user.id}'`),
      "password_reset",
    );

    // The old password fails, the new one works (and the address counts as verified now).
    await resetPage.fill('#login-form input[name="email"]', user.email);
    await resetPage.fill('#login-form input[name="password"]', PASSWORD);
    await resetPage.click('#login-form button[type="submit"]');
    await resetPage.waitForSelector('#form-message:has-text("Login failed: invalid_credentials")');
    await login(resetPage, user.email, newPassword);
    await resetPage.waitForSelector('#user-verified[data-verified="true"]');

    // The link was single use.
    const again = await openLink(context, message.link);
    await again.fill('#reset-form input[name="password"]', "yet another passphrase");
    await again.click('#reset-form button[type="submit"]');
    await expectNotice(again, "error", "Password reset failed: email_token_invalid");
    const res = await stack.api("POST", "/auth/login", {
      body: { email: user.email, password: newPassword },
    });
    assert.equal(res.status, 200, "the refused reset changed nothing");
  });

  it("sign in with a code typed into the page; that message's link is dead afterwards", async () => {
    const user = await stack.createUser("code");
    const context = await stack.newContext();
    const page = await stack.openDemo(context);
    const otherTab = await stack.openDemo(context);
    await requestCode(page, user.email);
    const message = await stack.waitForMail(user.email, "/email-sign-in");
    assert.match(message.code ?? "", /^\d{6,8}$/, `a code alone on a line in:\n${message.text}`);

    const wrong = message.code.replace(/^\d/, (d) => String((Number(d) + 1) % 10));
    await typeCode(page, wrong);
    await expectNotice(page, "error", "Sign-in failed: email_code_invalid");
    assert.equal((await appState(page)).state, "signed-out");

    await typeCode(page, message.code);
    await page.waitForSelector('#status[data-state="signed-in"]');
    assert.equal(await page.textContent("#user-email"), user.email);
    const { events } = await appState(page);
    assert.ok(events.some((e) => e.endsWith(`signed in as ${user.email} with a code`)));
    // Like a login: every tab is signed in, and the browser holds the refresh cookie.
    await otherTab.waitForSelector('#status[data-state="signed-in"]', { timeout: 5_000 });
    const cookies = await context.cookies(`${stack.authdUrl}/auth/refresh`);
    assert.ok(cookies.some((c) => c.name === "authd_refresh" && c.httpOnly));
    await page.reload();
    await page.waitForSelector('#status[data-state="signed-in"]');

    // The code and the link of one message are one grant.
    const phone = await openLink(await stack.newContext(), message.link);
    await expectNotice(phone, "error", "Sign-in failed: email_code_invalid");
    assert.equal((await appState(phone)).state, "signed-out");
  });

  it("sign in by opening the /email-sign-in link; that message's code is dead afterwards", async () => {
    const user = await stack.createUser("link");
    const laptop = await stack.openDemo(await stack.newContext(), { poll: 0 });
    await requestCode(laptop, user.email);
    const message = await stack.waitForMail(user.email, "/email-sign-in");

    // Opened on another device (the phone that reads the mail).
    const phoneContext = await stack.newContext();
    const phone = await openLink(phoneContext, message.link);
    await phone.waitForSelector('#status[data-state="signed-in"]');
    await expectNotice(phone, "ok", `Signed in as ${user.email}`);
    const { events } = await appState(phone);
    assert.ok(events.some((e) => e.endsWith(`signed in as ${user.email} by email link`)));
    await phone.reload(); // the session is a real one, with its refresh cookie
    await phone.waitForSelector('#status[data-state="signed-in"]');

    await typeCode(laptop, message.code);
    await expectNotice(laptop, "error", "Sign-in failed: email_code_invalid");
    assert.equal((await appState(laptop)).state, "signed-out");
  });

  it("changeEmail: the new mailbox confirms the switch; the old one gets a notice", async () => {
    const user = await stack.createUser("move");
    const newEmail = `moved-${randomBytes(4).toString("hex")}@example.com`;
    const page = await stack.openDemo(await stack.newContext(), { poll: 0 });
    // The JS client itself, in the page (the demo has no form for this).
    const outcome = await page.evaluate(
      async ({ baseUrl, email, password, newEmail }) => {
        const { createAuthClient } = await import("/clients/js/authd.js");
        const auth = createAuthClient({ baseUrl });
        await auth.login(email, password);
        const wrong = await auth.changeEmail(newEmail, "not the passphrase").catch((e) => e.code);
        await auth.changeEmail(newEmail, password);
        return { wrong };
      },
      { baseUrl: stack.authdUrl, email: user.email, password: PASSWORD, newEmail },
    );
    assert.equal(outcome.wrong, "invalid_credentials");
    // The old address is told, without a link.
    const notice = await eventually(
      async () =>
        (await stack.mails()).find(
          (m) => m.rcpt.includes(user.email) && (m.text ?? "").includes(newEmail),
        ),
      { timeout: 15_000, message: "the change notice to the old address" },
    );
    assert.ok(!notice.text.includes("#token="));
    const confirm = await stack.waitForMail(newEmail, "/verify-email");
    const linkPage = await openLink(await stack.newContext(), confirm.link);
    await expectNotice(linkPage, "ok", `Email verified: ${newEmail}`);
    const res = await stack.api("POST", "/auth/login", { body: { email: newEmail, password: PASSWORD } });
    assert.equal(res.status, 200);
  });
});

/** Waits until the demo's notice is of `kind` ("ok", "error") and contains `text`. */
async function expectNotice(page, kind, text) {
  try {
    await page.waitForSelector(`#notice[data-kind="${kind}"]:has-text(${JSON.stringify(text)})`, {
      timeout: 10_000,
    });
  } catch (err) {
    const shown = await page.evaluate(() => {
      const notice = document.querySelector("#notice");
      return `${notice.dataset.kind}: ${notice.textContent}`;
    });
    throw new Error(`expected notice ${kind}: "${text}", the page shows ${shown}`, { cause: err });
  }
}

/** The demo's "session ended: <reason>" events, without their time stamps. */
const endings = (events) =>
  events.filter((e) => e.includes("session ended")).map((e) => e.slice(e.indexOf("session ended")));
