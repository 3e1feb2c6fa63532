// Logs in through mod_auth_scalekit with Debian's Chromium, driven by playwright-core.
//
// tests/stages/browser.sh runs it through tests/browser/serve.py, which starts the dev
// identity provider and httpd and sets SCALEKIT_BASE_URL and SCALEKIT_IDP_URL. Each
// step is one check. A failed step stops the run, and the steps after it count as
// failed. The last line is "login.spec: N passed, N failed".
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const LAUNCH_OPTIONS = {
  executablePath: '/usr/bin/chromium',
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
};
const TIMEOUT_MS = 15000;
const LOGIN_PAGE_TITLE = 'Scalekit dev identity provider - sign in';
const SESSION_COOKIE = 'scalekit_session';
const ALICE = {
  REMOTE_USER: 'usr_acme_alice',
  AUTH_TYPE: 'Scalekit',
  SCALEKIT_CLAIM_email: 'alice@acme.test',
  SCALEKIT_CLAIM_oid: 'org_acme',
};

function requiredEnvironment(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set. Run this script through tests/browser/serve.py`);
  }
  return value;
}

const baseUrl = requiredEnvironment('SCALEKIT_BASE_URL');
const idpUrl = requiredEnvironment('SCALEKIT_IDP_URL');

// Reads the <th>name</th><td>value</td> rows of the example pages into an object.
async function pageVariables(page) {
  return page.$$eval('tr', (rows) =>
    Object.fromEntries(
      rows.map((row) => [
        row.querySelector('th')?.textContent ?? '',
        row.querySelector('td')?.textContent ?? '',
      ]),
    ),
  );
}

async function assertLoginPage(page) {
  await page.waitForURL((url) => url.href.startsWith(`${idpUrl}/oauth/authorize`));
  assert.equal(await page.title(), LOGIN_PAGE_TITLE, `page at ${page.url()}`);
}

async function assertIntranetAsAlice(page) {
  assert.equal(page.url(), `${baseUrl}/intranet/`);
  assert.equal(await page.textContent('h1'), 'Intranet (PHP)');
  const variables = await pageVariables(page);
  for (const [name, value] of Object.entries(ALICE)) {
    assert.equal(variables[name], value, `${name} on the PHP page`);
  }
}

async function sessionCookie(context) {
  const cookies = await context.cookies(baseUrl);
  return cookies.find((cookie) => cookie.name === SESSION_COOKIE);
}

let browser;
let context;
let page;
// URLs of the requests that the page sends to the identity provider.
const providerRequests = [];

const steps = [
  ['launch Chromium', async () => {
    browser = await chromium.launch(LAUNCH_OPTIONS);
    context = await browser.newContext();
    context.setDefaultTimeout(TIMEOUT_MS);
    page = await context.newPage();
    page.on('request', (request) => {
      if (request.url().startsWith(idpUrl)) {
        providerRequests.push(request.url());
      }
    });
  }],
  ['/intranet/ leads to the provider login page', async () => {
    await page.goto(`${baseUrl}/intranet/`);
    await assertLoginPage(page);
  }],
  ['clicking Alice shows the PHP page with her claims', async () => {
    await page.getByRole('button', { name: /Alice Archer/ }).click();
    await page.waitForURL(`${baseUrl}/intranet/`);
    await assertIntranetAsAlice(page);
    const cookie = await sessionCookie(context);
    assert.ok(cookie, `no ${SESSION_COOKIE} cookie after the login`);
    assert.equal(cookie.httpOnly, true, `${SESSION_COOKIE} is not HttpOnly`);
  }],
  ['reload keeps the session without the provider', async () => {
    const before = providerRequests.length;
    await page.reload();
    await assertIntranetAsAlice(page);
    assert.deepEqual(providerRequests.slice(before), [], 'the reload went to the provider');
  }],
  ['/scalekit/logout ends at the public page', async () => {
    await page.goto(`${baseUrl}/scalekit/logout`);
    // The provider's end session endpoint sends the browser back with ?state=.
    await page.waitForURL((url) => `${url.origin}${url.pathname}` === `${baseUrl}/`);
    assert.equal(await page.textContent('h1'), 'Public start page');
    assert.equal(await sessionCookie(context), undefined, 'the session cookie survived');
  }],
  ['/intranet/ after logout asks to log in again', async () => {
    await page.goto(`${baseUrl}/intranet/`);
    await assertLoginPage(page);
  }],
];

let passed = 0;
let failed = 0;
let failedStep = null;
for (const [name, run] of steps) {
  if (failedStep !== null) {
    console.log(`not run: ${name} (the step "${failedStep}" failed)`);
    failed += 1;
    continue;
  }
  try {
    await run();
    console.log(`ok: ${name}`);
    passed += 1;
  } catch (error) {
    console.log(`FAILED: ${name}\n  ${error.message}`);
    if (page) {
      console.log(`  page: ${page.url()}`);
    }
    failed += 1;
    failedStep = name;
  }
}
await browser?.close();

console.log(`login.spec: ${passed} passed, ${failed} failed`);
process.exitCode = failed === 0 ? 0 : 1;
