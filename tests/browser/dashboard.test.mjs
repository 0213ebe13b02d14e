// The dashboard (projections/dashboard/index.html) in headless Chromium against `revtrace dev
// --demo`: the token is entered once (and kept), and every figure the page shows — KPIs, revenue
// by channel, revenue per day, top campaigns with ROAS, unattributed share, recent payments and
// their journeys — equals, to the minor unit, what the query API answers for the same model, date
// range and currency. Then the model and the date range are switched and checked again, and a
// screenshot is saved as a test artifact (REVTRACE_ARTIFACT_DIR, default ./artifacts).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { freePort, launchChromium, waitFor } from './support.mjs';

const SITE = 'demo-shop';
const TOKEN = 'token-demo-shop';
const artifacts = process.env.REVTRACE_ARTIFACT_DIR ?? join(process.cwd(), 'artifacts');

let dev;
let browser;
let base;

// What the page must show for a money amount: the same Intl formatting the page uses, in the
// browser context's locale (en-US, fixed below), with the currency's minor-unit digits.
const ZERO = new Set(['bif', 'clp', 'djf', 'gnf', 'jpy', 'kmf', 'krw', 'mga', 'pyg', 'rwf', 'ugx', 'vnd', 'vuv', 'xaf', 'xof', 'xpf']);
function money(minor, cur) {
  const digits = ZERO.has(cur) ? 0 : 2;
  return new Intl.NumberFormat('en-US', {
    style: 'currency', currency: cur.toUpperCase(), minimumFractionDigits: digits, maximumFractionDigits: digits,
  }).format(minor / 10 ** digits);
}

async function api(path, params) {
  const res = await fetch(`${base}/v1/sites/${SITE}/${path}?${new URLSearchParams(params)}`, {
    headers: { Authorization: `Bearer ${TOKEN}` },
  });
  assert.equal(res.status, 200, `${path} answers 200`);
  return res.json();
}

