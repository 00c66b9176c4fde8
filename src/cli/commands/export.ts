import type { Command } from 'commander';

/** `mmsweep export <study>`: the study's per-trial outcomes (`trial_outcomes`) as CSV or Parquet. */
export function register(program: Command): void {
  program
    .command('export')
    .description("Export a study's per-trial outcomes (the trial_outcomes view) as CSV or Parquet")
    .argument('<study>', 'study id or name')
    .option('--format <format>', 'csv | parquet', 'csv')
    .option('--out <file>', 'output file (default: stdout for csv, <study>.parquet for parquet)')
    .option('--force', 'overwrite the --out file if it exists')
    .action(async (study: string, opts: { format: string; out?: string; force?: boolean }) => {
      const [fs, { withStore, UsageError }, { exportStudy }, { findStudy, UnknownStudyError }] = await Promise.all([
        import('node:fs'),
        import('../../../db/cli.ts'),
        import('../../../db/export.ts'),
        import('../../../db/store.ts'),
      ]);
      await withStore(async ({ db }) => {
        if (opts.format !== 'csv' && opts.format !== 'parquet') {
          throw new UsageError(`unknown export format "${opts.format}": choose csv or parquet`);
        }
        const found = await findStudy(db, study);
        if (!found) throw new UnknownStudyError(study);
        const out = opts.out ?? (opts.format === 'parquet' ? `${found.id}.parquet` : undefined);
        if (out !== undefined && out !== '-' && fs.existsSync(out) && !opts.force) {
          throw new UsageError(`export: ${out} exists; add --force to overwrite it, or give another --out`);
        }
        const bytes = await exportStudy(db, found.id, opts.format);
        if (out === undefined || out === '-') {
          process.stdout.write(bytes);
        } else {
          fs.writeFileSync(out, bytes);
          process.stderr.write(`wrote ${bytes.byteLength} bytes to ${out}\n`);
        }
      });
    });
}
