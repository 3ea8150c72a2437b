// The relay dashboard in real headless Chromium (Debian's /usr/bin/chromium,
// driven by puppeteer-core): a real `tunnel relay`, a real `tunnel connect`
// publishing a Node origin, and the page at /dashboard/ behind the admin
// token (given at the browser's login prompt). Checks:
//   - the page loads with no console errors, and with its strict CSP;
//   - the numbers it shows match /metrics (requests, bytes, latency and
//     time-to-first-byte percentiles as histogram_quantile reads the buckets,
//     limits hit, tunnels);
//   - a tunnel that attaches appears within 2 s; one that detaches disappears;
//   - it fits a phone's width;
//   - screenshots are saved under --artifacts.
//
//   node tests/e2e/dashboard_test.mjs --tunnel build/ci/apps/tunnel/tunnel \
//        --modules build/ci/tests/e2e/node_modules --artifacts build/ci/tests/e2e-artifacts
import { spawn, execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []));
for (const need of ['tunnel', 'modules', 'artifacts'])
  if (!args[need]) { console.error(`usage: dashboard_test.mjs --tunnel BIN --modules DIR --artifacts DIR (missing --${need})`); process.exit(2); }
const chromiumPath = args.chromium || '/usr/bin/chromium';
if (!fs.existsSync(chromiumPath)) {
  console.error(`${chromiumPath} is missing: run scripts/install-deps (it installs Debian's chromium)`);
  process.exit(1);
}
const require = createRequire(path.resolve(args.modules) + '/');
const puppeteer = require('puppeteer-core');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tunnel-dashboard-'));
fs.mkdirSync(args.artifacts, { recursive: true });
const children = [];
let failures = 0;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function check(what, ok, detail = '') {
  console.log(`[${ok ? 'PASS' : 'FAIL'}] ${what}${detail ? ': ' + detail : ''}`);
  if (!ok) failures++;
  return ok;
}

async function waitFor(pred, timeoutMs, stepMs = 25) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await pred();
    if (v || Date.now() >= end) return v;
    await sleep(stepMs);
  }
}

function secretFile(name, text) {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text + '\n', { mode: 0o600 });
  return p;
}

function start(argv, name) {
  const out = fs.openSync(path.join(dir, name + '.out'), 'w');
  const err = fs.openSync(path.join(dir, name + '.log'), 'w');
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', out, err], env: { ...process.env, HOME: dir } });
  children.push(child);
  child.name = name;
  return child;
}
const readFile = (name) => { try { return fs.readFileSync(path.join(dir, name), 'utf8'); } catch { return ''; } };

// ---------------------------------------------------------------- the relay
const jwtSecret = secretFile('jwt.secret', crypto.randomBytes(32).toString('base64url'));
const adminToken = crypto.randomBytes(24).toString('hex');
const adminTokenFile = secretFile('admin.token', adminToken);
fs.writeFileSync(path.join(dir, 'relay.yaml'),
  `listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nhost_key_file: ${path.join(dir, 'host_key')}\n` +
  `audit_log: ${path.join(dir, 'audit.jsonl')}\njwt:\n  secret_file: ${jwtSecret}\n` +
  `admin:\n  token_file: ${adminTokenFile}\n`);
const relay = start([args.tunnel, 'relay', '--config', path.join(dir, 'relay.yaml')], 'relay');
const ports = await waitFor(() => {
  const text = readFile('relay.out');
  const pub = /^public: .*:(\d+)$/m.exec(text);
  const adm = /^admin: .*:(\d+)$/m.exec(text);
  return pub && adm ? { pub: Number(pub[1]), admin: Number(adm[1]) } : null;
}, 20000);
if (!ports) throw new Error('tunnel relay did not print its ports: ' + readFile('relay.log'));
const adminUrl = `http://127.0.0.1:${ports.admin}`;

function adminGet(p) {
  return new Promise((resolve, reject) => {
    http.get(adminUrl + p, { headers: { Authorization: 'Bearer ' + adminToken } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    }).on('error', reject);
  });
}

// ---------------------------------------------------------------- the origin
const origin = http.createServer((req, res) => {
  // A few milliseconds of "work" so the latency histogram has something to show.
  setTimeout(() => { res.writeHead(200, { 'Content-Type': 'text/plain' }); res.end('hello from the origin\n'); }, 3);
});
await new Promise((r) => origin.listen(0, '127.0.0.1', r));
const originPort = origin.address().port;

function mint(tenant, allow) {
  return execFileSync(args.tunnel, ['token', '--secret-file', jwtSecret, '--tenant', tenant, '--allow', allow, '--ttl', '1h'],
    { encoding: 'utf8' }).trim();
}

// `tunnel connect` publishing NAME; resolves when it reports the name published.
async function connect(tenant, name) {
  const label = `connect-${tenant}-${name}`;
  const tokenFile = secretFile(label + '.token', mint(tenant, name));
  const child = start([args.tunnel, 'connect', `ws://127.0.0.1:${ports.pub}/v1/tunnel`, '--token-file', tokenFile,
    '--expose', `${name}=127.0.0.1:${originPort}`, '--json'], label);
  const ok = await waitFor(() => readFile(label + '.out').split('\n').some((l) => {
    try { const e = JSON.parse(l); return e.event === 'published' && e.name === name; } catch { return false; }
  }), 20000);
  if (!ok) throw new Error(`${label} did not publish: ${readFile(label + '.log')}`);
  return child;
}

