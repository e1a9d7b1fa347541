// The dashboard in a real browser: starts the real `switchyard` binary and its mock upstream,
// sends real traffic (successes, upstream failures, a virtual key with spend, `feature` tags),
// opens /ui in headless Chromium (Debian's, driven by playwright-core), signs in with the master
// key and checks that the charts and tables show that traffic; then a wrong key and a plain key
// get a clear message. Saves a screenshot: to docs/img/dashboard.png with UPDATE_SCREENSHOT=1 (the
// README's picture), else to the temp dir.
//
//   (cd tests/ui && npm ci) && SWITCHYARD_BIN=target/debug/switchyard node --test tests/ui/
//
// Without Chromium this test is skipped locally and fails in CI (CI=true).

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
const MASTER = 'sk-ui-master-' + Math.random().toString(36).slice(2);
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const BIN = process.env.SWITCHYARD_BIN
  || join(process.env.CARGO_TARGET_DIR || join(repo, 'target'), 'debug', 'switchyard');
const SCREENSHOT = process.env.UPDATE_SCREENSHOT === '1'
  ? join(repo, 'docs', 'img', 'dashboard.png')
  : join(tmpdir(), `switchyard-dashboard-${process.pid}.png`);

const children = [];
after(() => { for (const child of children) child.kill('SIGKILL'); });
process.on('exit', () => { for (const child of children) child.kill('SIGKILL'); });

/** Spawns `switchyard ARGS` and resolves with the URL of its `... listening on URL` line. */
function start(args, cwd) {
  return new Promise((resolveUrl, reject) => {
    const child = spawn(BIN, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: 'warn' } });
    children.push(child);
    let log = '';
    child.stderr.on('data', (d) => { log += d; });
    const timer = setTimeout(() => reject(new Error(`switchyard ${args[0]} did not start:\n${log}`)), 20000);
    child.on('exit', (code) => reject(new Error(`switchyard ${args[0]} exited with ${code}:\n${log}`)));
    const lines = createInterface({ input: child.stdout });
    lines.once('line', (line) => {
      clearTimeout(timer);
      const url = line.split(' listening on ')[1];
      if (!url) reject(new Error(`unexpected first line: ${line}`));
      else resolveUrl(url.trim().replace('0.0.0.0', '127.0.0.1'));
    });
  });
}

