import { execFileSync, spawnSync } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startWorkerProcess, tempDir, type WorkerProcess } from '../orchestration/harness.ts';

/**
 * Simulated hosts on one machine: one network namespace per host, joined to the test process by a veth pair whose
 * host end sits on a private bridge. The services (Temporal, a TCP forwarder to Postgres) listen on the bridge
 * address only, so traffic stays on 10.213.0.0/24 and loopback.
 *
 * Why a bridge rather than one /30 per host: a host is cut off by taking its veth down, and an address on a
 * downed interface disappears with it — on a bridge the services' address survives any one host's cut.
 */

export const PREFIX = 'mmswmh';
export const BRIDGE = `${PREFIX}-br`;
export const SERVICE_IP = '10.213.0.1';
const SUBNET_BITS = 24;

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

/** Remove namespaces and links carrying PREFIX (leftovers of a crashed run, or ours at the end). */
export function removeAll(): void {
  const namespaces = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 10_000 }).stdout ?? '';
  for (const line of namespaces.split('\n')) {
    const ns = line.split(' ')[0];
    if (!ns?.startsWith(`${PREFIX}-`)) continue;
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
    if (name?.startsWith(`${PREFIX}-`)) spawnSync('ip', ['link', 'del', name], { timeout: 10_000 });
  }
}

/** The bridge plus `count` hosts at 10.213.0.11, .12, … */
export function createHosts(count: number): SimHost[] {
  ip('link', 'add', BRIDGE, 'type', 'bridge');
  ip('addr', 'add', `${SERVICE_IP}/${SUBNET_BITS}`, 'dev', BRIDGE);
  ip('link', 'set', BRIDGE, 'up');
  const hosts: SimHost[] = [];
  for (let i = 1; i <= count; i++) {
    const name = `h${i}`;
    const ns = `${PREFIX}-${name}`;
    const veth = `${PREFIX}-${name}v`;
    const address = `10.213.0.${10 + i}`;
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
  close(): Promise<void>;
}

/**
 * Postgres listens on 127.0.0.1 only (and the shared server is not ours to reconfigure): relay `listenHost`:port to
 * it, byte for byte, so workers in the namespaces reach it across the veth.
 */
export async function tcpForwarder(listenHost: string, target: { host: string; port: number }): Promise<Forwarder> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((inbound) => {
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
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
