// End-to-end test of an example site in headless Chromium, in front of a
// real Keyport.
//
// Needs KEYPORT_BIN (the `keyport` binary) and EXAMPLE_BIN or
// EXAMPLE_AXUM_BIN (the example site's binary). Uses the system's Chromium
// (CHROMIUM, default /usr/bin/chromium); never downloads a browser.
// Screenshots go to SCREENSHOT_DIR (default: a new temporary directory).
//
// Run it with ./test.sh, or: node --test test.mjs

import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { chromium } from 'playwright-core';

const KEYPORT_BIN = requiredEnv('KEYPORT_BIN');
const EXAMPLE_BIN = process.env.EXAMPLE_BIN || requiredEnv('EXAMPLE_AXUM_BIN');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const STARTUP_TIMEOUT_MS = 60_000;

const EMAIL = 'ada@example.com';
const PASSWORD = 'correct horse battery staple';
// Markup in the name: the pages must show it as text.
const NAME = 'Ada <b>Lovelace</b>';
const SECOND_BROWSER_AGENT = 'KeyportBrowserTest/second-browser';

function requiredEnv(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} must point at a binary (see examples/README.md)`);
  }
  return value;
}

/** A child process whose output is kept, to show when something fails. */
class Child {
  constructor(name, command, args, env) {
    this.name = name;
    this.output = [];
    this.process = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
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

let dataDir;
let screenshotDir;
let keyport;
let site;
let baseUrl;
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

  keyport = new Child(
    'keyport',
    KEYPORT_BIN,
    ['serve', '--listen', '127.0.0.1:0', '--data-dir', path.join(dataDir, 'keyport'), '--log-format', 'json'],
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

  // Port 0: the site picks a free port and prints it; no race for a port.
  site = new Child('example site', EXAMPLE_BIN, [], {
    KEYPORT_URL: `http://${keyportAddress}`,
    LISTEN: '127.0.0.1:0',
  });
  baseUrl = await site.waitFor((line) => line.match(/listening on (http:\/\/\S+)/)?.[1], '"listening on" line');

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
  if (!process.env.SCREENSHOT_DIR) {
    console.log(`screenshots kept in ${screenshotDir}`);
  }
  await rm(path.join(dataDir, 'keyport'), { recursive: true, force: true });
});

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

  await signIn(page, EMAIL, PASSWORD);
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
