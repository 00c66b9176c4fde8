import { maskSecrets, secretsOf } from '../src/util/secrets.ts';
import { DatabaseConnectionError, openDatabase, type DbHandle } from './client.ts';
import { QueryBoundError, QueryError, ReadOnlyRoleError, ReadOnlyViolationError } from './readonly.ts';
import { UnknownStudyError } from './store.ts';

/**
 * What the results-store CLI commands share: open the store the environment points at (DATABASE_URL or the
 * embedded database), run, close; errors a user can cause print as one message: exit code 2 for invalid input
 * (bad flags, a refused query, an unknown study), 1 for the environment (unreachable database, missing role, failed query).
 */

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

const invalidInput = [UsageError, ReadOnlyViolationError, QueryBoundError, UnknownStudyError];
const userErrors = [...invalidInput, DatabaseConnectionError, ReadOnlyRoleError, QueryError];

export async function withStore(body: (handle: DbHandle) => Promise<void>): Promise<void> {
  let handle: DbHandle | undefined;
  try {
    handle = await openDatabase();
    await body(handle);
  } catch (error) {
    if (userErrors.some((kind) => error instanceof kind)) {
      process.stderr.write(`mmsweep: ${maskSecrets((error as Error).message, secretsOf(process.env.DATABASE_URL))}\n`);
      const own = (error as { exitCode?: unknown }).exitCode;
      process.exitCode = typeof own === 'number' ? own : invalidInput.some((kind) => error instanceof kind) ? 2 : 1;
      return;
    }
    throw error;
  } finally {
    await handle?.close();
  }
}

/** `--by dataset,algorithm` → the list; validated by studySummary. */
export function splitList(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}
