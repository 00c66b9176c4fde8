/**
 * `mmsweep ui` end to end on a real Postgres database holding a small study that is "running": the trial and epoch
 * rows are written through the store's API (test/ui/fixture.ts), not by training. The CLI runs as a user runs it;
 * headless Chromium (Debian's `chromium`, driven over the DevTools protocol by playwright-core) opens the page, a
 * new epoch row is written, and the running trial's curve must gain its points without a reload.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, rowsOf } from '../../db/client.ts';
import { postgresErrorOf, withReadOnlyRole } from '../../db/readonly.ts';
import { estimateEta } from '../../src/ui/eta.ts';
import { startUiServer } from '../../src/ui/server.ts';
import { repoRoot, runMmsweep } from '../cli/run-cli.ts';
import { copyPgliteTemplate } from '../db/targets.ts';
import { createTempDatabase, type TempDatabase } from '../report/pg.ts';
import { LIVE_STUDY, LIVE_TRIALS, RUNNING_KEY, addEpoch, finishTrial, insertLiveStudy } from './fixture.ts';

const artifacts = path.join(repoRoot, 'test-artifacts');
const CHROMIUM = process.env.MMSWEEP_CHROMIUM ?? '/usr/bin/chromium';
const haveChromium = fs.existsSync(CHROMIUM);
// In CI (.ci/run sets CI) a missing browser is a failure, not a skip.
const skipBrowser = !haveChromium && !process.env.CI;
if (skipBrowser) console.warn(`test/ui: SKIPPING the browser test: ${CHROMIUM} is missing (apt-get install -y chromium); CI never skips it.`);

let tmp: TempDatabase;

interface RunningUi {
  child: ChildProcess;
  url: string;
  stdout: () => string;
  stderr: () => string;
  stop(): Promise<void>;
}

/** Start `mmsweep ui …` against the test database and wait for the URL it prints. */
function startUi(args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunningUi> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/mmsweep.js', 'ui', ...args], {
      cwd: repoRoot,
      env: { ...process.env, MMSWEEP_DEBUG: '', DATABASE_URL: tmp.url, TEMPORAL_UI_URL: '', ...env },
    });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => reject(new Error(`mmsweep ui did not print its URL in 60 s; stderr: ${stderr}`)), 60_000);
    child.stdout.on('data', (d) => {
      stdout += d;
      const m = /mmsweep ui: open (\S+)/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve({
          child,
          url: m[1],
          stdout: () => stdout,
          stderr: () => stderr,
          stop: async () => {
            if (child.exitCode !== null) return;
            const exited = new Promise((r) => child.once('exit', r));
            child.kill('SIGTERM');
            await exited;
          },
        });
      }
    });
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`mmsweep ui exited with ${code} before serving; stderr: ${stderr}`));
    });
  });
}

beforeAll(async () => {
  tmp = await createTempDatabase('mmsweep_ui');
  await insertLiveStudy(tmp.handle.db);
});

afterAll(async () => {
  await tmp?.drop();
});

describe('the ETA', () => {
  it('is the epochs left over the measured throughput of the workers running now', () => {
    // 3 pending × 10 epochs + (10 − 4) + (10 − 9) = 37 epochs; w1 runs 2 trials at 5 s, w2 one at 10 s (study mean,
    // nothing measured on w2): 0.4 + 0.1 = 0.5 epochs/s → 74 s.
    const eta = estimateEta({
      pending: 3,
      runningEpochsDone: [4, 9, 12],
      workers: [
        { worker: 'w1', running: 2, meanEpochSeconds: 5 },
        { worker: 'w2', running: 1, meanEpochSeconds: null },
        { worker: 'w3', running: 0, meanEpochSeconds: 1 },
      ],
      studyMeanEpochSeconds: 10,
      expectedEpochs: 10,
    });
    expect(eta.remainingEpochs).toBe(37);
    expect(eta.seconds).toBeCloseTo(74, 9);
    expect(estimateEta({ pending: 2, runningEpochsDone: [], workers: [], studyMeanEpochSeconds: 3, expectedEpochs: 5 }).seconds).toBeNull();
    expect(estimateEta({ pending: 0, runningEpochsDone: [], workers: [], studyMeanEpochSeconds: null, expectedEpochs: null }).seconds).toBe(0);
  });
});

