import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startWorkerProcess, tempDir, type WorkerProcess } from '../orchestration/harness.ts';

/**
 * Simulated hosts on one machine: one network namespace per host, joined to the test process by a veth pair whose
 * host end sits on a private bridge. The services (Temporal, a TCP forwarder to Postgres) listen on the bridge
 * address only, so traffic stays on a private 10.213.<n>.0/24 and loopback.
 *
 * Why a bridge rather than one /30 per host: a host is cut off by taking its veth down, and an address on a
 * downed interface disappears with it — on a bridge the services' address survives any one host's cut.
 */

/**
 * Every name carries `mmsw<owner pid in base 36>-`, so two runs on one machine (a CI clone next to a working
 * tree) never touch each other's links, and leftovers of a run whose process is gone can be recognised and removed.
 * Interface names stay within Linux's 15 characters: `mmsw` + ≤5 + `-h1v`.
 */
const FAMILY = /^mmsw([0-9a-z]{1,5})-/;
export const PREFIX = `mmsw${process.pid.toString(36)}`;
export const BRIDGE = `${PREFIX}-br`;
const SUBNET_BITS = 24;

/** A 10.213.<n>.0/24 subnet no other interface here uses, chosen from the pid so concurrent runs differ. */
function pickSubnet(): number {
  const used = spawnSync('ip', ['-o', '-4', 'addr', 'show'], { encoding: 'utf8', timeout: 10_000 }).stdout ?? '';
  for (let i = 0; i < 250; i++) {
    const n = ((process.pid + i) % 250) + 1;
    if (!used.includes(` 10.213.${n}.`)) return n;
  }
  throw new Error('no free 10.213.x.0/24 subnet for the test hosts');
}
let subnet = 0;
/** Where the services listen for the hosts: the bridge address (valid after createHosts). */
export function serviceIp(): string {
  if (!subnet) throw new Error('createHosts() first');
  return `10.213.${subnet}.1`;
}

export interface SimHost {
  name: string;
  /** Network namespace, also the host name its processes see (own UTS namespace). */
  ns: string;
  /** Host-side end of the veth pair: take it down to cut the host off. */
  veth: string;
  ip: string;
  /** This host's own disk: checkpoint directory and MMSWEEP_HOME, shared with no other host. */
  checkpointDir: string;
  home: string;
}

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Why this suite cannot run here, or null when it can (root and a working `ip netns`). */
export function unavailableReason(): string | null {
  if (os.platform() !== 'linux') return `needs Linux network namespaces (platform is ${os.platform()})`;
  if (process.getuid?.() !== 0) return 'needs root (ip netns add / veth pairs)';
  const probe = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 10_000 });
  if (probe.error || probe.status !== 0) return `\`ip netns\` is unavailable (${probe.error?.message ?? probe.stderr.trim()}); install iproute2`;
  const unshare = spawnSync('unshare', ['--uts', 'true'], { timeout: 10_000 });
  if (unshare.error || unshare.status !== 0) return '`unshare --uts` is unavailable (util-linux)';
  return null;
}

/** Every process inside `ns`. */
export function pidsIn(ns: string): number[] {
  const out = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', timeout: 10_000 });
  return out.status === 0 ? out.stdout.split('\n').filter(Boolean).map(Number) : [];
}

/** The command line of a process ('' once it is gone). */
export function commandLineOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
  } catch {
    return '';
  }
}

/** kill -9 every process of the host (worker, runners, anything they spawned); bounded retries. */
export async function killHost(host: SimHost): Promise<number[]> {
  const killed = new Set<number>();
  for (let round = 0; round < 20; round++) {
    const pids = pidsIn(host.ns);
    if (pids.length === 0) return [...killed];
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
        killed.add(pid);
      } catch {
        // already gone
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`processes in ${host.ns} survived kill -9: ${pidsIn(host.ns).join(', ')}`);
}

function ownerGone(name: string): boolean {
  const m = FAMILY.exec(name);
  if (!m) return false;
  const pid = parseInt(m[1], 36);
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

/** Remove this run's namespaces and links, or with `leftovers` those of earlier runs whose process is gone. */
export function removeAll(which: 'ours' | 'leftovers' = 'ours'): void {
  const mine = (name: string) => (which === 'ours' ? name.startsWith(`${PREFIX}-`) : ownerGone(name));
  const namespaces = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 10_000 }).stdout ?? '';
  for (const line of namespaces.split('\n')) {
    const ns = line.split(' ')[0];
    if (!ns || !mine(ns)) continue;
    for (const pid of pidsIn(ns)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    spawnSync('ip', ['netns', 'del', ns], { timeout: 10_000 });
  }
  const links = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8', timeout: 10_000 }).stdout ?? '';
  for (const line of links.split('\n')) {
    const name = /^\d+:\s+([^:@\s]+)/.exec(line)?.[1];
    if (name && mine(name)) spawnSync('ip', ['link', 'del', name], { timeout: 10_000 });
  }
}