async function startDev() {
  const bin = process.env.REVTRACE_BINARY;
  if (!bin) throw new Error('REVTRACE_BINARY is not set: run this test through ctest');
  const dir = mkdtempSync(join(tmpdir(), 'revtrace-dashboard-'));
  const [gw, query, metrics] = [await freePort(), await freePort(), await freePort()];
  const logFile = join(dir, 'dev.log');
  const log = openSync(logFile, 'a');
  const child = spawn(bin, ['dev', '--demo', '--data-dir', join(dir, 'data'),
    '--set', `gateway.listen=127.0.0.1:${gw}`, '--set', `query.listen=127.0.0.1:${query}`,
    '--set', `processor.metrics_listen=127.0.0.1:${metrics}`], { stdio: ['ignore', log, log] });
  let exited = null;
  child.on('exit', (code, signal) => { exited = code ?? signal; });
  const url = `http://127.0.0.1:${query}`;
  const alive = () => { if (exited !== null) throw new Error(`dev exited (${exited}): ${readFileSync(logFile, 'utf8')}`); };
  await waitFor(`the query side to answer /healthz (log ${logFile})`, async () => {
    alive();
    try { return (await fetch(`${url}/healthz`)).ok; } catch { return false; }
  }, { timeout: 60000 });
  return {
    url, dir, alive,
    async stop() {
      if (exited !== null) return exited;
      const done = new Promise((r) => child.on('exit', (code) => r(code)));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 60000);
      const code = await done;
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}

before(async () => {
  dev = await startDev();
  base = dev.url;
  // The demo is attributed asynchronously: wait until demo-shop's payments stop changing.
  let previous = -1;
  await waitFor('the demo to be attributed', async () => {
    dev.alive();
    const all = await api('revenue', { group_by: 'all' });
    const n = all.rows.reduce((s, r) => s + r.payments, 0);
    const stable = n > 0 && n === previous;
    previous = n;
    return stable;
  }, { timeout: 120000, interval: 1500 });
  // Ad spend for three campaigns of the demo (through the authenticated API), so ROAS is real.
  const day = (d) => new Date(Date.now() - d * 864e5).toISOString().slice(0, 10);
  const entries = [
    { day: day(3), channel: 'Paid Search', source: 'google', campaign: 'brand-search', amount: 45000, currency: 'usd' },
    { day: day(10), channel: 'Paid Search', source: 'google', campaign: 'brand-search', amount: 30000, currency: 'usd' },
    { day: day(5), channel: 'Paid Social', source: 'facebook', campaign: 'retargeting', amount: 52000, currency: 'usd' },
    { day: day(8), channel: 'Email', source: 'newsletter', campaign: 'autumn-sale', amount: 4900, currency: 'usd' },
  ];
  const put = await fetch(`${base}/v1/sites/${SITE}/ad-spend`, {
    method: 'PUT', body: JSON.stringify({ entries }),
    headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
  });
  assert.equal(put.status, 200, await put.text());
  await waitFor('the ad spend to reach the read models', async () => {
    const roas = await api('roas', { group_by: 'campaign', currency: 'usd' });
    return roas.rows.filter((r) => r.spend > 0).length === 3;
  }, { timeout: 30000 });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  if (dev) assert.equal(await dev.stop(), 0, 'revtrace dev stops cleanly on SIGTERM');
});

// Waits until the page finished a load newer than `after` and returns its generation.
async function loaded(page, after) {
  await page.waitForFunction((n) => document.body.dataset.state === 'ready' &&
    Number(document.body.dataset.generation) > n, after, { timeout: 30000 });
  return Number(await page.evaluate(() => document.body.dataset.generation));
}

async function pageState(page) {
  return {
    model: await page.inputValue('[data-testid=model]'),
    from: await page.inputValue('[data-testid=from]'),
    to: await page.inputValue('[data-testid=to]'),
    currency: await page.inputValue('[data-testid=currency]'),
  };
}

// Every figure on the page against the API's answer for the page's own parameters.
async function checkFigures(page) {
  const { model, from, to, currency } = await pageState(page);
  const q = { model, from, to, livemode: 'true' };
  const [all, channels, series, roas, payments] = await Promise.all([
    api('revenue', { ...q, group_by: 'all', currency }), api('revenue', { ...q, group_by: 'channel', currency }),
    api('timeseries', { ...q, currency }), api('roas', { ...q, group_by: 'campaign', currency }),
    api('payments', { ...q, currency, limit: '20' })]);
  const total = all.rows[0] ?? { revenue: 0, net: 0, payments: 0 };
  assert.ok(total.revenue > 0, `the demo has revenue in ${from}..${to}`);
  const text = async (id) => (await page.textContent(`[data-testid=${id}]`)).trim();
  assert.equal(await text('kpi-revenue'), money(total.revenue, currency));
  assert.equal(await text('kpi-net'), money(total.net, currency));
  assert.equal(await text('kpi-payments'), total.payments.toLocaleString('en-US'));
  const un = channels.rows.find((r) => r.key === '(unattributed)')?.revenue ?? 0;
  assert.equal(await text('kpi-unattributed'), `${(100 * un / total.revenue).toFixed(1)}%`);

  const bars = await page.$$eval('[data-testid=bar]', (els) => els.map((e) => ({
    key: e.dataset.key, revenue: Number(e.dataset.revenue), text: e.querySelector('[data-testid=bar-value]').textContent.trim() })));
  assert.deepEqual(bars.map((b) => b.key), channels.rows.map((r) => r.key), 'one bar per channel, largest first');
  for (const [i, b] of bars.entries()) {
    assert.equal(b.revenue, channels.rows[i].revenue, `${b.key} revenue`);
    assert.equal(b.text, money(channels.rows[i].revenue, currency), `${b.key} shown revenue`);
  }

  const days = await page.$$eval('[data-testid=day]', (els) => els.map((e) => [e.dataset.day, Number(e.dataset.revenue)]));
  const expectedDays = Object.fromEntries(series.rows.map((r) => [r.key, r.revenue]));
  assert.equal(days[0][0], from, 'the chart starts at the range start');
  assert.equal(days[days.length - 1][0], to, 'and ends at its end');
  for (const [d, v] of days) assert.equal(v, expectedDays[d] ?? 0, `revenue of ${d}`);
  assert.equal(days.reduce((s, [, v]) => s + v, 0), total.revenue, 'the days add up to the total');

  const campaigns = await page.$$eval('[data-testid=campaign-row]', (rows) => rows.map((r) =>
    [...r.querySelectorAll('td')].map((td) => td.textContent.trim())));
  const expected = roas.rows.filter((r) => r.revenue > 0 || r.spend > 0).slice(0, 10);
  assert.equal(campaigns.length, expected.length);
  for (const [i, r] of expected.entries()) {
    assert.deepEqual(campaigns[i], [
      r.key === '(none)' ? 'No campaign' : r.key, money(r.revenue, currency), String(r.payments), String(r.customers),
      r.spend ? money(r.spend, currency) : '–', r.roas === null ? '–' : `${r.roas.toFixed(2)}×`,
      r.spend && r.cost_per_customer !== null ? money(Math.round(r.cost_per_customer), currency) : '–'], `campaign ${r.key}`);
  }

  const rows = await page.$$eval('[data-testid=payment-row]', (els) => els.map((e) => ({
    key: e.dataset.key, amount: e.querySelector('[data-testid=payment-amount]').textContent.trim() })));
  assert.deepEqual(rows.map((r) => r.key), payments.payments.map((p) => p.payment_key), 'newest payments first');
  for (const [i, p] of payments.payments.entries()) assert.equal(rows[i].amount, money(p.amount, p.currency));
  return { total, channels, roas, payments };
}

test('dashboard: the token is entered once; figures equal the API; model and range switch', async () => {
  const context = await browser.newContext({ acceptDownloads: true, locale: 'en-US', timezoneId: 'UTC', viewport: { width: 1360, height: 1000 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(base + '/');
  await page.fill('[data-testid=site]', SITE);
  await page.fill('[data-testid=token]', TOKEN);
  await page.click('[data-testid=load]');
  let gen = await loaded(page, 0);
  assert.equal(await page.inputValue('[data-testid=currency]'), 'usd');
  assert.equal(await page.inputValue('[data-testid=model]'), 'last_non_direct');
  const first = await checkFigures(page);
  assert.ok(first.roas.rows.some((r) => r.key === 'brand-search' && r.spend === 75000), 'brand-search spend in range');
  assert.ok(await page.isVisible('[data-testid=campaign-row][data-key=brand-search]'));

  // a payment's journey opens on click, with each touch and its credit under the model
  const firstPayment = first.payments.payments.find((p) => p.touches.length > 0);
  const row = page.locator(`[data-testid=payment-row][data-key="${firstPayment.payment_key}"]`);
  await row.click();
  const journey = page.locator(`[data-testid=journey][data-key="${firstPayment.payment_key}"]`);
  assert.ok(await journey.isVisible());
  const touches = await journey.locator('li').allTextContents();
  assert.equal(touches.length, firstPayment.touches.length);
  firstPayment.touches.forEach((t, i) => {
    assert.ok(touches[i].includes(t.channel), `touch ${i} names its channel`);
    assert.ok(touches[i].includes(money(firstPayment.credits.last_non_direct[i], firstPayment.currency)), `touch ${i} credit`);
  });
  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: join(artifacts, 'dashboard.png'), fullPage: true });

  // the model switcher: first touch credits differ, and the page follows
  await page.selectOption('[data-testid=model]', 'first_touch');
  gen = await loaded(page, gen);
  const byFirst = await checkFigures(page);
  assert.equal(byFirst.total.revenue, first.total.revenue, 'a model moves credit, never the total');

  // the date range: the last 7 days only
  await page.click('[data-testid=range-7]');
  gen = await loaded(page, gen);
  const state = await pageState(page);
  assert.equal(state.to, new Date().toISOString().slice(0, 10));
  assert.equal(state.from, new Date(Date.now() - 6 * 864e5).toISOString().slice(0, 10));
  const week = await checkFigures(page);
  assert.ok(week.total.revenue < first.total.revenue, 'a week holds less than 30 days');
  await page.screenshot({ path: join(artifacts, 'dashboard-7d-first-touch.png'), fullPage: true });

  // any dimension: the breakdown card follows the selector, and its CSV export is the API's
  await page.selectOption('[data-testid=group-by]', 'country');
  gen = await loaded(page, gen);
  const { model, from, to, currency } = await pageState(page);
  const countries = await api('revenue', { model, from, to, currency, group_by: 'country' });
  const shown = await page.$$eval('[data-testid=breakdown-bar]', (els) => els.map((e) => [e.dataset.key, Number(e.dataset.revenue)]));
  assert.deepEqual(shown, countries.rows.slice(0, 12).map((r) => [r.key, r.revenue]));
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=export]')]);
  const csv = readFileSync(await download.path(), 'utf8');
  const expectedCsv = await (await fetch(`${base}/v1/sites/${SITE}/revenue?${new URLSearchParams({
    model, livemode: 'true', from, to, group_by: 'country', currency, format: 'csv' })}`, { headers: { Authorization: `Bearer ${TOKEN}` } })).text();
  assert.ok(csv.startsWith('country,currency,revenue,net,payments\r\n'));
  assert.equal(csv, expectedCsv);

  // the token was kept: a new visit loads without asking again
  const again = await context.newPage();
  await again.goto(base + '/');
  await loaded(again, 0);
  assert.equal(await again.inputValue('[data-testid=site]'), SITE);
  assert.equal(await again.inputValue('[data-testid=token]'), TOKEN);
  await checkFigures(again);

  // another currency of another site's book is never shown with this token
  await again.fill('[data-testid=site]', 'demo-saas');
  await again.click('[data-testid=load]');
  await again.waitForFunction(() => document.body.dataset.state === 'error', null, { timeout: 30000 });
  assert.match(await again.textContent('[data-testid=error]'), /403/);
  assert.deepEqual(errors, [], 'no script errors');
  await context.close();
});
