// Real-browser scenarios of the web console (console-contract: accessible names, not CSS classes)
// against a real `ferrite serve` + `ferrite-sim` meters. Every scenario runs; the run fails if any
// fails. Screenshots of the main pages go to $FERRITE_SCREENSHOT_DIR (default
// $CARGO_TARGET_DIR/../console-screenshots).
//
//   node run.mjs            (scripts/test.sh builds the binaries and the console first)
import { join } from 'node:path';
import { checkPrerequisites, startServer, launchBrowser, screenshotDir, PASSWORD, sleep } from './lib.mjs';

const missing = checkPrerequisites();
if (missing.length > 0) {
  console.error(`browser tests: missing\n  ${missing.join('\n  ')}`);
  process.exit(1);
}

const shots = screenshotDir();
const WAIT = 15_000;
const DEVICE = 'sim-000001';
const OTHER = 'sim-000002';

/// Polls `check` until it returns true; fails with `what` and the last value seen.
async function until(what, check, timeout = WAIT) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await check();
      if (last === true) return;
    } catch (error) {
      last = error.message.split('\n')[0];
    }
    if (Date.now() > deadline) throw new Error(`${what} (last seen: ${JSON.stringify(last)})`);
    await sleep(200);
  }
}

const textOf = async (locator) => ((await locator.textContent({ timeout: 2_000 })) || '').replace(/\s+/g, ' ');

async function signIn(page, base, name) {
  await page.goto(`${base}/login`);
  await page.getByLabel('Username').fill(name);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('navigation').getByRole('link', { name: 'Fleet' }).waitFor({ timeout: WAIT });
}

const server = await startServer();
console.log(`browser tests: server ${server.base} (data and logs in ${server.dir})`);
// LwM2M 1.0 meters (readings by notification of the observed /10243/0), a simulated hour every
// 10 s so a reading arrives every 2.5 s, and no reboots, problems or sleeping meters to race.
await server.startMeters(3, [
  '--lwm2m', '1.0', '--speed', '360', '--reboot-period', '10000d', '--problem-share', '0',
  '--queue-share', '0',
]);
// Meters with problems (weak signal, dying battery, memory leak, error codes) for the
// diagnostics scenarios, tagged site=diag so a sweep can pick them by the fleet filters.
const DIAG_METERS = await server.startMeters(4, [
  '--lwm2m', '1.1', '--speed', '360', '--reboot-period', '10000d', '--problem-share', '1',
  '--queue-share', '0', '--seed', '7',
], { prefix: 'diag-', site: 'diag' });
console.log('browser tests: 3 + 4 simulated meters registered');
const TOTAL = 3 + DIAG_METERS.length;

const browser = await launchBrowser();
const results = [];
const pageErrors = [];
let admin; // alice's page, shared by the scenarios that follow each other
let passed = new Set();