function publicRequest(raw) {
  return new Promise((resolve) => {
    const s = net.connect(ports.pub, '127.0.0.1', () => s.write(raw));
    let data = '';
    s.on('data', (c) => (data += c));
    s.on('end', () => resolve(data));
    s.on('error', () => resolve(data));
  });
}

// ---------------------------------------------------------------- /metrics
function parseMetrics(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[3] || '').matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    samples.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return samples;
}
const sum = (samples, name, pred = () => true) =>
  samples.filter((s) => s.name === name && pred(s.labels)).reduce((a, s) => a + s.value, 0);

// Prometheus' histogram_quantile over the sum of every series' cumulative buckets.
function histogramQuantile(samples, name, q) {
  const byLe = new Map();
  for (const s of samples.filter((x) => x.name === name + '_bucket'))
    byLe.set(s.labels.le, (byLe.get(s.labels.le) || 0) + s.value);
  const buckets = [...byLe.entries()].map(([le, c]) => [le === '+Inf' ? Infinity : Number(le), c]).sort((a, b) => a[0] - b[0]);
  if (!buckets.length) return null;
  const total = buckets[buckets.length - 1][1];
  if (total === 0) return null;
  const rank = q * total;
  let i = buckets.findIndex(([, c]) => c >= rank);
  if (buckets[i][0] === Infinity) return buckets[buckets.length - 2][0];
  const lower = i === 0 ? 0 : buckets[i - 1][0];
  const below = i === 0 ? 0 : buckets[i - 1][1];
  return lower + (buckets[i][0] - lower) * ((rank - below) / (buckets[i][1] - below));
}

