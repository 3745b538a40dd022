// Shared by run.mjs (the scenarios) and measure.mjs (fleet render timings): starts a real
// `ferrite serve` on free ports with a temporary SQLite database and NoSec, creates users, starts
// simulated meters, and launches Debian's chromium through playwright-core (no browser download).
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, mkdirSync, openSync, existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { tmpdir, homedir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const targetDir = process.env.CARGO_TARGET_DIR || join(homedir(), '.cache/ferrite/target');
export const bin = {
  ferrite: process.env.FERRITE_BIN || join(targetDir, 'debug/ferrite'),
  sim: process.env.FERRITE_SIM_BIN || join(targetDir, 'debug/ferrite-sim'),
};
export const consoleDir = process.env.FERRITE_CONSOLE_DIR || join(targetDir, 'console-dist');
export const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
// The flags measured to work headless in a container (shared/STACK-NOTES.md); playwright-core
// adds --headless and its own empty --user-data-dir.
export const chromiumArgs = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

export const PASSWORD = 'correct horse battery staple';

function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/// Checks the files the harness needs; names what is missing and how to get it.
export function checkPrerequisites() {
  const missing = [];
  if (!existsSync(bin.ferrite)) missing.push(`${bin.ferrite} (cargo build -p server)`);
  if (!existsSync(bin.sim)) missing.push(`${bin.sim} (cargo build -p client-sim)`);
  if (!existsSync(join(consoleDir, 'index.html'))) missing.push(`${consoleDir}/index.html (bash scripts/console.sh)`);
  if (!existsSync(chromiumPath)) missing.push(`${chromiumPath} (apt-get install chromium)`);
  return missing;
}

/// A running server with its own database, ports and token. `stop()` ends it and its meters.
export async function startServer({ log = 'server.log' } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'ferrite-browser-'));
  const [httpPort, coapPort, coapsPort, bsCoapPort, bsCoapsPort] = [
    await freeTcpPort(), await freeUdpPort(), await freeUdpPort(), await freeUdpPort(), await freeUdpPort(),
  ];
  const token = randomBytes(24).toString('hex');
  const env = {
    ...process.env,
    FERRITE_HTTP_ADDR: `127.0.0.1:${httpPort}`,
    FERRITE_COAP_ADDR: `127.0.0.1:${coapPort}`,
    FERRITE_COAPS_ADDR: `127.0.0.1:${coapsPort}`,
    // The bootstrap server's default ports (5783/5784) may be taken by another run.
    FERRITE_BS_COAP_ADDR: `127.0.0.1:${bsCoapPort}`,
    FERRITE_BS_COAPS_ADDR: `127.0.0.1:${bsCoapsPort}`,
    FERRITE_NOSEC: 'true',
    FERRITE_DATABASE_URL: `sqlite://${join(dir, 'ferrite.db')}`,
    FERRITE_SECRET_KEY: randomBytes(32).toString('hex'),
    FERRITE_API_TOKEN: token,
    FERRITE_CONSOLE_DIR: consoleDir,
    RUST_LOG: process.env.RUST_LOG || 'info',
  };
  delete env.FERRITE_CONFIG;
  const users = {};
  for (const [name, role] of [['alice', 'admin'], ['maria', 'fleet-manager'], ['fred', 'field-service']]) {
    execFileSync(bin.ferrite, ['user', 'add', '--name', name, '--role', role], {
      env: { ...env, FERRITE_USER_PASSWORD: PASSWORD },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    users[name] = role;
  }
  const logPath = join(dir, log);
  const out = openSync(logPath, 'a');
  const server = spawn(bin.ferrite, ['serve'], { env, stdio: ['ignore', out, out] });
  const children = [server];
  const base = `http://127.0.0.1:${httpPort}`;
  let exited = null;
  server.on('exit', (code, signal) => { exited = { code, signal }; });
  for (let i = 0; ; i++) {
    if (exited) throw new Error(`ferrite serve exited (${JSON.stringify(exited)}); log: ${logPath}\n${tail(logPath)}`);
    try {
      const response = await fetch(`${base}/`);
      if (response.ok) break;
    } catch { /* not listening yet */ }
    if (i > 300) throw new Error(`ferrite serve did not answer on ${base} within 30 s; log: ${logPath}`);
    await sleep(100);
  }

  const api = async (method, path, body, contentType = 'application/json') => {
    const response = await fetch(`${base}/api/v1${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined ? { 'content-type': contentType } : {}),
      },
      body: body === undefined ? undefined : contentType === 'application/json' ? JSON.stringify(body) : body,
    });
    const text = await response.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: response.status, json, text };
  };

  return {
    dir, base, token, env, api, users, logPath, coapPort,
    /// Starts `ferrite-sim run` with NoSec meters entered in the registry first (endpoints
    /// `<prefix>000001`…, tagged `site=<site>`); resolves once every one is registered.
    async startMeters(count, extraArgs = [], { prefix = 'sim-', site = 'lab' } = {}) {
      const endpoints = Array.from({ length: count }, (_, k) => `${prefix}${String(k + 1).padStart(6, '0')}`);
      for (const [k, endpoint] of endpoints.entries()) {
        const created = await api('POST', '/devices', {
          endpoint, security_mode: 'nosec', model: 'SIM-1', serial: `${prefix}S${k + 1}`, tags: { site },
        });
        if (created.status !== 200 && created.status !== 201 && created.status !== 409) {
          throw new Error(`POST /devices ${endpoint}: ${created.status} ${created.text}`);
        }
      }
      const simOut = openSync(join(dir, `sim-${prefix}log`), 'a');
      const sim = spawn(bin.sim, [
        'run', '--server', `coap://127.0.0.1:${coapPort}`, '--meters', String(count),
        '--endpoint-prefix', prefix, '--progress', 'none', ...extraArgs,
      ], { env: { ...process.env, FERRITE_API_TOKEN: '' }, stdio: ['ignore', simOut, simOut] });
      children.push(sim);
      // Registered = the device answer carries a live registration.
      for (let i = 0; ; i++) {
        const devices = await Promise.all(endpoints.map((e) => api('GET', `/devices/${e}`)));
        if (devices.every((d) => d.json && d.json.registration)) return endpoints;
        if (i > 300) throw new Error(`the simulated meters did not register within 60 s; see ${join(dir, `sim-${prefix}log`)}`);
        await sleep(200);
      }
    },
    async stop() {
      for (const child of children.reverse()) {
        if (child.exitCode === null) {
          child.kill('SIGTERM');
          await Promise.race([new Promise((r) => child.once('exit', r)), sleep(5000)]);
          if (child.exitCode === null) child.kill('SIGKILL');
        }
      }
    },
  };
}

function tail(path) {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-20).join('\n');
  } catch {
    return '';
  }
}

export async function launchBrowser() {
  return chromium.launch({ executablePath: chromiumPath, args: chromiumArgs, headless: true });
}

export function screenshotDir() {
  const dir = process.env.FERRITE_SCREENSHOT_DIR || join(targetDir, '..', 'console-screenshots');
  mkdirSync(dir, { recursive: true });
  return dir;
}
