#!/usr/bin/env node
// Self-test of the topic contract:
//   node validate-examples.mjs <schemas dir>
// 1. every schema compiles in ajv strict mode, with the expected $id, one per public topic;
// 2. every property in every schema has a description;
// 3. schemas/examples/<topic>.json is valid (schema + cross-field rules);
// 4. deliberately bad records are rejected, each for the reason it was built for (so this check
//    can fail), and a few edge-case good records (unknown field, unattributed payment, ...) pass.
// Prints one line per check and a closing "N passed, N failed"; exit 1 on any failure.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TOPICS, loadSchemas, recordErrors, rejectionDetail } from './topic-contract.mjs';

let passed = 0;
let failed = 0;
function check(name, problems) {
  if (problems.length === 0) {
    passed += 1;
    console.log(`ok - ${name}`);
  } else {
    failed += 1;
    console.log(`not ok - ${name}`);
    for (const p of problems) console.log(`    ${p}`);
  }
}

const clone = (v) => structuredClone(v);

// Walks a schema and returns the JSON pointer of every property definition lacking a description.
function undocumentedProperties(node, pointer = '') {
  if (node === null || typeof node !== 'object') return [];
  const missing = [];
  if (!Array.isArray(node) && node.properties && typeof node.properties === 'object') {
    for (const [name, def] of Object.entries(node.properties)) {
      // Inside if/then, properties only restate a constraint of an already documented property.
      const conditional = /\/(if|then|else)(\/|$)/.test(pointer);
      if (!conditional && (typeof def !== 'object' || typeof def.description !== 'string' || def.description === '')) {
        missing.push(`${pointer}/properties/${name}`);
      }
    }
  }
  for (const [key, child] of Object.entries(node)) {
    missing.push(...undocumentedProperties(child, `${pointer}/${key}`));
  }
  return missing;
}