// ---------------------------------------------------------------- the test
let browser;
try {
  const first = await connect('alice', 'web');
  for (let i = 0; i < 25; i++) {
    const reply = await publicRequest(`GET /t/alice/web/hello/${i} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
    if (!reply.startsWith('HTTP/1.1 200')) throw new Error('a request through the tunnel failed: ' + reply.slice(0, 200));
  }
  // A limit hit: a request head larger than limits.max_header_bytes (431).
  const big = await publicRequest(`GET /t/alice/web/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(40000)}\r\n\r\n`);
  check('an oversized request head is refused (a limit to show)', big.startsWith('HTTP/1.1 431'), big.slice(0, 40));

  browser = await puppeteer.launch({
    executablePath: chromiumPath,
    headless: true,
    userDataDir: path.join(dir, 'chromium'),
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
  const page = await browser.newPage();
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push('page error: ' + e.message));
  page.on('requestfailed', (r) => { if (!r.url().endsWith('/events')) consoleErrors.push('request failed: ' + r.url()); });
  await page.setViewport({ width: 1280, height: 900 });
  // The browser's login prompt, answered with the admin token as the password.
  await page.authenticate({ username: 'admin', password: adminToken });
  const response = await page.goto(adminUrl + '/dashboard/', { waitUntil: 'load' });
  check('the page loads (200)', response.status() === 200, String(response.status()));
  const csp = response.headers()['content-security-policy'] || '';
  check('it is served with a strict Content-Security-Policy', csp.includes("default-src 'none'") && csp.includes("script-src 'self'") && !csp.includes('unsafe'), csp);
  check('and X-Content-Type-Options: nosniff', response.headers()['x-content-type-options'] === 'nosniff');
  check('the token is in neither the URL nor the page', !page.url().includes(adminToken) && !(await page.content()).includes(adminToken));

  const live = await page.waitForFunction(() => document.querySelector('#status').dataset.state === 'live' &&
    Number(document.body.dataset.snapshots || 0) >= 1, { timeout: 5000 }).then(() => true, () => false);
  check('the live feed connects and a snapshot is shown', live);
  check('the attached tunnel is listed', await page.$('tr[data-tenant="alice"] [data-name="web"]') !== null);

  // Numbers: once no traffic moves them, the page and /metrics agree.
  const field = (key) => page.$eval(`[data-field="${key}"]`, (e) => e.dataset.value);
  let mismatch = 'never compared';
  const agreed = await waitFor(async () => {
    const m = parseMetrics((await adminGet('/metrics')).body);
    const want = {
      'totals.requests': sum(m, 'relay_requests_total'),
      'totals.bytes_to_origin': sum(m, 'relay_bytes_total', (l) => l.direction === 'to_origin'),
      'totals.bytes_from_origin': sum(m, 'relay_bytes_total', (l) => l.direction === 'from_origin'),
      'latency.count': sum(m, 'relay_request_seconds_count'),
      'tunnel_count': sum(m, 'relay_active_tunnels'),
      'relay.attaches': sum(m, 'relay_attaches_total', (l) => l.outcome === 'attached'),
    };
    for (const q of ['p50', 'p95', 'p99']) {
      want['latency.' + q] = histogramQuantile(m, 'relay_request_seconds', Number(q.slice(1)) / 100);
      want['ttfb.' + q] = histogramQuantile(m, 'relay_time_to_first_byte_seconds', Number(q.slice(1)) / 100);
    }
    for (const [key, value] of Object.entries(want)) {
      const shown = await field(key);
      const ok = typeof value === 'number' && Number.isFinite(value) && shown !== '' &&
        Math.abs(Number(shown) - value) <= 1e-9 * Math.max(1, Math.abs(value));
      if (!ok) { mismatch = `${key}: page ${shown}, /metrics ${value}`; return false; }
    }
    // Every "limits hit" row is a /metrics sample with the same count.
    const rows = await page.$$eval('#limits tbody tr', (trs) => trs.map((tr) => ({
      metric: tr.dataset.metric, which: tr.dataset.which, count: Number(tr.querySelector('[data-value]').dataset.value) })));
    if (!rows.some((r) => r.metric === 'relay_limits_hit_total' && r.which === 'header_size')) { mismatch = 'no header_size row'; return false; }
    for (const r of rows) {
      const v = sum(m, r.metric, (l) => Object.values(l).includes(r.which) || (r.which === '' && !Object.keys(l).length));
      if (v !== r.count) { mismatch = `${r.metric} ${r.which}: page ${r.count}, /metrics ${v}`; return false; }
    }
    const alice = await page.$eval('#tenants tr[data-tenant="alice"] td:nth-child(3)', (e) => Number(e.dataset.value));
    const aliceWant = sum(m, 'relay_requests_total', (l) => l.tenant === 'alice');
    if (alice !== aliceWant) { mismatch = `alice's requests: page ${alice}, /metrics ${aliceWant}`; return false; }
    return want['totals.requests'] >= 25;
  }, 5000, 250);
  check('the numbers shown match /metrics', agreed, agreed ? '' : mismatch);
  const shownP95 = await page.$eval('[data-field="latency.p95"]', (e) => e.textContent);
  check('latency is shown in readable units', /\d+(\.\d+)? (ms|µs|s)$/.test(shownP95), shownP95);
  check('the attach is in the recent audit events', await page.$('#audit tr[data-event="attach"]') !== null);

  // A tunnel that attaches appears within 2 s, one that detaches disappears.
  const second = await connect('bob', 'api');
  const attachedAt = Date.now();
  const appeared = await page.waitForSelector('tr[data-tenant="bob"] [data-name="api"]', { timeout: 5000 }).then(() => true, () => false);
  const appearMs = Date.now() - attachedAt;
  check('a tunnel that attaches appears within 2 s', appeared && appearMs <= 2000, `${appearMs} ms`);
  const bobAccess = await page.$eval('tr[data-tenant="bob"] [data-name="api"] .access', (e) => e.textContent).catch(() => '');
  check('with its access mode', bobAccess === '(public)', bobAccess);
  const bobIp = await page.$eval('#tunnels tr[data-tenant="bob"] td:nth-child(3)', (e) => e.textContent).catch(() => '');
  check('and its client IP', bobIp === '127.0.0.1', bobIp);
  await page.screenshot({ path: path.join(args.artifacts, 'dashboard-desktop.png'), fullPage: true });

  second.kill('SIGTERM');
  const detachedAt = Date.now();
  const gone = await page.waitForFunction(() => !document.querySelector('#tunnels tr[data-tenant="bob"]'), { timeout: 5000 }).then(() => true, () => false);
  const goneMs = Date.now() - detachedAt;
  check('a tunnel that detaches disappears within 2 s', gone && goneMs <= 2000, `${goneMs} ms`);
  check('the other stays', await page.$('#tunnels tr[data-tenant="alice"]') !== null);

  // A phone: nothing wider than the screen, tables as stacked rows.
  await page.setViewport({ width: 390, height: 844, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  await sleep(300);
  const widths = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth }));
  check('on a phone (390 px) nothing is wider than the screen', widths.scroll <= widths.client, JSON.stringify(widths));
  const headHidden = await page.$eval('#tunnels thead', (e) => getComputedStyle(e).display === 'none');
  check('and tables turn into stacked rows', headHidden);
  await page.screenshot({ path: path.join(args.artifacts, 'dashboard-phone.png'), fullPage: true });

  check('no console errors', consoleErrors.length === 0, consoleErrors.join(' | '));
  first.kill('SIGTERM');
} catch (e) {
  check('the test ran to its end', false, e.stack || String(e));
} finally {
  if (browser) await browser.close().catch(() => {});
  origin.close();
  for (const c of children.reverse()) if (c.exitCode === null) c.kill('SIGTERM');
  await sleep(300);
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  if (failures) {
    for (const f of ['relay.log']) fs.copyFileSync(path.join(dir, f), path.join(args.artifacts, f));
    console.log(`kept ${dir}; relay log copied to ${args.artifacts}`);
  } else {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log(failures ? `dashboard: ${failures} checks FAILED` : 'dashboard: all checks passed');
  console.log(`screenshots: ${args.artifacts}`);
  process.exit(failures ? 1 : 0);
}
