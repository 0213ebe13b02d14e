// The revtrace pixel in headless Chromium, end to end: the pages are a realistic first-party site
// (https://shop.example, served through Playwright's request routing, so no extra server), the
// script and the event POSTs go to the real `revtrace gateway` on 127.0.0.1, and every assertion
// checks the exact records the gateway wrote to the test's own Kafka topics.
//
// Chromium's Local Network Access rule stops a public page from reaching a loopback address unless
// the user allows it; the contexts grant that permission (a real deployment serves the gateway
// from a public host, where the rule does not apply).
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { launchChromium, readTopic, sourceDir, startGateway, unique, waitFor } from './support.mjs';

const ORIGIN = 'https://shop.example';
const WEB = 'revtrace.web-events.v1';
const REDIRECTS = 'revtrace.checkout-redirects.v1';
const YEAR400 = 400 * 24 * 3600;
const ID = /^[A-Za-z0-9_-]{1,200}$/;  // Stripe's rule for client_reference_id
const DESKTOP_CHROME = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) ' +
                       'Chrome/156.0.0.0 Safari/537.36';

// The snippet documented in ingest/README.md: calls made before the script loaded are queued.
const SNIPPET = `<script>window.revtrace=window.revtrace||function(){(revtrace.q=revtrace.q||[]).push(arguments)};
["identify","track","ready"].forEach(function(m){revtrace[m]=revtrace[m]||function(){revtrace.apply(null,[m].concat([].slice.call(arguments)))}});</script>`;

const names = ['first', 'spa', 'redirect', 'links', 'identify', 'cookieless', 'dnt', 'blocked',
               'donottrack', 'lsonly', 'fetch', 'domain', 'adopt', 'autoid'];
const site = Object.fromEntries(names.map((n) => [n, unique(`px-${n}-`)]));
// Two hosts of one site that share the visitor through data-cookie-domain=".shop.example".
const WWW = 'https://www.shop.example';
const APP = 'https://app.shop.example';
let gw;
let browser;
const open = new Set();  // contexts of the running test, closed even when it fails

before(async () => {
  gw = await startGateway({
    name: 'pixel',
    sites: names.map((n) => ({ id: site[n], allowed_origins: n === 'domain' ? [WWW, APP] : [ORIGIN] })),
  });
  browser = await launchChromium();
});

afterEach(async () => {
  for (const ctx of open) await ctx.close().catch(() => {});
  open.clear();
});

after(async () => {
  await browser?.close();
  if (!gw) return;
  assert.equal(await gw.stop(), 0, 'the gateway stops cleanly on SIGTERM');
  rmSync(gw.dir, { recursive: true, force: true });
});

function tag(siteId, attrs = '', src = `${gw.base}/revtrace.js`) {
  return `<script async src="${src}" data-site="${siteId}" ${attrs}></script>`;
}

