/**
 * `mmsweep ui`: a small HTTP server (node:http, no framework) in front of the results store. It serves the page's
 * static files from src/ui/assets (no build step, no CDN), JSON for the studies, their running trials and the
 * report's figures, and a server-sent-event stream that says when an epoch, a trial or a result changed.
 *
 * Read-only by construction: every query runs in a READ ONLY transaction as role mmsweep_readonly (withReadOnlyRole),
 * with values bound as parameters. Bound to a loopback address it answers only requests whose Host is a loopback name
 * (so a web page elsewhere cannot reach it through DNS rebinding); bound elsewhere it answers only requests carrying
 * its random token (query `token`, then a cookie, or `Authorization: Bearer`), else 401.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DbHandle } from '../../db/client.ts';
import { withReadOnlyRole } from '../../db/readonly.ts';
import { studyWorkflowId } from '../spec/study-model.ts';
import { maskSecrets, secretsOf } from '../util/secrets.ts';
import { studyFiguresHtml, trialCurve, type StudyFigures, type TrialCurve } from './figures.ts';
import { watchChanges, type Change, type Watcher } from './live.ts';
import { isStudyTrial, runningTrials, studyOverviews } from './queries.ts';

export interface TemporalUi {
  /** Base URL of the Temporal web UI, e.g. http://127.0.0.1:8233 */
  url: string;
  namespace: string;
}

export interface UiServerOptions {
  handle: DbHandle;
  host: string;
  /** 0 = any free port. */
  port: number;
  /** Required on every request when set (non-loopback binding). */
  token: string | null;
  temporalUi?: TemporalUi | null;
  watch?: { mode?: 'notify' | 'poll' | 'auto'; pollMs?: number };
  /** Running trials listed (and drawn) per study at most. */
  maxRunningTrials?: number;
  log?: (line: string) => void;
}

export interface UiServer {
  url: string;
  port: number;
  watcher: Watcher;
  close(): Promise<void>;
}

const ASSETS_DIR = fileURLToPath(new URL('./assets/', import.meta.url));
const ASSETS: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};

const TOKEN_COOKIE = 'mmsweep_ui_token';

export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  const bare = host.replace(/^\[|\]$/g, '');
  if (net.isIPv4(bare)) return bare.startsWith('127.');
  if (net.isIPv6(bare)) return bare === '::1' || /^::ffff:127\./i.test(bare);
  return false;
}

export function newToken(): string {
  return randomBytes(24).toString('base64url');
}

/** A request parameter that is not what the endpoint takes: 400 with the reason. */
class BadRequest extends Error {}
class NotFound extends Error {}

const STUDY_ID = /^[^\u0000-\u001f\u007f]{1,200}$/;
const TRIAL_KEY = /^[A-Za-z0-9._:-]{1,200}$/;

/** The endpoint's parameters, validated: unknown or repeated names and malformed values are refused. */
function params(url: URL, spec: Record<string, RegExp>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of new Set(url.searchParams.keys())) {
    if (name === 'token') continue;
    if (!(name in spec)) throw new BadRequest(`unknown query parameter "${name.slice(0, 40)}" (this endpoint takes: ${Object.keys(spec).join(', ') || 'none'})`);
    const values = url.searchParams.getAll(name);
    if (values.length > 1) throw new BadRequest(`query parameter "${name}" is given ${values.length} times`);
    if (!spec[name].test(values[0])) throw new BadRequest(`query parameter "${name}" is malformed`);
    out[name] = values[0];
  }
  for (const name of Object.keys(spec)) if (!(name in out)) throw new BadRequest(`query parameter "${name}" is missing`);
  return out;
}

