import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Command } from 'commander';
import { afterAll, describe, expect, it, vi } from 'vitest';
import {
  embeddedFiles,
  embeddedServerInfo,
  findStudy,
  openDatabase,
  pendingTrialKeys,
  registerTrials,
  runReadOnlyQuery,
  upsertStudy,
} from '../../db/index.ts';
import { cmnistSpec } from './store.suite.ts';
import { register as registerDbCommand } from '../../src/cli/commands/db.ts';
import { runFixture } from './fixtures/spawn.ts';
import { copyPgliteTemplate, tempDir } from './targets.ts';

/**
 * The embedded database: one owner process opens the PGlite directory and serves it; a second process (and psql)
 * connect through that socket. A lock left by a dead process is taken over.
 */
describe('embedded database shared over the wire protocol', () => {
  const home = tempDir('mmsweep-home-');
  const dataDir = path.join(home, 'db');
  const savedEnv = { home: process.env.MMSWEEP_HOME, url: process.env.DATABASE_URL };
  afterAll(() => {
    process.env.MMSWEEP_HOME = savedEnv.home;
    if (savedEnv.url === undefined) delete process.env.DATABASE_URL;
    else process.env.DATABASE_URL = savedEnv.url;
    if (savedEnv.home === undefined) delete process.env.MMSWEEP_HOME;
    fs.rmSync(home, { recursive: true, force: true });
  });

  it('takes over a stale lock, serves the database, and a second process reads and writes through the socket', async () => {
    process.env.MMSWEEP_HOME = home;
    delete process.env.DATABASE_URL;
    // A lock whose holder is dead (kill -9 leaves one behind).
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    fs.mkdirSync(home, { recursive: true });
    fs.writeFileSync(embeddedFiles(dataDir).lock, dead);
    await copyPgliteTemplate(dataDir);

    const owner = await openDatabase(); // default location: $MMSWEEP_HOME/db
    try {
      expect(owner).toMatchObject({ kind: 'embedded', owner: true, driver: 'postgres-js', dataDir });
      // A Unix socket in a directory only this user can enter (issue 17, S4), no TCP port.
      expect(owner.url).toBe(`postgres://postgres@localhost/postgres?host=${dataDir}.sock`);
      expect(fs.readFileSync(embeddedFiles(dataDir).lock, 'utf8')).toBe(String(process.pid));
      expect(embeddedServerInfo(dataDir)).toMatchObject({ url: owner.url, pid: process.pid, dataDir });
      await upsertStudy(owner.db, { id: 'from-owner', spec: {} });

      // `mmsweep db url` prints the URL alone on stdout.
      const out: string[] = [];
      const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
        out.push(String(chunk));
        return true;
      });
      const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
      try {
        const program = new Command().exitOverride();
        registerDbCommand(program);
        await program.parseAsync(['node', 'mmsweep', 'db', 'url']);
      } finally {
        write.mockRestore();
        stderr.mockRestore();
      }
      expect(out.join('')).toBe(`${owner.url}\n`);

      // A second process does not open the directory: it connects through the socket.
      const guest = await runFixture('guest-child.ts', [dataDir], { MMSWEEP_HOME: home, DATABASE_URL: '' });
      expect(guest.stderr).toBe('');
      expect(guest.code).toBe(0);
      expect(JSON.parse(guest.stdout)).toEqual({ kind: 'embedded', owner: false, driver: 'postgres-js', url: owner.url, studies: ['from-owner'] });
      expect(await findStudy(owner.db, 'from-guest')).toMatchObject({ id: 'from-guest' });

      // Two writer processes competing through the socket: fencing holds on PGlite too.
      await registerTrials(owner.db, 'from-owner', Array.from({ length: 12 }, (_, i) => ({ trialKey: `emb-${i}`, spec: cmnistSpec({ seed: i }) })));
      const writers = await Promise.all(
        [1, 2].map((w) => runFixture('writer-child.ts', [owner.url!, 'from-owner', `w${w}`, String(w * 104729)])),
      );
      const applied = writers.reduce((sum, run) => {
        expect(run.stderr).toBe('');
        expect(run.code).toBe(0);
        return sum + (JSON.parse(run.stdout) as { appliedResults: number }).appliedResults;
      }, 0);
      expect(applied).toBe(12);
      expect(await pendingTrialKeys(owner.db, 'from-owner')).toEqual([]);

      // A second open in this process also goes through the socket.
      const again = await openDatabase({ url: '', dataDir });
      expect(again).toMatchObject({ owner: false, url: owner.url });
      try {
        // PGlite has one session: the socket's queue must keep the reader's READ ONLY transactions and the owner's
        // writes apart, or writes would land inside a read-only transaction and fail.
        const reads = Array.from({ length: 25 }, () => runReadOnlyQuery(again.db, 'select count(*)::int as n from studies'));
        const writes = Array.from({ length: 25 }, (_, i) => upsertStudy(owner.db, { id: `interleaved-${i}`, spec: { i } }));
        await Promise.all([...reads, ...writes]);
        const [{ n }] = (await runReadOnlyQuery(owner.db, `select count(*)::int as n from studies where id like 'interleaved-%'`)).rows as { n: number }[];
        expect(n).toBe(25);
      } finally {
        await again.close();
      }
    } finally {
      await owner.close();
    }
    // Closing releases the directory for the next process.
    expect(fs.existsSync(embeddedFiles(dataDir).lock)).toBe(false);
    expect(fs.existsSync(embeddedFiles(dataDir).server)).toBe(false);
    expect(embeddedServerInfo(dataDir)).toBeNull();
  });
});
