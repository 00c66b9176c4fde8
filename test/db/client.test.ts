import { afterEach, describe, expect, it } from 'vitest';
import { DatabaseConnectionError, maskUrl, openDatabase } from '../../db/index.ts';
import { serverUrlFor } from './targets.ts';

/** Bad DATABASE_URL values fail at open with a message naming host and database, the password masked. */
describe('client factory: bad DATABASE_URL', () => {
  const saved = process.env.DATABASE_URL;
  afterEach(() => {
    if (saved === undefined) delete process.env.DATABASE_URL;
    else process.env.DATABASE_URL = saved;
  });

  async function failure(url: string | undefined): Promise<Error> {
    const error = await openDatabase(url === undefined ? {} : { url }).then(
      async (h) => {
        await h.close();
        return null;
      },
      (e: unknown) => e as Error,
    );
    expect(error).toBeInstanceOf(DatabaseConnectionError);
    return error!;
  }

  it('names the missing database and host, and masks the password', async () => {
    const u = new URL(serverUrlFor('mmsweep_no_such_database'));
    u.password = 'hunter2-secret';
    const error = await failure(u.toString());
    expect(error.message).toContain('database "mmsweep_no_such_database"');
    expect(error.message).toContain(`on ${u.hostname}:${u.port || 5432}`);
    expect(error.message).toContain(':***@');
    expect(error.message).not.toContain('hunter2-secret');
    expect(error.message).toMatch(/does not exist/);
  });

  it('reads DATABASE_URL from the environment and reports a refused connection', async () => {
    process.env.DATABASE_URL = 'postgres://alice:pa55word@127.0.0.1:1/results';
    const error = await failure(undefined);
    expect(error.message).toContain('database "results" on 127.0.0.1:1');
    expect(error.message).toContain('postgres://alice:***@127.0.0.1:1/results');
    expect(error.message).not.toContain('pa55word');
    expect(error.message).toMatch(/ECONNREFUSED/);
  });

  it('rejects a value that is no Postgres URL before connecting', async () => {
    expect((await failure('not a url')).message).toMatch(/DATABASE_URL is not a valid URL/);
    expect((await failure('mysql://root:toor@db/x')).message).toMatch(/must start with postgres:\/\//);
    expect((await failure('mysql://root:toor@db/x')).message).not.toContain('toor');
  });

  it('maskUrl masks only the password', () => {
    expect(maskUrl('postgres://u:p@h:5/d?sslmode=require')).toBe('postgres://u:***@h:5/d?sslmode=require');
    expect(maskUrl('postgres://u@h/d')).toBe('postgres://u@h/d');
  });
});