async function call(url, path, { key = MASTER, body, method } = {}) {
  const response = await fetch(url + path, {
    method: method || (body ? 'POST' : 'GET'),
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  let json = null;
  try { json = JSON.parse(text); } catch (_) { /* not JSON */ }
  return { status: response.status, json, text };
}

const chat = (model, feature) => ({
  model,
  messages: [{ role: 'user', content: 'Say hello to the dashboard' }],
  metadata: feature ? { feature } : undefined,
});

function today() { return new Date().toISOString().slice(0, 10); }

test('the dashboard shows real traffic, cost, deployments and keys', { timeout: 60000 }, async (t) => {
  if (!existsSync(CHROMIUM)) {
    const message = `Chromium not found at ${CHROMIUM} (apt-get install -y chromium)`;
    if (process.env.CI === 'true') assert.fail(`${message}: the browser test cannot be skipped in CI`);
    t.skip(message);
    return;
  }
  assert.ok(existsSync(BIN), `no switchyard binary at ${BIN}: run cargo build or set SWITCHYARD_BIN`);
  const { chromium } = await import('playwright-core');

  // ------------------------------------------------------------ gateway and traffic
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-ui-'));
  const healthy = await start(['mock-upstream', '--port', '0'], dir);
  const broken = await start(['mock-upstream', '--port', '0'], dir);
  const mock = await fetch(`${broken}/__mock/config`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ error_rate: 1.0, error_status: 500 }),
  });
  assert.equal(mock.status, 200);
  const price = 'input_cost_per_token: 0.000001, output_cost_per_token: 0.000002';
  writeFileSync(join(dir, 'config.yaml'), `model_list:
  - model_name: chat-fast
    litellm_params: {model: openai/fast-upstream, api_base: '${healthy}/v1', api_key: sk-fake, ${price}}
    model_info: {id: fast-1}
  - model_name: chat-broken
    litellm_params: {model: openai/broken-upstream, api_base: '${broken}/v1', api_key: sk-fake, ${price}}
    model_info: {id: broken-1}
router_settings:
  num_retries: 0
switchyard_spend: {flush_interval_ms: 50}
general_settings:
  master_key: ${MASTER}
`);
  const gw = await start(['serve', '--config', join(dir, 'config.yaml'), '--host', '127.0.0.1', '--port', '0'], dir);

  const team = await call(gw, '/team/new', { body: { team_id: 'team-ui', team_alias: 'Search team', max_budget: 5 } });
  assert.equal(team.status, 200, team.text);
  const made = await call(gw, '/key/generate', { body: { key_alias: 'ui-test-key', team_id: 'team-ui', max_budget: 0.001, rpm_limit: 600 } });
  assert.equal(made.status, 200, made.text);
  const virtualKey = made.json.key;

  for (let i = 0; i < 4; i++) {
    const r = await call(gw, '/v1/chat/completions', { body: chat('chat-fast', 'search') });
    assert.equal(r.status, 200, r.text);
  }
  for (let i = 0; i < 3; i++) {
    const r = await call(gw, '/v1/chat/completions', { key: virtualKey, body: chat('chat-fast', 'summarize') });
    assert.equal(r.status, 200, r.text);
  }
  for (let i = 0; i < 2; i++) {
    const r = await call(gw, '/v1/chat/completions', { body: chat('chat-broken', 'search') });
    assert.ok(r.status >= 500, `chat-broken answered ${r.status}`);
  }
  // Spend rows are written off the request path: wait until the report has both features.
  const range = `start_date=${today()}&end_date=${today()}`;
  for (let i = 0; ; i++) {
    const r = await call(gw, `/global/spend/report?group_by=feature&${range}`);
    const names = (r.json || []).map((row) => row.group);
    if (names.includes('search') && names.includes('summarize')) break;
    assert.ok(i < 100, `the spend report never showed the features: ${r.text}`);
    await new Promise((done) => setTimeout(done, 100));
  }

  // ------------------------------------------------------------ the browser
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !/status of 40[13]/.test(m.text())) problems.push(`console: ${m.text()}`); });
  const requested = [];
  page.on('request', (r) => requested.push(r.url()));

  await page.goto(`${gw}/ui`);
  await page.fill('#key', MASTER);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('body[data-loaded]', { timeout: 15000 });
  assert.equal(await page.isVisible('#dashboard'), true);

  // Traffic: the model-group rows count what was sent; the charts have lines.
  const cells = async (selector) => page.$$eval(`${selector} td`, (tds) => tds.map((td) => td.textContent.trim()));
  const fast = await cells('#traffic-groups tbody tr[data-name="chat-fast"]');
  assert.equal(fast[1], '7', `chat-fast row: ${fast}`);
  assert.equal(fast[3], '0');
  const brokenRow = await cells('#traffic-groups tbody tr[data-name="chat-broken"]');
  assert.equal(brokenRow[1], '2', `chat-broken row: ${brokenRow}`);
  assert.equal(brokenRow[3], '2');
  assert.equal(brokenRow[4], '100.0%');
  assert.ok(Number(fast[5]) > 0, `p50 of chat-fast: ${fast[5]}`);
  const deployment = await cells('#traffic-deployments tbody tr[data-name="fast-1"]');
  assert.equal(deployment[1], 'chat-fast');
  assert.equal(deployment[3], '7');
  for (const chart of ['#chart-rps', '#chart-p95', '#chart-errors']) {
    const paths = await page.$$eval(`${chart} svg path.series`, (ps) => ps.map((p) => [p.dataset.series, p.getAttribute('d')]));
    assert.ok(paths.some(([name, d]) => name === 'chat-fast' && /^M[\d.]+ [\d.]+/.test(d)), `${chart}: ${JSON.stringify(paths)}`);
  }
  assert.ok(await page.$('#traffic-groups tbody tr[data-name="chat-fast"] svg.spark rect'));

  // Cost: per feature, team, key and model, as tables and bars.
  const search = await cells('#cost-feature tbody tr[data-name="search"]');
  assert.ok(Number(search[1]) > 0, `search spend: ${search}`);
  assert.equal(search[2], '6', 'the two failed requests are spend rows too (of no cost)');
  assert.equal((await cells('#cost-feature tbody tr[data-name="summarize"]'))[2], '3');
  assert.ok(await page.$('#cost-feature svg rect[data-label="summarize"]'));
  assert.ok(await page.$('#cost-team tbody tr[data-name="team-ui"]'));
  assert.ok(await page.$('#cost-key svg rect[data-label="ui-test-key"]'));
  assert.equal((await cells('#cost-model tbody tr[data-name="chat-fast"]'))[2], '7');

  // Deployments with their state; keys with spend and limits.
  const fastHealth = await cells('#deployment-table tbody tr[data-name="fast-1"]');
  assert.equal(fastHealth[3], 'healthy');
  assert.ok(await page.$('#deployment-table tbody tr[data-name="broken-1"]'));
  const keyRow = await cells('#key-table tbody tr[data-name="ui-test-key"]');
  assert.equal(keyRow[2], 'team-ui');
  assert.ok(Number(keyRow[4]) > 0, `key spend: ${keyRow}`);
  assert.equal(keyRow[7], '600');
  assert.ok(await page.$('#key-table tbody tr[data-name="ui-test-key"] svg.budget'));
  assert.ok(await page.$('#team-table tbody tr[data-name="team-ui"]'));

  // Never a secret: not the master key, not the virtual key.
  const html = await page.content();
  assert.ok(!html.includes(MASTER), 'the page shows the master key');
  assert.ok(!html.includes(virtualKey), 'the page shows a virtual key');
  assert.ok(requested.every((u) => u.startsWith(gw) && !u.includes(MASTER)), `requests: ${requested}`);
  assert.deepEqual(problems, []);

  mkdirSync(dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });

  // The day's window: five-minute points, the same counts.
  await page.click('[data-window="1d"]');
  await page.waitForFunction(() => document.querySelector('#bucket-size').textContent === '5 minutes');
  assert.equal((await cells('#traffic-groups tbody tr[data-name="chat-fast"]'))[1], '7');
  // A reload keeps the session (sessionStorage), without asking for the key again.
  await page.reload();
  await page.waitForSelector('body[data-loaded]', { timeout: 15000 });
  assert.equal(await page.isVisible('#dashboard'), true);

  // A wrong key, then a valid key that is not an admin's: clear messages, no dashboard.
  await page.click('#logout');
  await page.fill('#key', 'sk-not-a-key');
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#login-error:not([hidden])');
  assert.match(await page.textContent('#login-error'), /not accepted \(401\)/);
  assert.equal(await page.isVisible('#dashboard'), false);
  await page.fill('#key', virtualKey);
  await page.click('#login-form button[type=submit]');
  await page.waitForFunction(() => document.querySelector('#login-error').textContent.includes('403'));
  assert.equal(await page.isVisible('#dashboard'), false);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('switchyard.key')), null);
});
