import { runCli, type CommandLoader } from './program.ts';

/**
 * Each command lives in its own module under ./commands and exports `register(program)`; a module loads what its
 * command needs (Temporal, tfjs, the database) only when that command runs, so `mmsweep doctor` never pays for
 * loading Temporal.
 */
const commandModules: Record<string, CommandLoader> = {
  doctor: () => import('./commands/doctor.ts'),
  presets: () => import('./commands/presets.ts'),
  study: () => import('./commands/study.ts'),
  worker: () => import('./commands/worker.ts'),
  run: () => import('./commands/run.ts'),
  train: () => import('./commands/train.ts'),
  report: () => import('./commands/report.ts'),
  ui: () => import('./commands/ui.ts'),
  results: () => import('./commands/results.ts'),
  sql: () => import('./commands/sql.ts'),
  export: () => import('./commands/export.ts'),
  db: () => import('./commands/db.ts'),
  setup: () => import('./commands/setup.ts'),
};

await runCli(commandModules, process.argv);
