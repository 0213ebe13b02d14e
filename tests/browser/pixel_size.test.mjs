// The pixel's budget: at most 4 KB gzipped (zlib's default level, as a web server compresses it),
// served as one self-contained classic script that parses on its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Script } from 'node:vm';
import { gzipSync } from 'node:zlib';

const root = process.env.REVTRACE_SOURCE_DIR ?? new URL('../..', import.meta.url).pathname;
const file = `${root}/ingest/pixel/revtrace.js`;
const source = readFileSync(file);

test('revtrace.js is at most 4096 bytes gzipped', () => {
  const gzipped = gzipSync(source).length;
  console.log(`revtrace.js: ${source.length} bytes, ${gzipped} bytes gzipped`);
  assert.ok(gzipped <= 4096, `${gzipped} bytes gzipped is over the 4096-byte budget`);
});

test('revtrace.js is a classic script with no imports', () => {
  assert.doesNotThrow(() => new Script(source.toString('utf8'), { filename: file }));
  assert.doesNotMatch(source.toString('utf8'), /^\s*(import|export)\s/m);
});

test('revtrace.js does not throw even where nothing it needs exists', () => {
  // A hostile environment: no window or document at all. The script must swallow the failure.
  const script = new Script(source.toString('utf8'), { filename: file });
  assert.doesNotThrow(() => script.runInNewContext({}));
});
