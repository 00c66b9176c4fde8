import { Command } from 'commander';
import { maskSecrets, secretsOf } from '../util/secrets.ts';

/**
 * Each command lives in its own module under ./commands and exports `register(program)`.
 * Commands are loaded lazily by name so that `mmsweep doctor` never pays for loading Temporal or tfjs.
 */
const commandModules: Record<string, () => Promise<{ register: (program: Command) => void }>> = {
  doctor: () => import('./commands/doctor.ts'),
  presets: () => import('./commands/presets.ts'),
  study: () => import('./commands/study.ts'),
  worker: () => import('./commands/worker.ts'),
  run: () => import('./commands/run.ts'),
  train: () => import('./commands/train.ts'),
  report: () => import('./commands/report.ts'),
  results: () => import('./commands/results.ts'),
  sql: () => import('./commands/sql.ts'),
  export: () => import('./commands/export.ts'),
  db: () => import('./commands/db.ts'),
  setup: () => import('./commands/setup.ts'),
};

export async function main(argv: string[]): Promise<void> {
  const program = new Command();
  program
    .name('mmsweep')
    .description('Multi-modal learning sweeps of Wu et al. (ICML 2022): train, orchestrate, store and report.')
    .showHelpAfterError();
  for (const load of Object.values(commandModules)) (await load()).register(program);
  await program.parseAsync(argv);
}

/**
 * A user error (unknown preset, bad spec, unreachable database…) is reported as one line naming the problem;
 * the stack trace is for developers and appears only with MMSWEEP_DEBUG=1.
 */
try {
  await main(process.argv);
} catch (error) {
  const err = error as Error & { exitCode?: number };
  // Whatever failed, a password from DATABASE_URL never reaches the terminal (issue 17, S3).
  const secrets = secretsOf(process.env.DATABASE_URL);
  if (process.env.MMSWEEP_DEBUG) console.error(maskSecrets(String(err.stack ?? err), secrets));
  else console.error(`mmsweep: ${maskSecrets(err.message ?? String(err), secrets)}`);
  process.exit(typeof err.exitCode === 'number' ? err.exitCode : 1);
}
