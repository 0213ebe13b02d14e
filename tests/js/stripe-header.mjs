#!/usr/bin/env node
// Stripe-Signature headers made by Stripe's own library (npm `stripe`), the independent oracle of
// the gateway's signature tests.
//
//   node stripe-header.mjs <payload file> <secret> <unix seconds>
//
// Prints the header (`t=...,v1=...`) on one line, exactly as stripe.webhooks.generateTestHeaderString
// returns it.
import { readFileSync } from 'node:fs';
import Stripe from 'stripe';

if (process.argv.length !== 5) {
  console.error('usage: node stripe-header.mjs <payload file> <secret> <unix seconds>');
  process.exit(2);
}
const [file, secret, timestamp] = process.argv.slice(2);
const stripe = new Stripe('sk_test_unused');
const payload = readFileSync(file, 'utf8');
console.log(stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp: Number(timestamp) }));
