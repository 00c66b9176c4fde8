import { Command, CommanderError } from 'commander';
import { maskSecrets, secretsOf } from '../util/secrets.ts';

/** A CLI command module: registers its command (and sub-commands) on the program. */
export type CommandLoader = () => Promise<{ register: (program: Command) => void }>;

/**
 * Build a `mmsweep` program from command modules and run it. A user error (unknown preset, bad spec, unreachable
 * database…) is reported as one line naming the problem; the stack trace is for developers and appears only with
 * MMSWEEP_DEBUG=1. Shared by the full CLI (main.ts) and the trial runner's entry (runner.ts).
 */
export async function runCli(commands: Record<string, CommandLoader>, argv: string[]): Promise<void> {
  const program = new Command();
  program
    .name('mmsweep')
    .description('Multi-modal learning sweeps of Wu et al. (ICML 2022): train, orchestrate, store and report.')
    .showHelpAfterError()
    // Commander exits with 1 on a usage error (unknown option or command, missing argument); every invalid input
    // exits with 2 here. Set before the commands register so that each sub-command inherits it.
    .exitOverride();
  try {
    for (const load of Object.values(commands)) (await load()).register(program);
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander has already printed its message (and the help); --help and --version are not errors.
      process.exit(error.exitCode === 0 ? 0 : 2);
    }
    const err = error as Error & { exitCode?: number };
    // Whatever failed, a password from DATABASE_URL never reaches the terminal (issue 17, S3).
    const secrets = secretsOf(process.env.DATABASE_URL);
    if (process.env.MMSWEEP_DEBUG) console.error(maskSecrets(String(err.stack ?? err), secrets));
    else console.error(`mmsweep: ${maskSecrets(err.message ?? String(err), secrets)}`);
    process.exit(typeof err.exitCode === 'number' ? err.exitCode : 1);
  }
}
