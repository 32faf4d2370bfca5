// Clicks through the host's console in Debian's chromium, driven by playwright-core
// (no browser download): open the ticket URL, create a PythonContext, run code, see
// a table and (where matplotlib is installed) an image, an error with its line,
// printed output, interrupt a busy loop, restart, delete. Screenshots go to the folder given.
//
// Usage: node console.mjs <ticket URL> <screenshot dir>   (run by tests/tests/console.rs)
// playwright-core is looked up in $NODE_MODULES (target/browser/node_modules), so no
// npm package lives in the source tree.
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

const require = createRequire(resolve(process.env.NODE_MODULES || 'node_modules') + '/');
const { chromium } = require('playwright-core');

const [url, shots] = process.argv.slice(2);
if (!url || !shots) {
  console.error('usage: node console.mjs <ticket URL> <screenshot dir>');
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const problems = [];
const step = (text) => console.log(`step: ${text}`);
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  page.setDefaultTimeout(30000);
  page.on('console', (message) => {
    if (/Content Security Policy|Refused to/i.test(message.text())) problems.push(`CSP: ${message.text()}`);
    if (message.type() === 'error' && !/favicon/.test(message.text())) problems.push(`console error: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));

  step('open the ticket URL');
  const response = await page.goto(url);
  const csp = response.headers()['content-security-policy'] || '';
  if (!csp.includes("script-src 'self'")) problems.push(`no strict CSP on the page: ${csp}`);
  if (response.headers()['x-content-type-options'] !== 'nosniff') problems.push('no nosniff on the page');
  await page.waitForFunction(() => !location.search.includes('ticket'));
  await page.waitForSelector('button.create[data-type="PythonContext"]:not([disabled])');

  step('create a PythonContext');
  await page.click('button.create[data-type="PythonContext"]');
  const ctx = page.locator('article.context').first();
  await ctx.waitFor();
  const name = await ctx.getAttribute('data-name');
  await ctx.locator('.language', { hasText: 'Python' }).waitFor();
  await ctx.locator('.pid', { hasText: /^\d+$/ }).waitFor();

  const run = async (code) => {
    const before = await ctx.locator('.run-output').count();
    await ctx.locator('.editor').fill(code);
    await ctx.locator('.editor').press('Control+Enter');
    await page.waitForFunction(([n, count]) => {
      const outputs = document.querySelectorAll(`article[data-name="${n}"] .run-output`);
      return outputs.length > count && !outputs[0].querySelector('.meta').textContent.startsWith('running');
    }, [name, before]);
    return ctx.locator('.run-output').first();
  };

  step('print and a value');
  let out = await run('print("hello from the console")\n6 * 7');
  if ((await out.locator('pre.stdout').textContent()).trim() !== 'hello from the console') problems.push('stdout not shown');
  if ((await out.locator('.value').textContent()).trim() !== '42') problems.push('value 42 not shown');

  step('a table, paged');
  out = await run('import pandas as pd\npd.DataFrame({"n": list(range(45)), "square": [i * i for i in range(45)]})');
  const table = out.locator('.value table');
  await table.waitFor();
  const headers = await table.locator('th').allTextContents();
  if (headers.join(',') !== 'n,square') problems.push(`table headers: ${headers}`);
  if (await table.locator('tbody tr').count() !== 20) problems.push('the first page is not 20 rows');
  await page.screenshot({ path: join(shots, '1-table.png'), fullPage: true });
  await out.locator('button.next').click();
  await out.locator('.pager', { hasText: 'rows 21–40 of 45' }).waitFor();
  if ((await table.locator('tbody tr').first().locator('td').first().textContent()) !== '20') problems.push('page 2 does not start at row 20');

  step('an image');
  out = await run('import importlib.util\nimportlib.util.find_spec("matplotlib") is not None');
  if ((await out.locator('.value').textContent()).trim() === 'true') {
    out = await run('import matplotlib\nmatplotlib.use("Agg")\nimport matplotlib.pyplot as plt\nfig = plt.figure(figsize=(3, 2))\nplt.plot([1, 3, 2])\nfig');
    const img = out.locator('.value img');
    await img.waitFor();
    const width = await img.evaluate((node) => node.naturalWidth);
    if (!(width > 0)) problems.push('the image did not load');
    await page.screenshot({ path: join(shots, '2-image.png'), fullPage: true });
  } else {
    console.log('skip: image check: matplotlib is not installed for the host\'s python3');
  }

  step('an error with line and column');
  out = await run('x = 1\nundefined_name + x');
  const error = await out.locator('pre.error').textContent();
  if (!/NameError/.test(error) || !/line 2/.test(error)) problems.push(`error not shown with its line: ${error}`);

  step('interrupt a busy loop');
  await ctx.locator('.editor').fill('while True:\n    pass');
  await ctx.locator('.editor').press('Control+Enter');
  await ctx.locator('.busy', { hasText: 'busy' }).waitFor();
  await page.screenshot({ path: join(shots, '3-busy.png'), fullPage: true });
  await ctx.locator('button.interrupt').click();
  await page.waitForFunction((n) => {
    const first = document.querySelector(`article[data-name="${n}"] .run-output`);
    return first && /KeyboardInterrupt/.test(first.textContent);
  }, name);
  await ctx.locator('.busy', { hasText: 'idle' }).waitFor();
  await page.screenshot({ path: join(shots, '4-interrupted.png'), fullPage: true });

  step('restart: a fresh namespace');
  await ctx.locator('button.restart').click();
  await ctx.locator('.run-output', { hasText: 'Restarted' }).waitFor();
  out = await run('x');
  if (!/NameError/.test(await out.locator('pre.error').textContent())) problems.push('x survived a restart');

  step('delete');
  await ctx.locator('button.delete').click();
  await page.locator(`article[data-name="${name}"]`).waitFor({ state: 'detached' });
  await page.locator('#empty').waitFor({ state: 'visible' });
  await page.screenshot({ path: join(shots, '5-deleted.png'), fullPage: true });
} catch (error) {
  problems.push(`failed: ${error.message}`);
} finally {
  await browser.close();
}
if (problems.length) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log('ok: the console works');