// Each case mutates a copy of the topic's example and names what must reject it: either an ajv
// error (keyword + instancePath, and missingProperty for "required") or an invariant message
// fragment. A record rejected for some other reason fails the case: it would prove nothing.
const BAD = [
  { topic: 'revtrace.attributed-revenue.v1', name: 'negative amount', edit: (r) => { r.amount = -4900; }, keyword: 'minimum', path: '/amount' },
  { topic: 'revtrace.attributed-revenue.v1', name: 'upper-case currency', edit: (r) => { r.currency = 'USD'; }, keyword: 'pattern', path: '/currency' },
  { topic: 'revtrace.attributed-revenue.v1', name: 'revision 0', edit: (r) => { r.revision = 0; }, keyword: 'minimum', path: '/revision' },
  { topic: 'revtrace.attributed-revenue.v1', name: 'fractional credit', edit: (r) => { r.credits.linear = [2450.5, 2449.5]; }, keyword: 'type', path: '/credits/linear/0' },
  { topic: 'revtrace.attributed-revenue.v1', name: 'credits as strings', edit: (r) => { r.credits.first_touch = ['4900', '0']; }, keyword: 'type', path: '/credits/first_touch/0' },
  { topic: 'revtrace.attributed-revenue.v1', name: 'unknown method', edit: (r) => { r.method = 'guess'; }, keyword: 'enum', path: '/method' },
  { topic: 'revtrace.attributed-revenue.v1', name: 'charge id in payment_intent', edit: (r) => { r.stripe.payment_intent = r.stripe.charge; }, keyword: 'pattern', path: '/stripe/payment_intent' },
  { topic: 'revtrace.attributed-revenue.v1', name: 'stripe.invoice missing', edit: (r) => { delete r.stripe.invoice; }, keyword: 'required', path: '/stripe', missing: 'invoice' },
  { topic: 'revtrace.attributed-revenue.v1', name: 'paid_at in seconds', edit: (r) => { r.paid_at = Math.floor(r.paid_at / 1000); }, keyword: 'minimum', path: '/paid_at' },
  { topic: 'revtrace.attributed-revenue.v1', name: 'email_hash not hex', edit: (r) => { r.email_hash = 'jane.doe@example.com'; }, keyword: 'pattern', path: '/email_hash' },
  { topic: 'revtrace.attributed-revenue.v1', name: 'time_decay credits do not sum to amount', edit: (r) => { r.credits.time_decay = [1303, 3596]; }, invariant: '/credits/time_decay sums to 4899' },
  { topic: 'revtrace.attributed-revenue.v1', name: 'credits not aligned with touches', edit: (r) => { r.credits.linear = [4900]; }, invariant: '/credits/linear has 1 entries, /touches has 2' },
  { topic: 'revtrace.attributed-revenue.v1', name: 'net != amount - refunded', edit: (r) => { r.refunded = 900; }, invariant: '/net 4900 != /amount - /refunded = 4000' },
  { topic: 'revtrace.attributed-revenue.v1', name: 'touch after the payment', edit: (r) => { r.touches[1].at = r.paid_at + 1; }, invariant: '/touches/1/at' },
  { topic: 'revtrace.web-events.v1', name: 'missing site_id', edit: (r) => { delete r.site_id; }, keyword: 'required', path: '', missing: 'site_id' },
  { topic: 'revtrace.web-events.v1', name: 'identify without email', edit: (r) => { r.type = 'identify'; }, keyword: 'required', path: '', missing: 'email' },
  { topic: 'revtrace.web-events.v1', name: 'custom without name', edit: (r) => { r.type = 'custom'; }, keyword: 'required', path: '', missing: 'name' },
  { topic: 'revtrace.web-events.v1', name: 'pageview without url', edit: (r) => { delete r.url; }, keyword: 'required', path: '', missing: 'url' },
  { topic: 'revtrace.web-events.v1', name: 'unknown type', edit: (r) => { r.type = 'click'; }, keyword: 'enum', path: '/type' },
  { topic: 'revtrace.web-events.v1', name: 'received_at in seconds', edit: (r) => { r.received_at = 1743757923; }, keyword: 'minimum', path: '/received_at' },
  { topic: 'revtrace.web-events.v1', name: 'country not alpha-2', edit: (r) => { r.country = 'usa'; }, keyword: 'pattern', path: '/country' },
  { topic: 'revtrace.web-events.v1', name: 'relative url', edit: (r) => { r.url = '/pricing?utm_source=x'; }, keyword: 'pattern', path: '/url' },
  { topic: 'revtrace.web-events.v1', name: 'site_id with a slash', edit: (r) => { r.site_id = 'acme/shop'; }, keyword: 'pattern', path: '/site_id' },
  { topic: 'revtrace.checkout-redirects.v1', name: 'checkout_session_id without cs_', edit: (r) => { r.checkout_session_id = 'pi_3RDs9tL2kQ8mXv4Z1a7BcD2e'; }, keyword: 'pattern', path: '/checkout_session_id' },
  { topic: 'revtrace.checkout-redirects.v1', name: 'wrong type', edit: (r) => { r.type = 'pageview'; }, keyword: 'const', path: '/type' },
  { topic: 'revtrace.checkout-redirects.v1', name: 'missing visitor_id', edit: (r) => { delete r.visitor_id; }, keyword: 'required', path: '', missing: 'visitor_id' },
  { topic: 'revtrace.stripe-events.v1', name: 'event_id without evt_', edit: (r) => { r.event_id = 'ev_1RDs9vL2kQ8mXv4ZqW3eR5tY'; }, keyword: 'pattern', path: '/event_id' },
  { topic: 'revtrace.stripe-events.v1', name: 'created in milliseconds', edit: (r) => { r.created *= 1000; }, keyword: 'maximum', path: '/created' },
  { topic: 'revtrace.stripe-events.v1', name: 'livemode as a string', edit: (r) => { r.livemode = 'true'; }, keyword: 'type', path: '/livemode' },
  { topic: 'revtrace.stripe-events.v1', name: 'payload parsed instead of kept raw', edit: (r) => { r.payload = JSON.parse(r.payload); }, keyword: 'type', path: '/payload' },
  { topic: 'revtrace.stripe-events.v1', name: 'envelope disagrees with payload', edit: (r) => { r.event_type = 'charge.succeeded'; }, invariant: '/event_type "charge.succeeded" != payload type' },
  { topic: 'revtrace.dead-letter.v1', name: 'base64 original that is not base64', edit: (r) => { r.original_encoding = 'base64'; }, keyword: 'pattern', path: '/original' },
  { topic: 'revtrace.dead-letter.v1', name: 'unknown encoding', edit: (r) => { r.original_encoding = 'latin1'; }, keyword: 'enum', path: '/original_encoding' },
  { topic: 'revtrace.dead-letter.v1', name: 'negative partition', edit: (r) => { r.partition = -1; }, keyword: 'minimum', path: '/partition' },
  { topic: 'revtrace.dead-letter.v1', name: 'key missing (must be null, not absent)', edit: (r) => { delete r.key; }, keyword: 'required', path: '', missing: 'key' },
  { topic: 'revtrace.ad-spend.v1', name: 'livemode as a string', edit: (r) => { r.livemode = 'false'; }, keyword: 'type', path: '/livemode' },
  { topic: 'revtrace.ad-spend.v1', name: 'livemode as a number', edit: (r) => { r.livemode = 0; }, keyword: 'type', path: '/livemode' },
  { topic: 'revtrace.ad-spend.v1', name: 'livemode null', edit: (r) => { r.livemode = null; }, keyword: 'type', path: '/livemode' },
];