function watch(page, who) {
  page.on('pageerror', (error) => pageErrors.push(`${who}: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') pageErrors.push(`${who}: console: ${message.text()}`);
  });
}

async function scenario(name, needs, body) {
  const blocked = needs.filter((n) => !passed.has(n));
  if (blocked.length > 0) {
    results.push({ name, status: 'SKIPPED', detail: `needs: ${blocked.join(', ')}` });
    console.log(`SKIPPED ${name} (needs ${blocked.join(', ')})`);
    return;
  }
  const started = Date.now();
  try {
    await body();
    passed.add(name);
    results.push({ name, status: 'PASS' });
    console.log(`PASS    ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    results.push({ name, status: 'FAIL', detail: error.message });
    console.log(`FAIL    ${name}: ${error.message}`);
    if (admin) {
      const file = join(shots, `failed-${name.replace(/[^a-z0-9]+/gi, '-')}.png`);
      await admin.screenshot({ path: file, fullPage: true }).catch(() => {});
    }
  }
}

try {
  const adminContext = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  admin = await adminContext.newPage();
  watch(admin, 'alice');

  await scenario('login', [], async () => {
    // A deep link without a session lands on the login page.
    await admin.goto(`${server.base}/devices/${DEVICE}`);
    await until('redirect to /login', async () => new URL(admin.url()).pathname === '/login');
    await admin.getByLabel('Username').waitFor({ timeout: WAIT });
    await admin.screenshot({ path: join(shots, 'login.png') });
    await admin.getByLabel('Username').fill('alice');
    await admin.getByLabel('Password').fill('wrong password');
    await admin.getByRole('button', { name: 'Sign in' }).click();
    const alert = admin.getByRole('alert');
    await until('an alert about the wrong password', async () => /wrong|invalid|incorrect/i.test(await textOf(alert.first())));
    await signIn(admin, server.base, 'alice');
    const nav = admin.getByRole('navigation');
    await until('the nav shows "alice (admin)"', async () => (await textOf(nav)).includes('alice (admin)'));
    await nav.getByRole('button', { name: 'Sign out' }).waitFor({ timeout: WAIT });
  });

  await scenario('fleet', ['login'], async () => {
    await admin.getByRole('navigation').getByRole('link', { name: 'Fleet' }).click();
    await admin.getByRole('heading', { level: 1, name: 'Fleet' }).waitFor({ timeout: WAIT });
    await admin.getByTestId('fleet-loaded').waitFor({ state: 'attached', timeout: WAIT });
    const table = admin.getByRole('table', { name: 'Devices' });
    for (const endpoint of [DEVICE, OTHER, 'sim-000003']) {
      await table.getByRole('link', { name: endpoint, exact: true }).waitFor({ timeout: WAIT });
    }
    const summary = admin.getByLabel('Fleet summary');
    const active = new RegExp(`active\\D{0,20}${TOTAL}(?!\\d)`, 'i');
    await until(`the summary counts ${TOTAL} active devices`, async () => active.test(await textOf(summary)));
    await admin.getByLabel('Search').waitFor({ timeout: WAIT });
    await admin.screenshot({ path: join(shots, 'fleet.png'), fullPage: true });
  });

  await scenario('device page', ['fleet'], async () => {
    await admin.getByRole('table', { name: 'Devices' }).getByRole('link', { name: DEVICE, exact: true }).click();
    await until(`the URL /devices/${DEVICE}`, async () => new URL(admin.url()).pathname === `/devices/${DEVICE}`);
    await admin.getByRole('heading', { level: 1, name: DEVICE }).waitFor({ timeout: WAIT });
    const registration = admin.getByRole('region', { name: 'Registration' });
    await until('the registration shows LwM2M 1.0', async () => (await textOf(registration)).includes('1.0'));
  });

  await scenario('read /3/0', ['device page'], async () => {
    await admin.getByRole('button', { name: 'Read /3/0', exact: true }).click();
    const row = admin.locator('[data-path="/3/0/0"]');
    await until('the manufacturer in /3/0/0', async () => (await textOf(row)).includes('Ferrite Sim Meters'));
    await row.scrollIntoViewIfNeeded();
    await admin.screenshot({ path: join(shots, 'device-read.png') });
    await admin.evaluate(() => window.scrollTo(0, 0));
    await admin.screenshot({ path: join(shots, 'device.png') });
  });

  await scenario('observe', ['device page'], async () => {
    const path = '/10243/0/14';
    const row = admin.locator(`[data-path="${path}"]`);
    if ((await row.count()) === 0) {
      await admin.getByRole('button', { name: 'Read /10243/0', exact: true }).click();
    }
    await row.getByRole('button', { name: 'Observe', exact: true }).click();
    const events = admin.getByRole('region', { name: 'Live events' });
    await until('a notification in Live events', async () => /notif/i.test(await textOf(events)), 30_000);
    await row.getByRole('button', { name: 'Cancel observe' }).waitFor({ timeout: WAIT });
    await events.scrollIntoViewIfNeeded();
    await admin.screenshot({ path: join(shots, 'device-observed.png') });
  });

  await scenario('suspend', ['device page'], async () => {
    const lifecycle = admin.getByRole('region', { name: 'Lifecycle' });
    await lifecycle.getByLabel('Reason').fill('browser test: meter cabinet opened');
    await lifecycle.getByRole('button', { name: 'Suspend', exact: true }).click();
    await until('the state "suspended"', async () => /suspended/i.test(await textOf(lifecycle)));
    await lifecycle.getByRole('button', { name: 'Resume', exact: true }).waitFor({ timeout: WAIT });
    const audit = admin.getByRole('region', { name: 'Audit history' });
    await until('the audit entry with the reason', async () => {
      const text = await textOf(audit);
      return text.includes('meter cabinet opened') && text.includes('alice');
    });
    const stored = await server.api('GET', `/devices/${DEVICE}`);
    if (stored.json?.state !== 'suspended') throw new Error(`the API says ${stored.text}`);
  });

  await scenario('field service', [], async () => {
    const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
    const page = await context.newPage();
    watch(page, 'fred');
    await signIn(page, server.base, 'fred');
    await until('the nav shows "fred (field-service)"', async () => (await textOf(page.getByRole('navigation'))).includes('fred (field-service)'));
    await page.goto(`${server.base}/devices/${OTHER}`);
    await page.getByRole('heading', { level: 1, name: OTHER }).waitFor({ timeout: WAIT });
    await page.getByRole('region', { name: 'Lifecycle' }).waitFor({ timeout: WAIT });
    await sleep(500); // let the page settle: the button must not appear late either
    for (const action of ['Decommission', 'Suspend']) {
      const n = await page.getByRole('button', { name: action, exact: true }).count();
      if (n !== 0) throw new Error(`a field-service user sees "${action}"`);
    }
    await page.screenshot({ path: join(shots, 'device-field-service.png') });
    // The API refuses it too, with the page's own session cookie and CSRF token.
    const status = await page.evaluate(async (endpoint) => {
      const me = await (await fetch('/api/v1/me')).json();
      const response = await fetch(`/api/v1/devices/${endpoint}/lifecycle`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': me.csrf_token },
        body: JSON.stringify({ to: 'decommissioned', reason: 'browser test' }),
      });
      return response.status;
    }, OTHER);
    if (status !== 403) throw new Error(`decommission by field-service answered ${status}, not 403`);
    const stored = await server.api('GET', `/devices/${OTHER}`);
    if (stored.json?.state !== 'active') throw new Error(`the device changed: ${stored.text}`);
    await context.close();
  });

  const VERDICT_LABELS = { healthy: 'Healthy', monitor: 'Monitor', remote_action: 'Remote action', site_visit: 'Site visit' };

  await scenario('diagnose (field service)', ['login'], async () => {
    const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
    const page = await context.newPage();
    watch(page, 'fred');
    const endpoint = DIAG_METERS[0];
    await signIn(page, server.base, 'fred');
    await page.goto(`${server.base}/devices/${endpoint}`);
    await page.getByRole('heading', { level: 1, name: endpoint }).waitFor({ timeout: WAIT });
    const section = page.getByRole('region', { name: 'Diagnostics' });
    await until('"not diagnosed yet"', async () => /not been diagnosed yet/.test(await textOf(section)));
    await section.getByRole('button', { name: 'Diagnose', exact: true }).click();
    // The verdict the server stored is the one on the page, with its summary and every finding.
    let run;
    await until('a completed run in the API', async () => {
      const history = await server.api('GET', `/devices/${endpoint}/diagnostics`);
      run = history.json?.runs?.[0];
      return run?.status === 'completed';
    }, 45_000);
    const verdict = VERDICT_LABELS[run.diagnosis.verdict];
    await until(`the verdict "${verdict}" and the summary`, async () => {
      const text = await textOf(section);
      return text.includes(verdict) && text.includes(run.diagnosis.summary);
    }, 45_000);
    const findings = section.getByRole('list', { name: 'Findings' });
    if (run.diagnosis.findings.length === 0) throw new Error(`a problem meter with no findings: ${JSON.stringify(run.diagnosis)}`);
    await until(`${run.diagnosis.findings.length} findings listed`, async () =>
      (await findings.locator(':scope > li').count()) === run.diagnosis.findings.length);
    const first = run.diagnosis.findings[0];
    const firstText = await textOf(findings.locator(':scope > li').first());
    for (const part of [first.title, first.action, first.evidence[0]?.value ?? '']) {
      if (!firstText.includes(part)) throw new Error(`the worst finding does not show "${part}": ${firstText}`);
    }
    if (!/Critical|Major|Minor|Info/.test(firstText)) throw new Error(`no severity in "${firstText}"`);
    await section.screenshot({ path: join(shots, 'device-diagnosis.png') });

    // A second run: two rows of history, changes compared, a dot per run in the charts.
    await section.getByRole('button', { name: 'Diagnose', exact: true }).click();
    const history = section.getByRole('table', { name: 'Diagnosis history' });
    await until('two runs in the history', async () => (await history.locator('tbody tr').count()) === 2, 45_000);
    await section.getByRole('heading', { name: 'Changes since the previous diagnosis' }).waitFor({ timeout: WAIT });
    const chart = section.getByRole('img', { name: /^Signal strength/ });
    await until('the signal chart with two dots', async () => (await chart.locator('circle').count()) === 2);
    await section.screenshot({ path: join(shots, 'device-diagnosis-2.png') });
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(shots, 'device-top-field-service.png') });

    // Field service sees the sweeps but cannot start one.
    await page.getByRole('navigation').getByRole('link', { name: 'Diagnostics' }).click();
    await page.getByRole('heading', { level: 1, name: 'Diagnostics' }).waitFor({ timeout: WAIT });
    await page.getByText('Starting a sweep needs the fleet-manager role').waitFor({ timeout: WAIT });
    if ((await page.getByRole('button', { name: 'Start sweep' }).count()) !== 0) throw new Error('field service sees "Start sweep"');
    await context.close();
  });

  await scenario('sweep (fleet manager)', ['login'], async () => {
    const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
    const page = await context.newPage();
    watch(page, 'maria');
    await signIn(page, server.base, 'maria');
    await page.getByRole('navigation').getByRole('link', { name: 'Diagnostics' }).click();
    await page.getByRole('heading', { level: 1, name: 'Diagnostics' }).waitFor({ timeout: WAIT });
    const form = page.getByRole('region', { name: 'Start a sweep' });
    await form.getByLabel('Tag').fill('site=diag');
    await form.getByLabel('Devices per second').fill('20');
    await until('the form says what it will diagnose', async () => (await textOf(form)).includes('tag site:diag'));
    await form.getByRole('button', { name: 'Start sweep' }).click();
    await until('the sweep page', async () => /^\/diagnostics\/sweeps\/./.test(new URL(page.url()).pathname));
    const id = decodeURIComponent(new URL(page.url()).pathname.split('/').pop());
    const progress = page.getByRole('region', { name: 'Sweep progress' });
    const n = DIAG_METERS.length;
    await until(`"Completed: ${n} of ${n} devices diagnosed"`, async () =>
      (await textOf(progress)).includes(`Completed: ${n} of ${n} devices diagnosed`), 60_000);
    const stored = (await server.api('GET', `/diagnostics/sweeps/${id}`)).json;
    const byVerdict = Object.values(stored.by_verdict).reduce((a, b) => a + b, 0);
    if (stored.devices !== n || byVerdict !== n) throw new Error(`the sweep covered ${stored.devices} devices, ${byVerdict} verdicts: ${JSON.stringify(stored)}`);
    // The counts on the page are the server's, and the charts say them too.
    for (const [key, count] of Object.entries(stored.by_verdict)) {
      const button = progress.getByRole('button', { name: `${VERDICT_LABELS[key]} ${count}`, exact: true });
      await button.waitFor({ timeout: WAIT });
    }
    const verdictChart = page.getByRole('img', { name: /^Devices by verdict:/ });
    await verdictChart.waitFor({ timeout: WAIT });
    if ((await verdictChart.locator('rect').count()) !== Object.values(stored.by_verdict).filter((c) => c > 0).length) {
      throw new Error('the verdict chart has a bar per verdict');
    }
    const rules = Object.keys(stored.by_rule).filter((k) => stored.by_rule[k] > 0);
    if (rules.length === 0) throw new Error(`problem meters with no findings: ${JSON.stringify(stored)}`);
    await page.getByRole('img', { name: /^Devices by finding:/ }).locator('rect').nth(rules.length - 1).waitFor({ timeout: WAIT });
    const results = page.getByRole('table', { name: 'Sweep results' });
    await until(`${n} result rows`, async () => (await results.locator('tbody tr').count()) === n);
    await page.screenshot({ path: join(shots, 'sweep.png'), fullPage: true });

    // Filter by the most frequent finding: the URL keeps it, the rows are the server's.
    const rule = rules.sort((a, b) => stored.by_rule[b] - stored.by_rule[a])[0];
    await page.getByLabel('Finding', { exact: true }).selectOption(rule);
    await until(`?rule=${rule} in the URL`, async () => new URL(page.url()).searchParams.get('rule') === rule);
    const expected = (await server.api('GET', `/diagnostics/sweeps/${id}/results?rule=${rule}`)).json.items.map((i) => i.endpoint);
    await until(`the ${expected.length} devices with ${rule}`, async () => {
      const shown = await results.locator('tbody tr td:first-child').allTextContents();
      return JSON.stringify(shown.map((t) => t.trim())) === JSON.stringify(expected);
    });
    await page.screenshot({ path: join(shots, 'sweep-filtered.png'), fullPage: true });
    await page.goBack();
    await until('back to the unfiltered results', async () => (await results.locator('tbody tr').count()) === n);
    // A result links to its device page.
    await results.getByRole('link', { name: expected[0], exact: true }).click();
    await page.getByRole('heading', { level: 1, name: expected[0] }).waitFor({ timeout: WAIT });
    // Back on the list, the sweep is there with its verdicts.
    await page.getByRole('navigation').getByRole('link', { name: 'Diagnostics' }).click();
    const sweeps = page.getByRole('table', { name: 'Sweeps' });
    await until('the sweep listed as completed', async () => /Completed/.test(await textOf(sweeps)) && (await textOf(sweeps)).includes(`${n} of ${n}`));
    await page.screenshot({ path: join(shots, 'diagnostics.png'), fullPage: true });
    await context.close();
  });

  await scenario('cancel a sweep (fleet manager)', ['login'], async () => {
    const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
    const page = await context.newPage();
    watch(page, 'maria');
    await signIn(page, server.base, 'maria');
    await page.getByRole('navigation').getByRole('link', { name: 'Diagnostics' }).click();
    const form = page.getByRole('region', { name: 'Start a sweep' });
    await form.getByLabel('Tag').fill('site=diag');
    // Slow enough that it is still running when cancelled.
    await form.getByLabel('Devices per second').fill('0.1');
    await form.getByRole('button', { name: 'Start sweep' }).click();
    await until('the sweep page', async () => /^\/diagnostics\/sweeps\/./.test(new URL(page.url()).pathname));
    const id = decodeURIComponent(new URL(page.url()).pathname.split('/').pop());
    // The progress counts against the devices the sweep expects, not only those it reached.
    await until(`"of ${DIAG_METERS.length} devices"`, async () => (await textOf(page.getByRole('region', { name: 'Sweep progress' }))).includes(`of ${DIAG_METERS.length} devices diagnosed`));
    const panel = page.getByRole('region', { name: 'Cancel the sweep' });
    // Nothing happens before the confirmation; "Keep it running" backs out.
    await panel.getByRole('button', { name: 'Cancel sweep…' }).click();
    await panel.getByRole('button', { name: 'Keep it running' }).click();
    if ((await server.api('GET', `/diagnostics/sweeps/${id}`)).json.status !== 'running') throw new Error('the sweep stopped without confirmation');
    await panel.getByRole('button', { name: 'Cancel sweep…' }).click();
    await panel.getByRole('alert').waitFor({ timeout: WAIT });
    await page.screenshot({ path: join(shots, 'sweep-cancel-confirm.png'), fullPage: true });
    await panel.getByRole('button', { name: 'Yes, cancel the sweep' }).click();
    const progress = page.getByRole('region', { name: 'Sweep progress' });
    await until('"Interrupted" on the page', async () => (await textOf(progress)).includes('Interrupted:'));
    if ((await page.getByRole('region', { name: 'Cancel the sweep' }).count()) !== 0) throw new Error('a cancelled sweep still offers Cancel');
    const stored = (await server.api('GET', `/diagnostics/sweeps/${id}`)).json;
    if (stored.status !== 'interrupted' || stored.devices >= DIAG_METERS.length) {
      throw new Error(`the cancelled sweep: ${JSON.stringify(stored)}`);
    }
    await context.close();
  });

  await scenario('fleet filters in the URL', ['fleet'], async () => {
    // A deep link with filters opens the fleet filtered, with the form showing them.
    await admin.goto(`${server.base}/?tag=site%3Ddiag`);
    const table = admin.getByRole('table', { name: 'Devices' });
    const endpoints = async () => (await table.locator('tbody tr td:first-child').allTextContents()).map((t) => t.trim());
    await until('only the diag meters', async () => JSON.stringify(await endpoints()) === JSON.stringify(DIAG_METERS));
    if ((await admin.getByLabel('Tag').inputValue()) !== 'site=diag') throw new Error('the Tag field does not show the URL filter');
    // A fleet manager can sweep exactly these devices: the sweep form opens with the filters.
    const sweepLink = admin.getByRole('link', { name: 'Diagnose these devices' });
    if ((await sweepLink.getAttribute('href')) !== '/diagnostics?tag=site%3Ddiag') throw new Error(`the sweep link is ${await sweepLink.getAttribute('href')}`);
    // Changing a filter adds a history entry; back restores the previous filters and rows.
    await admin.getByLabel('Search').fill('diag-000002');
    await until('?q= in the URL', async () => new URL(admin.url()).searchParams.get('q') === 'diag-000002');
    await until('one row', async () => JSON.stringify(await endpoints()) === JSON.stringify(['diag-000002']));
    if (new URL(admin.url()).searchParams.get('tag') !== 'site=diag') throw new Error(`the tag left the URL: ${admin.url()}`);
    await admin.goBack();
    await until('back to ?tag=site=diag', async () => new URL(admin.url()).search === '?tag=site%3Ddiag');
    await until('the diag meters again', async () => JSON.stringify(await endpoints()) === JSON.stringify(DIAG_METERS));
    if ((await admin.getByLabel('Search').inputValue()) !== '') throw new Error('the Search field kept the newer filter');
    await admin.goForward();
    await until('forward to one row', async () => JSON.stringify(await endpoints()) === JSON.stringify(['diag-000002']));
    if ((await admin.getByLabel('Search').inputValue()) !== 'diag-000002') throw new Error('the Search field does not follow the URL');
    await admin.getByRole('link', { name: 'Diagnose these devices' }).click();
    const form = admin.getByRole('region', { name: 'Start a sweep' });
    await until('the sweep form with the fleet filters', async () => (await textOf(form)).includes('Diagnoses search diag-000002, tag site:diag.'));
    if ((await form.getByLabel('Tag').inputValue()) !== 'site=diag') throw new Error('the sweep form lost the tag');
  });

  await scenario('last seen ticks', ['fleet'], async () => {
    await admin.goto(`${server.base}/?q=sim-000003`);
    const cell = admin.getByRole('table', { name: 'Devices' }).locator('tbody tr').first().locator('td').nth(5);
    await until('a last-seen time', async () => /ago|just now/.test(await textOf(cell)));
    const before = await textOf(cell);
    // No reload and no new data: the console's clock moves the text on (it ticks every 10 s).
    await until(`"${before}" moving on`, async () => (await textOf(cell)) !== before, 30_000);
  });

  await scenario('live indicator reconnects', ['fleet'], async () => {
    // The event stream is served once and ends at once (as when the server restarts), then
    // refused (503) for a while: the browser gives up on it, the console retries with a growing
    // backoff and says "Reconnecting…"; once the server answers again it is "Live" again.
    const attempts = [];
    await admin.route('**/api/v1/events**', (route) => {
      attempts.push(Date.now());
      return attempts.length === 1
        ? route.fulfill({ status: 200, contentType: 'text/event-stream', body: 'retry: 200\n\n' })
        : route.fulfill({ status: 503, body: 'down for the test' });
    });
    try {
      await admin.goto(`${server.base}/`);
      const indicator = admin.getByTestId('live-indicator');
      await until('"Reconnecting…"', async () => (await textOf(indicator)).includes('Reconnecting'));
      await until('three refused attempts', async () => attempts.length >= 4, 20_000);
      await admin.screenshot({ path: join(shots, 'fleet-reconnecting.png') });
      if (!(await textOf(indicator)).includes('Reconnecting')) throw new Error('"Live" while the stream is refused');
      const gaps = attempts.slice(2).map((t, i) => t - attempts[i + 1]);
      if (!(gaps[1] > gaps[0])) throw new Error(`no backoff between attempts: ${JSON.stringify(gaps)} ms`);
    } finally {
      await admin.unroute('**/api/v1/events**');
    }
    await until('"Live" again', async () => (await textOf(admin.getByTestId('live-indicator'))).trim() === 'Live', 40_000);
  });

  await scenario('lifecycle changes arrive live', ['device page'], async () => {
    const endpoint = 'sim-000003';
    await admin.goto(`${server.base}/devices/${endpoint}`);
    const lifecycle = admin.getByRole('region', { name: 'Lifecycle' });
    await until('active', async () => /active/i.test(await textOf(lifecycle)));
    await until('"Live"', async () => (await textOf(admin.getByTestId('live-indicator'))).trim() === 'Live');
    // Someone else suspends it (through the API): this page follows without a reload.
    const changed = await server.api('POST', `/devices/${endpoint}/lifecycle`, { to: 'suspended', reason: 'browser test: changed elsewhere' });
    if (changed.status !== 200) throw new Error(`POST lifecycle: ${changed.status} ${changed.text}`);
    await until('the page shows "suspended"', async () => /suspended/i.test(await textOf(lifecycle)));
    const events = admin.getByRole('region', { name: 'Live events' });
    await until('the change in Live events', async () => /active → suspended/.test(await textOf(events)));
    await until('the audit entry', async () => (await textOf(admin.getByRole('region', { name: 'Audit history' }))).includes('changed elsewhere'));
    await admin.screenshot({ path: join(shots, 'device-state-changed.png') });
    // And the fleet counts follow too.
    await admin.getByRole('navigation').getByRole('link', { name: 'Fleet' }).click();
    const summary = admin.getByLabel('Fleet summary');
    const count = async () => (await server.api('GET', '/devices/summary')).json.by_state.suspended;
    const before = await count();
    await until(`suspended ${before}`, async () => (await textOf(summary)).includes(`suspended ${before}`));
    const resumed = await server.api('POST', `/devices/${endpoint}/lifecycle`, { to: 'active', reason: 'browser test: back' });
    if (resumed.status !== 200) throw new Error(`POST lifecycle: ${resumed.status} ${resumed.text}`);
    await until(`suspended ${before - 1}`, async () => (await textOf(summary)).includes(`suspended ${before - 1}`));
  });

  await scenario('keyboard only', ['fleet'], async () => {
    const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
    const page = await context.newPage();
    watch(page, 'keyboard');
    const focused = () => page.evaluate(() => {
      const e = document.activeElement;
      if (!e || e === document.body) return { tag: 'body' };
      const label = e.labels?.[0]?.textContent?.trim();
      return {
        tag: e.tagName.toLowerCase(), id: e.id, text: (e.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 60),
        label, row: e.closest('tr')?.dataset?.path, expanded: e.getAttribute('aria-expanded'),
      };
    });
    /// Tabs until `wanted(focus)`; every stop must be a real element (focus never lost).
    const tabTo = async (what, wanted, max = 120) => {
      for (let i = 0; i < max; i++) {
        await page.keyboard.press('Tab');
        const f = await focused();
        if (f.tag === 'body') throw new Error(`focus fell to <body> while tabbing to ${what}`);
        if (wanted(f)) return f;
      }
      throw new Error(`${what} not reached in ${max} Tab presses`);
    };
    await page.goto(`${server.base}/login`);
    await page.getByLabel('Username').waitFor({ timeout: WAIT });
    let f = await focused();
    if (f.label !== 'Username') f = await tabTo('Username', (x) => x.label === 'Username', 10);
    await page.keyboard.type('alice');
    await page.keyboard.press('Tab');
    if ((await focused()).label !== 'Password') throw new Error('Tab from Username does not reach Password');
    await page.keyboard.type(PASSWORD);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Fleet' }).waitFor({ timeout: WAIT });
    await page.getByTestId('fleet-loaded').waitFor({ state: 'attached', timeout: WAIT });

    // A fresh load: the first Tab stop is the skip link, which moves the focus to the content.
    await page.goto(`${server.base}/`);
    await page.getByTestId('fleet-loaded').waitFor({ state: 'attached', timeout: WAIT });
    await page.keyboard.press('Tab');
    f = await focused();
    if (f.text !== 'Skip to content') throw new Error(`the first Tab stop is ${JSON.stringify(f)}`);
    await page.screenshot({ path: join(shots, 'keyboard-skip-link.png') });
    await page.keyboard.press('Enter');
    await until('focus on <main>', async () => (await focused()).id === 'main');

    // Open a device from the table with Enter: the focus starts at the new page's content.
    await tabTo(`the ${OTHER} link`, (x) => x.tag === 'a' && x.text === OTHER);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: OTHER }).waitFor({ timeout: WAIT });
    await until('focus on the device page <main>', async () => (await focused()).id === 'main');

    // Operate a control: Read /3/0 with Enter; the focus stays on the button.
    await tabTo('"Read /3/0"', (x) => x.text === 'Read /3/0');
    await page.keyboard.press('Enter');
    await until('the manufacturer read', async () => (await textOf(page.locator('[data-path="/3/0/0"]'))).includes('Ferrite Sim Meters'));
    if ((await focused()).text !== 'Read /3/0') throw new Error('the focus left the Read button');

    // Execute Reboot asks first, in the row: focus in the panel, explicit confirmation needed;
    // Escape closes it and gives the focus back to Execute.
    await tabTo('Execute of /3/0/4', (x) => x.row === '/3/0/4' && x.text === 'Execute');
    await page.keyboard.press('Enter');
    const reboot = page.locator('[data-path="/3/0/4"]');
    await until('the arguments field focused', async () => (await focused()).label === 'Arguments for Reboot (optional)');
    if (!(await textOf(reboot)).includes('restarts')) throw new Error('no warning for Reboot');
    if (!(await reboot.getByRole('button', { name: 'Execute Reboot' }).isDisabled())) throw new Error('Reboot can be executed without confirming');
    await page.screenshot({ path: join(shots, 'keyboard-execute-confirm.png') });
    await page.keyboard.press('Escape');
    await until('focus back on Execute', async () => {
      const x = await focused();
      return x.row === '/3/0/4' && x.text === 'Execute' && x.expanded === 'false';
    });
    if ((await reboot.getByRole('button', { name: 'Execute Reboot' }).count()) !== 0) throw new Error('the panel stayed open');

    // A harmless execute goes through with Enter in the panel.
    await tabTo('Execute of /3/0/12', (x) => x.row === '/3/0/12' && x.text === 'Execute');
    await page.keyboard.press('Enter');
    await until('the arguments field focused', async () => (await focused()).label === 'Arguments for Reset Error Code (optional)');
    await page.keyboard.press('Enter');
    const resetRow = page.locator('[data-path="/3/0/12"]');
    await until('"Executed"', async () => (await textOf(resetRow)).includes('Executed: the device accepted Reset Error Code'));
    await context.close();
  });

  await scenario('no script errors or CSP violations', ['login'], async () => {
    // Failed fetches the scenarios caused on purpose (the wrong password, the 403, the refused
    // event streams) are expected.
    const real = pageErrors.filter((e) => !/status of (401|403|503)/.test(e));
    if (real.length > 0) throw new Error(real.join('\n'));
  });
} finally {
  await browser.close().catch(() => {});
  await server.stop();
}

const failed = results.filter((r) => r.status !== 'PASS');
console.log(`\nbrowser tests: ${results.length - failed.length}/${results.length} passed; screenshots in ${shots}`);
for (const r of failed) console.log(`  ${r.status} ${r.name}: ${r.detail}`);
if (failed.length > 0) {
  console.log(`  server log: ${server.logPath}`);
  process.exit(1);
}