function sameToken(given: string | undefined | null, token: string): boolean {
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export async function startUiServer(options: UiServerOptions): Promise<UiServer> {
  const log = options.log ?? (() => undefined);
  const { handle, token } = options;
  const db = handle.db;
  const maxRunning = options.maxRunningTrials ?? 24;
  const secrets = secretsOf(handle.url ?? process.env.DATABASE_URL);
  const loopback = isLoopbackHost(options.host);
  if (!loopback && !token) throw new Error(`mmsweep ui bound to ${options.host} needs a token`);

  const clients = new Set<http.ServerResponse>();
  // Caches: the study figures until a trial or a result changes, a trial's curve until its next epoch.
  let generation = 0;
  const figureCache = new Map<string, { generation: number; value: Promise<StudyFigures | null> }>();
  const curveCache = new Map<string, { stamp: string; value: Promise<TrialCurve | null> }>();
  const epochStamps = new Map<string, number>();

  // Progress answers are shared by every open page for a moment: each epoch event makes each page ask again, and the
  // per-study aggregates read every epoch row of the study.
  let epochTick = 0;
  const answers = new Map<string, { expires: number; value: Promise<unknown> }>();
  const shared = <T>(key: string, ttlMs: number, compute: () => Promise<T>): Promise<T> => {
    const now = Date.now();
    const hit = answers.get(key);
    if (hit && hit.expires > now) return hit.value as Promise<T>;
    for (const [k, v] of answers) if (v.expires <= now) answers.delete(k);
    const value = compute();
    answers.set(key, { expires: now + ttlMs, value });
    value.catch(() => answers.delete(key));
    return value;
  };

  const broadcast = (event: string, data: unknown) => {
    const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const res of clients) res.write(frame);
  };
  const onChange = (change: Change) => {
    if (change.kind === 'epoch') {
      epochStamps.set(change.trialKey, (epochStamps.get(change.trialKey) ?? 0) + 1);
      epochTick++;
      broadcast('epoch', { trialKey: change.trialKey, epoch: change.epoch });
    } else {
      generation++;
      broadcast(change.kind, {});
    }
  };
  const watcher = await watchChanges(handle, onChange, {
    ...options.watch,
    onError: (error) => log(`mmsweep ui: polling the database failed: ${maskSecrets((error as Error).message, secrets)}`),
  });

  const read = <T>(body: (tx: typeof db) => Promise<T>) => withReadOnlyRole(db, body);

  const temporalLink = (studyId: string): string | null => {
    const t = options.temporalUi;
    if (!t) return null;
    const query = `WorkflowId="${studyWorkflowId(studyId)}"`;
    return `${t.url.replace(/\/+$/, '')}/namespaces/${encodeURIComponent(t.namespace)}/workflows?query=${encodeURIComponent(query)}`;
  };

  const api = async (pathname: string, url: URL): Promise<unknown> => {
    switch (pathname) {
      case '/api/studies': {
        params(url, {});
        const studies = await shared(`studies/${generation}`, 5000, () => read((tx) => studyOverviews(tx)));
        return { live: watcher.mode, temporalUi: options.temporalUi?.url ?? null, studies };
      }
      case '/api/study': {
        const { id } = params(url, { id: STUDY_ID });
        const [study, running] = await shared(`study/${generation}/${epochTick}/${id}`, 1000, () =>
          read(async (tx) => {
            const [s] = await studyOverviews(tx, id);
            return [s, s ? await runningTrials(tx, id, maxRunning) : null] as const;
          }),
        );
        if (!study || !running) throw new NotFound(`no study "${id}" in this database`);
        return {
          study,
          running: running.trials,
          moreRunning: running.more,
          temporalUrl: temporalLink(study.id),
        };
      }
      case '/api/study/figures': {
        const { id } = params(url, { id: STUDY_ID });
        let cached = figureCache.get(id);
        if (!cached || cached.generation !== generation) {
          cached = { generation, value: read((tx) => studyFiguresHtml(tx, id)) };
          figureCache.set(id, cached);
          cached.value.catch(() => figureCache.delete(id));
        }
        const figures = await cached.value;
        if (!figures) throw new NotFound(`no study "${id}" in this database`);
        return figures;
      }
      case '/api/trial/curve': {
        const { study, trial } = params(url, { study: STUDY_ID, trial: TRIAL_KEY });
        const key = `${study}\u0000${trial}`;
        // A new epoch of the trial, or any trial / result change (status, attempt), redraws the curve.
        const stamp = `${epochStamps.get(trial) ?? 0}/${generation}`;
        let cached = curveCache.get(key);
        if (!cached || cached.stamp !== stamp) {
          cached = {
            stamp,
            value: read(async (tx) => ((await isStudyTrial(tx, study, trial)) ? trialCurve(tx, study, trial) : Promise.reject(new NotFound(`trial ${trial} is not in study "${study}"`)))),
          };
          curveCache.set(key, cached);
          cached.value.catch(() => curveCache.delete(key));
        }
        const curve = await cached.value;
        return curve ?? { trialKey: trial, svg: null, epochs: 0, lastEpoch: null, shading: [] };
      }
      default:
        throw new NotFound(`no endpoint ${pathname.slice(0, 80)}`);
    }
  };

  const send = (res: http.ServerResponse, status: number, type: string, body: string | Buffer, extra: Record<string, string> = {}) => {
    res.writeHead(status, {
      'Content-Type': type,
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
      // Vega's SVG carries inline style attributes; scripts only from this server.
      'Content-Security-Policy': "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
      ...extra,
    });
    res.end(body);
  };
  const sendJson = (res: http.ServerResponse, status: number, value: unknown) => send(res, status, 'application/json; charset=utf-8', JSON.stringify(value));

  const server = http.createServer((req, res) => {
    void (async () => {
      let url: URL;
      try {
        url = new URL(req.url ?? '/', 'http://mmsweep-ui.invalid');
      } catch {
        return send(res, 400, 'text/plain; charset=utf-8', 'bad request URL\n');
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain; charset=utf-8', 'mmsweep ui is read-only: GET only\n', { Allow: 'GET, HEAD' });
      if (loopback) {
        const host = (req.headers.host ?? '').replace(/:\d+$/, '');
        if (!isLoopbackHost(host)) return send(res, 403, 'text/plain; charset=utf-8', 'mmsweep ui answers loopback host names only (127.0.0.1, localhost, [::1])\n');
      }
      if (token) {
        const fromQuery = url.searchParams.get('token');
        const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
        const ok = sameToken(fromQuery, token) || sameToken(cookieValue(req.headers.cookie, TOKEN_COOKIE), token) || sameToken(bearer, token);
        if (!ok) return send(res, 401, 'text/plain; charset=utf-8', '401: this mmsweep ui needs its token: open the URL it printed when it started.\n');
        if (fromQuery && ASSETS[url.pathname]) {
          // Keep the token out of the address bar and history: a cookie carries it from here on.
          url.searchParams.delete('token');
          return send(res, 303, 'text/plain; charset=utf-8', '', {
            Location: url.pathname + (url.search || ''),
            'Set-Cookie': `${TOKEN_COOKIE}=${token}; HttpOnly; SameSite=Strict; Path=/`,
          });
        }
      }
      const asset = ASSETS[url.pathname];
      if (asset) {
        if ([...url.searchParams.keys()].some((k) => k !== 'token')) return send(res, 400, 'text/plain; charset=utf-8', 'the page takes no query parameters\n');
        return send(res, 200, asset.type, fs.readFileSync(path.join(ASSETS_DIR, asset.file)));
      }
      if (url.pathname === '/events') {
        try {
          params(url, {});
        } catch (error) {
          return sendJson(res, 400, { error: (error as Error).message });
        }
        res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive', 'X-Content-Type-Options': 'nosniff' });
        res.write(`retry: 2000\nevent: hello\ndata: ${JSON.stringify({ live: watcher.mode })}\n\n`);
        clients.add(res);
        req.on('close', () => clients.delete(res));
        return;
      }
      if (url.pathname.startsWith('/api/')) {
        try {
          return sendJson(res, 200, await api(url.pathname, url));
        } catch (error) {
          if (error instanceof BadRequest) return sendJson(res, 400, { error: error.message });
          if (error instanceof NotFound) return sendJson(res, 404, { error: error.message });
          const message = maskSecrets((error as Error).message ?? String(error), secrets);
          log(`mmsweep ui: ${url.pathname}: ${message}`);
          return sendJson(res, 500, { error: message });
        }
      }
      return send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
    })().catch((error) => {
      log(`mmsweep ui: ${maskSecrets((error as Error).message, secrets)}`);
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
      else res.end();
    });
  });

  const heartbeat = setInterval(() => {
    for (const res of clients) res.write(': ping\n\n');
  }, 15_000);
  heartbeat.unref();

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    clearInterval(heartbeat);
    await watcher.stop();
    throw error;
  }
  const port = (server.address() as net.AddressInfo).port;
  const shownHost = net.isIPv6(options.host) ? `[${options.host}]` : options.host;
  return {
    url: `http://${shownHost}:${port}/`,
    port,
    watcher,
    close: async () => {
      clearInterval(heartbeat);
      for (const res of clients) res.end();
      clients.clear();
      await watcher.stop();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
