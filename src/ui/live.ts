/**
 * What tells the live page that something changed: an epoch row of a trial, the trials (status, workers) or the
 * results.
 *
 * - `notify`, on a Postgres server (DATABASE_URL): LISTEN on channel mmsweep_ui, which the triggers of migration
 *   0005_i20_ui_notify NOTIFY at every commit that writes an epoch, a trial or a result. No polling.
 * - `poll`, on the embedded PGlite database: its socket server multiplexes every client onto PGlite's one session,
 *   so a notification would reach whichever client happens to be active, not the listener. The watcher then reads a
 *   small snapshot (running trials' last epochs, trial and result counts) every `pollMs` and reports what moved.
 *   A server where LISTEN fails falls back to polling too.
 */
import type { Db, DbHandle } from '../../db/client.ts';
import { withReadOnlyRole } from '../../db/readonly.ts';
import { changeSnapshot, type ChangeSnapshot } from './queries.ts';

export const NOTIFY_CHANNEL = 'mmsweep_ui';

export type Change = { kind: 'epoch'; trialKey: string; epoch: number | null } | { kind: 'trials' } | { kind: 'results' };

export interface Watcher {
  mode: 'notify' | 'poll';
  /** Why this mode (for the start-up line). */
  reason: string;
  stop(): Promise<void>;
}

export async function watchChanges(
  handle: DbHandle,
  onChange: (change: Change) => void,
  options: { mode?: 'notify' | 'poll' | 'auto'; pollMs?: number; onError?: (error: unknown) => void } = {},
): Promise<Watcher> {
  const wanted = options.mode ?? 'auto';
  const client = (handle.db as unknown as { $client: unknown }).$client as { listen?: unknown };
  const canListen = handle.kind === 'server' && typeof client.listen === 'function';
  if (wanted === 'notify' && !canListen) throw new Error('LISTEN/NOTIFY needs a Postgres server (DATABASE_URL); the embedded database is polled');
  if (wanted !== 'poll' && canListen) {
    try {
      return await listen(client as unknown as import('postgres').Sql, onChange);
    } catch (error) {
      if (wanted === 'notify') throw error;
      const poller = startPolling(handle.db, onChange, options.pollMs ?? 1000, options.onError);
      return { ...poller, reason: `LISTEN failed (${(error as Error).message}); polling every ${options.pollMs ?? 1000} ms` };
    }
  }
  const reason =
    wanted === 'poll'
      ? `polling every ${options.pollMs ?? 1000} ms (asked for)`
      : `polling every ${options.pollMs ?? 1000} ms (the embedded database has no LISTEN/NOTIFY between processes)`;
  return { ...startPolling(handle.db, onChange, options.pollMs ?? 1000, options.onError), reason };
}

async function listen(pg: import('postgres').Sql, onChange: (change: Change) => void): Promise<Watcher> {
  const sub = await pg.listen(NOTIFY_CHANNEL, (payload) => {
    const change = parsePayload(payload);
    if (change) onChange(change);
  });
  return { mode: 'notify', reason: `LISTEN ${NOTIFY_CHANNEL} (Postgres NOTIFY on epoch, trial and result writes)`, stop: () => sub.unlisten() };
}

/** The triggers' JSON payload → a change; anything else is ignored (the channel name is public to every role). */
export function parsePayload(payload: string): Change | null {
  let p: unknown;
  try {
    p = JSON.parse(payload);
  } catch {
    return null;
  }
  if (!p || typeof p !== 'object') return null;
  const o = p as Record<string, unknown>;
  if (o.kind === 'epoch' && typeof o.trial === 'string') return { kind: 'epoch', trialKey: o.trial, epoch: typeof o.epoch === 'number' ? o.epoch : null };
  if (o.kind === 'trials' || o.kind === 'results') return { kind: o.kind };
  return null;
}

function startPolling(db: Db, onChange: (change: Change) => void, pollMs: number, onError?: (error: unknown) => void): Omit<Watcher, 'reason'> {
  let previous: ChangeSnapshot | null = null;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> = Promise.resolve();
  const tick = async () => {
    try {
      const now = await withReadOnlyRole(db, (tx) => changeSnapshot(tx));
      if (previous) {
        for (const [trialKey, e] of now.runningEpochs) {
          if (previous.runningEpochs.get(trialKey)?.stamp !== e.stamp) onChange({ kind: 'epoch', trialKey, epoch: e.epoch });
        }
        if (now.trials !== previous.trials) onChange({ kind: 'trials' });
        if (now.results !== previous.results) onChange({ kind: 'results' });
      }
      previous = now;
    } catch (error) {
      onError?.(error);
    }
  };
  const loop = () => {
    if (stopped) return;
    inFlight = tick().finally(() => {
      if (!stopped) timer = setTimeout(loop, pollMs);
    });
  };
  loop();
  return {
    mode: 'poll',
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      await inFlight;
    },
  };
}