describe('read-only by construction', () => {
  it('runs the page queries as mmsweep_readonly in a READ ONLY transaction', async () => {
    const who = await withReadOnlyRole(tmp.handle.db, async (tx) => rowsOf<{ u: string }>(await tx.execute(sql`select current_user::text as u`))[0].u);
    expect(who).toBe('mmsweep_readonly');
    const refused = await withReadOnlyRole(tmp.handle.db, (tx) => tx.execute(sql`update studies set status = 'failed'`)).then(
      () => null,
      (error: unknown) => error,
    );
    // 25006: read_only_sql_transaction.
    expect(postgresErrorOf(refused).code).toBe('25006');
    const [row] = rowsOf<{ status: string }>(await tmp.handle.db.execute(sql`select status from studies where id = ${LIVE_STUDY}`));
    expect(row.status).toBe('running');
  });
});

describe('mmsweep ui (CLI, loopback)', () => {
  let ui: RunningUi;
  beforeAll(async () => {
    ui = await startUi(['--port', '0', '--temporal-ui', 'http://127.0.0.1:8233']);
  });
  afterAll(async () => {
    await ui?.stop();
  });

  it('serves progress per worker and the ETA from measured epoch times (hand figures in fixture.ts)', async () => {
    expect(ui.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    expect(ui.stdout()).toContain('LISTEN mmsweep_ui');
    const body = (await (await fetch(`${ui.url}api/studies`)).json()) as { live: string; studies: Record<string, unknown>[] };
    expect(body.live).toBe('notify');
    const s = body.studies.find((x) => x.id === LIVE_STUDY) as Record<string, unknown> & { workers: Record<string, unknown>[]; eta: { seconds: number } };
    expect({ total: s.total, done: s.done, running: s.running, pending: s.pending, failed: s.failed }).toEqual({ total: 5, done: 2, running: 1, pending: 2, failed: 0 });
    expect(s.workers).toEqual([
      { worker: 'w1', running: 0, done: 2, failed: 0, meanEpochSeconds: 10, measuredEpochs: 10 },
      { worker: 'w2', running: 1, done: 0, failed: 0, meanEpochSeconds: 20, measuredEpochs: 3 },
    ]);
    expect(s.expectedEpochs).toBe(5);
    expect(s.eta.seconds).toBeCloseTo(240, 9);
    const study = (await (await fetch(`${ui.url}api/study?id=${LIVE_STUDY}`)).json()) as { running: Record<string, unknown>[]; temporalUrl: string };
    expect(study.running.map((t) => [t.trialKey, t.worker, t.lastEpoch, t.rebalanceShare])).toEqual([[RUNNING_KEY, 'w2', 3, 0.2]]);
    expect(study.temporalUrl).toBe(
      `http://127.0.0.1:8233/namespaces/default/workflows?query=${encodeURIComponent(`WorkflowId="mmsweep-study-${LIVE_STUDY}"`)}`,
    );
  });

  it('refuses malformed, unknown and repeated query parameters and anything but GET', async () => {
    const status = async (p: string, init?: RequestInit) => (await fetch(`${ui.url}${p}`, init)).status;
    expect(await status('api/study')).toBe(400);
    expect(await status('api/study?id=a&id=b')).toBe(400);
    expect(await status(`api/study?id=${LIVE_STUDY}&limit=1`)).toBe(400);
    expect(await status(`api/trial/curve?study=${LIVE_STUDY}&trial=${encodeURIComponent("x' or 1=1 --")}`)).toBe(400);
    expect(await status(`api/study?id=${encodeURIComponent("' or 1=1 --")}`)).toBe(404);
    expect(await status(`api/trial/curve?study=${LIVE_STUDY}&trial=live-other`)).toBe(404);
    expect(await status('api/studies', { method: 'POST' })).toBe(405);
    // A page elsewhere reaching the loopback port through DNS rebinding sends its own Host.
    // (fetch sets Host itself: node:http sends the one given.)
    const rebound = await new Promise<number>((resolve, reject) => {
      const req = http.get(`${ui.url}api/studies`, { headers: { Host: 'attacker.example' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
    });
    expect(rebound).toBe(403);
  });

  it.skipIf(skipBrowser)('headless Chromium shows a new epoch on the running trial\'s curve without a reload, with no console errors', async () => {
    const { chromium } = await import('playwright-core');
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'mmsweep-ui-chromium-'));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1400, height: 1000 },
    });
    try {
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      page.on('pageerror', (e) => errors.push(e.message));
      page.on('requestfailed', (r) => {
        // The event stream is cut when the page closes; anything else failing is an error.
        if (!r.url().endsWith('/events')) errors.push(`request failed: ${r.url()}`);
      });
      let loads = 0;
      page.on('load', () => loads++);
      await page.goto(ui.url, { waitUntil: 'load' });
      const card = `.trial[data-trial="${RUNNING_KEY}"]`;
      await page.waitForSelector(`${card}[data-last-epoch="3"] svg`, { timeout: 60_000 });
      await page.waitForSelector('#status .dot.live', { timeout: 30_000 });
      await page.waitForSelector('#figures #table1', { timeout: 60_000 });
      // Every data point vega draws is a path in a symbol mark group (legend symbols have role legend-symbol): per
      // epoch one per head (ŷ, ŷ0, ŷ1) and split (train, val) in the accuracy panel, plus one d_speed point (from
      // epoch 2 on: epoch 1 has none).
      const points = () => page.$$eval(`${card} svg g.mark-symbol.role-mark path`, (els) => els.length);
      expect(await points()).toBe(3 * 6 + 2);
      await page.evaluate(() => ((globalThis as unknown as { marker: number }).marker = 42));

      await addEpoch(tmp.handle.db, 4);
      // Well inside the page's 30 s fallback refresh: the event stream, not the timer, must bring the epoch.
      const written = Date.now();
      await page.waitForSelector(`${card}[data-last-epoch="4"]`, { timeout: 15_000 });
      console.log(`test/ui: the new epoch was on the page ${Date.now() - written} ms after its write`);
      expect(await points()).toBe(4 * 6 + 3);
      expect(await page.$eval(`${card} .facts`, (e) => e.textContent)).toContain('epoch 4 of ≤ 299');
      // The same document: no navigation happened.
      expect(await page.evaluate(() => (globalThis as unknown as { marker?: number }).marker)).toBe(42);
      expect(loads).toBe(1);
      expect(await page.$eval('#study-meta a', (a) => a.getAttribute('href'))).toContain('/namespaces/default/workflows?query=');
      fs.mkdirSync(artifacts, { recursive: true });
      await page.screenshot({ path: path.join(artifacts, 'ui-live.png'), fullPage: true });

      // A result arrives: the progress and the report's Table 1 follow, still without a reload.
      expect(await page.$eval('#figures', (e) => e.getAttribute('data-results'))).toBe('2');
      await finishTrial(tmp.handle.db, LIVE_TRIALS.pending1.key, 'w1', 52);
      await page.waitForSelector('#figures[data-results="3"]', { timeout: 15_000 });
      expect(await page.$eval(`#studies tr[data-study="${LIVE_STUDY}"] td:nth-child(4)`, (e) => e.textContent)).toBe('3 / 5');
      // The one guided trial finished: 52.00 (n = 1) in the guided row of Table 1, as the static report writes it.
      expect(await page.$eval('#table1', (e) => e.textContent)).toContain('52.00 ± — (1)');
      expect(loads).toBe(1);
      expect(errors).toEqual([]);
    } finally {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    }
  });
});

