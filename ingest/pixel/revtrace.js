/*! revtrace pixel: first-party visitor tracking for revtrace. Docs: ingest/README.md */
// Served as-is by the gateway at /revtrace.js (budget: 4 KB gzipped, checked by a test).
// Every entry point is wrapped so that nothing here can throw into the host page.
try { (function (w, d) {
  var prev = w.revtrace;
  if (prev && prev.loaded) return;  // included twice
  var nav = navigator, loc = location, S = 'revtrace_', noop = function () {};
  function safe(fn) {
    return function () { try { return fn.apply(this, arguments); } catch (e) {} };
  }
  var VID = /^[A-Za-z0-9_-]{1,200}$/;  // also Stripe's rule for client_reference_id
  var CS = /^cs_[A-Za-z0-9_]{1,250}$/;
  function now() { return Date.now(); }
  function rnd(n) {
    var s = '', a = new Uint8Array(n), c = w.crypto;
    try { c.getRandomValues(a); } catch (e) { for (var i = 0; i < n; i++) a[i] = Math.random() * 256; }
    for (var j = 0; j < n; j++) s += (a[j] & 15).toString(16) + (a[j] >> 4).toString(16);
    return s;
  }
  function newId() { return now().toString(36) + rnd(8); }

  var me = d.currentScript || d.querySelector('script[data-site]') || {};
  function attr(n) { try { return me.getAttribute('data-' + n) || ''; } catch (e) { return ''; } }
  var site = attr('site'), privacy = attr('privacy').split(/[\s,]+/);
  var api = (attr('api') || (me.src ? new URL(me.src).origin : '')).replace(/\/+$/, '') + '/v1/events';
  var domain = attr('cookie-domain');
  var checkoutHosts = ['buy.stripe.com'].concat(attr('checkout-domains').split(/[\s,]+/));
  var cookieless = privacy.indexOf('cookieless') >= 0;
  var optedOut = privacy.indexOf('dnt') >= 0 &&
      (nav.doNotTrack == '1' || w.doNotTrack == '1' || nav.globalPrivacyControl === true);

  // ---- Storage: first-party cookies; localStorage when cookies do not work; else memory only.
  // Memory is the only store in cookieless mode. Values carry their own expiry.
  var mem = {}, kind = 0, ls = false;  // kind: 0 memory, 1 cookie, 2 localStorage
  function cookieGet(k) {
    var m = d.cookie.match(new RegExp('(?:^|;\\s*)' + k + '=([^;]*)'));
    return m ? decodeURIComponent(m[1]) : '';
  }
  function cookieSet(k, v, age) {
    d.cookie = k + '=' + encodeURIComponent(v) + '; Max-Age=' + age + '; Path=/; SameSite=Lax' +
        (loc.protocol == 'https:' ? '; Secure' : '') + (domain ? '; Domain=' + domain : '');
  }
  function lsGet(k) {
    var r = JSON.parse(localStorage.getItem(S + k) || 'null');
    return r && r.e > now() ? r.v : '';
  }
  function lsSet(k, v, age) { localStorage.setItem(S + k, JSON.stringify({ v: v, e: now() + age * 1e3 })); }
  if (!cookieless && !optedOut) {
    try { cookieSet(S + 't', '1', 10); if (cookieGet(S + 't') == '1') { kind = 1; cookieSet(S + 't', '', 0); } } catch (e) {}
    try { lsSet('t', '1', 10); ls = lsGet('t') == '1'; localStorage.removeItem(S + 't'); } catch (e) {}
    if (!kind && ls) kind = 2;
  }
  function get(k) {
    try { if (kind == 1) return cookieGet(S + k); if (kind == 2) return lsGet(k); } catch (e) {}
    var r = mem[k];
    return r && r.e > now() ? r.v : '';
  }
  function put(k, v, age) {
    mem[k] = { v: v, e: now() + age * 1e3 };
    try { if (kind == 1) cookieSet(S + k, v, age); else if (kind == 2) lsSet(k, v, age); } catch (e) {}
  }
  // Checkout sessions already reported (localStorage first: it is not sent with every request).
  function sentGet() { try { if (ls) return lsGet('checkouts'); } catch (e) {} return get('checkouts'); }
  function sentPut(v) { try { if (ls) return lsSet('checkouts', v, 2592e3); } catch (e) {} put('checkouts', v, 2592e3); }

  function ensure(k, age) {
    var v = get(k);
    if (!VID.test(v)) v = newId();
    put(k, v, age);  // rolling: every call renews the lifetime
    return v;
  }
  function visitorId() { return optedOut ? null : ensure('visitor_id', 34560000); }  // 400 days
  function sessionId() { return optedOut ? null : ensure('session_id', 1800); }     // 30 min

  // ---- Sending: sendBeacon (text/plain, no CORS preflight), else fetch keepalive.
  function cut(s, n) { s = '' + (s || ''); return s.length > n ? s.slice(0, n) : s; }
  function send(type, extra) {
    if (optedOut || !site) return;
    var e = {
      type: type, site_id: site, visitor_id: visitorId(), session_id: sessionId(),
      event_id: rnd(12), occurred_at: now(), url: cut(loc.href, 4000)
    };
    for (var k in extra) e[k] = extra[k];
    var body = JSON.stringify(e);
    try { if (nav.sendBeacon(api, body)) return; } catch (x) {}
    try { fetch(api, { method: 'POST', body: body, keepalive: true, credentials: 'omit' }).catch(noop); } catch (x) {}
  }
  function obj(o) {  // a plain JSON object, or nothing (a circular or odd value is dropped)
    try { if (o && typeof o == 'object' && !Array.isArray(o)) return JSON.parse(JSON.stringify(o)); } catch (e) {}
  }

  // ---- Pageviews, on load and on single-page-app navigation.
  var last = '';
  function key(h) {  // a hash counts only as a hash route (#/... or #!...), not as an anchor
    var i = h.indexOf('#');
    return i < 0 || /^#[\/!]/.test(h.slice(i)) ? h : h.slice(0, i);
  }
  function pageview() {
    var href = loc.href;
    if (key(href) == last) return;
    var ref = last ? last : d.referrer;
    last = key(href);
    var tz = '';
    try { tz = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) {}
    send('pageview', {
      referrer: cut(ref, 4000), title: cut(d.title, 1000), screen: screen.width + 'x' + screen.height,
      language: nav.language || '', timezone: tz || ''
    });
    redirect();
  }
  // A Stripe Checkout success page: report each checkout session once.
  function redirect() {
    var q = new URLSearchParams(loc.search), cs = q.get('session_id') || q.get('stripe_session_id');
    if (!cs || !CS.test(cs)) return;
    var sent = sentGet().split('.');
    if (sent.indexOf(cs) >= 0) return;
    sentPut(sent.concat(cs).slice(-5).join('.'));
    // The id is derived from the checkout session so that consumers can drop a repeat even when
    // nothing could be remembered here (cookieless, storage blocked).
    send('checkout_redirect', { checkout_session_id: cs, event_id: cs.length < 98 ? 'r_' + cs : rnd(12) });
  }
  function hook(m) {
    var orig = history[m];
    if (orig) history[m] = function () {
      var r = orig.apply(this, arguments);
      spa();
      return r;
    };
  }
  var spa = safe(function () { pageview(); decorate(d); });

  // ---- Checkout links carry client_reference_id=<visitor id> (an existing one is kept).
  function checkoutHost(h) {
    for (var i = 0; i < checkoutHosts.length; i++) {
      var c = checkoutHosts[i];
      if (c && (h == c || h.slice(-c.length - 1) == '.' + c)) return true;
    }
  }
  function decorateLink(a) {
    var u = new URL(a.href), v;
    if (!/^https?:$/.test(u.protocol) || !checkoutHost(u.hostname) ||
        u.searchParams.has('client_reference_id') || !(v = visitorId()) || a._rt > 2) return;
    a._rt = (a._rt || 0) + 1;  // a few rewrites at most: no loop with a script resetting the href
    // Appended as text so the link's other parameters stay byte for byte as they were.
    a.href = u.origin + u.pathname + (u.search ? u.search + '&' : '?') + 'client_reference_id=' +
        v + u.hash;
  }
  function decorate(root) {
    if (root.tagName == 'A' && root.href) safe(decorateLink)(root);
    var links = root.querySelectorAll ? root.querySelectorAll('a[href]') : [];
    for (var i = 0; i < links.length; i++) safe(decorateLink)(links[i]);
  }

  // ---- Public API.
  function identify(email, traits) {
    if (typeof email != 'string' || email.trim().indexOf('@') < 1 || email.length > 320) return;
    send('identify', { email: email, traits: obj(traits) });
  }
  function track(name, props) {
    if (typeof name != 'string' || !name) return;
    send('custom', { name: cut(name, 200), props: obj(props) });
  }
  var rt = safe(function (m) {
    if ({}.hasOwnProperty.call(rt, m) && typeof rt[m] == 'function') return rt[m].apply(rt, [].slice.call(arguments, 1));
  });
  rt.loaded = true;
  rt.identify = safe(identify);
  rt.track = safe(track);
  rt.getVisitorId = safe(visitorId);
  rt.getSessionId = safe(sessionId);
  rt.ready = safe(function (fn) { fn(rt); });
  w.revtrace = rt;

  safe(function () {
    pageview();
    ['pushState', 'replaceState'].forEach(safe(hook));
    w.addEventListener('popstate', spa);
    // Late links: anything added or re-pointed after load.
    new MutationObserver(safe(function (list) {
      for (var i = 0; i < list.length; i++) {
        var r = list[i];
        if (r.type == 'attributes') decorate(r.target);
        for (var j = 0; j < r.addedNodes.length; j++) decorate(r.addedNodes[j]);
      }
    })).observe(d.documentElement, { childList: true, subtree: true, attributes: true, attributeFilter: ['href'] });
    decorate(d);
    // Opt-in: a submitted form with an email field identifies the visitor. The attribute alone,
    // or any value but false / 0 / off / no, turns it on.
    var ai = me.getAttribute && me.getAttribute('data-auto-identify');
    if (ai != null && !/^(false|0|off|no)$/i.test(ai)) d.addEventListener('submit', safe(function (e) {
      var f = e.target.querySelector('input[type=email],input[name*=email i]');
      if (f) identify(f.value);
    }), true);
  })();
  // Calls queued before the script loaded, in order: revtrace('track', ...) or revtrace.track(...).
  var q = prev && prev.q || [];
  for (var i = 0; i < q.length; i++) rt.apply(null, [].slice.call(q[i]));
})(window, document); } catch (e) {}
