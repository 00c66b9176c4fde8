import net from 'node:net';
import type { Command } from 'commander';

/**
 * `mmsweep ui [--port 8080] [--host 127.0.0.1]`: the live page of the results store (src/ui). Bound to loopback by
 * default; bound elsewhere it makes up a token, prints it once in the URL on stdout and answers 401 without it.
 */

/** Invalid flags: exit code 2 with the message. */
class UiUsageError extends Error {
  readonly exitCode = 2;
}

export function parsePort(value: string): number {
  if (!/^\d{1,5}$/.test(value.trim())) throw new UiUsageError(`--port must be a TCP port number 0–65535 (0: any free port), got "${value}"`);
  const port = Number(value);
  if (port > 65535) throw new UiUsageError(`--port must be a TCP port number 0–65535 (0: any free port), got "${value}"`);
  return port;
}

const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export function parseHost(value: string): string {
  const host = value.trim().replace(/^\[(.*)\]$/, '$1');
  if (net.isIP(host) || HOST_NAME.test(host)) return host;
  throw new UiUsageError(`--host must be an IP address or a host name of this machine (e.g. 127.0.0.1, 0.0.0.0, ::1), got "${value}"`);
}

export function parseTemporalUi(value: string): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new UiUsageError(`--temporal-ui must be the Temporal web UI's http(s) URL (e.g. http://127.0.0.1:8233), got "${value}"`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new UiUsageError(`--temporal-ui must be an http:// or https:// URL, got "${value}"`);
  }
  if (u.username || u.password) throw new UiUsageError('--temporal-ui must not carry a user name or password');
  return u.toString().replace(/\/+$/, '');
}

export function register(program: Command): void {
  program
    .command('ui')
    .description('Serve a live web page of the studies: progress per worker, ETA, learning curves of running trials, the report figures')
    .option('--port <n>', 'TCP port (0: any free port)', '8080')
    .option('--host <address>', 'address to listen on; anything but loopback requires the token printed at start', '127.0.0.1')
    .option('--temporal-ui <url>', 'Temporal web UI to link trials to (default: TEMPORAL_UI_URL, else the local dev server of `mmsweep run`)')
    .option('--poll', 'poll the database every second instead of LISTEN/NOTIFY (the embedded database is always polled)')
    .action(async (opts: { port: string; host: string; temporalUi?: string; poll?: boolean }) => {
      const port = parsePort(opts.port);
      const host = parseHost(opts.host);
      const temporalUiFlag = opts.temporalUi ?? process.env.TEMPORAL_UI_URL;
      const temporalUi = temporalUiFlag
        ? { url: parseTemporalUi(temporalUiFlag), namespace: process.env.TEMPORAL_NAMESPACE || 'default' }
        : await localTemporalUi();
      const [{ openDatabase }, { startUiServer, isLoopbackHost, newToken }] = await Promise.all([
        import('../../../db/client.ts'),
        import('../../ui/server.ts'),
      ]);
      const token = isLoopbackHost(host) ? null : newToken();
      const handle = await openDatabase();
      let server;
      try {
        server = await startUiServer({
          handle,
          host,
          port,
          token,
          temporalUi,
          watch: { mode: opts.poll ? 'poll' : 'auto' },
          log: (line) => process.stderr.write(`${line}\n`),
        });
      } catch (error) {
        await handle.close();
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EADDRINUSE') throw new UiUsageError(`--port ${port}: the port is in use on ${host}; choose another with --port (0: any free port)`);
        if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
          throw new UiUsageError(`--host ${opts.host}: no such address on this machine (${code}); use 127.0.0.1, 0.0.0.0 or one of its interface addresses`);
        }
        if (code === 'EACCES') throw new UiUsageError(`--port ${port}: not allowed to listen on it (ports below 1024 need privileges); choose another with --port`);
        throw error;
      }
      process.stdout.write(`mmsweep ui: studies of ${handle.kind === 'embedded' ? `the embedded database ${handle.dataDir} (served at ${handle.displayName})` : handle.displayName}\n`);
      process.stdout.write(`mmsweep ui: live updates by ${server.watcher.reason}\n`);
      if (temporalUi) process.stdout.write(`mmsweep ui: trials link to the Temporal UI at ${temporalUi.url} (namespace ${temporalUi.namespace})\n`);
      // The token appears here once, for the owner; nothing logs it again.
      process.stdout.write(`mmsweep ui: open ${token ? `${server.url}?token=${token}` : server.url}\n`);
      if (token) process.stdout.write('mmsweep ui: bound beyond loopback: requests without the token get 401\n');
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      await server.close();
      await handle.close();
    });
}

/** The Temporal UI of the dev server a `mmsweep run` on this machine left running, if any. */
async function localTemporalUi(): Promise<{ url: string; namespace: string } | null> {
  const [{ temporalStateDir }, { stateFiles, isPortOpen }, fs] = await Promise.all([
    import('../../../infra/client.ts'),
    import('../../../infra/temporal.ts'),
    import('node:fs'),
  ]);
  const file = stateFiles(temporalStateDir()).state;
  if (!fs.existsSync(file)) return null;
  try {
    const s = JSON.parse(fs.readFileSync(file, 'utf8')) as { ip: string; uiPort: number; namespace: string };
    if (!(await isPortOpen(s.uiPort, s.ip))) return null;
    return { url: `http://${net.isIPv6(s.ip) ? `[${s.ip}]` : s.ip}:${s.uiPort}`, namespace: process.env.TEMPORAL_NAMESPACE ?? s.namespace ?? 'default' };
  } catch {
    return null;
  }
}