describe('mmsweep ui beyond loopback', () => {
  it('prints a token once and answers 401 without it', async () => {
    const ui = await startUi(['--host', '0.0.0.0', '--port', '0']);
    try {
      const m = /open http:\/\/0\.0\.0\.0:(\d+)\/\?token=([A-Za-z0-9_-]{20,})/.exec(ui.stdout());
      expect(m, ui.stdout()).not.toBeNull();
      const [, port, token] = m!;
      expect(ui.stdout().split(token).length - 1).toBe(1);
      const base = `http://127.0.0.1:${port}`;
      expect((await fetch(`${base}/api/studies`)).status).toBe(401);
      expect((await fetch(`${base}/`)).status).toBe(401);
      expect((await fetch(`${base}/api/studies?token=${token}x`)).status).toBe(401);
      expect((await fetch(`${base}/api/studies`, { headers: { Authorization: `Bearer ${token}` } })).status).toBe(200);
      // The token in the URL becomes a cookie, and leaves the address bar.
      const first = await fetch(`${base}/?token=${token}`, { redirect: 'manual' });
      expect(first.status).toBe(303);
      expect(first.headers.get('location')).toBe('/');
      const cookie = first.headers.get('set-cookie')!.split(';')[0];
      expect(cookie).toBe(`mmsweep_ui_token=${token}`);
      expect((await fetch(`${base}/`, { headers: { Cookie: cookie } })).status).toBe(200);
      await ui.stop();
      expect(ui.stderr()).not.toContain(token);
    } finally {
      await ui.stop();
    }
  });
});

