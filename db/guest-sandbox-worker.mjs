// The guest sandbox (db/guest-sandbox.ts): a throw-away PGlite, loaded from a snapshot of the embedded database,
// running one guest's statements in a worker thread that its parent terminates at --timeout. PGlite runs a
// statement to its end on the thread that called it (no statement timeout, no cancel), so a thread that can be
// killed is the only way to stop one.
// Plain JavaScript on purpose: worker threads do not inherit the TypeScript loader the CLI registers.
import { parentPort, workerData } from 'node:worker_threads';
import { PGlite } from '@electric-sql/pglite';

/** @type {{ snapshot: Uint8Array }} */
const { snapshot } = workerData;

function describe(error) {
  return {
    message: error instanceof Error ? error.message : String(error),
    code: typeof error?.code === 'string' ? error.code : undefined,
  };
}

let db;
try {
  db = await PGlite.create({ loadDataDir: new Blob([snapshot]) });
  // A fresh instance's first catalog reads and its first PL/pgSQL call (loading the language, which the guest's
  // query runs through) are slow: done here, so that --timeout measures the guest's query.
  await db.exec('select count(*) from pg_class; do $$ begin end $$');
  parentPort.postMessage({ ready: true });
} catch (error) {
  parentPort.postMessage({ ready: false, error: describe(error) });
}

// One statement at a time, in arrival order: the parent awaits each answer before it sends the next.
parentPort.on('message', async ({ id, kind, statement, params }) => {
  try {
    if (kind === 'exec') {
      await db.exec(statement);
      parentPort.postMessage({ id });
    } else {
      const result = await db.query(statement, params ?? []);
      parentPort.postMessage({ id, rows: result.rows });
    }
  } catch (error) {
    parentPort.postMessage({ id, error: describe(error) });
  }
});
