import fs from 'node:fs';
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { migrationsFolder, openDatabase, registerTrials, rowsOf, upsertStudy, pendingTrialKeys } from '../../db/index.ts';
import { cmnistSpec } from './store.suite.ts';
import { runFixture } from './fixtures/spawn.ts';
import { createServerDatabase } from './targets.ts';

/** Several processes against the real Postgres server at once. */
describe('concurrent processes on the Postgres server', () => {
  it('six processes migrating an empty database at once apply each migration exactly once', async () => {
    const database = await createServerDatabase();
    try {
      const runs = await Promise.all(Array.from({ length: 6 }, () => runFixture('migrate-child.ts', [database.url])));
      for (const run of runs) {
        expect(run.stderr).toBe('');
        expect(run.code).toBe(0);
      }
      const handle = await openDatabase({ url: database.url, migrate: false });
      try {
        const [row] = rowsOf<{ migrations: number; hashes: number; tables: number }>(
          await handle.db.execute(sql`select count(*)::int as migrations, count(distinct hash)::int as hashes,
            (select count(*)::int from information_schema.tables where table_schema = 'public') as tables
            from drizzle.__drizzle_migrations`),
        );
        // Every migration of the journal (0000 schema, 0001 views, 0002 epochs.branch_acc, …), each applied once;
        // 12 tables and views (0005 added study_counts).
        const journal = JSON.parse(fs.readFileSync(`${migrationsFolder}/meta/_journal.json`, 'utf8')) as { entries: unknown[] };
        expect(journal.entries.length).toBeGreaterThanOrEqual(3);
        expect(row).toEqual({ migrations: journal.entries.length, hashes: journal.entries.length, tables: 12 });
      } finally {
        await handle.close();
      }
    } finally {
      await database.drop();
    }
  });

  it('four competing writer processes: every trial ends with exactly one result, from its final attempt', async () => {
    const database = await createServerDatabase();
    const handle = await openDatabase({ url: database.url });
    try {
      const trialCount = 24;
      await upsertStudy(handle.db, { id: 'race', spec: {} });
      await registerTrials(
        handle.db,
        'race',
        Array.from({ length: trialCount }, (_, i) => ({ trialKey: `race-${i}`, spec: cmnistSpec({ seed: i }) })),
      );
      const runs = await Promise.all(
        [1, 2, 3, 4].map((w) => runFixture('writer-child.ts', [database.url, 'race', `worker-${w}`, String(w * 7919)])),
      );
      const counts = runs.map((run) => {
        expect(run.stderr).toBe('');
        expect(run.code).toBe(0);
        return JSON.parse(run.stdout) as { claimed: number; fencedWrites: number; appliedResults: number; refusedClaims: number };
      });
      const total = (k: keyof (typeof counts)[number]) => counts.reduce((s, c) => s + c[k], 0);
      // Exactly one applied result per trial, however the claims interleaved.
      expect(total('appliedResults')).toBe(trialCount);
      // Every claim either completed or was fenced off by a later claim.
      expect(total('claimed')).toBe(total('appliedResults') + total('fencedWrites'));
      expect(await pendingTrialKeys(handle.db, 'race')).toEqual([]);
      const [check] = rowsOf<{ results: number; mismatched: number; epochs: number; stale_epochs: number }>(
        await handle.db.execute(sql`select
          (select count(*)::int from results) as results,
          (select count(*)::int from results r join trials t using (trial_key) where r.attempt <> t.attempt or t.status <> 'done') as mismatched,
          (select count(*)::int from epochs) as epochs,
          (select count(*)::int from epochs e join trials t using (trial_key) where e.attempt > t.attempt) as stale_epochs`),
      );
      expect(check).toEqual({ results: trialCount, mismatched: 0, epochs: 3 * trialCount, stale_epochs: 0 });
      // The final attempt wrote every epoch of its trial (it ran all three after its claim).
      const [last] = rowsOf<{ n: number }>(
        await handle.db.execute(sql`select count(*)::int as n from epochs e join trials t using (trial_key) where e.attempt = t.attempt`),
      );
      expect(last.n).toBe(3 * trialCount);
      console.log(`[db concurrency] per-worker counts: ${JSON.stringify(counts)}`);
    } finally {
      await handle.close();
      await database.drop();
    }
  });
});
