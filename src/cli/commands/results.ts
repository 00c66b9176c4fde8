import type { Command } from 'commander';

/** `mmsweep results <study>`: the per-condition aggregates of the `condition_summary` view. */
export function register(program: Command): void {
  program
    .command('results')
    .description('Per-condition aggregates of a study: n, test accuracy mean ± sample std, E[d_util], E[d_speed], R(f), diverged')
    .argument('<study>', 'study id or name')
    .option(
      '--by <columns>',
      'comma-separated grouping columns among dataset, dataset_variant, architecture, modalities, algorithm, profile, lr, l1, alpha, q (default: all)',
    )
    .option('--format <format>', 'table | csv | json', 'table')
    .action(async (study: string, opts: { by?: string; format: string }) => {
      const [{ withStore, splitList, UsageError }, { findStudy, studySummary, UnknownStudyError }, { formatRows, parseOutputFormat }, { conditionColumns, isConditionColumn }, { summaryMetricColumns }] =
        await Promise.all([
          import('../../../db/cli.ts'),
          import('../../../db/store.ts'),
          import('../../../db/format.ts'),
          import('../../../db/conditions.ts'),
          import('../../../db/views.ts'),
        ]);
      await withStore(async ({ db }) => {
        let format;
        try {
          format = parseOutputFormat(opts.format);
        } catch (error) {
          throw new UsageError((error as Error).message);
        }
        const by = splitList(opts.by) ?? [...conditionColumns];
        const bad = by.filter((c) => !isConditionColumn(c));
        if (bad.length > 0) throw new UsageError(`cannot group by ${bad.join(', ')}: choose from ${conditionColumns.join(', ')}`);
        const found = await findStudy(db, study);
        if (!found) throw new UnknownStudyError(study);
        const rows = await studySummary(db, found.id, by as (typeof conditionColumns)[number][]);
        process.stdout.write(formatRows([...by, ...summaryMetricColumns], rows, format));
      });
    });
}