/** Where this run keeps the Temporal dev server's state; named so that a later run can find it if we die. */
export function temporalStateDir(): string {
  return tempDir(`mmsweep-mh-temporal-${PREFIX}-`);
}

/** The Temporal dev servers, their state and the host disks of earlier runs killed before their cleanup. */
export function removeLeftoverFiles(): void {
  const tmp = os.tmpdir();
  for (const name of readdirSync(tmp)) {
    const dir = path.join(tmp, name);
    const disk = /^mmsweep-(mmsw[0-9a-z]{1,5})-h\d+-/.exec(name);
    if (disk && ownerGone(`${disk[1]}-`)) rmSync(dir, { recursive: true, force: true });
    const m = /^mmsweep-mh-temporal-(mmsw[0-9a-z]{1,5})-/.exec(name);
    if (!m || !ownerGone(`${m[1]}-`)) continue;
    const stateFile = path.join(dir, 'temporal-server.json');
    if (existsSync(stateFile)) {
      const pid = Number((JSON.parse(readFileSync(stateFile, 'utf8')) as { pid?: number }).pid);
      // Only a process that is still that dev server (its command line names this directory).
      const cmdline = Number.isInteger(pid) && existsSync(`/proc/${pid}/cmdline`) ? readFileSync(`/proc/${pid}/cmdline`, 'utf8') : '';
      if (cmdline.includes(dir)) process.kill(pid, 'SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The bridge plus `count` hosts at 10.213.<n>.11, .12, … */
export function createHosts(count: number): SimHost[] {
  subnet = pickSubnet();
  ip('link', 'add', BRIDGE, 'type', 'bridge');
  ip('addr', 'add', `${serviceIp()}/${SUBNET_BITS}`, 'dev', BRIDGE);
  ip('link', 'set', BRIDGE, 'up');
  const hosts: SimHost[] = [];
  for (let i = 1; i <= count; i++) {
    const name = `h${i}`;
    const ns = `${PREFIX}-${name}`;
    const veth = `${PREFIX}-${name}v`;
    const address = `10.213.${subnet}.${10 + i}`;
    ip('netns', 'add', ns);
    ip('link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    ip('link', 'set', veth, 'master', BRIDGE);
    ip('link', 'set', veth, 'up');
    ip('-n', ns, 'addr', 'add', `${address}/${SUBNET_BITS}`, 'dev', 'eth0');
    ip('-n', ns, 'link', 'set', 'eth0', 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    const disk = tempDir(`mmsweep-${ns}-`);
    hosts.push({ name, ns, veth, ip: address, checkpointDir: path.join(disk, 'checkpoints'), home: path.join(disk, 'home') });
  }
  return hosts;
}

export function setLink(host: SimHost, up: boolean): void {
  ip('link', 'set', host.veth, up ? 'up' : 'down');
}

/** `mmsweep worker` on a simulated host: inside its namespace, with its own host name, disk and service addresses. */
export function startHostWorker(
  host: SimHost,
  o: { temporalAddress: string; databaseUrl: string; queue: string; slots?: number; extraArgs?: string[] },
): Promise<WorkerProcess> {
  return startWorkerProcess({
    address: o.temporalAddress,
    databaseUrl: o.databaseUrl,
    queue: o.queue,
    slots: o.slots ?? 1,
    checkpointDir: host.checkpointDir,
    extraArgs: o.extraArgs,
    // `ip netns exec` and `unshare` exec in place, so the child's pid is the worker's own.
    launcher: ['ip', 'netns', 'exec', host.ns, 'unshare', '--uts', 'sh', '-c', 'hostname "$0" && exec "$@"', host.ns],
    env: { MMSWEEP_HOME: host.home },
  });
}

export interface Forwarder {
  port: number;
  /** Bytes received so far from clients at `address` (one simulated host). */
  bytesFrom(address: string): number;
  close(): Promise<void>;
}

/**
 * Postgres listens on 127.0.0.1 only (and the shared server is not ours to reconfigure): relay `listenHost`:port to
 * it, byte for byte, so workers in the namespaces reach it across the veth.
 */
export async function tcpForwarder(listenHost: string, target: { host: string; port: number }): Promise<Forwarder> {
  const sockets = new Set<net.Socket>();
  const received = new Map<string, number>();
  const server = net.createServer((inbound) => {
    const from = (inbound.remoteAddress ?? '').replace(/^::ffff:/, '');
    inbound.on('data', (chunk: Buffer) => received.set(from, (received.get(from) ?? 0) + chunk.length));
    const outbound = net.connect(target.port, target.host);
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    inbound.pipe(outbound);
    outbound.pipe(inbound);
    inbound.on('error', () => outbound.destroy());
    outbound.on('error', () => inbound.destroy());
    inbound.on('close', () => outbound.destroy());
    outbound.on('close', () => inbound.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, listenHost, () => resolve());
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    bytesFrom: (address) => received.get(address) ?? 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
