import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('presets')
    .description("list the paper's studies (and their -small variants) with their trial counts")
    .option('--json', 'print a JSON array of {name, trials, description}')
    .action(async (options: { json?: boolean }) => {
      const { listPresets } = await import('../../spec/presets.ts');
      const presets = listPresets();
      if (options.json) {
        process.stdout.write(`${JSON.stringify(presets, null, 2)}\n`);
        return;
      }
      const width = Math.max(...presets.map((p) => p.name.length));
      for (const p of presets) process.stdout.write(`${p.name.padEnd(width)}  ${String(p.trials).padStart(4)} trials  ${p.description}\n`);
    });
}