function html({ title = 'Shop', head = '', body = '' }) {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title>${head}</head>` +
         `<body>${body}</body></html>`;
}

// A browser context for https://shop.example (or `origins`) whose pages come from `pages(url)`
// (HTML text).
async function openSite(pages, options = {}) {
  const { init, origins = [ORIGIN], ...contextOptions } = options;
  const ctx = await browser.newContext({
    permissions: ['local-network-access'],
    locale: 'en-US',
    timezoneId: 'Europe/Paris',
    viewport: { width: 1280, height: 720 },
    screen: { width: 1440, height: 900 },
    // A desktop Chrome's User-Agent: the gateway classifies HeadlessChrome as a bot.
    userAgent: DESKTOP_CHROME,
    ...contextOptions,
  });
  open.add(ctx);
  const errors = [];
  ctx.on('page', (p) => p.on('pageerror', (e) => errors.push(e.message)));
  if (init) await ctx.addInitScript(init);
  for (const origin of origins) {
    await ctx.route(`${origin}/**`, async (route) => {
      const body = await pages(new URL(route.request().url()), route);
      if (body === undefined) return;  // the page function answered itself
      await route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body });
    });
  }
  return { ctx, errors };
}

async function records(topic, siteId) {
  return (await readTopic(gw.bootstrap, gw.topic(topic))).filter((r) => r.site_id === siteId);
}

// Waits until the topic holds at least n records of the site; returns them all (callers then
// assert the exact count, so a surplus fails).
async function atLeast(topic, siteId, n, what) {
  let seen = [];
  try {
    return await waitFor(`${n} ${topic} records of ${siteId}: ${what}`, async () => {
      seen = await records(topic, siteId);
      return seen.length >= n && seen;
    });
  } catch (e) {
    e.message += `\nrecords so far: ${JSON.stringify(seen)}\ngateway log (tail):\n${gw.log().slice(-3000)}`;
    throw e;
  }
}

function without(record, ...keys) {
  const copy = { ...record };
  for (const k of keys) delete copy[k];
  return copy;
}

async function cookieMap(ctx, origin = ORIGIN) {
  return Object.fromEntries((await ctx.cookies(origin)).map((c) => [c.name, c]));
}

function assertExpiry(cookie, lifetime, t0, t1) {
  // Max-Age counts from when the cookie was written, which is between t0 and t1.
  assert.ok(cookie.expires >= Math.floor(t0 / 1000) + lifetime - 1 &&
            cookie.expires <= Math.ceil(t1 / 1000) + lifetime + 1,
            `${cookie.name} expires ${cookie.expires - t1 / 1000} s from now, want ${lifetime}`);
}

test('first visit: cookies with their lifetimes; pageview with UTMs, click ids, referrer', { timeout: 90000 }, async () => {
  const s = site.first;
  const { ctx, errors } = await openSite((url) => html({
    title: url.pathname === '/pricing' ? 'Pricing' : 'Landing — “spring”',
    head: tag(s),
    body: '<a id="next" href="/pricing">Pricing</a>',
  }));
  const page = await ctx.newPage();
  const landing = `${ORIGIN}/landing?utm_source=newsletter&utm_medium=email&utm_campaign=spring` +
      '&utm_term=shoes&utm_content=hero&gclid=G-1&gbraid=GB1&wbraid=WB1&fbclid=FB1&msclkid=MS1' +
      '&ttclid=TT1&li_fat_id=LI1&twclid=TW1&ref=partner42';
  const t0 = Date.now();
  await page.goto(landing, { referer: 'https://news.example/story?id=7' });
  const [pv] = await atLeast(WEB, s, 1, 'the landing pageview');
  const t1 = Date.now();
  const c = await cookieMap(ctx);
  const visitor = c.revtrace_visitor_id;
  const session = c.revtrace_session_id;
  assert.ok(visitor && session, 'both cookies are set');
  assert.match(visitor.value, ID);
  assert.match(session.value, ID);
  assertExpiry(visitor, YEAR400, t0, t1);
  assertExpiry(session, 1800, t0, t1);
  for (const k of [visitor, session]) {
    // First-party and readable by the site's own server code (not HttpOnly).
    assert.deepEqual([k.domain, k.path, k.secure, k.httpOnly, k.sameSite],
                     ['shop.example', '/', true, false, 'Lax']);
  }
  assert.deepEqual(without(pv, 'event_id', 'occurred_at', 'received_at', 'device'), {
    type: 'pageview', site_id: s, visitor_id: visitor.value, session_id: session.value,
    url: landing, referrer: 'https://news.example/story?id=7', title: 'Landing — “spring”',
    screen: '1440x900', language: 'en-US', timezone: 'Europe/Paris',
  });
  assert.match(pv.event_id, /^[0-9a-f]{24}$/);
  assert.ok(pv.occurred_at >= t0 && pv.occurred_at <= t1, 'occurred_at is the client clock at load');
  assert.ok(pv.received_at >= t0 - 1000 && pv.received_at <= t1 + 1000);
  assert.deepEqual(pv.device, { browser: 'Chrome', os: 'Linux', device_class: 'desktop' });

  // An internal link: same visitor and session, the landing page as referrer.
  await page.click('#next');
  const two = await atLeast(WEB, s, 2, 'the pricing pageview');
  assert.equal(two.length, 2);
  assert.deepEqual(without(two[1], 'event_id', 'occurred_at', 'received_at', 'device'), {
    type: 'pageview', site_id: s, visitor_id: visitor.value, session_id: session.value,
    url: `${ORIGIN}/pricing`, referrer: landing, title: 'Pricing',
    screen: '1440x900', language: 'en-US', timezone: 'Europe/Paris',
  });

  // Rolling session: activity renews a session cookie that was about to expire.
  await ctx.addCookies([{ ...session, expires: Math.floor(Date.now() / 1000) + 60 }]);
  const t2 = Date.now();
  await page.evaluate(() => window.revtrace.track('ping'));
  const three = await atLeast(WEB, s, 3, 'the ping event');
  const t3 = Date.now();
  assert.deepEqual([three[2].type, three[2].name, three[2].session_id, three[2].visitor_id],
                   ['custom', 'ping', session.value, visitor.value]);
  const renewed = (await cookieMap(ctx)).revtrace_session_id;
  assert.equal(renewed.value, session.value);
  assertExpiry(renewed, 1800, t2, t3);

  // After 30 minutes without activity the cookie is gone: a new session, the same visitor.
  await ctx.clearCookies({ name: 'revtrace_session_id' });
  await page.evaluate(() => window.revtrace.track('later'));
  const four = await atLeast(WEB, s, 4, 'the event after the session expired');
  assert.equal(four.length, 4);
  const fresh = (await cookieMap(ctx)).revtrace_session_id;
  assert.deepEqual([four[3].name, four[3].visitor_id, four[3].session_id],
                   ['later', visitor.value, fresh.value]);
  assert.notEqual(fresh.value, session.value);
  assert.deepEqual(errors, []);
  await ctx.close();
});

test('single-page app: pushState, replaceState and popstate each send one pageview', { timeout: 90000 }, async () => {
  const s = site.spa;
  const { ctx, errors } = await openSite(() => html({ title: 'App', head: tag(s) }));
  const page = await ctx.newPage();
  await page.goto(`${ORIGIN}/app`);
  const expected = [[`${ORIGIN}/app`, '']];
  const step = async (what, action, url, referrer) => {
    await page.evaluate(action);
    if (url) expected.push([url, referrer]);
    // Waiting for this step's record before the next step keeps the records in send order.
    return atLeast(WEB, s, expected.length, what);
  };
  await step('the load pageview', () => {});
  await step('pushState', () => history.pushState({}, '', '/app/pricing?plan=pro'),
             `${ORIGIN}/app/pricing?plan=pro`, `${ORIGIN}/app`);
  await step('replaceState', () => history.replaceState({}, '', '/app/checkout'),
             `${ORIGIN}/app/checkout`, `${ORIGIN}/app/pricing?plan=pro`);
  // Not navigations: a state-only replaceState and an in-page anchor.
  await page.evaluate(() => { history.replaceState({ n: 1 }, ''); history.pushState({}, '', '#faq'); });
  // A hash route is a navigation.
  await step('hash route', () => history.pushState({}, '', '/app/checkout#/step-2'),
             `${ORIGIN}/app/checkout#/step-2`, `${ORIGIN}/app/checkout`);
  // Back (popstate): leaving the hash route is a navigation; the anchor entry below it is the same
  // page; the entry below that is /app again.
  const back = () => new Promise((resolve) => {
    addEventListener('popstate', resolve, { once: true });
    history.back();
  });
  await step('back to #faq', back, `${ORIGIN}/app/checkout#faq`, `${ORIGIN}/app/checkout#/step-2`);
  await page.evaluate(back);
  await step('back to /app', back, `${ORIGIN}/app`, `${ORIGIN}/app/checkout`);
  const all = await records(WEB, s);
  assert.deepEqual(all.map((r) => [r.type, r.url, r.referrer ?? '']),
                   expected.map(([u, r]) => ['pageview', u, r]));
  assert.equal(new Set(all.map((r) => r.visitor_id)).size, 1);
  assert.equal(new Set(all.map((r) => r.session_id)).size, 1);
  assert.deepEqual(errors, []);
  await ctx.close();
});

test('checkout success page: one checkout_redirect per checkout session, none on reload', { timeout: 90000 }, async () => {
  const s = site.redirect;
  const { ctx, errors } = await openSite(() => html({ title: 'Thanks', head: tag(s) }));
  const page = await ctx.newPage();
  const thanks = `${ORIGIN}/thanks?session_id=cs_test_a1B2c3D4e5&plan=pro`;
  await page.goto(thanks);
  const [redirect] = await atLeast(REDIRECTS, s, 1, 'the redirect');
  const c = await cookieMap(ctx);
  assert.deepEqual(without(redirect, 'occurred_at', 'received_at'), {
    event_id: 'r_cs_test_a1B2c3D4e5', type: 'checkout_redirect', site_id: s,
    visitor_id: c.revtrace_visitor_id.value, session_id: c.revtrace_session_id.value,
    checkout_session_id: 'cs_test_a1B2c3D4e5', url: thanks,
  });

  // Reload: a pageview, but no second redirect for the same checkout session.
  await page.reload();
  await atLeast(WEB, s, 2, 'the pageview of the reload');
  // Not a checkout session id: ignored.
  await page.goto(`${ORIGIN}/thanks?session_id=sess_123`);
  await atLeast(WEB, s, 3, 'the pageview with a foreign session_id');
  // Another checkout session, named by stripe_session_id, through an SPA navigation: reported.
  await page.evaluate(() => history.pushState({}, '', '/done?stripe_session_id=cs_live_Z9y8'));
  await atLeast(REDIRECTS, s, 2, 'the second checkout session');
  await atLeast(WEB, s, 4, 'the pageview of the SPA navigation');
  const all = await records(REDIRECTS, s);
  assert.deepEqual(all.map((r) => [r.checkout_session_id, r.url]), [
    ['cs_test_a1B2c3D4e5', thanks],
    ['cs_live_Z9y8', `${ORIGIN}/done?stripe_session_id=cs_live_Z9y8`],
  ]);
  assert.equal(all[1].visitor_id, c.revtrace_visitor_id.value);
  assert.deepEqual((await records(WEB, s)).map((r) => r.url),
                   [thanks, thanks, `${ORIGIN}/thanks?session_id=sess_123`,
                    `${ORIGIN}/done?stripe_session_id=cs_live_Z9y8`]);
  assert.deepEqual(errors, []);
  await ctx.close();
});

test('checkout links carry client_reference_id, late links too, existing ones kept', { timeout: 90000 }, async () => {
  const s = site.links;
  const links = {
    plain: 'https://buy.stripe.com/test_plain',
    params: 'https://buy.stripe.com/test_params?prefilled_email=ann%40example.com&locale=fr#top',
    kept: 'https://buy.stripe.com/test_kept?client_reference_id=crm_42&locale=de',
    custom: 'https://pay.shop.example/checkout/pro?x=1',
    other: 'https://example.com/buy?x=1',
    stripe: 'https://stripe.com/pricing',
  };
  const body = Object.entries(links).map(([id, href]) => `<a id="${id}" href="${href}">${id}</a>`).join('') +
      '<a id="fight" href="https://buy.stripe.com/test_fight">fight</a>';
  // A host script that puts #fight's href back whenever it changes: the pixel must give up after a
  // few rewrites instead of looping forever (which would hang the page).
  const fight = `<script>window.resets = 0; new MutationObserver(function () {
    var a = document.getElementById('fight');
    if (a && a.href !== 'https://buy.stripe.com/test_fight') { resets++; a.href = 'https://buy.stripe.com/test_fight'; }
  }).observe(document.documentElement, {subtree: true, attributes: true, attributeFilter: ['href']});</script>`;
  const { ctx, errors } = await openSite(() => html({
    head: fight + tag(s, 'data-checkout-domains="pay.shop.example, checkout.example.net"'), body,
  }));
  const followed = [];
  await ctx.route('https://buy.stripe.com/**', (route) => {
    followed.push(route.request().url());
    return route.fulfill({ status: 200, contentType: 'text/html', body: 'Stripe' });
  });
  const page = await ctx.newPage();
  await page.goto(`${ORIGIN}/pricing`);
  const [pv] = await atLeast(WEB, s, 1, 'the pricing pageview');
  const v = pv.visitor_id;
  assert.match(v, ID);
  assert.equal(v, (await cookieMap(ctx)).revtrace_visitor_id.value);
  const hrefs = () => page.evaluate(() => Object.fromEntries([...document.links].map((a) => [a.id, a.href])));
  const want = {
    plain: `https://buy.stripe.com/test_plain?client_reference_id=${v}`,
    params: `https://buy.stripe.com/test_params?prefilled_email=ann%40example.com&locale=fr&client_reference_id=${v}#top`,
    kept: links.kept,
    custom: `https://pay.shop.example/checkout/pro?x=1&client_reference_id=${v}`,
    other: links.other,
    stripe: links.stripe,
    fight: 'https://buy.stripe.com/test_fight',
  };
  await waitFor('the links to be decorated', async () => (await hrefs()).plain === want.plain);
  assert.deepEqual(await hrefs(), want);
  assert.equal(await page.evaluate(() => window.resets), 3);

  // Links added later, and a link re-pointed at a checkout.
  await page.evaluate(() => {
    const late = document.createElement('div');
    late.innerHTML = '<p><a id="late" href="https://checkout.example.net/pay?plan=team">late</a></p>';
    document.body.append(late);
    document.getElementById('other').href = 'https://buy.stripe.com/test_moved';
  });
  want.late = `https://checkout.example.net/pay?plan=team&client_reference_id=${v}`;
  want.other = `https://buy.stripe.com/test_moved?client_reference_id=${v}`;
  await waitFor('the late links to be decorated', async () => {
    const h = await hrefs();
    return h.late === want.late && h.other === want.other;
  });
  assert.deepEqual(await hrefs(), want);

  // Following a link takes the visitor id to Stripe.
  await page.click('#params');
  await waitFor('the Payment Link to be requested', () => followed.length === 1);
  assert.deepEqual(followed, [want.params.replace('#top', '')]);  // fragments stay in the browser
  // The Kafka side: exactly the one pageview, whose visitor is the id the links carry.
  assert.deepEqual((await records(WEB, s)).map((r) => [r.type, r.visitor_id]), [['pageview', v]]);
  assert.deepEqual(errors, []);
  await ctx.close();
});

test('identify and track: queued calls before load, the API, opt-in form identify', { timeout: 90000 }, async () => {
  const s = site.identify;
  const early = `<script>revtrace('track', 'early', {n: 1});
revtrace.identify('Early@Example.com', {plan: 'pro'});
revtrace.ready(function (r) { window.readyVisitor = r.getVisitorId(); });</script>`;
  const { ctx, errors } = await openSite((url) => url.pathname === '/welcome'
    ? html({ title: 'Welcome', head: tag(s, 'data-auto-identify="on"') })
    : html({
      title: 'Sign up',
      head: SNIPPET + early + tag(s, 'data-auto-identify="on"'),
      body: '<form id="f" method="post" action="/welcome"><input name="name">' +
            '<input type="email" name="user_email"><button>Go</button></form>',
    }));
  const page = await ctx.newPage();
  await page.goto(`${ORIGIN}/signup`);
  await page.waitForFunction(() => window.revtrace && window.revtrace.loaded);
  const ids = await page.evaluate(() => {
    const circular = {};
    circular.self = circular;
    const r = window.revtrace;
    r.identify('buyer@example.com', { name: 'Ann', plan: 'team' });
    r.track('signup', { plan: 'pro', seats: 3 });
    r.track('odd', circular);  // props that cannot be JSON are dropped, the event is kept
    r.identify('not-an-email');
    r.identify(undefined, 5);
    r.track('');
    r.track();
    return { visitor: r.getVisitorId(), session: r.getSessionId(), ready: window.readyVisitor };
  });
  const c = await cookieMap(ctx);
  assert.deepEqual([ids.visitor, ids.session, ids.ready],
                   [c.revtrace_visitor_id.value, c.revtrace_session_id.value, c.revtrace_visitor_id.value]);
  await page.fill('input[type=email]', 'form@example.com');
  await Promise.all([page.waitForURL(`${ORIGIN}/welcome`), page.click('button')]);
  const all = await atLeast(WEB, s, 8, 'the events of the sign-up page and the welcome pageview');
  assert.equal(all.length, 8);
  const signup = `${ORIGIN}/signup`;
  const seen = all.map((r) => JSON.stringify([r.type, r.url, r.email ?? r.name ?? '', r.traits ?? r.props ?? null]));
  const want = [
    ['pageview', signup, '', null],
    ['custom', signup, 'early', { n: 1 }],
    ['identify', signup, 'Early@Example.com', { plan: 'pro' }],
    ['identify', signup, 'buyer@example.com', { name: 'Ann', plan: 'team' }],
    ['custom', signup, 'signup', { plan: 'pro', seats: 3 }],
    ['custom', signup, 'odd', null],
    ['identify', signup, 'form@example.com', null],
    ['pageview', `${ORIGIN}/welcome`, '', null],
  ].map((w) => JSON.stringify(w));
  // Beacons of one page may overtake each other: compare as multisets.
  assert.deepEqual([...seen].sort(), [...want].sort());
  assert.deepEqual(new Set(all.map((r) => r.visitor_id)), new Set([ids.visitor]));
  assert.deepEqual(new Set(all.map((r) => r.session_id)), new Set([ids.session]));
  assert.deepEqual(errors, []);
  await ctx.close();
});

test('cookieless mode: ids in memory only; script and events through a first-party proxy', { timeout: 90000 }, async () => {
  const s = site.cookieless;
  // The site serves revtrace.js from its own origin (the gateway's bytes) and names the API.
  const { ctx, errors } = await openSite(async (url, route) => {
    if (url.pathname === '/js/revtrace.js') {
      const upstream = await route.fetch({ url: `${gw.base}/revtrace.js` });
      await route.fulfill({ response: upstream });
      return undefined;
    }
    return html({
      title: 'Private',
      head: tag(s, `data-privacy="cookieless" data-api="${gw.base}/"`, '/js/revtrace.js'),
      body: '<a id="buy" href="https://buy.stripe.com/test_x">buy</a>',
    });
  });
  const page = await ctx.newPage();
  const thanks = `${ORIGIN}/thanks?session_id=cs_test_cookieless1`;
  await page.goto(thanks);
  await page.waitForFunction(() => window.revtrace && window.revtrace.loaded);
  const first = await page.evaluate(() => window.revtrace.getVisitorId());
  assert.match(first, ID);
  await waitFor('the link to carry the in-memory visitor id',
                () => page.evaluate((v) => document.getElementById('buy').href.endsWith(`?client_reference_id=${v}`), first));
  await atLeast(WEB, s, 1, 'the first pageview');
  await atLeast(REDIRECTS, s, 1, 'the first redirect');
  assert.deepEqual(await ctx.cookies(), [], 'no cookie at all');
  assert.deepEqual(await page.evaluate(() => Object.keys(localStorage)), [], 'nothing in localStorage');

  // Nothing survives a reload: a new visitor, and the redirect is sent again with the same event
  // id (derived from the checkout session) so that consumers can drop the repeat.
  await page.reload();
  await page.waitForFunction(() => window.revtrace && window.revtrace.loaded);
  const second = await page.evaluate(() => window.revtrace.getVisitorId());
  assert.notEqual(second, first);
  const web = await atLeast(WEB, s, 2, 'the pageview after the reload');
  const redirects = await atLeast(REDIRECTS, s, 2, 'the redirect after the reload');
  assert.deepEqual(web.map((r) => [r.type, r.url, r.visitor_id]),
                   [['pageview', thanks, first], ['pageview', thanks, second]]);
  assert.deepEqual(redirects.map((r) => [r.event_id, r.checkout_session_id, r.visitor_id]),
                   [['r_cs_test_cookieless1', 'cs_test_cookieless1', first],
                    ['r_cs_test_cookieless1', 'cs_test_cookieless1', second]]);
  assert.deepEqual(await ctx.cookies(), []);
  assert.deepEqual(errors, []);
  await ctx.close();
});

test('data-privacy="dnt": nothing is tracked or stored under Global Privacy Control', { timeout: 90000 }, async () => {
  const s = site.dnt;
  const pages = () => html({
    head: tag(s, 'data-privacy="dnt"'),
    body: '<a id="buy" href="https://buy.stripe.com/test_dnt">buy</a>',
  });
  const gpc = await openSite(pages, {
    init: () => Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true }),
  });
  const page = await gpc.ctx.newPage();
  await page.goto(`${ORIGIN}/`);
  await page.waitForFunction(() => window.revtrace && window.revtrace.loaded);
  const state = await page.evaluate(() => {
    window.revtrace.track('ignored');
    window.revtrace.identify('gpc@example.com');
    return [window.revtrace.getVisitorId(), document.getElementById('buy').href, Object.keys(localStorage)];
  });
  assert.deepEqual(state, [null, 'https://buy.stripe.com/test_dnt', []]);
  assert.deepEqual(await gpc.ctx.cookies(), []);
  assert.deepEqual(gpc.errors, []);
  await gpc.ctx.close();

  // The same page for a browser without the signal is tracked: the only record of the site.
  const plain = await openSite(pages);
  const page2 = await plain.ctx.newPage();
  await page2.goto(`${ORIGIN}/`);
  await atLeast(WEB, s, 1, 'the pageview without GPC');
  const v = (await cookieMap(plain.ctx)).revtrace_visitor_id.value;
  // Sent by the GPC page before the one above if at all (same key, same partition, in order).
  assert.deepEqual((await records(WEB, s)).map((r) => [r.type, r.visitor_id]), [['pageview', v]]);
  assert.deepEqual(plain.errors, []);
  await plain.ctx.close();
});

test('cookies and storage blocked (access throws): tracking still works, nothing throws', { timeout: 90000 }, async () => {
  const s = site.blocked;
  const { ctx, errors } = await openSite(() => html({
    head: tag(s),
    body: '<a id="buy" href="https://buy.stripe.com/test_blocked">buy</a>' +
          '<script>window.hostRan = true;</script>',
  }), {
    init: () => {
      const blocked = () => { throw new DOMException('The operation is insecure.', 'SecurityError'); };
      Object.defineProperty(Document.prototype, 'cookie', { get: blocked, set: blocked, configurable: true });
      Object.defineProperty(window, 'localStorage', { get: blocked, configurable: true });
      Object.defineProperty(window, 'sessionStorage', { get: blocked, configurable: true });
    },
  });
  const page = await ctx.newPage();
  await page.goto(`${ORIGIN}/blocked?utm_source=ads`);
  await page.waitForFunction(() => window.revtrace && window.revtrace.loaded);
  assert.equal(await page.evaluate(() => { try { return document.cookie; } catch (e) { return e.name; } }),
               'SecurityError', 'the page really cannot use cookies');
  const ids = await page.evaluate(() => ({
    visitor: window.revtrace.getVisitorId(), session: window.revtrace.getSessionId(), host: window.hostRan,
  }));
  assert.match(ids.visitor, ID);
  assert.equal(ids.host, true);
  await waitFor('the link to be decorated', () => page.evaluate(
    (v) => document.getElementById('buy').href === `https://buy.stripe.com/test_blocked?client_reference_id=${v}`, ids.visitor));
  await page.evaluate(() => history.pushState({}, '', '/blocked/next'));
  await page.evaluate(() => window.revtrace.identify('blocked@example.com'));
  const all = await atLeast(WEB, s, 3, 'pageview, SPA pageview, identify');
  assert.equal(all.length, 3);
  assert.deepEqual(all.map((r) => [r.type, r.url, r.visitor_id, r.session_id, r.email ?? '']).sort(), [
    ['identify', `${ORIGIN}/blocked/next`, ids.visitor, ids.session, 'blocked@example.com'],
    ['pageview', `${ORIGIN}/blocked/next`, ids.visitor, ids.session, ''],
    ['pageview', `${ORIGIN}/blocked?utm_source=ads`, ids.visitor, ids.session, ''],
  ].sort());
  assert.deepEqual(await ctx.cookies(), []);
  assert.deepEqual(errors, []);
  await ctx.close();
});

test('navigator.doNotTrack / window.doNotTrack = "1" with data-privacy="dnt": nothing sent or stored; without the opt-in: tracked', { timeout: 90000 }, async () => {
  const s = site.donottrack;
  const pages = (url) => html({
    head: tag(s, url.pathname === '/opted-in' ? 'data-privacy="dnt"' : ''),
    body: '<a id="buy" href="https://buy.stripe.com/test_dnt">buy</a>',
  });
  const signals = {
    navigator: () => Object.defineProperty(Navigator.prototype, 'doNotTrack', { get: () => '1', configurable: true }),
    window: () => Object.defineProperty(window, 'doNotTrack', { get: () => '1', configurable: true }),
  };
  for (const [where, init] of Object.entries(signals)) {
    const { ctx, errors } = await openSite(pages, { init });
    const page = await ctx.newPage();
    await page.goto(`${ORIGIN}/opted-in`);
    await page.waitForFunction(() => window.revtrace && window.revtrace.loaded);
    const state = await page.evaluate(() => {
      window.revtrace.track('ignored');
      window.revtrace.identify('dnt@example.com');
      return [navigator.doNotTrack ?? window.doNotTrack, window.revtrace.getVisitorId(), window.revtrace.getSessionId(),
              document.getElementById('buy').href, Object.keys(localStorage)];
    });
    assert.deepEqual(state, ['1', null, null, 'https://buy.stripe.com/test_dnt', []], `${where}.doNotTrack`);
    assert.deepEqual(await ctx.cookies(), [], `${where}.doNotTrack: no cookie`);
    assert.deepEqual(errors, []);
    await ctx.close();
  }
  // The signal alone changes nothing: honouring it is the site's choice (data-privacy="dnt").
  // This page's records are the only ones of the site; the opted-in pages sent theirs (none)
  // before it, on the same partition.
  const { ctx, errors } = await openSite(pages, { init: signals.navigator });
  const page = await ctx.newPage();
  await page.goto(`${ORIGIN}/not-opted-in`);
  await page.waitForFunction(() => window.revtrace && window.revtrace.loaded);
  await page.evaluate(() => window.revtrace.track('counted'));
  const all = await atLeast(WEB, s, 2, 'the pageview and the event of the page without the opt-in');
  const v = (await cookieMap(ctx)).revtrace_visitor_id.value;
  assert.deepEqual(all.map((r) => [r.type, r.name ?? '', r.url, r.visitor_id]).sort(), [
    ['custom', 'counted', `${ORIGIN}/not-opted-in`, v],
    ['pageview', '', `${ORIGIN}/not-opted-in`, v],
  ]);
  assert.deepEqual(errors, []);
  await ctx.close();
});

test('only cookies blocked: the ids live in localStorage with their expiry and survive a reload', { timeout: 90000 }, async () => {
  const s = site.lsonly;
  const variants = {
    // A browser that refuses cookies silently: document.cookie reads empty, writes do nothing.
    ignored: () => Object.defineProperty(Document.prototype, 'cookie', { get: () => '', set: () => {}, configurable: true }),
    // A sandbox where touching document.cookie throws.
    throws: () => {
      const blocked = () => { throw new DOMException('The operation is insecure.', 'SecurityError'); };
      Object.defineProperty(Document.prototype, 'cookie', { get: blocked, set: blocked, configurable: true });
    },
  };
  let n = 0;
  for (const [how, init] of Object.entries(variants)) {
    const { ctx, errors } = await openSite(() => html({
      head: tag(s), body: '<a id="buy" href="https://buy.stripe.com/test_ls">buy</a>',
    }), { init });
    const page = await ctx.newPage();
    const url = `${ORIGIN}/ls-${how}`;
    const t0 = Date.now();
    await page.goto(url);
    await page.waitForFunction(() => window.revtrace && window.revtrace.loaded);
    const stored = await page.evaluate(() => Object.fromEntries(Object.keys(localStorage).map((k) => [k, JSON.parse(localStorage.getItem(k))])));
    const t1 = Date.now();
    // Exactly the two ids (the storage probe leaves nothing behind), each with its own expiry.
    assert.deepEqual(Object.keys(stored).sort(), ['revtrace_session_id', 'revtrace_visitor_id'], how);
    const visitor = stored.revtrace_visitor_id;
    const session = stored.revtrace_session_id;
    assert.match(visitor.v, ID);
    assert.match(session.v, ID);
    assert.ok(visitor.e >= t0 + YEAR400 * 1000 && visitor.e <= t1 + YEAR400 * 1000, `${how}: visitor expires in 400 days`);
    assert.ok(session.e >= t0 + 1800 * 1000 && session.e <= t1 + 1800 * 1000, `${how}: session expires in 30 minutes`);
    await waitFor('the link to carry the stored visitor id', () => page.evaluate(
      (v) => document.getElementById('buy').href === `https://buy.stripe.com/test_ls?client_reference_id=${v}`, visitor.v));
    // Unlike memory, localStorage keeps the visitor and the session across page loads.
    await page.reload();
    await page.waitForFunction(() => window.revtrace && window.revtrace.loaded);
    n += 2;
    const all = await atLeast(WEB, s, n, `the two pageviews (${how})`);
    assert.equal(all.length, n);
    assert.deepEqual(all.slice(-2).map((r) => [r.type, r.url, r.visitor_id, r.session_id]), [
      ['pageview', url, visitor.v, session.v], ['pageview', url, visitor.v, session.v]], how);
    assert.deepEqual(await ctx.cookies(), [], `${how}: no cookie`);
    assert.deepEqual(errors, []);
    await ctx.close();
  }
});

test('fetch keepalive when sendBeacon is missing or refuses: every event sent exactly once', { timeout: 90000 }, async () => {
  const s = site.fetch;
  // Records every fetch the page makes, then lets it through.
  const recordFetch = `window.fetches = []; const realFetch = window.fetch;
    window.fetch = function (url, opts) { fetches.push({ url: String(url), method: opts && opts.method, keepalive: opts && opts.keepalive,
      credentials: opts && opts.credentials, body: JSON.parse(opts.body) }); return realFetch.apply(this, arguments); };`;
  const variants = {
    missing: `delete Navigator.prototype.sendBeacon; ${recordFetch}`,
    // A browser whose beacon queue is full answers false and sends nothing.
    refuses: `window.refused = 0; Navigator.prototype.sendBeacon = function () { refused++; return false; }; ${recordFetch}`,
  };
  let n = 0;
  for (const [how, init] of Object.entries(variants)) {
    const { ctx, errors } = await openSite(() => html({ head: tag(s) }), { init: { content: init } });
    const page = await ctx.newPage();
    const url = `${ORIGIN}/fetch-${how}`;
    await page.goto(url);
    await page.waitForFunction(() => window.revtrace && window.revtrace.loaded);
    await page.evaluate(() => { window.revtrace.track('via-fetch', { n: 1 }); window.revtrace.identify('fetch@example.com'); });
    n += 3;
    const all = await atLeast(WEB, s, n, `pageview, track and identify (${how})`);
    assert.equal(all.length, n, `${how}: nothing sent twice`);
    const v = (await cookieMap(ctx)).revtrace_visitor_id.value;
    assert.deepEqual(all.slice(-3).map((r) => [r.type, r.url, r.visitor_id, r.name ?? r.email ?? '']).sort(), [
      ['custom', url, v, 'via-fetch'], ['identify', url, v, 'fetch@example.com'], ['pageview', url, v, '']], how);
    const fetches = await page.evaluate(() => window.fetches);
    assert.deepEqual(fetches.map((f) => [f.url, f.method, f.keepalive, f.credentials, f.body.type]),
                     ['pageview', 'custom', 'identify'].map((t) => [`${gw.base}/v1/events`, 'POST', true, 'omit', t]), how);
    assert.deepEqual(fetches.map((f) => f.body.event_id).sort(), all.slice(-3).map((r) => r.event_id).sort(),
                     `${how}: the records are those fetches`);
    if (how === 'refuses') assert.equal(await page.evaluate(() => window.refused), 3);
    assert.deepEqual(errors, []);
    await ctx.close();
  }
});

test('data-cookie-domain: the visitor and session cookies are shared by www. and app.', { timeout: 90000 }, async () => {
  const s = site.domain;
  const { ctx, errors } = await openSite((url) => html({ title: url.hostname, head: tag(s, 'data-cookie-domain=".shop.example"') }),
                                         { origins: [WWW, APP] });
  const page = await ctx.newPage();
  const t0 = Date.now();
  await page.goto(`${WWW}/pricing`);
  const [first] = await atLeast(WEB, s, 1, 'the www pageview');
  const t1 = Date.now();
  const c = await cookieMap(ctx, WWW);
  for (const k of [c.revtrace_visitor_id, c.revtrace_session_id]) {
    assert.deepEqual([k.domain, k.path, k.secure, k.httpOnly, k.sameSite], ['.shop.example', '/', true, false, 'Lax'], k.name);
  }
  assertExpiry(c.revtrace_visitor_id, YEAR400, t0, t1);
  assertExpiry(c.revtrace_session_id, 1800, t0, t1);
  assert.equal(first.visitor_id, c.revtrace_visitor_id.value);
  // The app host sees the same cookies and continues the same visitor and session.
  assert.deepEqual(Object.fromEntries(Object.entries(await cookieMap(ctx, APP)).map(([k, v]) => [k, v.value])),
                   { revtrace_visitor_id: first.visitor_id, revtrace_session_id: first.session_id });
  await page.goto(`${APP}/dashboard`);
  const two = await atLeast(WEB, s, 2, 'the app pageview');
  assert.equal(two.length, 2);
  assert.deepEqual(two.map((r) => [r.url, r.visitor_id, r.session_id]), [
    [`${WWW}/pricing`, first.visitor_id, first.session_id], [`${APP}/dashboard`, first.visitor_id, first.session_id]]);
  // Only the shared cookies exist: no host-only duplicate on either host.
  assert.deepEqual((await ctx.cookies()).map((k) => `${k.name}@${k.domain}`).sort(),
                   ['revtrace_session_id@.shop.example', 'revtrace_visitor_id@.shop.example']);
  assert.deepEqual(errors, []);
  await ctx.close();
});

test('an existing visitor cookie is adopted when it is a valid client_reference_id, replaced otherwise', { timeout: 120000 }, async () => {
  const s = site.adopt;
  const cases = [
    // [name, visitor cookie value as stored, adopted id or null (= replaced)]
    ['valid', 'crm_Visitor-42', 'crm_Visitor-42'],
    ['200 characters', 'b'.repeat(200), 'b'.repeat(200)],
    ['201 characters', 'a'.repeat(201), null],
    ['a dot and a bang', 'bad.value!', null],
    ['a space, encoded', 'abc%20def', null],
    ['broken percent-encoding', '%E0%A4%A', null],
    ['empty', '', null],
  ];
  let n = 0;
  for (const [name, stored, adopted] of cases) {
    const { ctx, errors } = await openSite(() => html({ head: tag(s), body: '<a id="buy" href="https://buy.stripe.com/test_adopt">buy</a>' }));
    const expires = Math.floor(Date.now() / 1000) + 3600;
    await ctx.addCookies([{ name: 'revtrace_visitor_id', value: stored, domain: 'shop.example', path: '/', expires, secure: true, sameSite: 'Lax' },
                          { name: 'revtrace_session_id', value: 'sess_kept-1', domain: 'shop.example', path: '/', expires, secure: true, sameSite: 'Lax' }]);
    const page = await ctx.newPage();
    const url = `${ORIGIN}/adopt-${n}`;
    const t0 = Date.now();
    await page.goto(url);
    n += 1;
    const all = await atLeast(WEB, s, n, `the pageview (${name})`);
    const t1 = Date.now();
    assert.equal(all.length, n);
    const pv = all[n - 1];
    assert.equal(pv.url, url);
    const c = await cookieMap(ctx);
    if (adopted) {
      assert.equal(pv.visitor_id, adopted, name);
    } else {
      assert.match(pv.visitor_id, ID, name);
      assert.notEqual(pv.visitor_id, stored, name);
    }
    // The cookie now holds the id that was sent, for 400 days; the valid session is kept.
    assert.equal(c.revtrace_visitor_id.value, pv.visitor_id, name);
    assertExpiry(c.revtrace_visitor_id, YEAR400, t0, t1);
    assert.equal(pv.session_id, 'sess_kept-1', name);
    await waitFor(`the link to carry the visitor id (${name})`, () => page.evaluate(
      (v) => document.getElementById('buy').href === `https://buy.stripe.com/test_adopt?client_reference_id=${v}`, pv.visitor_id));
    assert.deepEqual(errors, [], name);
    await ctx.close();
  }
});

test('data-auto-identify: bare, "true" and "1" turn it on; "false", "0" and no attribute leave it off', { timeout: 120000 }, async () => {
  const s = site.autoid;
  const variants = [
    ['bare', 'data-auto-identify', true],
    ['true', 'data-auto-identify="true"', true],
    ['one', 'data-auto-identify="1"', true],
    ['false', 'data-auto-identify="false"', false],
    ['zero', 'data-auto-identify="0"', false],
    ['absent', '', false],
  ];
  // The page keeps the visitor on it (no navigation), and the test sees every beacon it sent.
  const init = () => {
    window.sent = [];
    const real = Navigator.prototype.sendBeacon;
    Navigator.prototype.sendBeacon = function (url, body) { window.sent.push(JSON.parse(body).type); return real.call(this, url, body); };
  };
  const { ctx, errors } = await openSite((url) => html({
    head: tag(s, variants.find(([n]) => `/form-${n}` === url.pathname)?.[1] ?? ''),
    body: '<form id="f" action="/thanks"><input name="name"><input type="email" name="work_email"><button>Join</button></form>' +
          '<script>document.getElementById("f").addEventListener("submit", function (e) { e.preventDefault(); });</script>',
  }), { init });
  const page = await ctx.newPage();
  let n = 0;
  for (const [name, , on] of variants) {
    const url = `${ORIGIN}/form-${name}`;
    await page.goto(url);
    await page.waitForFunction(() => window.revtrace && window.revtrace.loaded);
    await page.fill('input[type=email]', `${name}@example.com`);
    await page.click('button');  // the submit listeners run synchronously within the click
    assert.deepEqual(await page.evaluate(() => window.sent), on ? ['pageview', 'identify'] : ['pageview'], name);
    await page.evaluate(() => window.revtrace.track('after-submit'));
    n += on ? 3 : 2;
    const all = await atLeast(WEB, s, n, `the records of ${name}`);
    assert.equal(all.length, n, name);
    assert.deepEqual(all.filter((r) => r.url === url).map((r) => [r.type, r.email ?? r.name ?? '']).sort(),
                     [['custom', 'after-submit'], ...(on ? [['identify', `${name}@example.com`]] : []), ['pageview', '']], name);
  }
  assert.deepEqual(errors, []);
  await ctx.close();
});

test('every record the pixel caused conforms to schemas/ (independent validator: ajv)', { timeout: 60000 }, async () => {
  for (const topic of [WEB, REDIRECTS]) {
    const mine = (await readTopic(gw.bootstrap, gw.topic(topic))).filter((r) => Object.values(site).includes(r.site_id));
    assert.ok(mine.length > 0, `${topic} has records of this run`);
    const file = join(gw.dir, `${topic}.ndjson`);
    writeFileSync(file, mine.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const out = execFileSync('node', [join(sourceDir, 'tests/js/validate-records.mjs'), join(sourceDir, 'schemas'),
                                      topic, file], { encoding: 'utf8' });
    assert.match(out, new RegExp(`^${mine.length} records valid`, 'm'));
  }
});
