// End-to-end test of an example site in headless Chromium, in front of a
// real Keyport, with a real OpenID Connect provider (tests/oidc-provider,
// run by this same Node.js) for social sign-in.
//
// Needs KEYPORT_BIN (the `keyport` binary) and EXAMPLE_BIN or
// EXAMPLE_AXUM_BIN (the example site's binary), and the provider's packages
// (npm ci --prefix tests/oidc-provider). Uses the system's Chromium
// (CHROMIUM, default /usr/bin/chromium); never downloads a browser.
// Screenshots go to SCREENSHOT_DIR (default: a new temporary directory).
//
// Mail goes to a real SMTP server, Mailpit (KEYPORT_MAILPIT, default
// ~/.cache/keyport/bin/mailpit, where scripts/test.sh installs it), whose
// HTTP API the test reads to follow the verification and reset links.
//
// Run it with ./test.sh, or: node --test test.mjs

import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { chromium } from 'playwright-core';

const KEYPORT_BIN = requiredEnv('KEYPORT_BIN');
const EXAMPLE_BIN = process.env.EXAMPLE_BIN || requiredEnv('EXAMPLE_AXUM_BIN');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const MAILPIT = process.env.KEYPORT_MAILPIT || path.join(homedir(), '.cache/keyport/bin/mailpit');
const STARTUP_TIMEOUT_MS = 60_000;

const EMAIL = 'ada@example.com';
const PASSWORD = 'correct horse battery staple';
// Markup in the name: the pages must show it as text.
const NAME = 'Ada <b>Lovelace</b>';
const SECOND_BROWSER_AGENT = 'KeyportBrowserTest/second-browser';

/// The OpenID Connect provider as configured in Keyport, and its client.
const PROVIDER_SCRIPT = fileURLToPath(new URL('../../tests/oidc-provider/provider.mjs', import.meta.url));
const PROVIDER_ID = 'corp';
const PROVIDER_NAME = 'Corp SSO';
const CLIENT_ID = 'keyport-test';
const CLIENT_SECRET = 'keyport-test-secret';
const OIDC_EMAIL = 'ada.oidc@example.com';

function requiredEnv(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} must point at a binary (see examples/README.md)`);
  }
  return value;
}

/** A child process whose output is kept, to show when something fails. */
class Child {
  /** `stdin: 'pipe'` keeps the child's stdin open until it is stopped. */
  constructor(name, command, args, env, { stdin = 'ignore' } = {}) {
    this.name = name;
    this.output = [];
    this.process = spawn(command, args, { env: { ...process.env, ...env }, stdio: [stdin, 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => this.process.once('exit', (code, signal) => resolve({ code, signal })));
    this.lines = createInterface({ input: this.process.stdout });
    this.lines.on('line', (line) => this.output.push(line));
    createInterface({ input: this.process.stderr }).on('line', (line) => this.output.push(line));
  }

  /** Resolves with the first stdout line for which `pick` returns a value. */
  waitFor(pick, what) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`${this.name}: no ${what} within ${STARTUP_TIMEOUT_MS} ms`)), STARTUP_TIMEOUT_MS);
      const onLine = (line) => {
        const value = pick(line);
        if (value !== undefined) done(null, value);
      };
      const onExit = ({ code, signal }) => done(new Error(`${this.name} exited (${code ?? signal}) before ${what}`));
      const done = (error, value) => {
        clearTimeout(timer);
        this.lines.off('line', onLine);
        this.process.off('exit', onExit);
        if (error) {
          error.message += `\n--- ${this.name} output ---\n${this.output.join('\n')}`;
          reject(error);
        } else {
          resolve(value);
        }
      };
      this.lines.on('line', onLine);
      this.process.once('exit', onExit);
    });
  }

  async stop() {
    if (this.process.exitCode === null && this.process.signalCode === null) {
      this.process.kill('SIGTERM');
      const timer = setTimeout(() => this.process.kill('SIGKILL'), 10_000);
      await this.exited;
      clearTimeout(timer);
    }
  }
}

/**
 * A free TCP port of 127.0.0.1, released again: the example site's port has
 * to be known before it starts (see `before`). Another process could take
 * it in the few seconds until the site binds it; the kernel hands out
 * ephemeral ports in a scattered order, so that is unlikely, and the site
 * would then fail to start with "address in use", not misbehave.
 */
async function freePort() {
  const server = createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Keyport's configuration file: the provider, the site's callback, mail,
 * and passkeys for the site at `passkeyOrigin` (`http://localhost:<port>`:
 * a relying-party id must be a host name, not 127.0.0.1).
 */
function keyportConfig(issuer, callback, publicUrl, smtpPort, passkeyOrigin) {
  // JSON strings are valid TOML basic strings (for these ASCII values).
  const str = JSON.stringify;
  return `[authorization]
permissions = ["notes:read", "notes:write"]

[authorization.roles]
user = ["notes:read", "notes:write"]
admin = ["*"]

[passkeys]
rp_id = "localhost"
origins = [${str(passkeyOrigin)}]

[mail]
smtp_host = "127.0.0.1"
smtp_port = ${smtpPort}
security = "none"
from = "Keyport example <no-reply@example.com>"
public_base_url = ${str(publicUrl)}
poll_interval_ms = 100

[oauth]
redirect_uris = [${str(callback)}]

[[oauth.providers]]
id = ${str(PROVIDER_ID)}
kind = "oidc"
display_name = ${str(PROVIDER_NAME)}
issuer = ${str(issuer)}
client_id = ${str(CLIENT_ID)}
client_secret = ${str(CLIENT_SECRET)}
`;
}

let dataDir;
let screenshotDir;
let mailpit;
let mailApi;
let provider;
let issuer;
let keyport;
let site;
let baseUrl;
/** The site under the host name passkeys are bound to. */
let passkeyUrl;
let browser;
/** The first browser (the user's laptop, say) and the second (their phone). */
let first;
let second;
let firstPage;
let secondPage;
let secondSessionId;

