// Shared helpers of revtrace's browser tests (node --test): the real `revtrace gateway` on
// loopback against the ctest `kafka` fixture's broker, topic reads with kcat, headless Chromium
// (Debian's /usr/bin/chromium driven by playwright-core from tests/js), and deadline-bound waiting.
// Never bare sleeps: waitFor polls a condition until a deadline and then fails naming it.
import { spawn, execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

// playwright-core is pinned in tests/js/package-lock.json (scripts/install-node-deps.sh).
const require = createRequire(new URL('../js/package.json', import.meta.url));
export const { chromium } = require('playwright-core');

export const sourceDir = process.env.REVTRACE_SOURCE_DIR ?? new URL('../..', import.meta.url).pathname;

// The bootstrap address of the fixture's broker; throws (fails the test) when there is none.
export function kafkaBootstrap() {
  const file = process.env.REVTRACE_TEST_BOOTSTRAP_FILE;
  if (!file) throw new Error('REVTRACE_TEST_BOOTSTRAP_FILE is not set: run this test through ctest');
  const text = readFileSync(file, 'utf8').trim();
  if (!text) throw new Error(`${file} is empty: deploy/kafka/start.sh did not start a broker`);
  return text;
}

export function unique(prefix) {
  return `${prefix}${Date.now().toString(36)}${randomBytes(4).toString('hex')}`;
}

// A port a server can listen on now, from deploy/kafka/free_port.py (below the kernel's ephemeral
// range, where no outgoing connection takes it first).
export function freePort() {
  return new Promise((resolve, reject) => {
    execFile('python3', [join(sourceDir, 'deploy/kafka/free_port.py')], (error, stdout) => {
      if (error) reject(error);
      else resolve(Number(stdout.trim()));
    });
  });
}

// Polls `condition` (sync or async) until it returns a truthy value, which is returned; throws
// "timed out waiting for <what>" after `timeout` ms.
export async function waitFor(what, condition, { timeout = 30000, interval = 150 } = {}) {
  const deadline = Date.now() + timeout;
  let lastError;
  for (;;) {
    try {
      const v = await condition();
      if (v) return v;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}` +
                      (lastError ? ` (last error: ${lastError.message})` : ''));
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

function run(cmd, args, { timeout = 60000 } = {}) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

// Every record of a topic, from the beginning to the current end of every partition, parsed as
// JSON (the values revtrace writes are single-line JSON).
export async function readTopic(bootstrap, topic) {
  const out = await run('kcat', ['-C', '-b', bootstrap, '-t', topic, '-o', 'beginning', '-e', '-q',
                                 '-f', '%s\n']);
  return out.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
}

// Produces [key, value] pairs (single-line strings without tabs) to a topic with kcat.
export function produce(bootstrap, topic, pairs) {
  return new Promise((resolve, reject) => {
    const child = execFile('kcat', ['-P', '-b', bootstrap, '-t', topic, '-K', '\t'], { timeout: 60000 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`kcat -P -t ${topic}: ${err.message}\n${stderr}`));
        else resolve();
      });
    child.stdin.end(pairs.map(([k, v]) => `${k}\t${v}\n`).join(''));
  });
}

// A gateway of its own (own topic prefix, own sites) as a child process of the revtrace binary.
// `sites`: [{id, allowed_origins: [...]}].
export async function startGateway({ sites, name = 'browser' }) {
  const bin = process.env.REVTRACE_BINARY;
  if (!bin) throw new Error('REVTRACE_BINARY is not set: run this test through ctest');
  const bootstrap = kafkaBootstrap();
  const dir = mkdtempSync(join(tmpdir(), `revtrace-${name}-`));
  const prefix = `${unique(name)}.`;
  const port = await freePort();
  const toml = (list) => `[${list.map((s) => JSON.stringify(s)).join(', ')}]`;
  const config = join(dir, 'revtrace.toml');
  writeFileSync(config, [
    'log_level = "info"',
    '[kafka]', `bootstrap = "${bootstrap}"`, 'partitions = 1', `topic_prefix = "${prefix}"`,
    '[gateway]', `listen = "127.0.0.1:${port}"`, 'threads = 2',
    ...sites.flatMap((s) => ['[[sites]]', `id = "${s.id}"`,
                             `allowed_origins = ${toml(s.allowed_origins ?? [])}`]),
    '',
  ].join('\n'));
  await run(bin, ['topics', 'create', '--config', config], { timeout: 90000 });
  const logFile = join(dir, 'gateway.log');
  const log = openSync(logFile, 'a');
  const child = spawn(bin, ['gateway', '--config', config], { stdio: ['ignore', log, log] });
  let exited = null;
  child.on('exit', (code, signal) => { exited = code ?? signal; });
  const base = `http://127.0.0.1:${port}`;
  await waitFor(`the gateway to answer /healthz (log ${logFile})`, async () => {
    if (exited !== null) throw new Error(`gateway exited (${exited}): ${readFileSync(logFile, 'utf8')}`);
    try {
      return (await fetch(`${base}/healthz`)).ok;
    } catch {
      return false;
    }
  }, { timeout: 30000 });
  return {
    base, port, dir, prefix, bootstrap,
    topic: (name) => `${prefix}${name}`,
    log: () => readFileSync(logFile, 'utf8'),
    async stop() {
      if (exited !== null) return exited;
      const done = new Promise((r) => child.on('exit', (code) => r(code)));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 30000);
      const code = await done;
      clearTimeout(timer);
      return code;
    },
  };
}

export function launchChromium() {
  return chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
}