describe('mmsweep ui: invalid flags', () => {
  it.each([
    [['--port', '70000'], /--port must be a TCP port number/],
    [['--port', 'eighty'], /--port must be a TCP port number/],
    [['--port', '-1'], /--port must be a TCP port number/],
    [['--host', 'no such host!'], /--host must be an IP address or a host name/],
    [['--host', '203.0.113.7', '--port', '0'], /--host 203\.0\.113\.7: no such address on this machine/],
    [['--temporal-ui', 'ftp://example.org'], /--temporal-ui must be an http/],
  ])('mmsweep ui %j → exit 2', async (args, message) => {
    const out = await runMmsweep(['ui', ...args], { DATABASE_URL: tmp.url });
    expect(out.stderr).toMatch(message);
    expect(out.exitCode).toBe(2);
  });

  it('a port in use → exit 2 naming --port', async () => {
    const net = await import('node:net');
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as import('node:net').AddressInfo).port;
    try {
      const out = await runMmsweep(['ui', '--port', String(port)], { DATABASE_URL: tmp.url });
      expect(out.stderr).toMatch(new RegExp(`--port ${port}: the port is in use`));
      expect(out.exitCode).toBe(2);
    } finally {
      blocker.close();
    }
  });
});

/** Reads a server-sent-event stream until the text matches. */
async function eventStream(url: string) {
  const abort = new AbortController();
  const res = await fetch(url, { signal: abort.signal });
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  return {
    until: async (pattern: RegExp, timeoutMs = 20_000) => {
      const deadline = Date.now() + timeoutMs;
      while (!pattern.test(text)) {
        if (Date.now() > deadline) throw new Error(`no ${pattern} on the event stream: ${text}`);
        const { value, done } = await reader.read();
        if (done) throw new Error('event stream closed');
        text += decoder.decode(value);
      }
    },
    close: () => abort.abort(),
  };
}

describe('polling', () => {
  it('reports a new epoch of a running trial on the event stream (Postgres server, --poll)', async () => {
    const server = await startUiServer({ handle: tmp.handle, host: '127.0.0.1', port: 0, token: null, watch: { mode: 'poll', pollMs: 200 } });
    const events = await eventStream(`${server.url}events`);
    try {
      expect(server.watcher.mode).toBe('poll');
      await events.until(/event: hello\ndata: \{"live":"poll"\}/);
      // Let the poller take its first snapshot before the write.
      await new Promise((r) => setTimeout(r, 600));
      await addEpoch(tmp.handle.db, 5);
      await events.until(new RegExp(`event: epoch\\ndata: \\{"trialKey":"${RUNNING_KEY}","epoch":5\\}`));
    } finally {
      events.close();
      await server.close();
    }
  });

  it('is how `mmsweep ui` follows the embedded PGlite database, reached through its owner\'s socket', async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'mmsweep-ui-home-'));
    await copyPgliteTemplate(path.join(home, 'db'));
    // This process owns the embedded database (as `mmsweep run` would); `mmsweep ui` comes in as a guest.
    const owner = await openDatabase({ url: '', dataDir: path.join(home, 'db') });
    let ui: RunningUi | undefined;
    try {
      await insertLiveStudy(owner.db);
      ui = await startUi(['--port', '0'], { DATABASE_URL: '', MMSWEEP_HOME: home });
      expect(ui.stdout()).toContain('polling every 1000 ms (the embedded database');
      const body = (await (await fetch(`${ui.url}api/studies`)).json()) as { live: string; studies: { id: string; eta: { seconds: number } }[] };
      expect(body.live).toBe('poll');
      expect(body.studies.map((s) => [s.id, s.eta.seconds])).toEqual([[LIVE_STUDY, 240]]);
      const events = await eventStream(`${ui.url}events`);
      try {
        await events.until(/event: hello/);
        await new Promise((r) => setTimeout(r, 1500));
        await addEpoch(owner.db, 4);
        await events.until(new RegExp(`event: epoch\\ndata: \\{"trialKey":"${RUNNING_KEY}","epoch":4\\}`));
      } finally {
        events.close();
      }
      const curve = (await (await fetch(`${ui.url}api/trial/curve?study=${LIVE_STUDY}&trial=${RUNNING_KEY}`)).json()) as { lastEpoch: number; svg: string };
      expect(curve.lastEpoch).toBe(4);
      expect(curve.svg).toMatch(/^<svg/);
    } finally {
      await ui?.stop();
      await owner.close();
      fs.rmSync(home, { recursive: true, force: true });
    }
  });
});