before(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'keyport-browser-test-'));
  screenshotDir = process.env.SCREENSHOT_DIR || path.join(dataDir, 'screenshots');
  await mkdir(screenshotDir, { recursive: true });

  // Order: the OAuth callback URL (the site's address) must be in both the
  // provider's and Keyport's configuration before they start, and the site
  // needs Keyport's address when it starts. So the site's port is reserved
  // first, then the provider starts, then Keyport (on a port of its own
  // choosing, which it prints), then the site on the reserved port.
  const sitePort = await freePort();
  const publicUrl = `http://127.0.0.1:${sitePort}`;
  const callback = `${publicUrl}/oauth/callback`;

  // Its stdin stays open: the provider exits when it closes.
  provider = new Child('oidc provider', process.execPath, [PROVIDER_SCRIPT], { REDIRECT_URIS: callback }, { stdin: 'pipe' });
  issuer = await provider.waitFor((line) => {
    try {
      return JSON.parse(line).issuer;
    } catch {
      return undefined;
    }
  }, '{"issuer": ...} line');

  const [smtpPort, mailApiPort] = [await freePort(), await freePort()];
  mailApi = `http://127.0.0.1:${mailApiPort}`;
  mailpit = new Child('mailpit', MAILPIT, [
    '--smtp', `127.0.0.1:${smtpPort}`,
    '--listen', `127.0.0.1:${mailApiPort}`,
    '--smtp-auth-accept-any', '--smtp-auth-allow-insecure', '--smtp-disable-rdns',
  ]);
  await waitForMailpit();

  const config = path.join(dataDir, 'keyport.toml');
  passkeyUrl = `http://localhost:${sitePort}`;
  await writeFile(config, keyportConfig(issuer, callback, publicUrl, smtpPort, passkeyUrl));
  keyport = new Child(
    'keyport',
    KEYPORT_BIN,
    [
      'serve',
      '--config',
      config,
      '--listen',
      '127.0.0.1:0',
      '--data-dir',
      path.join(dataDir, 'keyport'),
      '--log-format',
      'json',
    ],
    // Cheap password hashing: this is a test.
    { KEYPORT_HASHING__MEMORY_KIB: '1024', KEYPORT_HASHING__ITERATIONS: '1' },
  );
  const keyportAddress = await keyport.waitFor((line) => {
    try {
      const event = JSON.parse(line);
      return event.message === 'keyport serving gRPC' ? event.address : undefined;
    } catch {
      return undefined;
    }
  }, '"keyport serving gRPC" line');

  // PUBLIC_URL is left to its default, the address listened on.
  site = new Child('example site', EXAMPLE_BIN, [], {
    KEYPORT_URL: `http://${keyportAddress}`,
    LISTEN: `127.0.0.1:${sitePort}`,
  });
  const started = await site.waitFor(
    (line) => line.match(/listening on (http:\/\/\S+) .*OAuth callback (\S+)\)/)?.slice(1),
    '"listening on" line',
  );
  [baseUrl] = started;
  assert.equal(baseUrl, publicUrl);
  assert.equal(started[1], callback, 'the site uses the callback Keyport allows');

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  first = await browser.newContext({ baseURL: baseUrl });
  second = await browser.newContext({ baseURL: baseUrl, userAgent: SECOND_BROWSER_AGENT });
  firstPage = await first.newPage();
  secondPage = await second.newPage();
});

after(async () => {
  await browser?.close();
  await site?.stop();
  await keyport?.stop();
  await provider?.stop();
  await mailpit?.stop();
  if (!process.env.SCREENSHOT_DIR) {
    console.log(`screenshots kept in ${screenshotDir}`);
  }
  await rm(path.join(dataDir, 'keyport'), { recursive: true, force: true });
});

