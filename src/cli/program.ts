import { Command } from 'commander';

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
    .showHelpAfterError();
  try {
    for (const load of Object.values(commands)) (await load()).register(program);
    await program.parseAsync(argv);
  } catch (error) {
    const err = error as Error & { exitCode?: number };
    if (process.env.MMSWEEP_DEBUG) console.error(err.stack ?? err);
    else console.error(`mmsweep: ${err.message ?? String(err)}`);
    process.exit(typeof err.exitCode === 'number' ? err.exitCode : 1);
  }
}
