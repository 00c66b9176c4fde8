import { defineConfig } from 'drizzle-kit';

// `npm run db:generate` diffs db/schema.ts against the snapshots in db/migrations and writes the next migration.
// Views are hand-written in their own migration (`npx drizzle-kit generate --custom --name <name>`).
export default defineConfig({
  dialect: 'postgresql',
  schema: './db/schema.ts',
  out: './db/migrations',
});
