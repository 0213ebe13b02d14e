#!/usr/bin/env node
// Validates topic records, one JSON value per line (NDJSON, as `kcat -C -e -f '%s\n'` prints),
// against schemas/<topic>.schema.json in ajv strict mode, plus the cross-field rules of
// topic-contract.mjs.
//
//   node validate-records.mjs <schemas dir> <topic name> <file|->
//
// Exit 0: "N records valid". Exit 1: some line failed (each is printed with its errors), or the
// file holds zero records (an empty capture must not pass a check). Exit 2: usage error.
import { readFileSync } from 'node:fs';
import { loadSchemas, recordErrors, SCHEMA_SUFFIX } from './topic-contract.mjs';

const MAX_REPORTED = 50; // failing lines printed in full; the rest are only counted

function main(argv) {
  if (argv.length !== 3) {
    console.error('usage: node validate-records.mjs <schemas dir> <topic name> <file|->');
    return 2;
  }
  const [schemaDir, topic, file] = argv;

  let validators;
  try {
    ({ validators } = loadSchemas(schemaDir));
  } catch (e) {
    console.error(`schema error: ${e.message}`);
    return 1;
  }
  if (!validators.has(topic)) {
    console.error(`no schema ${topic}${SCHEMA_SUFFIX} in ${schemaDir} (have: ${[...validators.keys()].join(', ')})`);
    return 2;
  }

  let text;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (e) {
    console.error(`cannot read ${file}: ${e.message}`);
    return 2;
  }

  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop(); // final newline
  let failed = 0;
  lines.forEach((raw, index) => {
    const lineNo = index + 1;
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    let errors;
    if (line.trim() === '') {
      // An empty Kafka value (or a tombstone printed as nothing) is not a record of any topic.
      errors = ['empty line (empty or null record value)'];
    } else {
      let record;
      try {
        record = JSON.parse(line);
      } catch (e) {
        errors = [`not JSON: ${e.message}`];
      }
      if (errors === undefined) errors = recordErrors(validators, topic, record);
    }
    if (errors.length > 0) {
      failed += 1;
      if (failed <= MAX_REPORTED) {
        console.error(`${file}:${lineNo}: invalid ${topic} record`);
        for (const msg of errors) console.error(`  ${msg}`);
      }
    }
  });

  const total = lines.length;
  if (total === 0) {
    console.error(`${file}: 0 records — nothing was validated (an empty capture does not pass)`);
    return 1;
  }
  if (failed > 0) {
    if (failed > MAX_REPORTED) console.error(`... ${failed - MAX_REPORTED} more failing lines not shown`);
    console.error(`${failed} of ${total} records invalid (${topic})`);
    return 1;
  }
  console.log(`${total} records valid`);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
