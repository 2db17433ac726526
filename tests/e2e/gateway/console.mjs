// Browser test of the web console: headless Chromium (Debian's chromium)
// driven by playwright-core against a gateway the shell wrapper started.
//   node console.mjs   (env: GW_URL, API_KEY, SLOW_KEY, SAMPLE, ARTIFACTS, NPM_DIR,
//                       BUSY_URL, BUSY_KEY: a gateway with one worker and a queue of one)
// Scenarios: a bad key shows the API's 401 message; sign in; upload a sample
// photo and see its faces, boxes and visitor IDs; open a visitor and erase
// it (then the API answers 404); the dashboard shows the same figures as the
// report endpoints (fetched here with the same query); the reference page
// lists the OpenAPI routes; a rate-limited key (SLOW_KEY) shows the 429.
// Screenshots go to ARTIFACTS.
import { createRequire } from 'node:module';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const { GW_URL, API_KEY, SLOW_KEY, SAMPLE, ARTIFACTS, NPM_DIR, BUSY_URL, BUSY_KEY } = process.env;
const { chromium } = createRequire(join(NPM_DIR, 'package.json'))('playwright-core');

let fails = 0;
let checks = 0;
function check(what, expected, actual) {
  if (String(expected) === String(actual)) checks++;
  else { fails++; console.error(`FAIL: ${what}: expected [${expected}], got [${actual}]`); }
}
function checkTrue(what, cond, detail = '') {
  if (cond) checks++;
  else { fails++; console.error(`FAIL: ${what} ${detail}`); }
}
async function api(path, opts = {}) {
  const res = await fetch(GW_URL + path, { ...opts, headers: { Authorization: `Bearer ${API_KEY}`, ...(opts.headers || {}) } });
  return { status: res.status, body: await res.json().catch(() => null) };
}
// what the console shows for a report value
const shown = (v, f = (x) => String(x)) => (v && typeof v === 'object' && v.suppressed ? 'suppressed' : v == null ? '—' : f(v));
const pct = (x) => `${(x * 100).toFixed(1)}%`;

