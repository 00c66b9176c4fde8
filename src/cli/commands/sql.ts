import type { Command } from 'commander';

/** `mmsweep sql "<query>"`: one read-only query against the results store. */
export function register(program: Command): void {
  program
    .command('sql')
    .description(
      'Run one SQL query read-only (as role mmsweep_readonly) against the results store (tables: studies, trials, study_trials, epochs, results; views: condition_summary, trial_outcomes, study_progress). ' +
        'On the embedded database the query runs on a snapshot of it, in a thread of this process stopped at --timeout: it never runs in the mmsweep process that holds the database (e.g. mmsweep run), which only pays for the copy.',
    )
    .argument('<query>', 'a single SQL statement')
    .option('--format <format>', 'table | csv | json', 'table')
    .option('--timeout <ms>', 'statement timeout in milliseconds: a query still running then is stopped (exit 1)', '30000')
    .option('--max-rows <n>', 'refuse a result with more rows than this', '100000')
    .action(async (query: string, opts: { format: string; timeout: string; maxRows: string }) => {
      const [{ withStore, UsageError }, { runGuestQuery }, { formatRows, parseOutputFormat }] = await Promise.all([
        import('../../../db/cli.ts'),
        import('../../../db/guest-sandbox.ts'),
        import('../../../db/format.ts'),
      ]);
      if (query.replace(/[\s;]+/g, '') === '') {
        process.stderr.write('mmsweep: sql: the query is empty: give one SELECT, WITH, VALUES or TABLE query, e.g. mmsweep sql "select * from study_progress"\n');
        process.exitCode = 2;
        return;
      }
      await withStore(async (handle) => {
        let format;
        try {
          format = parseOutputFormat(opts.format);
        } catch (error) {
          throw new UsageError((error as Error).message);
        }
        const timeoutMs = Number(opts.timeout);
        if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new UsageError(`--timeout must be a positive number of milliseconds, got "${opts.timeout}"`);
        const maxRows = Number(opts.maxRows);
        if (!Number.isInteger(maxRows) || maxRows <= 0) throw new UsageError(`--max-rows must be a positive integer, got "${opts.maxRows}"`);
        const out = await runGuestQuery(handle, query, {
          timeoutMs,
          maxRows,
          // Held by this process (no `mmsweep run` holds it): released before the query, so a run started meanwhile owns it.
          closeAfterSnapshot: true,
          onSandboxReady: ({ snapshotBytes, snapshotMs, loadMs }) => {
            if (!process.env.MMSWEEP_DEBUG) return;
            const mb = (snapshotBytes / 2 ** 20).toFixed(1);
            process.stderr.write(`mmsweep: sql: snapshot of the embedded database: ${mb} MiB, taken in ${Math.round(snapshotMs)} ms, opened in ${Math.round(loadMs)} ms; running the query\n`);
          },
        });
        process.stdout.write(formatRows(out.columns, out.rows, format));
      });
    });
}