// Edge cases that must be accepted.
const GOOD = [
  { topic: 'revtrace.web-events.v1', name: 'unknown extra field is ignored (forward compatibility)', edit: (r) => { r.experiment = { id: 'hero-b' }; r.device.gpu = 'x'; } },
  { topic: 'revtrace.web-events.v1', name: 'identify with email and traits, no url', edit: (r) => { r.type = 'identify'; delete r.url; r.email = ' Jane.Doe@Example.com '; r.traits = { plan: 'pro' }; } },
  { topic: 'revtrace.web-events.v1', name: 'custom with name and props, minimal fields', edit: (r) => { for (const k of ['session_id', 'occurred_at', 'referrer', 'title', 'device', 'country', 'screen', 'language', 'timezone']) delete r[k]; r.type = 'custom'; r.name = 'signup'; r.props = { plan: 'pro' }; } },
  { topic: 'revtrace.web-events.v1', name: 'url with WHATWG-unescaped query characters', edit: (r) => { r.url = 'https://acme-shop.example/?q={a|b}&utm_source=x'; } },
  {
    topic: 'revtrace.attributed-revenue.v1',
    name: 'unattributed payment: no touches, all credits empty',
    edit: (r) => {
      Object.assign(r, { method: 'unattributed', visitor_ids: [], email_hash: null, touches: [], revision: 1 });
      for (const k of Object.keys(r.credits)) r.credits[k] = [];
    },
  },
  { topic: 'revtrace.attributed-revenue.v1', name: 'partially refunded, net reduced', edit: (r) => { r.refunded = 900; r.net = 4000; r.revision = 3; } },
  { topic: 'revtrace.attributed-revenue.v1', name: 'zero-decimal currency', edit: (r) => { r.currency = 'jpy'; r.amount = 800; r.net = 800; r.credits = { first_touch: [800, 0], last_touch: [0, 800], last_non_direct: [800, 0], linear: [400, 400], position_based: [400, 400], time_decay: [213, 587] }; } },
  {
    topic: 'revtrace.stripe-events.v1',
    name: 'api source, api_version null',
    edit: (r) => {
      const ev = JSON.parse(r.payload);
      delete ev.api_version;
      Object.assign(r, { source: 'api', api_version: null, payload: JSON.stringify(ev) });
    },
  },
  { topic: 'revtrace.ad-spend.v1', name: 'livemode false (spend against test-mode revenue)', edit: (r) => { r.livemode = false; } },
  { topic: 'revtrace.ad-spend.v1', name: 'livemode absent (live spend, written before the field)', edit: (r) => { delete r.livemode; } },
  { topic: 'revtrace.dead-letter.v1', name: 'binary value as base64, null key', edit: (r) => { Object.assign(r, { key: null, original: Buffer.from([0xff, 0xfe, 0x00, 0x7b]).toString('base64'), original_encoding: 'base64' }); } },
];