/** Waits until Mailpit's API answers. */
async function waitForMailpit() {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  for (;;) {
    try {
      if ((await fetch(`${mailApi}/readyz`)).ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline || mailpit.process.exitCode !== null) {
      throw new Error(`mailpit (${MAILPIT}) did not start:\n${mailpit.output.join('\n')}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The newest mail to `to`, whole (`Subject`, `Text`, ...), once there are `count`. */
async function mailWhole(to, count = 1) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const search = await fetch(`${mailApi}/api/v1/search?query=${encodeURIComponent(`to:"${to}"`)}`);
    const { messages } = await search.json();
    if (messages.length >= count) {
      return (await fetch(`${mailApi}/api/v1/message/${messages[0].ID}`)).json();
    }
    assert.ok(Date.now() < deadline, `${messages.length} of ${count} mails to ${to}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The newest mail's text to `to`, once there are `count` of them. */
async function mailTo(to, count = 1) {
  return (await mailWhole(to, count)).Text;
}

/** The link to `pathname` on the site in a mail's text. */
function linkIn(text, pathname) {
  const match = text.match(new RegExp(`${baseUrl}${pathname}\\?token=kpm_[A-Za-z0-9_-]+`));
  assert.ok(match, `no ${pathname} link in:\n${text}`);
  return match[0];
}

async function screenshot(page, name) {
  const site = path.basename(EXAMPLE_BIN);
  await page.screenshot({ path: path.join(screenshotDir, `${site}-${name}.png`), fullPage: true });
}

const heading = (page) => page.locator('h1');
const alert = (page) => page.getByRole('alert');

/** Waits for the page to be `pathname` (the redirects to land). */
async function expectPath(page, pathname) {
  await page.waitForURL((url) => url.pathname === pathname);
}

async function signIn(page, email, password) {
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.waitForLoadState();
}

async function sessionCookie(context) {
  return (await context.cookies()).find((cookie) => cookie.name.endsWith('keyport_session'));
}

async function bindingCookie(context) {
  return (await context.cookies()).find((cookie) => cookie.name.endsWith('keyport_oauth'));
}

/** Tells the provider how its next authorization ends (`next-login` or `next-error`). */
async function providerNext(what, body) {
  const response = await fetch(`${issuer}/test/${what}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.equal(response.status, 200, `POST /test/${what}: ${await response.text()}`);
}

/**
 * The code an authenticator app shows for the base32 `secret`, `offset`
 * 30-second steps from now (RFC 6238: HMAC-SHA-1, six digits). The test
 * plays the phone.
 */
function totp(secret, offset = 0) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const char of secret.replace(/=+$/, '')) {
    bits += alphabet.indexOf(char).toString(2).padStart(5, '0');
  }
  const key = Buffer.from(bits.match(/.{8}/g).map((byte) => parseInt(byte, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 30_000) + offset));
  const mac = createHmac('sha1', key).update(counter).digest();
  const at = mac[mac.length - 1] & 0x0f;
  return String((mac.readUInt32BE(at) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}

/** A new browser (context) and its page, closed after `run`. */
async function inNewBrowser(run) {
  const context = await browser.newContext({ baseURL: baseUrl });
  try {
    return await run(await context.newPage(), context);
  } finally {
    await context.close();
  }
}

/**
 * Clicks the button `name` (which starts an OAuth flow) and waits for the
 * site's callback to answer; returns that response and whether the browser
 * went through the provider on the way.
 */
async function throughProvider(page, name) {
  const visited = [];
  const onRequest = (request) => {
    if (request.isNavigationRequest()) visited.push(request.url());
  };
  page.on('request', onRequest);
  try {
    const [response] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname === '/oauth/callback' && r.url().startsWith(baseUrl)),
      page.getByRole('button', { name, exact: true }).click(),
    ]);
    await page.waitForLoadState();
    return { response, viaProvider: visited.some((url) => url.startsWith(`${issuer}/`)) };
  } finally {
    page.off('request', onRequest);
  }
}

test('sign up, with a form error first; the dashboard shows the user', async () => {
  const page = firstPage;
  await page.goto('/');
  assert.equal(await heading(page).innerText(), 'Keyport example');
  await page.getByRole('link', { name: 'Create an account' }).click();
  await expectPath(page, '/sign-up');

  await page.getByLabel('Email').fill(EMAIL);
  await page.getByLabel('Name').fill(NAME);
  await page.getByLabel('Password').fill('short');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.waitForLoadState();
  assert.match(await alert(page).innerText(), /at least 8/i);
  // The form keeps what was typed, as text.
  assert.equal(await page.getByLabel('Name').inputValue(), NAME);

  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expectPath(page, '/dashboard');
  assert.equal(await heading(page).innerText(), 'Dashboard');
  assert.equal(await page.locator('#email').innerText(), EMAIL);
  assert.equal(await page.locator('#name').innerText(), NAME, 'the name is escaped, not markup');
  assert.equal(await page.locator('#name b').count(), 0);
  assert.equal(await page.locator('#roles').innerText(), 'user');
  assert.match(await page.locator('#session-id').innerText(), /^[A-Za-z0-9_-]{22}$/);
  await screenshot(page, '1-dashboard');

  const cookie = await sessionCookie(first);
  assert.ok(cookie, 'the browser kept the session cookie');
  assert.equal(cookie.name, '__Host-keyport_session');
  assert.equal(cookie.secure, true);
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Lax');
});

test('an account without the admin role is refused /admin', async () => {
  const response = await firstPage.goto('/admin');
  assert.equal(response.status(), 403);
  // A browser gets a page, not the API's JSON.
  assert.match(response.headers()['content-type'], /text\/html/);
  assert.equal(await heading(firstPage).innerText(), 'Forbidden');
  await firstPage.goto('/dashboard');
});

test('sign out; the dashboard then sends the browser to sign in', async () => {
  const page = firstPage;
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expectPath(page, '/');
  assert.equal(await sessionCookie(first), undefined, 'sign-out deleted the cookie');
  await page.getByRole('link', { name: 'Sign in', exact: true }).first().waitFor();

  await page.goto('/dashboard');
  await expectPath(page, '/sign-in');
  assert.equal(new URL(page.url()).searchParams.get('return_to'), '/dashboard');
  assert.equal(await heading(page).innerText(), 'Sign in');
  assert.equal(await alert(page).innerText(), 'Sign in to see that page.');
});

test('sign in in a second browser, with a wrong password first', async () => {
  const page = secondPage;
  await page.goto('/sign-in');
  await signIn(page, EMAIL, 'not the password');
  assert.equal(await alert(page).innerText(), 'Wrong email or password.');
  assert.equal(await page.getByLabel('Email').inputValue(), EMAIL);

  // The site sends `Referrer-Policy: no-referrer`, so Chromium posts the
  // form with `Origin: null` and no Referer: only `Sec-Fetch-Site` tells the
  // middleware the post is the site's own.
  const [post] = await Promise.all([
    page.waitForRequest((request) => request.method() === 'POST' && request.url().endsWith('/sign-in')),
    signIn(page, EMAIL, PASSWORD),
  ]);
  const sent = await post.allHeaders();
  assert.equal(sent['origin'], 'null', 'a no-referrer page posts with Origin: null');
  assert.equal(sent['referer'], undefined);
  assert.equal(sent['sec-fetch-site'], 'same-origin');
  assert.equal((await post.response())?.headers()['referrer-policy'], 'no-referrer');
  await expectPath(page, '/dashboard');
  assert.equal(await page.locator('#email').innerText(), EMAIL);
  secondSessionId = await page.locator('#session-id').innerText();
});

test('sign in again in the first browser: back to the page it asked for', async () => {
  const page = firstPage;
  // Still on /sign-in?return_to=%2Fdashboard from the sign-out test.
  await signIn(page, EMAIL, PASSWORD);
  await expectPath(page, '/dashboard');
  assert.notEqual(await page.locator('#session-id').innerText(), secondSessionId);
});

test('the first browser revokes the second one; the second is signed out at once', async () => {
  const page = firstPage;
  await page.getByRole('link', { name: 'Sessions', exact: true }).click();
  await expectPath(page, '/sessions');
  assert.equal(await heading(page).innerText(), 'Your sessions');
  assert.match(await page.locator('main').innerText(), /You have 2 active sessions\./);
  const row = page.locator(`tr[data-session-id="${secondSessionId}"]`);
  assert.match(await row.innerText(), new RegExp(SECOND_BROWSER_AGENT));
  assert.match(await row.innerText(), /127\.0\.0\.1/);
  await screenshot(page, '2-sessions');

  await row.getByRole('button', { name: 'Revoke' }).click();
  await page.waitForURL((url) => url.pathname === '/sessions' && url.searchParams.has('revoked'));
  assert.equal(await alert(page).innerText(), 'Session revoked.');
  assert.equal(await row.count(), 0);
  assert.match(await page.locator('main').innerText(), /You have 1 active session\./);

  await secondPage.goto('/dashboard');
  await expectPath(secondPage, '/sign-in');
  assert.equal(await heading(secondPage).innerText(), 'Sign in');
  assert.equal(await alert(secondPage).innerText(), 'Sign in to see that page.');
  assert.equal(await sessionCookie(second), undefined, 'the dead cookie was cleared');
});

test('sign-in ignores a return_to that leaves the site', async () => {
  const page = secondPage;
  await page.goto('/sign-in?return_to=//evil.example/phish');
  assert.equal(await page.locator('input[name=return_to]').count(), 0);
  await signIn(page, EMAIL, PASSWORD);
  await expectPath(page, '/dashboard');
  assert.equal(new URL(page.url()).host, new URL(baseUrl).host);
});

test('a form posted from another origin is refused, even with the cookie', async () => {
  // Another port on the same host is the same site, so the Lax cookie goes
  // along: only the Origin check stands in the way.
  // Playwright answers for it; nothing listens there.
  const attacker = `http://127.0.0.1:${Number(new URL(baseUrl).port) + 1}`;
  const page = await first.newPage();
  await page.route(`${attacker}/**`, (route) =>
    route.fulfill({
      contentType: 'text/html',
      body: `<form method="post" action="${baseUrl}/sessions/revoke-others"><button>Win a prize</button></form>`,
    }),
  );
  await page.goto(`${attacker}/prize`);
  const [response] = await Promise.all([
    page.waitForResponse(`${baseUrl}/sessions/revoke-others`),
    page.getByRole('button', { name: 'Win a prize' }).click(),
  ]);
  assert.equal(response.status(), 403);
  assert.match(await response.text(), /CSRF_REJECTED/);
  await page.close();

  // The second browser is still signed in.
  await secondPage.goto('/dashboard');
  await expectPath(secondPage, '/dashboard');
});

test('"Sign out everywhere else" ends the second browser\'s session', async () => {
  const page = firstPage;
  await page.goto('/sessions');
  await page.getByRole('button', { name: 'Sign out everywhere else' }).click();
  await page.waitForURL((url) => url.pathname === '/sessions' && url.searchParams.has('others'));
  assert.equal(await alert(page).innerText(), 'Signed out 1 other session.');
  assert.match(await page.locator('main').innerText(), /signed in nowhere else/);
  await screenshot(page, '3-signed-out-elsewhere');

  await secondPage.goto('/dashboard');
  await expectPath(secondPage, '/sign-in');
  await screenshot(secondPage, '4-second-browser-sign-in');

  // The first browser is still signed in.
  await page.goto('/dashboard');
  await expectPath(page, '/dashboard');
});

test('signing in again while signed in ends the session it replaces', async () => {
  const page = firstPage;
  await page.goto('/sign-in');
  assert.match(await page.locator('main').innerText(), /already signed in as ada@example\.com/);
  await signIn(page, EMAIL, PASSWORD);
  await expectPath(page, '/dashboard');
  await page.goto('/sessions');
  assert.match(await page.locator('main').innerText(), /You have 1 active session\./);
});

test(
  'signing in with a cookie whose session ended after the form was loaded',
  // The handler's new session cookie must win over the middleware's
  // "delete the dead cookie" header.
  async () => {
    const context = await browser.newContext({ baseURL: baseUrl });
    const page = await context.newPage();
    try {
      await page.goto('/sign-in');
      await signIn(page, EMAIL, PASSWORD);
      await expectPath(page, '/dashboard');
      await page.goto('/sign-in');
      await page.getByLabel('Email').fill(EMAIL);
      await page.getByLabel('Password').fill(PASSWORD);

      // Meanwhile, the first browser signs out everywhere else.
      await firstPage.goto('/sessions');
      await firstPage.getByRole('button', { name: 'Sign out everywhere else' }).click();
      await firstPage.waitForURL((url) => url.searchParams.has('others'));

      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
      await page.waitForLoadState();
      assert.equal(new URL(page.url()).pathname, '/dashboard', 'signed in, not sent back to sign in');
      assert.equal(await page.locator('#email').innerText(), EMAIL);
    } finally {
      await context.close();
    }
  },
);

// ----- Social sign-in, through the local OpenID Connect provider -----

test('"Sign in with ..." signs a new user up through the provider, and in again later', async () => {
  await inNewBrowser(async (page, context) => {
    await providerNext('next-login', { sub: 'oidc-ada', email: OIDC_EMAIL, email_verified: true, name: 'Ada OIDC' });
    await page.goto('/sign-in');
    await screenshot(page, '5-sign-in-with-provider');
    const { response, viaProvider } = await throughProvider(page, `Sign in with ${PROVIDER_NAME}`);
    assert.ok(viaProvider, 'the browser went through the provider');
    assert.equal(response.status(), 303);
    await expectPath(page, '/dashboard');
    assert.equal(await page.locator('#email').innerText(), OIDC_EMAIL);
    assert.equal(await page.locator('#name').innerText(), 'Ada OIDC');
    assert.equal(await alert(page).innerText(), 'Welcome! Your account was created.');
    const userId = await page.locator('#user-id').innerText();
    await screenshot(page, '6-oauth-dashboard');

    const cookie = await sessionCookie(context);
    assert.ok(cookie, 'the browser got the session cookie');
    assert.equal(cookie.httpOnly, true);
    assert.equal(await bindingCookie(context), undefined, 'the flow binding cookie was deleted');

    // Sign out, then in again: the same account, no welcome.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await expectPath(page, '/');
    await providerNext('next-login', { sub: 'oidc-ada', email: OIDC_EMAIL, email_verified: true, name: 'Ada OIDC' });
    await page.goto('/sign-up');
    await throughProvider(page, `Sign in with ${PROVIDER_NAME}`);
    await expectPath(page, '/dashboard');
    assert.equal(await page.locator('#email').innerText(), OIDC_EMAIL);
    assert.equal(await page.locator('#user-id').innerText(), userId);
    assert.equal(await alert(page).count(), 0);
  });
});

test('a provider that refuses shows an error page, and nobody is signed in', async () => {
  await inNewBrowser(async (page, context) => {
    await providerNext('next-error', { error: 'access_denied' });
    await page.goto('/sign-in');
    const { response, viaProvider } = await throughProvider(page, `Sign in with ${PROVIDER_NAME}`);
    assert.ok(viaProvider);
    assert.equal(response.status(), 403);
    await expectPath(page, '/oauth/callback');
    assert.equal(await heading(page).innerText(), 'Sign-in failed');
    assert.match(await alert(page).innerText(), /did not sign you in.*access_denied/);
    assert.equal(await page.locator('#reason').innerText(), 'OAUTH_PROVIDER_ERROR');
    await screenshot(page, '7-oauth-refused');

    assert.equal(await sessionCookie(context), undefined, 'no session cookie');
    assert.equal(await bindingCookie(context), undefined, 'the flow binding cookie was deleted');
    await page.goto('/dashboard');
    await expectPath(page, '/sign-in');
  });
});

test('the provider cannot sign in to an existing account that has the same email', async () => {
  // Ada's password account is not email-verified in Keyport, so a provider
  // vouching for the address must not take it over.
  await inNewBrowser(async (page, context) => {
    await providerNext('next-login', { sub: 'oidc-impostor', email: EMAIL, email_verified: true, name: 'Not Ada' });
    await page.goto('/sign-in');
    const { response } = await throughProvider(page, `Sign in with ${PROVIDER_NAME}`);
    assert.equal(response.status(), 409);
    assert.equal(await page.locator('#reason').innerText(), 'ACCOUNT_LINK_REFUSED');
    assert.match(await alert(page).innerText(), /already exists.*link the provider from your dashboard/);
    assert.equal(await sessionCookie(context), undefined, 'no session cookie');
  });
});

test('a signed-in user links the provider from the dashboard, then signs in with it', async () => {
  await inNewBrowser(async (page, context) => {
    await page.goto('/sign-in');
    await signIn(page, EMAIL, PASSWORD);
    await expectPath(page, '/dashboard');
    const sessionBefore = await page.locator('#session-id').innerText();

    const work = { sub: 'oidc-ada-work', email: 'ada.work@example.com', email_verified: true, name: 'Ada at work' };
    await providerNext('next-login', work);
    const { viaProvider } = await throughProvider(page, `Link ${PROVIDER_NAME}`);
    assert.ok(viaProvider);
    await page.waitForURL((url) => url.pathname === '/dashboard' && url.searchParams.get('linked') === PROVIDER_ID);
    assert.equal(await alert(page).innerText(), `Linked your ${PROVIDER_NAME} account.`);
    // Linking keeps the session and the account.
    assert.equal(await page.locator('#email').innerText(), EMAIL);
    assert.equal(await page.locator('#session-id').innerText(), sessionBefore);

    await page.getByRole('button', { name: 'Sign out' }).click();
    await expectPath(page, '/');
    assert.equal(await sessionCookie(context), undefined);
    await providerNext('next-login', work);
    await page.goto('/sign-in');
    await throughProvider(page, `Sign in with ${PROVIDER_NAME}`);
    await expectPath(page, '/dashboard');
    assert.equal(await page.locator('#email').innerText(), EMAIL, 'signed in to the linked account');
  });
});

test('linking needs a session', async () => {
  // The route rule sends a signed-out browser to sign in, before Keyport.
  await inNewBrowser(async (page) => {
    await page.goto('/');
    // The dashboard's "Link" form, posted without a session.
    await page.evaluate((provider) => {
      const form = document.createElement('form');
      form.method = 'post';
      form.action = `/oauth/link/${provider}`;
      document.body.append(form);
      form.submit();
    }, PROVIDER_ID);
    await expectPath(page, '/sign-in');
  });
});

test('verify the address through the mailbox', async () => {
  const email = 'grace@example.com';
  await inNewBrowser(async (page) => {
    await page.goto('/sign-up');
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Create account' }).click();
    await expectPath(page, '/dashboard');
    assert.match(await page.locator('#email-verified').innerText(), /^no/);

    await page.getByRole('button', { name: 'Send me a verification link' }).click();
    await page.waitForURL((url) => url.pathname === '/dashboard' && url.searchParams.get('verify') === 'sent');
    assert.equal(await alert(page).innerText(), 'A verification link is on its way to your mailbox.');
    const link = linkIn(await mailTo(email), '/verify-email');

    await page.goto(link);
    assert.equal(await heading(page).innerText(), 'Email verified');
    await page.goto('/dashboard');
    assert.equal(await page.locator('#email-verified').innerText(), 'yes');
    await screenshot(page, '5-verified');

    // The link worked once.
    const again = await page.goto(link);
    assert.equal(again.status(), 400);
    assert.equal(await heading(page).innerText(), 'This link no longer works');
  });
});

test('reset a forgotten password through the mailbox', async () => {
  const email = 'hopper@example.com';
  const newPassword = 'a brand new passphrase';
  await inNewBrowser(async (page, context) => {
    await page.goto('/sign-up');
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Create account' }).click();
    await expectPath(page, '/dashboard');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await expectPath(page, '/');

    // An address without an account gets the very same page.
    for (const address of ['nobody@example.com', email]) {
      await page.goto('/sign-in');
      await page.getByRole('link', { name: 'Forgot your password?' }).click();
      await expectPath(page, '/forgot-password');
      await page.getByLabel('Email').fill(address);
      await page.getByRole('button', { name: 'Send me a link' }).click();
      await page.waitForLoadState();
      assert.equal(await heading(page).innerText(), 'Check your mail');
    }
    const link = linkIn(await mailTo(email), '/reset-password');

    await page.goto(link);
    assert.equal(await heading(page).innerText(), 'Choose a new password');
    await page.getByLabel('New password').fill('password123');
    await page.getByRole('button', { name: 'Set my new password' }).click();
    await page.waitForLoadState();
    assert.match(await alert(page).innerText(), /too common/i, 'a refused password keeps the link usable');
    await page.getByLabel('New password').fill(newPassword);
    await page.getByRole('button', { name: 'Set my new password' }).click();
    await page.waitForURL((url) => url.pathname === '/sign-in' && url.searchParams.has('reset'));
    assert.equal(await alert(page).innerText(), 'Your password was changed. Sign in with the new one.');
    assert.match(await mailTo(email, 2), /password .*was just changed/);

    await signIn(page, email, PASSWORD);
    assert.equal(await alert(page).innerText(), 'Wrong email or password.');
    await signIn(page, email, newPassword);
    await expectPath(page, '/dashboard');
    assert.ok(await sessionCookie(context));
    await screenshot(page, '6-after-reset');

    const reused = await page.goto(link);
    assert.equal(reused.status(), 200, 'the form shows; Keyport refuses the token when it is posted');
    await page.getByLabel('New password').fill('yet another passphrase');
    await page.getByRole('button', { name: 'Set my new password' }).click();
    await page.waitForLoadState();
    assert.equal(await heading(page).innerText(), 'This link no longer works');
  });
});

test('sign in with a mailed code, and with the link only in the same browser', async () => {
  const email = 'turing@example.com';
  await inNewBrowser(async (page) => {
    await page.goto('/sign-up');
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Create account' }).click();
    await expectPath(page, '/dashboard');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await expectPath(page, '/');
  });

  await inNewBrowser(async (page, context) => {
    await page.goto('/sign-in');
    await page.getByLabel('Or get a sign-in code by mail').fill(email);
    await page.getByRole('button', { name: 'Email me a code' }).click();
    await expectPath(page, '/sign-in/email');
    assert.ok((await context.cookies()).some((cookie) => cookie.name.endsWith('keyport_email')), 'the binding cookie');
    const mail = await mailWhole(email, 1);
    const code = mail.Subject.split(' ').pop();
    assert.match(code, /^\d{6}$/);
    await page.getByLabel('Code').fill(code);
    await page.getByRole('button', { name: 'Sign in with the code' }).click();
    await expectPath(page, '/dashboard');
    assert.equal(await page.locator('#email').innerText(), email);
    assert.equal(await page.locator('#email-verified').innerText(), 'yes', 'the code proved the mailbox');
    assert.equal((await context.cookies()).some((cookie) => cookie.name.endsWith('keyport_email')), false);
    await screenshot(page, '7-email-code');

    // A second sign-in, whose link is opened in another browser first.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.goto('/sign-in');
    await page.getByLabel('Or get a sign-in code by mail').fill(email);
    await page.getByRole('button', { name: 'Email me a code' }).click();
    await expectPath(page, '/sign-in/email');
    const link = linkIn((await mailWhole(email, 2)).Text, '/sign-in/email');
    await inNewBrowser(async (elsewhere, elsewhereContext) => {
      const response = await elsewhere.goto(link);
      assert.equal(response.status(), 400);
      assert.match(await alert(elsewhere).innerText(), /from another browser/);
      assert.equal(await sessionCookie(elsewhereContext), undefined);
    });
    await page.goto(link);
    await expectPath(page, '/dashboard');
    assert.equal(await page.locator('#email').innerText(), email);
  });
});

test('two-step verification: set up from the QR page, then sign in with a code and with backup codes', async () => {
  const email = 'lamport@example.com';
  await inNewBrowser(async (page, context) => {
    await page.goto('/sign-up');
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Create account' }).click();
    await expectPath(page, '/dashboard');
    assert.equal(await page.locator('#two-factor').innerText(), 'off');

    await page.getByRole('link', { name: 'Two-step verification' }).click();
    await expectPath(page, '/two-factor');
    await page.getByRole('button', { name: 'Set up an authenticator app' }).click();
    await page.waitForLoadState();
    assert.equal(await heading(page).innerText(), 'Set up an authenticator app');
    const qr = page.locator('#totp-qr');
    assert.ok(await qr.evaluate((img) => img.complete && img.naturalWidth > 0), 'the QR code renders');
    const secret = await page.locator('#totp-secret').innerText();
    assert.match(secret, /^[A-Z2-7]{32}$/);
    await screenshot(page, '8-totp-qr');
    await page.getByLabel('The six-digit code the app shows').fill(totp(secret));
    await page.getByRole('button', { name: 'Turn on' }).click();
    await page.waitForLoadState();
    const backupCodes = await page.locator('#backup-codes li').allInnerTexts();
    assert.equal(backupCodes.length, 10);
    await screenshot(page, '9-backup-codes');

    // A password alone now gets the code page, and no session.
    const signInWithPassword = async () => {
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.goto('/sign-in');
      await signIn(page, email, PASSWORD);
      await expectPath(page, '/sign-in/second-factor');
      assert.equal(await sessionCookie(context), undefined, 'no session before the second factor');
      assert.ok((await context.cookies()).some((cookie) => cookie.name.endsWith('keyport_challenge')));
    };
    await page.goto('/dashboard');
    await signInWithPassword();
    await page.getByLabel('Code').fill('000000');
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.waitForLoadState();
    assert.match(await alert(page).innerText(), /does not work/);
    // The confirmation used this step's code: the next step's is fresh.
    await page.getByLabel('Code').fill(totp(secret, 1));
    await page.getByRole('button', { name: 'Continue' }).click();
    await expectPath(page, '/dashboard');
    assert.equal(await page.locator('#two-factor').innerText(), 'on (this session passed it)');

    // A backup code signs in once.
    await signInWithPassword();
    await page.getByLabel('Code').fill(backupCodes[0]);
    await page.getByRole('button', { name: 'Continue' }).click();
    await expectPath(page, '/dashboard');
    await signInWithPassword();
    await page.getByLabel('Code').fill(backupCodes[0]);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.waitForLoadState();
    assert.match(await alert(page).innerText(), /does not work/, 'a used backup code');
    await page.getByLabel('Code').fill(backupCodes[1].toUpperCase());
    await page.getByRole('button', { name: 'Continue' }).click();
    await expectPath(page, '/dashboard');

    // Turned off, a password signs in on its own again.
    await page.goto('/two-factor');
    assert.equal(await page.locator('#two-factor-status').innerText(), 'On. 8 backup codes left.');
    await page.getByRole('button', { name: 'Turn two-step verification off' }).click();
    await page.waitForLoadState();
    assert.equal(await heading(page).innerText(), 'Two-step verification is off');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.goto('/sign-in');
    await signIn(page, email, PASSWORD);
    await expectPath(page, '/dashboard');
    assert.equal(await page.locator('#two-factor').innerText(), 'off');
  });
});

/**
 * A browser at the passkeys' origin with Chromium's virtual authenticator
 * (DevTools `WebAuthn` domain): a platform authenticator that keeps
 * discoverable credentials and verifies its user, as Touch ID would.
 */
async function withPasskeyBrowser(run) {
  const context = await browser.newContext({ baseURL: passkeyUrl });
  try {
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: 'internal',
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    });
    const credentials = async () => (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials;
    return await run({ page, context, credentials });
  } finally {
    await context.close();
  }
}

test('passkeys: register one, sign in with it alone, use it as the second factor and to step up, rename, delete', async () => {
  const email = 'liskov@example.com';
  await withPasskeyBrowser(async ({ page, context, credentials }) => {
    await page.goto('/sign-up');
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Create account' }).click();
    await expectPath(page, '/dashboard');

    await page.goto('/passkeys');
    assert.equal(await page.locator('#no-passkeys').innerText(), 'No passkeys yet.');
    await page.getByRole('button', { name: 'Add a passkey' }).click();
    await page.waitForLoadState();
    assert.equal(await heading(page).innerText(), 'Add a passkey');
    await page.getByLabel('Name (optional)').fill('Laptop');
    await page.getByRole('button', { name: 'Create the passkey' }).click();
    await page.waitForURL((url) => url.pathname === '/passkeys' && url.searchParams.has('added'));
    assert.deepEqual(await page.locator('#passkeys li strong').allInnerTexts(), ['Laptop']);
    const stored = await credentials();
    assert.equal(stored.length, 1, 'the authenticator holds the new credential');
    assert.ok(stored[0].isResidentCredential, 'a discoverable credential, for signing in without an email');
    await screenshot(page, '10-passkeys');

    // The passkey alone signs in: no email, no password.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.goto('/sign-in');
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.waitForLoadState();
    assert.ok((await context.cookies()).some((cookie) => cookie.name.endsWith('keyport_passkey')), 'ceremony bound to this browser');
    await page.getByRole('button', { name: 'Continue with a passkey' }).click();
    await expectPath(page, '/dashboard');
    assert.equal(await page.locator('#two-factor').innerText(), 'on (this session passed it)');
    assert.ok(await sessionCookie(context));

    // A password now needs the second factor, which the passkey answers.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.goto('/sign-in');
    await signIn(page, email, PASSWORD);
    await expectPath(page, '/sign-in/second-factor');
    assert.equal(await sessionCookie(context), undefined, 'no session before the second factor');
    await page.getByRole('button', { name: 'Use a passkey' }).click();
    await expectPath(page, '/dashboard');

    // Step up with it, back to the page that asked.
    await page.goto('/sign-in/step-up?return_to=%2Fpasskeys');
    await page.getByRole('button', { name: 'Use a passkey instead' }).click();
    await page.waitForLoadState();
    await page.getByRole('button', { name: 'Use my passkey' }).click();
    await expectPath(page, '/passkeys');

    await page.getByLabel('New name for Laptop').fill('Work laptop');
    await page.getByRole('button', { name: 'Rename' }).click();
    await page.waitForURL((url) => url.searchParams.has('renamed'));
    assert.deepEqual(await page.locator('#passkeys li strong').allInnerTexts(), ['Work laptop']);
    await page.getByRole('button', { name: 'Delete Work laptop' }).click();
    await page.waitForURL((url) => url.searchParams.has('deleted'));
    assert.equal(await page.locator('#no-passkeys').innerText(), 'No passkeys yet.');

    // The authenticator still has the credential; Keyport no longer takes it.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.goto('/sign-in');
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.waitForLoadState();
    await page.getByRole('button', { name: 'Continue with a passkey' }).click();
    // The page's script posts the answer once the authenticator gave it.
    await expectPath(page, '/sign-in/passkey');
    assert.equal(await heading(page).innerText(), 'That passkey did not sign you in');
    assert.equal(await sessionCookie(context), undefined);
    // And the password signs in on its own again.
    await page.goto('/sign-in');
    await signIn(page, email, PASSWORD);
    await expectPath(page, '/dashboard');
  });
});

/** Signs `email` up in `page`, which lands on the dashboard. */
async function signUpAs(page, email) {
  await page.goto('/sign-up');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expectPath(page, '/dashboard');
}

/** `GET path` without cookies, with `token` as the bearer. */
async function asBearer(path, token) {
  const response = await fetch(new URL(path, baseUrl), { headers: { Authorization: `Bearer ${token}` } });
  return { status: response.status, body: await response.text() };
}

test('API keys: create one, see its secret once, call the API with it, revoke it', async () => {
  await inNewBrowser(async (page) => {
    await signUpAs(page, 'keys@example.com');
    await page.getByRole('link', { name: 'API keys' }).click();
    await expectPath(page, '/api-keys');
    assert.equal(await page.locator('#no-api-keys').count(), 1);

    await page.getByLabel('Name').fill('ci deploys');
    await page.getByLabel('Scope').selectOption('notes:read');
    await page.getByRole('button', { name: 'Create key' }).click();
    const secret = await page.locator('#api-key-secret').innerText();
    assert.match(secret, /^kpa_[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$/);
    assert.match(await alert(page).innerText(), /shown only once/);
    await screenshot(page, '10-api-key');

    // Listed, never shown again.
    await page.goto('/api-keys');
    assert.equal(await page.locator('tr.api-key').count(), 1);
    assert.ok(!(await page.content()).includes(secret.split('.')[1]), 'the secret is not on the page again');

    // The key calls the API route, and only routes that name a permission.
    assert.deepEqual(await asBearer('/api/notes', secret), { status: 200, body: 'notes for keys@example.com (key ci deploys)' });
    const dashboard = await asBearer('/dashboard', secret);
    assert.equal(dashboard.status, 401);
    assert.match(dashboard.body, /API_KEY_NOT_ACCEPTED/);

    // A key without the route's permission is refused.
    await page.getByLabel('Name').fill('writer');
    await page.getByLabel('Scope').selectOption('notes:write');
    await page.getByRole('button', { name: 'Create key' }).click();
    const writer = await page.locator('#api-key-secret').innerText();
    assert.equal((await asBearer('/api/notes', writer)).status, 403);

    // Revoked: refused from the next request.
    await page.getByRole('button', { name: 'Revoke ci deploys' }).click();
    await expectPath(page, '/api-keys');
    assert.equal(await page.locator('tr.api-key').count(), 1);
    assert.equal((await asBearer('/api/notes', secret)).status, 401);
  });
});

test('organizations: create one, invite a member who accepts and switches to it; outsiders see nothing', async () => {
  await inNewBrowser(async (owner) => {
    await signUpAs(owner, 'org-owner@example.com');
    await owner.getByRole('link', { name: 'Organizations' }).click();
    await expectPath(owner, '/organizations');
    await owner.getByLabel('Name').fill('Acme');
    await owner.getByLabel('Slug').fill('acme');
    await owner.getByRole('button', { name: 'Create organization' }).click();
    await expectPath(owner, '/organizations');
    assert.match(await owner.locator('tr.organization').innerText(), /Acme\s+owner/);

    await owner.getByRole('link', { name: 'Acme' }).click();
    await expectPath(owner, '/organizations/members');
    const membersUrl = owner.url();
    await owner.getByLabel('Email').fill('org-member@example.com');
    await owner.getByLabel('Role').selectOption('member');
    await owner.getByRole('button', { name: 'Invite' }).click();
    await expectPath(owner, '/organizations/members');
    const invitation = await owner.locator('#invitations code').innerText();
    assert.match(invitation, /^[0-9a-f-]{36}$/);
    // Mailed to the address, with a link to the site's organizations page.
    const mailed = (await mailTo('org-member@example.com')).match(
      new RegExp(`${baseUrl}/organizations\\?invitation=[0-9a-f-]{36}`),
    );
    assert.ok(mailed, 'the invitation mail links to the organizations page');
    assert.ok(mailed[0].endsWith(invitation));

    await inNewBrowser(async (member) => {
      await signUpAs(member, 'org-member@example.com');
      // An unverified address cannot accept.
      await member.goto('/organizations');
      await member.getByLabel('Invitation id').fill(invitation);
      await member.getByRole('button', { name: 'Accept invitation' }).click();
      assert.match(await alert(member).innerText(), /INVITATION_INVALID|InvitationInvalid/);

      await member.goto('/dashboard');
      await member.getByRole('button', { name: 'Send me a verification link' }).click();
      await member.waitForURL((url) => url.searchParams.get('verify') === 'sent');
      await member.goto(linkIn(await mailTo('org-member@example.com', 2), '/verify-email'));
      assert.equal(await heading(member).innerText(), 'Email verified');

      // The mailed link fills the invitation in.
      await member.goto(mailed[0]);
      assert.equal(await member.getByLabel('Invitation id').inputValue(), invitation);
      await member.getByRole('button', { name: 'Accept invitation' }).click();
      await expectPath(member, '/organizations');
      assert.match(await member.locator('tr.organization').innerText(), /Acme\s+member/);
      await member.getByRole('button', { name: 'Switch to Acme' }).click();
      await expectPath(member, '/organizations');
      assert.equal(await member.locator('tr.organization .active').innerText(), 'active');
      await screenshot(member, '11-organizations');

      // The invitation worked once.
      await member.getByLabel('Invitation id').fill(invitation);
      await member.getByRole('button', { name: 'Accept invitation' }).click();
      assert.match(await alert(member).innerText(), /INVITATION_INVALID|InvitationInvalid/);
    });

    await owner.goto(membersUrl);
    const members = await owner.locator('tr.member').allInnerTexts();
    assert.deepEqual(members.map((row) => row.replace(/\s+/g, ' ').trim()), [
      'org-member@example.com member',
      'org-owner@example.com owner',
    ]);
    assert.equal(await owner.locator('li.invitation').count(), 0, 'the accepted invitation is gone');

    // Someone outside the organization sees nothing of it.
    await inNewBrowser(async (outsider) => {
      await signUpAs(outsider, 'org-outsider@example.com');
      const response = await outsider.goto(membersUrl);
      assert.equal(response.status(), 404);
      assert.equal(await outsider.locator('tr.member').count(), 0);
    });
  });
});
