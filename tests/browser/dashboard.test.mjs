// The dashboard (projections/dashboard/index.html) in headless Chromium against `revtrace dev
// --demo`, twice:
// 1. On the demo's realistic volume: the token is entered once (and kept), and every figure the
//    page shows — KPIs, revenue by channel, revenue per day, top campaigns with ROAS, unattributed
//    share, recent payments and their journeys — equals, to the minor unit, what the query API
//    answers for the same model, date range and currency; model and range switch.
// 2. On a small hand-written book (site hand-shop, attributed-revenue records produced straight to
//    the embedded broker, ad spend through the API): every figure is compared with what was
//    computed by hand from the book below, not with the API — live and test mode, two models,
//    two ranges, two currencies, and a payment's journey.
// Screenshots are saved as test artifacts (REVTRACE_ARTIFACT_DIR, default ./artifacts); the test
// prints where.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { freePort, launchChromium, produce, sourceDir, waitFor } from './support.mjs';

const SITE = 'demo-shop';
const TOKEN = 'token-demo-shop';
const HAND = 'hand-shop';
const HAND_TOKEN = 'token-hand-shop';
const artifacts = process.env.REVTRACE_ARTIFACT_DIR ?? join(process.cwd(), 'artifacts');

async function screenshot(page, name) {
  mkdirSync(artifacts, { recursive: true });
  const path = join(artifacts, name);
  await page.screenshot({ path, fullPage: true });
  console.log(`dashboard: screenshot written to ${path}`);
}

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