function explainReject(validators, c, record) {
  const { ajv, invariants } = rejectionDetail(validators, c.topic, record);
  if (ajv.length === 0 && invariants.length === 0) return ['accepted, but must be rejected'];
  if (c.invariant) {
    if (ajv.length > 0) return ['rejected by the schema, expected the invariant', ...ajv.map((e) => `${e.instancePath} ${e.message}`)];
    if (invariants.some((m) => m.includes(c.invariant))) return [];
    return [`expected invariant message containing ${JSON.stringify(c.invariant)}`, ...invariants];
  }
  const hit = ajv.some((e) => e.keyword === c.keyword && e.instancePath === c.path && (c.missing === undefined || e.params.missingProperty === c.missing));
  if (hit) return [];
  return [`expected ${c.keyword} at "${c.path}"${c.missing ? ` (missing ${c.missing})` : ''}, got:`, ...ajv.map((e) => `${e.instancePath} ${e.keyword}: ${e.message}`), ...invariants];
}

function main(argv) {
  if (argv.length !== 1) {
    console.error('usage: node validate-examples.mjs <schemas dir>');
    return 2;
  }
  const [dir] = argv;

  let loaded;
  try {
    loaded = loadSchemas(dir);
  } catch (e) {
    check('schemas compile in strict mode', [e.message]);
    console.log(`validate-examples: ${passed} passed, ${failed} failed`);
    return 1;
  }
  const { validators, schemas } = loaded;
  check(`${schemas.size} schemas compile in strict mode with the expected $id`, []);

  const have = [...schemas.keys()].sort();
  const want = [...TOPICS].sort();
  check('one schema per public topic, no others', JSON.stringify(have) === JSON.stringify(want) ? [] : [`have ${have.join(', ')}`, `want ${want.join(', ')}`]);

  for (const [topic, schema] of schemas) {
    check(`${topic}: every property has a description`, undocumentedProperties(schema).map((p) => `no description at ${p}`));
  }

  const examples = new Map();
  for (const topic of TOPICS) {
    const file = join(dir, 'examples', `${topic}.json`);
    if (!existsSync(file)) {
      check(`${topic}: example is valid`, [`missing ${file}`]);
      continue;
    }
    let record;
    try {
      record = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      check(`${topic}: example is valid`, [`${file}: ${e.message}`]);
      continue;
    }
    examples.set(topic, record);
    if (validators.has(topic)) check(`${topic}: example is valid`, recordErrors(validators, topic, record));
  }

  for (const c of BAD) {
    if (!examples.has(c.topic) || !validators.has(c.topic)) {
      check(`${c.topic}: rejects ${c.name}`, ['no schema or example to start from']);
      continue;
    }
    const record = clone(examples.get(c.topic));
    c.edit(record);
    check(`${c.topic}: rejects ${c.name}`, explainReject(validators, c, record));
  }
  for (const c of GOOD) {
    if (!examples.has(c.topic) || !validators.has(c.topic)) {
      check(`${c.topic}: accepts ${c.name}`, ['no schema or example to start from']);
      continue;
    }
    const record = clone(examples.get(c.topic));
    c.edit(record);
    check(`${c.topic}: accepts ${c.name}`, recordErrors(validators, c.topic, record));
  }

  console.log(`validate-examples: ${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

process.exitCode = main(process.argv.slice(2));
