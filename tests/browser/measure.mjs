// Measures (does not assert) how long the console takes from navigation to a rendered first page
// of the fleet (`data-testid="fleet-loaded"`) with 10,000 and 100,000 devices in the registry,
// imported by CSV through the API. Prints one line per fleet size.
//
//   node measure.mjs [sizes...]      default: 10000 100000
import { checkPrerequisites, startServer, launchBrowser, PASSWORD, sleep } from './lib.mjs';

const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
if (sizes.length === 0) sizes.push(10_000, 100_000);
const RUNS = 5;

const missing = checkPrerequisites();
if (missing.length > 0) {
  console.error(`measure: missing\n  ${missing.join('\n  ')}`);
  process.exit(1);
}

const server = await startServer({ log: 'measure-server.log' });
const browser = await launchBrowser();
let imported = 0;

/// Imports devices `from..to` (exclusive) in CSV chunks; the server generates their keys.
async function importDevices(from, to) {
  const chunk = 10_000;
  for (let start = from; start < to; start += chunk) {
    const end = Math.min(start + chunk, to);
    const rows = ['endpoint,serial,model,tags'];
    for (let n = start; n < end; n++) {
      const id = String(n + 1).padStart(7, '0');
      rows.push(`meter-${id},SN${id},${n % 3 === 0 ? 'EM-300' : 'EM-210'},site=s${n % 50};feeder=f${n % 7}`);
    }
    const started = Date.now();
    const answer = await server.api('POST', '/devices/import', rows.join('\n') + '\n', 'text/csv');
    if (answer.status !== 200) throw new Error(`import: ${answer.status} ${answer.text.slice(0, 300)}`);
    if (answer.json?.accepted !== end - start) {
      throw new Error(`import accepted ${answer.json?.accepted} of ${end - start}: ${answer.text.slice(0, 400)}`);
    }
    process.stdout.write(`  imported ${end.toLocaleString('en')} devices (chunk ${Date.now() - started} ms)\r`);
  }
  process.stdout.write('\n');
}

try {
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  const page = await context.newPage();
  await page.goto(`${server.base}/login`);
  await page.getByLabel('Username').fill('alice');
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('navigation').waitFor({ timeout: 15_000 });

  for (const size of sizes) {
    await importDevices(imported, size);
    imported = size;
    const times = [];
    for (let run = 0; run < RUNS; run++) {
      // A fresh navigation each time (the wasm module comes from the HTTP cache after the first).
      await page.goto(`${server.base}/`, { waitUntil: 'commit' });
      await page.waitForFunction(() => document.querySelector('[data-testid="fleet-loaded"]'), null, {
        polling: 'raf', timeout: 60_000,
      });
      times.push(await page.evaluate(() => performance.now()));
      await sleep(200);
    }
    const sorted = [...times].sort((a, b) => a - b);
    console.log(`fleet of ${size.toLocaleString('en')} devices: navigation → fleet-loaded `
      + `median ${sorted[Math.floor(RUNS / 2)].toFixed(0)} ms, first ${times[0].toFixed(0)} ms, `
      + `min ${sorted[0].toFixed(0)} ms, max ${sorted[RUNS - 1].toFixed(0)} ms (${RUNS} loads)`);
  }
} finally {
  await browser.close().catch(() => {});
  await server.stop();
}
