// Shared by validate-records.mjs and validate-examples.mjs: loads schemas/<topic>.schema.json into
// one strict ajv instance and adds the cross-field rules JSON Schema cannot express.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

// Loaded dynamically only to turn a missing install into one clear line instead of a stack trace.
async function requireModule(name) {
  try {
    return (await import(name)).default;
  } catch (e) {
    if (e.code !== 'ERR_MODULE_NOT_FOUND') throw e;
    console.error(`cannot load ${name}: tests/js dependencies are not installed; run scripts/install-node-deps.sh`);
    process.exit(2);
  }
}
const Ajv2020 = await requireModule('ajv/dist/2020.js');
const addFormats = await requireModule('ajv-formats');

// The public topics. A schema file for a topic not listed here is an error too, so a new topic
// (or a .v2) is added here on purpose, together with its example.
export const TOPICS = [
  'revtrace.web-events.v1',
  'revtrace.checkout-redirects.v1',
  'revtrace.stripe-events.v1',
  'revtrace.attributed-revenue.v1',
  'revtrace.dead-letter.v1',
  'revtrace.ad-spend.v1',
  'revtrace.payment-links.v1',
];

export const SCHEMA_SUFFIX = '.schema.json';
export const ID_BASE = 'https://revtrace.dev/schemas/';

// strict: true makes ajv throw at compile time on unknown keywords, unknown formats, ignored
// keywords, missing "type" next to type-specific keywords and so on: a typo in a schema must fail
// the check, not silently validate nothing. allowUnionTypes permits ["string","null"], the one
// union the contract uses. allErrors so a failing record shows every problem at once.
export function createAjv() {
  const ajv = new Ajv2020({ strict: true, allowUnionTypes: true, allErrors: true });
  addFormats(ajv);
  return ajv;
}

// Returns Map topic -> compiled validate function. Throws (with the file name) on any schema
// problem; the caller turns that into exit code 1.
export function loadSchemas(dir, ajv = createAjv()) {
  const files = readdirSync(dir).filter((f) => f.endsWith(SCHEMA_SUFFIX)).sort();
  const schemas = new Map();
  for (const file of files) {
    const topic = file.slice(0, -SCHEMA_SUFFIX.length);
    let schema;
    try {
      schema = JSON.parse(readFileSync(join(dir, file), 'utf8'));
    } catch (e) {
      throw new Error(`${file}: not valid JSON: ${e.message}`);
    }
    const expectedId = `${ID_BASE}${file}`;
    if (schema.$id !== expectedId) {
      throw new Error(`${file}: $id is ${JSON.stringify(schema.$id)}, expected ${expectedId}`);
    }
    schemas.set(topic, schema);
  }
  const validators = new Map();
  for (const [topic, schema] of schemas) {
    try {
      validators.set(topic, ajv.compile(schema));
    } catch (e) {
      throw new Error(`${topic}${SCHEMA_SUFFIX}: does not compile in strict mode: ${e.message}`);
    }
  }
  return { validators, schemas };
}

function sum(values) {
  return values.reduce((a, b) => a + b, 0);
}

// Rules of the contract that JSON Schema cannot state (they relate two fields). Only called on
// records that already passed the schema, so field types can be trusted here.
// Returns a list of messages; empty = fine.
export function invariantErrors(topic, record) {
  const errors = [];
  if (topic === 'revtrace.attributed-revenue.v1') {
    const { amount, refunded, net, touches, credits, paid_at: paidAt, method } = record;
    if (refunded > amount) errors.push(`/refunded ${refunded} exceeds /amount ${amount}`);
    if (net !== amount - refunded) {
      errors.push(`/net ${net} != /amount - /refunded = ${amount - refunded}`);
    }
    if (method === 'unattributed' && touches.length !== 0) {
      errors.push(`/method is unattributed but /touches has ${touches.length} entries`);
    }
    touches.forEach((t, i) => {
      if (t.at > paidAt) errors.push(`/touches/${i}/at ${t.at} is after /paid_at ${paidAt}`);
    });
    for (const [model, shares] of Object.entries(credits)) {
      // Unknown (future) models are held to the same rule: one integer per touch.
      if (!Array.isArray(shares)) continue;
      if (shares.length !== touches.length) {
        errors.push(`/credits/${model} has ${shares.length} entries, /touches has ${touches.length}`);
      } else if (touches.length > 0 && sum(shares) !== amount) {
        errors.push(`/credits/${model} sums to ${sum(shares)}, /amount is ${amount}`);
      }
    }
  } else if (topic === 'revtrace.stripe-events.v1') {
    // The envelope fields are copies of what the raw payload says; a mismatch means the gateway
    // parsed one body and stored another.
    let event;
    try {
      event = JSON.parse(record.payload);
    } catch (e) {
      return [`/payload is not JSON: ${e.message}`];
    }
    if (event === null || typeof event !== 'object' || Array.isArray(event)) {
      return ['/payload is not a JSON object'];
    }
    const pairs = [
      ['event_id', 'id'],
      ['event_type', 'type'],
      ['livemode', 'livemode'],
      ['created', 'created'],
      ['api_version', 'api_version'],
    ];
    for (const [field, inPayload] of pairs) {
      const got = event[inPayload] ?? null;
      if (got !== record[field]) {
        errors.push(`/${field} ${JSON.stringify(record[field])} != payload ${inPayload} ${JSON.stringify(got)}`);
      }
    }
  }
  return errors;
}

// Schema + invariants for one parsed record. Returns a list of human-readable messages.
export function recordErrors(validators, topic, record) {
  const validate = validators.get(topic);
  if (!validate(record)) {
    return validate.errors.map(
      (e) => `${e.instancePath || '/'} ${e.message} (${e.keyword} ${JSON.stringify(e.params)})`,
    );
  }
  return invariantErrors(topic, record);
}

// Same, but as raw ajv error objects + invariant messages, for tests that assert *why* a record
// was rejected.
export function rejectionDetail(validators, topic, record) {
  const validate = validators.get(topic);
  if (!validate(record)) return { ajv: validate.errors, invariants: [] };
  return { ajv: [], invariants: invariantErrors(topic, record) };
}
