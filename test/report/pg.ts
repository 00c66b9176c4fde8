/** A uniquely named database on the local Postgres server (127.0.0.1:5432, trust auth), migrated, dropped after. */
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { openDatabase, type DbHandle } from '../../db/client.ts';

export const PG_ADMIN_URL = process.env.MMSWEEP_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TempDatabase {
  name: string;
  url: string;
  handle: DbHandle;
  drop(): Promise<void>;
}

export async function createTempDatabase(prefix: string): Promise<TempDatabase> {
  const name = `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = postgres(PG_ADMIN_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${name}"`);
  const url = PG_ADMIN_URL.replace(/\/[^/]*$/, `/${name}`);
  const handle = await openDatabase({ url });
  return {
    name,
    url,
    handle,
    drop: async () => {
      await handle.close();
      await admin.unsafe(`drop database if exists "${name}" with (force)`);
      await admin.end({ timeout: 5 });
    },
  };
}