async function api(path, params, site = SITE, token = TOKEN) {
  const res = await fetch(`${base}/v1/sites/${site}/${path}?${new URLSearchParams(params)}`, {
    headers: { Authorization: `Bearer ${token}` },
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
  // The demo sites, plus the hand-written book's site.
  const config = join(dir, 'revtrace.toml');
  writeFileSync(config, ['[[sites]]', `id = "${HAND}"`, 'webhook_secrets = ["whsec_hand"]',
    'allowed_origins = ["*"]', `query_tokens = ["${HAND_TOKEN}"]`, ''].join('\n'));
  const child = spawn(bin, ['dev', '--demo', '--config', config, '--data-dir', join(dir, 'data'),
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
    // The embedded broker's address, as `revtrace dev` prints it.
    bootstrap: () => waitFor(`the embedded broker's address in ${logFile}`, () => {
      alive();
      return readFileSync(logFile, 'utf8').match(/embedded Kafka-protocol broker at (\S+)/)?.[1];
    }, { timeout: 120000 }),
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

// ---- The hand-written book of hand-shop. Days count back from today (UTC); every figure the
// page must show is computed by hand from it in the test below.
const DAY = 864e5;
const TODAY = (() => { const n = new Date(); return Date.UTC(n.getUTCFullYear(), n.getUTCMonth(), n.getUTCDate()); })();
const at = (daysAgo, hour, minute = 0) => TODAY - daysAgo * DAY + hour * 36e5 + minute * 6e4;
const dayOf = (daysAgo) => new Date(TODAY - daysAgo * DAY).toISOString().slice(0, 10);
const MODELS = ['first_touch', 'last_touch', 'last_non_direct', 'linear', 'position_based', 'time_decay'];

function touch(when, channel, source, medium, campaign, more = {}) {
  return { at: when, channel, source, medium, campaign, term: null, content: null, click_id: null, referrer: null,
           landing_path: '/pricing', browser: 'Firefox', os: 'Linux', device_class: 'desktop', country: 'US', ...more };
}
const paidSearch = (when) => touch(when, 'Paid Search', 'google', 'cpc', 'brand-search');
const email = (when) => touch(when, 'Email', 'newsletter', 'email', 'autumn-sale',
                              { landing_path: '/autumn', browser: 'Safari', os: 'iOS', device_class: 'mobile', country: 'DE' });

function record({ key, revision = 1, live = true, currency = 'usd', amount, refunded = 0, paidAt, method = 'checkout_redirect',
                  customer = null, touches = [], credits = {} }) {
  const invoice = key.startsWith('in_');
  return {
    generation: 1, site_id: HAND, payment_key: key, revision, livemode: live, revenue_type: 'cash', amount, currency,
    refunded, net: amount - refunded, paid_at: paidAt, method,
    stripe: { checkout_session: null, payment_intent: invoice ? null : key, charge: null, invoice: invoice ? key : null,
              subscription: invoice ? 'sub_hand_2' : null, customer, payment_link: null },
    visitor_ids: [], email_hash: null, touches,
    // One credit per touch and model; a model not listed gives the whole amount to the only touch.
    credits: Object.fromEntries(MODELS.map((m) => [m, credits[m] ?? touches.map(() => amount)])),
  };
}

const P1_TOUCHES = [paidSearch(at(4, 9)), email(at(3, 14))];
const HAND_BOOK = [
  // pi_hand_1: 120.00 over Paid Search then Email, 2 days ago; revision 2 refunds 30.00.
  record({ key: 'pi_hand_1', amount: 12000, paidAt: at(2, 10), customer: 'cus_hand_1', touches: P1_TOUCHES, credits: {
    first_touch: [12000, 0], last_touch: [0, 12000], last_non_direct: [0, 12000], linear: [6000, 6000],
    position_based: [6000, 6000], time_decay: [4000, 8000] } }),
  // pi_hand_2: 49.00, Paid Search, 5 days ago; in_hand_5 is its subscription's renewal yesterday.
  record({ key: 'pi_hand_2', amount: 4900, paidAt: at(5, 15, 30), customer: 'cus_hand_2', touches: [paidSearch(at(6, 11))] }),
  record({ key: 'in_hand_5', amount: 4900, paidAt: at(1, 10), method: 'inherited', customer: 'cus_hand_2', touches: [paidSearch(at(6, 11))] }),
  // pi_hand_3: 99.00, organic search without a campaign, 5 days ago.
  record({ key: 'pi_hand_3', amount: 9900, paidAt: at(5, 18), customer: 'cus_hand_3',
           touches: [touch(at(5, 17), 'Organic Search', 'google', 'organic', null)] }),
  // pi_hand_4: 25.00 without any touch, 9 days ago.
  record({ key: 'pi_hand_4', amount: 2500, paidAt: at(9, 8), method: 'unattributed' }),
  // pi_hand_test: 10.00 in Stripe test mode, Paid Search.
  record({ key: 'pi_hand_test', live: false, amount: 1000, paidAt: at(2, 12), touches: [paidSearch(at(3, 9))] }),
  // pi_hand_7: 500.00 from retargeting, 40 days ago (outside 30 days, inside 90).
  record({ key: 'pi_hand_7', amount: 50000, paidAt: at(40, 12), customer: 'cus_hand_7',
           touches: [touch(at(41, 20), 'Paid Social', 'facebook', 'paid_social', 'retargeting')] }),
  // pi_hand_8: 20.00 eur from the newsletter, 3 days ago.
  record({ key: 'pi_hand_8', currency: 'eur', amount: 2000, paidAt: at(3, 16), customer: 'cus_hand_8', touches: [email(at(3, 15))] }),
];
const P1_REFUNDED = { ...HAND_BOOK[0], revision: 2, refunded: 3000, net: 9000 };
const HAND_SPEND = [
  { day: dayOf(3), channel: 'Paid Search', source: 'google', campaign: 'brand-search', amount: 6000, currency: 'usd' },
  { day: dayOf(10), channel: 'Email', source: 'newsletter', campaign: 'autumn-sale', amount: 1500, currency: 'usd' },
  { day: dayOf(40), channel: 'Paid Social', source: 'facebook', campaign: 'retargeting', amount: 10000, currency: 'usd' },
  // Rehearsal money, explicitly marked: it stands only against test-mode revenue.
  { day: dayOf(2), channel: 'Paid Search', source: 'google', campaign: 'brand-search', amount: 500, currency: 'usd', livemode: false },
];

async function loadHandBook() {
  const records = [...HAND_BOOK, P1_REFUNDED];
  // The book honours the public contract (independent validator: ajv).
  const file = join(dev.dir, 'hand-book.ndjson');
  writeFileSync(file, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const out = execFileSync('node', [join(sourceDir, 'tests/js/validate-records.mjs'), join(sourceDir, 'schemas'),
                                    'revtrace.attributed-revenue.v1', file], { encoding: 'utf8' });
  assert.match(out, new RegExp(`^${records.length} records valid`, 'm'));
  await produce(await dev.bootstrap(), 'revtrace.attributed-revenue.v1',
                records.map((r) => [`${HAND}/${r.payment_key}`, JSON.stringify(r)]));
  const put = await fetch(`${base}/v1/sites/${HAND}/ad-spend`, {
    method: 'PUT', body: JSON.stringify({ entries: HAND_SPEND }),
    headers: { Authorization: `Bearer ${HAND_TOKEN}`, 'Content-Type': 'application/json' },
  });
  assert.equal(put.status, 200, await put.text());
  await waitFor('the hand-written book and its spend to reach the read models', async () => {
    dev.alive();
    const [live, test, p1, spendLive, spendTest] = await Promise.all([
      api('payments', { limit: '500' }, HAND, HAND_TOKEN), api('payments', { limit: '500', livemode: 'false' }, HAND, HAND_TOKEN),
      api('payments/pi_hand_1', {}, HAND, HAND_TOKEN).catch(() => ({})),
      api('roas', { group_by: 'campaign', currency: 'usd' }, HAND, HAND_TOKEN),
      api('roas', { group_by: 'campaign', currency: 'usd', livemode: 'false' }, HAND, HAND_TOKEN)]);
    return live.payments.length === 7 && test.payments.length === 1 && p1.revision === 2 &&
      spendLive.rows.filter((r) => r.spend > 0).length === 3 && spendTest.rows.some((r) => r.spend > 0);
  }, { timeout: 60000 });
}

before(async () => {
  dev = await startDev();
  base = dev.url;
  await loadHandBook();
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
  await screenshot(page, 'dashboard.png');

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
  await screenshot(page, 'dashboard-7d-first-touch.png');

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

test('dashboard: every figure of a hand-written book, computed by hand, in live and test mode', async () => {
  const context = await browser.newContext({ locale: 'en-US', timezoneId: 'UTC', viewport: { width: 1360, height: 1000 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(base + '/');
  await page.fill('[data-testid=site]', HAND);
  await page.fill('[data-testid=token]', HAND_TOKEN);
  await page.click('[data-testid=load]');
  let gen = await loaded(page, 0);

  const text = async (sel) => (await page.textContent(sel)).trim().replace(/\s+/g, ' ');
  const kpis = async () => [await text('#kpi-revenue'), await text('#kpi-revenue-sub'), await text('#kpi-net'), await text('#kpi-net-sub'),
                            await text('#kpi-payments'), await text('#kpi-payments-sub'), await text('#kpi-unattributed'), await text('#kpi-unattributed-sub')];
  const bars = () => page.$$eval('[data-testid=bar]', (els) => els.map((e) => [e.dataset.key, Number(e.dataset.revenue),
    e.querySelector('[data-testid=bar-value]').textContent.trim()]));
  const days = async () => Object.fromEntries((await page.$$eval('[data-testid=day]', (els) => els.map((e) => [e.dataset.day, Number(e.dataset.revenue)])))
    .filter(([, v]) => v !== 0));
  const dayCount = () => page.$$eval('[data-testid=day]', (els) => els.length);
  const campaigns = () => page.$$eval('[data-testid=campaign-row]', (rows) => rows.map((r) =>
    [...r.querySelectorAll('td')].map((td) => td.textContent.trim())));
  const payments = () => page.$$eval('[data-testid=payment-row]', (rows) => rows.map((r) => {
    const td = [...r.querySelectorAll('td')].map((c) => c.textContent.trim());
    return [r.dataset.key, td[4], td[5]];
  }));
  const journey = async (key) => {
    const row = page.locator(`[data-testid=payment-row][data-key="${key}"]`);
    const open = page.locator(`[data-testid=journey][data-key="${key}"]`);
    if (!(await open.isVisible())) await row.click();
    assert.ok(await open.isVisible(), `the journey of ${key} opens`);
    return (await open.locator('li').allTextContents()).map((t) => t.trim().replace(/\s+/g, ' '));
  };
  const when = (ms) => new Date(ms).toISOString().slice(0, 16).replace('T', ' ');
  const from30 = dayOf(29);
  const today = dayOf(0);

  // ---- Live, last non-direct (the default), the last 30 days, USD (the larger currency first).
  // Payments in range: pi_hand_1 120.00 (net 90.00), pi_hand_2 49.00, in_hand_5 49.00,
  // pi_hand_3 99.00, pi_hand_4 25.00 = 342.00 gross, 312.00 net, 5 payments, 68.40 on average.
  // Unattributed: 25.00 / 342.00 = 7.31 %. pi_hand_7 is older, pi_hand_8 is EUR, pi_hand_test test.
  assert.deepEqual(await pageState(page), { model: 'last_non_direct', from: from30, to: today, currency: 'usd' });
  assert.deepEqual(await page.$$eval('[data-testid=currency] option', (o) => o.map((x) => x.value)), ['usd', 'eur']);
  assert.deepEqual(await kpis(), ['$342.00', `${from30} to ${today}`, '$312.00', '$30.00 refunded', '5', '$68.40 on average',
                                  '7.3%', '$25.00 without a tracked touch']);
  // Last non-direct: pi_hand_1 goes to its Email touch; Paid Search has pi_hand_2 and its renewal.
  assert.deepEqual(await bars(), [['Email', 12000, '$120.00'], ['Organic Search', 9900, '$99.00'],
                                  ['Paid Search', 9800, '$98.00'], ['(unattributed)', 2500, '$25.00']]);
  // The breakdown card (source, its default): google = pi_hand_2 + in_hand_5 + pi_hand_3.
  assert.deepEqual(await page.$$eval('[data-testid=breakdown-bar]', (els) => els.map((e) => [e.dataset.key, Number(e.dataset.revenue),
    e.querySelector('[data-testid=bar-value]').textContent.trim()])),
  [['google', 19700, '$197.00'], ['newsletter', 12000, '$120.00'], ['(unattributed)', 2500, '$25.00']]);
  assert.equal(await dayCount(), 30);
  assert.deepEqual(await days(), { [dayOf(9)]: 2500, [dayOf(5)]: 4900 + 9900, [dayOf(2)]: 12000, [dayOf(1)]: 4900 });
  // Spend in range: brand-search 60.00 (3 days ago), autumn-sale 15.00 (10 days ago); the 100.00
  // of retargeting is 40 days old and the 5.00 marked as test money is not live.
  // brand-search: 98.00 from one customer (cus_hand_2 twice) -> ROAS 1.63, 60.00 per customer.
  // autumn-sale: 120.00 from cus_hand_1 -> ROAS 8.00, 15.00 per customer.
  assert.deepEqual(await campaigns(), [
    ['brand-search', '$98.00', '2', '1', '$60.00', '1.63×', '$60.00'],
    ['autumn-sale', '$120.00', '1', '1', '$15.00', '8.00×', '$15.00'],
    ['No campaign', '$99.00', '1', '1', '–', '–', '–'],
    ['(unattributed)', '$25.00', '1', '1', '–', '–', '–'],
  ]);
  assert.deepEqual(await payments(), [['in_hand_5', '$49.00', '$49.00'], ['pi_hand_1', '$120.00', '$90.00'],
                                      ['pi_hand_3', '$99.00', '$99.00'], ['pi_hand_2', '$49.00', '$49.00'],
                                      ['pi_hand_4', '$25.00', '$25.00']]);
  assert.deepEqual(await journey('pi_hand_1'), [
    `${when(at(4, 9))} Paid Search google / cpc · brand-search landed on /pricing · US · desktop $0.00`,
    `${when(at(3, 14))} Email newsletter / email · autumn-sale landed on /autumn · DE · mobile $120.00`,
  ]);
  assert.deepEqual(await journey('pi_hand_4'), []);
  assert.equal(await text('[data-testid=journey][data-key="pi_hand_4"]'), 'No tracked touch: this revenue is unattributed.');
  await screenshot(page, 'dashboard-hand-book.png');

  // ---- First touch: pi_hand_1 moves to Paid Search; the total stays.
  await page.selectOption('[data-testid=model]', 'first_touch');
  gen = await loaded(page, gen);
  assert.deepEqual(await kpis(), ['$342.00', `${from30} to ${today}`, '$312.00', '$30.00 refunded', '5', '$68.40 on average',
                                  '7.3%', '$25.00 without a tracked touch']);
  assert.deepEqual(await bars(), [['Paid Search', 21800, '$218.00'], ['Organic Search', 9900, '$99.00'],
                                  ['(unattributed)', 2500, '$25.00']]);
  // brand-search: 218.00 from cus_hand_1 and cus_hand_2 -> ROAS 218/60 = 3.63, 30.00 per customer;
  // autumn-sale now earns nothing against its 15.00.
  assert.deepEqual(await campaigns(), [
    ['brand-search', '$218.00', '3', '2', '$60.00', '3.63×', '$30.00'],
    ['autumn-sale', '$0.00', '0', '0', '$15.00', '0.00×', '–'],
    ['No campaign', '$99.00', '1', '1', '–', '–', '–'],
    ['(unattributed)', '$25.00', '1', '1', '–', '–', '–'],
  ]);
  assert.deepEqual(await journey('pi_hand_1'), [
    `${when(at(4, 9))} Paid Search google / cpc · brand-search landed on /pricing · US · desktop $120.00`,
    `${when(at(3, 14))} Email newsletter / email · autumn-sale landed on /autumn · DE · mobile $0.00`,
  ]);

  // ---- Test mode: only pi_hand_test, and only the spend marked as test money against it.
  await page.selectOption('[data-testid=livemode]', 'false');
  gen = await loaded(page, gen);
  assert.deepEqual(await kpis(), ['$10.00', `${from30} to ${today}`, '$10.00', 'no refunds', '1', '$10.00 on average',
                                  '0.0%', '$0.00 without a tracked touch']);
  assert.deepEqual(await bars(), [['Paid Search', 1000, '$10.00']]);
  assert.deepEqual(await days(), { [dayOf(2)]: 1000 });
  assert.deepEqual(await campaigns(), [['brand-search', '$10.00', '1', '1', '$5.00', '2.00×', '$5.00']]);
  assert.deepEqual(await payments(), [['pi_hand_test', '$10.00', '$10.00']]);

  // ---- Live again, 90 days: pi_hand_7 and the retargeting spend come into range.
  await page.selectOption('[data-testid=livemode]', 'true');
  gen = await loaded(page, gen);
  await page.click('[data-testid=range-90]');
  gen = await loaded(page, gen);
  const from90 = dayOf(89);
  assert.deepEqual(await pageState(page), { model: 'first_touch', from: from90, to: today, currency: 'usd' });
  assert.deepEqual(await kpis(), ['$842.00', `${from90} to ${today}`, '$812.00', '$30.00 refunded', '6', '$140.33 on average',
                                  '3.0%', '$25.00 without a tracked touch']);
  assert.deepEqual(await bars(), [['Paid Social', 50000, '$500.00'], ['Paid Search', 21800, '$218.00'],
                                  ['Organic Search', 9900, '$99.00'], ['(unattributed)', 2500, '$25.00']]);
  assert.equal(await dayCount(), 90);
  assert.deepEqual(await days(), { [dayOf(40)]: 50000, [dayOf(9)]: 2500, [dayOf(5)]: 14800, [dayOf(2)]: 12000, [dayOf(1)]: 4900 });
  assert.deepEqual(await campaigns(), [
    ['retargeting', '$500.00', '1', '1', '$100.00', '5.00×', '$100.00'],
    ['brand-search', '$218.00', '3', '2', '$60.00', '3.63×', '$30.00'],
    ['autumn-sale', '$0.00', '0', '0', '$15.00', '0.00×', '–'],
    ['No campaign', '$99.00', '1', '1', '–', '–', '–'],
    ['(unattributed)', '$25.00', '1', '1', '–', '–', '–'],
  ]);

  // ---- EUR: the one newsletter payment; USD spend never stands against EUR revenue.
  await page.selectOption('[data-testid=currency]', 'eur');
  gen = await loaded(page, gen);
  assert.deepEqual(await kpis(), ['€20.00', `${from90} to ${today}`, '€20.00', 'no refunds', '1', '€20.00 on average',
                                  '0.0%', '€0.00 without a tracked touch']);
  assert.deepEqual(await bars(), [['Email', 2000, '€20.00']]);
  assert.deepEqual(await campaigns(), [['autumn-sale', '€20.00', '1', '1', '–', '–', '–']]);
  assert.deepEqual(await payments(), [['pi_hand_8', '€20.00', '€20.00']]);
  assert.deepEqual(errors, [], 'no script errors');
  await context.close();
});
