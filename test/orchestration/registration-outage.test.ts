import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import net from 'node:net';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { openDatabase, rowsOf, type DbHandle } from '../../db/index.ts';
import { dbResultsStore } from '../../activities/db-store.ts';
import { createActivities, type RegisterStudyOutput, type ResultsStore } from '../../activities/index.ts';
import { parseStudySpec } from '../../src/spec/study.ts';
import { ADMIN_URL, createDatabase, type TestDatabase } from './harness.ts';

/**
 * Registration while the database goes away: the worker reaches the real Postgres server through a TCP relay this
 * test owns, and the relay is cut after two of the study's batches have committed (the server itself is never
 * touched). The failed attempt must say which database (password masked) and what to do; the retry after the
 * relay is back must register every trial once.
 */

const PASSWORD = 'i15-s3cret-pw';
const TRIALS = 23_000; // five batches of 5,000 (the last one short)

/** A TCP relay to the Postgres server that can be cut (listener closed, every connection destroyed) and restored. */
class Relay {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  async open(): Promise<void> {
    const server = net.createServer((client) => {
      const upstream = net.connect(this.target.port, this.target.host);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as net.AddressInfo).port;
    this.server = server;
  }

  async cut(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

let database: TestDatabase;
let relay: Relay;
let relayed: DbHandle;
let relayedUrl: string;

beforeAll(async () => {
  database = await createDatabase();
  const admin = new URL(ADMIN_URL);
  relay = new Relay({ host: admin.hostname, port: Number(admin.port || 5432) });
  await relay.open();
  const u = new URL(database.url);
  u.port = String(relay.port);
  u.password = PASSWORD; // the server trusts local connections: the password is never checked, only carried
  relayedUrl = u.toString();
  relayed = await openDatabase({ url: relayedUrl, migrate: false, connectTimeoutSeconds: 2 });
});

afterAll(async () => {
  await relayed?.close().catch(() => undefined);
  await relay?.cut();
  await database?.drop();
});

describe('registration while the database is unreachable', () => {
  it('fails naming the database (password masked) and what to do; the retry registers every trial exactly once', async () => {
    const spec = parseStudySpec({
      name: 'outage',
      queue: 'outage',
      conditions: [{ label: 'noop', base: { kind: 'noop', sleepMs: 0, epochs: 1 }, seeds: Array.from({ length: TRIALS }, (_, i) => i) }],
    });
    const store = dbResultsStore(relayed.db, relayed.displayName);
    expect(store.location).toContain(`:${relay.port}/`);
    expect(store.location).not.toContain(PASSWORD);
    // Cut the relay once two batches have committed: the third batch (already in flight) dies with its connection.
    let committed = 0;
    let cut = false;
    const cutting: ResultsStore = {
      ...store,
      async registerTrialBatch(studyId, trials) {
        if (committed === 2 && !cut) {
          cut = true;
          await relay.cut();
        }
        await store.registerTrialBatch(studyId, trials);
        committed++;
      },
    };
    const activities = createActivities(cutting, { controlStoreRetryMs: 1_500, checkpointRoot: '/nonexistent', registrationBatch: 5_000 });
    const env = new MockActivityEnvironment({ activityType: 'registerStudy' });

    const failure = await env.run(activities.registerStudy, { studyId: 'outage', spec }).then(
      () => null,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(ApplicationFailure);
    const { message, type, nonRetryable } = failure as ApplicationFailure;
    expect(type).toBe('StoreUnavailable');
    expect(nonRetryable).toBe(false); // Temporal retries it
    expect(message).toMatch(/^results store: registerTrialBatch: cannot reach the database /);
    expect(message).toContain(`postgres://postgres:***@127.0.0.1:${relay.port}/${database.name}`);
    expect(message).toMatch(/Start the Postgres server, or give this worker the right DATABASE_URL/);
    expect(message).not.toContain(PASSWORD);
    expect(message.length).toBeLessThan(1_000); // the driver's reason, not the batch's megabytes of parameters

    const count = async (query: ReturnType<typeof sql>) => Number(rowsOf<{ n: number }>(await database.handle.db.execute(query))[0].n);
    const before = await count(sql`select count(*)::int as n from study_trials where study_id = 'outage'`);
    expect(before).toBe(10_000); // two whole batches kept, the one in flight rolled back

    await relay.open(); // same port: the pool reconnects
    const output: RegisterStudyOutput = await new MockActivityEnvironment({ activityType: 'registerStudy', attempt: 2 }).run(activities.registerStudy, { studyId: 'outage', spec });
    expect(output.counts).toMatchObject({ total: TRIALS, pending: TRIALS, done: 0, failed: 0 });
    // Every planned trial once (keys from a second, independent expansion: one per seed), positions in plan order.
    expect(await count(sql`select count(*)::int as n from study_trials where study_id = 'outage'`)).toBe(TRIALS);
    expect(await count(sql`select count(*)::int as n from trials where kind = 'noop'`)).toBe(TRIALS);
    expect(await count(sql`select count(distinct seed)::int as n from trials t join study_trials st using (trial_key) where st.study_id = 'outage'`)).toBe(TRIALS);
    const seedsInOrder = rowsOf<{ seed: number }>(
      await database.handle.db.execute(sql`select t.seed from study_trials st join trials t using (trial_key) where st.study_id = 'outage' order by st.position`),
    ).map((r) => Number(r.seed));
    expect(seedsInOrder).toEqual(Array.from({ length: TRIALS }, (_, i) => i));
    expect(rowsOf(await database.handle.db.execute(sql`select trials, pending from study_progress where study_id = 'outage'`))).toEqual([{ trials: TRIALS, pending: TRIALS }]);
  }, 180_000);
});