// polls cond (page.waitForFunction evaluates a string, which the console's CSP refuses)
async function until(cond, ms = 20000) {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 50)))
    if (await cond()) return;
  throw new Error(`timed out: ${cond}`);
}
const profile = mkdtempSync(join(tmpdir(), 'privid-chromium-'));
// the webcam: Chromium's fake capture device plays the sample photo (a JPEG file is one MJPEG frame)
const camFile = join(profile, 'camera.mjpeg');
copyFileSync(SAMPLE, camFile);
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--use-fake-device-for-media-stream',
    '--use-fake-ui-for-media-stream', `--use-file-for-fake-video-capture=${camFile}`],
  viewport: { width: 1200, height: 900 },
});
const cspViolations = [];
const consoleErrors = [];
try {
  const page = browser.pages()[0] || await browser.newPage();
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('response', (r) => { if (r.status() >= 400) consoleErrors.push(`${r.status()} ${r.url()}`); });
  await page.exposeFunction('pvCsp', (v) => cspViolations.push(v));
  await page.addInitScript(() => document.addEventListener('securitypolicyviolation',
    (e) => window.pvCsp(`${e.violatedDirective} ${e.blockedURI}`)));
  page.setDefaultTimeout(20000);

  // ---- the CSP is enforced: an injected inline script and inline style are refused (and reported)
  await page.goto(`${GW_URL}/`);
  const injected = await page.evaluate(async () => {
    const s = document.createElement('script');
    s.textContent = 'window.pvInline = 1';
    document.head.append(s);
    const st = document.createElement('style');
    st.textContent = 'body { display: none }';
    document.head.append(st);
    await new Promise((r) => setTimeout(r, 200));
    return [window.pvInline === undefined, getComputedStyle(document.body).display !== 'none'];
  });
  check('CSP: inline script and style refused', 'true,true', injected.join(','));
  await page.waitForTimeout(200);
  checkTrue('CSP: the refusals were reported', cspViolations.some((v) => v.startsWith('script-src')) &&
    cspViolations.some((v) => v.startsWith('style-src')), cspViolations.join('; '));
  cspViolations.length = 0;
  consoleErrors.length = 0; // (the two refusals above are logged as errors too)

  // ---- a bad key shows the API's error, and nothing is stored
  await page.getByLabel('API key').fill('pvk_0123456789abcdef.wrongsecretwrongsecretwrongsecret');
  await page.getByRole('button', { name: 'Sign in' }).click();
  const err = page.getByTestId('error');
  await err.waitFor({ state: 'visible' });
  const errText = await err.textContent();
  checkTrue('bad key: 401 message shown', /refused \(401/.test(errText), errText);
  const direct = await fetch(`${GW_URL}/v1/whoami`, { headers: { Authorization: 'Bearer pvk_0123456789abcdef.wrongsecretwrongsecretwrongsecret' } });
  const directBody = await direct.json();
  checkTrue('bad key: the API\'s own message shown', errText.includes(directBody.error.message), `${errText} / ${directBody.error.message}`);
  check('bad key: not kept', null, await page.evaluate(() => sessionStorage.getItem('privid.apiKey')));
  await page.screenshot({ path: join(ARTIFACTS, 'bad-key.png') });

  // ---- sign in
  await page.getByLabel('API key').fill(API_KEY);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Try it' }).waitFor();
  checkTrue('signed in: tenant shown', /acme/.test(await page.getByTestId('tenant').textContent()));
  check('key only in session storage', API_KEY, await page.evaluate(() => sessionStorage.getItem('privid.apiKey')));
  check('key not in local storage', 0, await page.evaluate(() => localStorage.length));

  // ---- upload a sample photo: its faces with boxes and visitor IDs
  const ref = await api('/v1/identify', { method: 'POST', headers: { 'Content-Type': 'image/jpeg' }, body: await (await import('node:fs')).promises.readFile(SAMPLE) });
  await page.getByLabel('Photo (JPEG or PNG)').setInputFiles(SAMPLE);
  await page.locator('#location').fill('console-test');
  await page.getByRole('button', { name: 'Recognize' }).click();
  const rows = page.getByTestId('faces').locator('tbody tr');
  await rows.first().waitFor();
  const nfaces = await rows.count();
  check('faces shown = faces the API finds', ref.body.faces.length, nfaces);
  checkTrue('at least one face', nfaces >= 1);
  const ids = await page.locator('a.visitor-link').allTextContents();
  check('every face has a visitor ID', nfaces, ids.filter((v) => /^vis_[A-Za-z0-9_-]{22}$/.test(v)).length);
  const known = ref.body.faces.filter((f) => f.status === 'returning').map((f) => f.visitor).sort();
  const statuses = await rows.locator('td:nth-child(3)').allTextContents();
  check('returning faces keep their visitor IDs', known.join(','),
    ids.filter((_, i) => statuses[i] === 'returning').sort().join(','));
  const timings = await page.getByTestId('timings').locator('dt').allTextContents();
  checkTrue('per-stage timings shown', ['decode', 'detect', 'embed', 'match', 'total'].every((t) => timings.includes(t)), timings.join(','));
  const canvas = await page.locator('#preview').evaluate((c) => [c.width, c.height]);
  check('preview at image size', `${ref.body.image.width}x${ref.body.image.height}`, canvas.join('x'));
  await page.screenshot({ path: join(ARTIFACTS, 'try-it.png'), fullPage: true });

  // identify only: /v1/identify, no new visit (visit count unchanged)
  const before = (await api(`/v1/visitors/${ids[0]}`)).body.visits;
  await page.getByLabel(/Identify only/).check();
  await page.getByRole('button', { name: 'Recognize' }).click();
  await page.waitForResponse((r) => r.url().includes('/v1/identify'));
  await rows.first().waitFor();
  check('identify only: no visit recorded', before, (await api(`/v1/visitors/${ids[0]}`)).body.visits);

  // webcam snapshot (identify only still checked): the camera's frame goes to the API as a JPEG
  await page.getByRole('button', { name: 'Use webcam' }).click();
  await page.locator('#cam').waitFor({ state: 'visible' });
  await until(() => page.locator('#cam').evaluate((v) => v.videoWidth > 0));
  await page.getByRole('button', { name: 'Take snapshot' }).click();
  await page.getByRole('button', { name: 'Recognize the snapshot' }).waitFor();
  const [snapReq] = await Promise.all([
    page.waitForRequest((r) => r.url().includes('/v1/identify') && r.method() === 'POST'),
    page.getByRole('button', { name: 'Recognize the snapshot' }).click(),
  ]);
  const snapRes = await snapReq.response();
  const snapAns = await snapRes.json();
  check('webcam: answered', 200, snapRes.status());
  // the gateway says what it decoded: a JPEG of the camera's frame (the sample photo's size)
  check('webcam: the snapshot is sent as a JPEG', 'image/jpeg jpeg', `${snapReq.headers()['content-type']} ${snapAns.image.format}`);
  await until(async () => (await rows.count()) === snapAns.faces.length);
  checkTrue('webcam: the photo\'s faces found in the camera frame', snapAns.faces.length >= 1, JSON.stringify(snapAns.faces.length));
  check('webcam: preview at the camera frame size', `${snapAns.image.width}x${snapAns.image.height}`,
    (await page.locator('#preview').evaluate((c) => [c.width, c.height])).join('x'));
  await page.screenshot({ path: join(ARTIFACTS, 'webcam.png'), fullPage: true });

  // ---- open a visitor and erase it
  await page.locator('a.visitor-link').first().click();
  await page.getByTestId('v-id').waitFor();
  const vid = ids[0];
  const v = (await api(`/v1/visitors/${vid}`)).body;
  check('visitor page: id', vid, await page.getByTestId('v-id').textContent());
  check('visitor page: visits', v.visits, await page.getByTestId('v-visits').textContent());
  check('visitor page: first seen', v.first_seen, await page.getByTestId('v-first').textContent());
  check('visitor page: last seen', v.last_seen, await page.getByTestId('v-last').textContent());
  // purchases come from PostgreSQL through GET /v1/visitors/{id} (12.50 + ... EUR seeded by test_console.sh)
  checkTrue('visitor page: purchases from the API', v.purchases != null, JSON.stringify(v.purchases));
  const ptext = await page.getByTestId('v-purchases').textContent();
  if (v.purchases != null && v.purchases.count === 0) check('visitor page: no purchases', 'none', ptext);
  else if (v.purchases != null)
    checkTrue('visitor page: purchases and total', ptext.startsWith(`${v.purchases.count} purchase`) &&
      v.purchases.totals.every((t) => ptext.includes(`${(t.amount_minor / 100).toFixed(2)} ${t.currency}`)), ptext);
  await page.screenshot({ path: join(ARTIFACTS, 'visitor.png') });
  // the erasure reaches the reports through the writer: note the figures before, wait for the change after
  const day = (t) => new Date(t).toISOString().slice(0, 10);
  const defaultQ = `from=${day(Date.now() - 27 * 86400000)}T00:00:00Z&to=${day(Date.now() + 86400000)}T00:00:00Z`;
  const visitsBefore = (await api(`/v1/analytics/summary?${defaultQ}`)).body.data.visits;
  page.once('dialog', (d) => d.accept());
  await page.getByRole('button', { name: 'Erase this visitor' }).click();
  await page.getByText(`Visitor ${vid} was erased.`).waitFor();
  check('erased: the API no longer knows it', 404, (await api(`/v1/visitors/${vid}`)).status);
  let visitsAfter = visitsBefore;
  for (let i = 0; i < 100 && visitsAfter === visitsBefore; i++) {
    await new Promise((r) => setTimeout(r, 100));
    visitsAfter = (await api(`/v1/analytics/summary?${defaultQ}`)).body.data.visits;
  }
  checkTrue('erased: its visits leave the reports', visitsAfter < visitsBefore, `${visitsBefore} -> ${visitsAfter}`);

  // ---- dashboard = report endpoints (same query as the page's default range)
  await page.getByRole('link', { name: 'Dashboard' }).click();
  await page.getByTestId('s-visits').waitFor();
  await page.locator('#s-visits:not(:empty)').waitFor(); // (waitForFunction would need eval, which the CSP forbids)
  const from = await page.getByLabel('From').inputValue();
  const toDay = await page.getByLabel('To (inclusive)').inputValue();
  const to = new Date(new Date(`${toDay}T00:00:00Z`).getTime() + 86400000).toISOString().replace('.000Z', 'Z');
  const q = `from=${from}T00:00:00Z&to=${to}`;
  check('dashboard: default range', defaultQ, q);
  const sum = (await api(`/v1/analytics/summary?${q}`)).body.data;
  const conv = (await api(`/v1/analytics/conversion?${q}`)).body.data;
  const ret = (await api(`/v1/analytics/retention?${q}`)).body.data;
  const freq = (await api(`/v1/analytics/frequency?${q}`)).body.data;
  checkTrue('seeded visits are visible (not suppressed, > 0)', typeof sum.visits === 'number' && sum.visits > 0, JSON.stringify(sum));
  check('dashboard: visits', shown(sum.visits), await page.getByTestId('s-visits').textContent());
  check('dashboard: visitors', shown(sum.visitors), await page.getByTestId('s-visitors').textContent());
  check('dashboard: new', shown(sum.new_visitors), await page.getByTestId('s-new').textContent());
  check('dashboard: returning', shown(sum.returning_visitors), await page.getByTestId('s-returning').textContent());
  check('dashboard: repeat rate', shown(sum.repeat_visit_rate, pct), await page.getByTestId('s-repeat').textContent());
  for (const seg of ['all', 'new', 'returning']) {
    const cells = await page.locator(`#conversion tr[data-segment="${seg}"] td`).allTextContents();
    check(`conversion ${seg}: visitors`, shown(conv[seg].visitors), cells[0]);
    check(`conversion ${seg}: buyers`, shown(conv[seg].buyers), cells[1]);
    check(`conversion ${seg}: rate`, shown(conv[seg].conversion_rate, pct), cells[2]);
    const rev = conv[seg].revenue.map((r) => shown(r.per_visitor_minor, (x) => `${(x / 100).toFixed(2)} ${r.currency}`)).join(' ');
    check(`conversion ${seg}: revenue per visitor`, rev || '—', cells[3].trim());
  }
  checkTrue('purchases seeded: revenue shown', /EUR/.test(await page.locator('#conversion').textContent()));
  const cohortRows = await page.locator('#retention tbody tr').count();
  check('retention: one row per cohort', Math.max(1, ret.cohorts.length), cohortRows);
  for (let i = 0; i < ret.cohorts.length; i++) {
    const cells = await page.locator('#retention tbody tr').nth(i).locator('td').allTextContents();
    check(`retention cohort ${i}: size`, shown(ret.cohorts[i].size), cells[0]);
    for (let w = 1; w < ret.cohorts[i].weeks.length; w++) {
      const want = ret.cohorts[i].weeks[w];
      checkTrue(`retention cohort ${i} week ${w}`, shown(want) === 'suppressed' ? cells[w] === 'suppressed' : cells[w].startsWith(`${want} (`), `[${want}] vs [${cells[w]}]`);
    }
  }
  const freqSup = freq.distribution.filter((d) => d.visitors && d.visitors.suppressed).map((d) => d.visits);
  const cap = await page.locator('#c-freq').locator('xpath=..').locator('figcaption').textContent();
  check('frequency: suppressed buckets named', freqSup.length ? `suppressed: ${freqSup.join(', ')}` : 'none',
    freqSup.length ? cap.replace(/.*— /, '') : (cap.includes('suppressed') ? 'some' : 'none'));
  checkTrue('charts drawn (canvas sized)', (await page.locator('#c-time').evaluate((c) => c.width)) > 0);
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });

  // location filter: another location's reports
  await page.locator('#d-location').fill('console-test');
  await page.getByRole('button', { name: 'Show' }).click();
  const sumLoc = (await api(`/v1/analytics/summary?${q}&location=console-test`)).body.data;
  await page.locator('#s-visits', { hasText: new RegExp(`^${shown(sumLoc.visits)}$`) }).waitFor();
  check('location filter: visits', shown(sumLoc.visits), await page.getByTestId('s-visits').textContent());

  // ---- phone-sized screen: no horizontal scrolling of the page
  await page.setViewportSize({ width: 375, height: 800 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  checkTrue('phone layout: no page-wide horizontal scroll', overflow <= 1, `overflow ${overflow}px`);
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard-phone.png'), fullPage: true });
  await page.setViewportSize({ width: 1200, height: 900 });

  // ---- reference page
  await page.getByRole('link', { name: 'Reference' }).click();
  const doc = await (await fetch(`${GW_URL}/openapi.json`)).json().catch(() => null);
  if (doc && doc.paths) {
    const n = Object.values(doc.paths).reduce((a, ops) => a + Object.keys(ops).filter((m) => ['get', 'post', 'put', 'delete', 'patch', 'head'].includes(m)).length, 0);
    await page.getByTestId('reference').locator('tbody tr').first().waitFor();
    check('reference: every operation listed', n, await page.getByTestId('reference').locator('tbody tr').count());
  }

  // ---- sign out clears the key
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  check('signed out: key cleared', null, await page.evaluate(() => sessionStorage.getItem('privid.apiKey')));
  check('signed out: the dashboard\'s figures are gone', '', await page.getByTestId('s-visits').textContent());

  check('no Content-Security-Policy violations', '', cspViolations.join('; '));
  check('no console errors or failed requests but the bad key\'s 401', '', consoleErrors.filter((e) => !/^Failed to load resource/.test(e) && !/^401 .*\/v1\/whoami$/.test(e)).join('; '));

  // ---- rate limited: a key of a tenant allowed 1 request per minute (burst 3) gets 429 on the dashboard
  await page.getByLabel('API key').fill(SLOW_KEY);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Try it' }).waitFor();
  await page.getByRole('link', { name: 'Dashboard' }).click();
  await err.waitFor({ state: 'visible' });
  const slowText = await err.textContent();
  checkTrue('429 shown as rate limited with its Retry-After', /^Rate limited \(429\): .*per minute.*Retry in \d+ s\./.test(slowText), slowText);
  await page.screenshot({ path: join(ARTIFACTS, 'rate-limited.png') });

  // ---- overloaded: on a gateway with one worker and a queue of one, kept busy by other clients,
  // a recognition from the page is refused with 503 and the API's message
  if (BUSY_URL) {
    const busy = await browser.newPage();
    await busy.goto(`${BUSY_URL}/`);
    await busy.getByLabel('API key').fill(BUSY_KEY);
    await busy.getByRole('button', { name: 'Sign in' }).click();
    await busy.getByRole('heading', { name: 'Try it' }).waitFor();
    await busy.getByLabel(/Identify only/).check();
    await busy.getByLabel('Photo (JPEG or PNG)').setInputFiles(SAMPLE);
    const photo = readFileSync(SAMPLE);
    let flooding = true;
    const flood = async () => {
      while (flooding)
        await fetch(`${BUSY_URL}/v1/identify`, { method: 'POST', body: photo,
          headers: { Authorization: `Bearer ${BUSY_KEY}`, 'Content-Type': 'image/jpeg' } }).catch(() => null);
    };
    const floods = [flood(), flood(), flood(), flood()];
    const busyErr = busy.getByTestId('error');
    let busyText = '';
    for (let i = 0; i < 40 && !/\(503\)/.test(busyText); i++) {
      await Promise.all([busy.waitForResponse((r) => r.url().includes('/v1/identify')),
        busy.getByRole('button', { name: 'Recognize' }).click()]);
      await busy.waitForTimeout(50);
      busyText = (await busyErr.isVisible()) ? await busyErr.textContent() : '';
    }
    flooding = false;
    await Promise.all(floods);
    checkTrue('503 shown as overloaded with the API\'s message and Retry-After',
      /^The service is overloaded or unavailable \(503\): (too many requests in progress|the request waited too long).*Retry in \d+ s\./.test(busyText), busyText);
    await busy.screenshot({ path: join(ARTIFACTS, 'overloaded.png') });
    await busy.close();
  }
} catch (e) {
  fails++;
  console.error(`FAIL: ${e.stack || e}`);
  try { await browser.pages()[0].screenshot({ path: join(ARTIFACTS, 'failure.png'), fullPage: true }); } catch (_) { /* ignore */ }
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(`${checks} checks passed, ${fails} failed`);
process.exit(fails ? 1 : 0);
