import path from 'node:path';
import type { Command } from 'commander';

/**
 * `mmsweep report <study…> --out <dir>`: the static study report (index.html, figures as SVG and PNG, tables as
 * CSV) from the results store, and Table 1 printed in the terminal.
 */
export function register(program: Command): void {
  program
    .command('report')
    .description('Write a static HTML report (Table 1, d_util/d_speed distributions, sweeps, curves) and print Table 1')
    .argument('<study...>', 'study ids (or names) to report on, pooled into one report')
    .option('-o, --out <dir>', 'output directory (created if missing)', 'report')
    .option('--max-curves <n>', 'at most this many per-trial learning-curve figures', '48')
    .option('--bins <n>', 'histogram bins (default: ⌈√n⌉ clamped to [5, 30])')
    .option('--no-png', 'skip the PNG copies of the figures')
    .option('--database-url <url>', 'Postgres URL (default: DATABASE_URL, else the embedded database)')
    .action(async (studies: string[], opts: { out: string; maxCurves: string; bins?: string; png: boolean; databaseUrl?: string }) => {
      const maxCurves = parsePositiveInt(opts.maxCurves, '--max-curves');
      const binCount = opts.bins === undefined ? undefined : parsePositiveInt(opts.bins, '--bins');
      const { openDatabase } = await import('../../../db/client.ts');
      const { loadReportData } = await import('../../report/data.ts');
      const { buildReport, writeReport } = await import('../../report/report.ts');
      const { table1Text } = await import('../../report/table1.ts');
      const handle = await openDatabase(opts.databaseUrl ? { url: opts.databaseUrl } : {});
      let data;
      try {
        data = await loadReportData(handle.db, studies);
      } finally {
        await handle.close();
      }
      const report = buildReport(data, { maxCurves, binCount });
      const outDir = path.resolve(opts.out);
      const { SingleBar, Presets } = await import('cli-progress');
      const bar = new SingleBar({ format: 'rendering figures [{bar}] {value}/{total}', stream: process.stderr, hideCursor: true }, Presets.shades_classic);
      bar.start(report.figures.length, 0);
      let written;
      try {
        written = await writeReport(report, outDir, { png: opts.png, onProgress: (done) => bar.update(done) });
      } finally {
        bar.stop();
      }
      process.stdout.write(`${table1Text(report.table1)}\n\n`);
      for (const note of report.notes) process.stdout.write(`note: ${note}\n`);
      process.stdout.write(
        `report: ${written.indexHtml} (${written.figures.length} figures, ${report.tables.length} tables in ${path.join(outDir, 'tables')})\n`,
      );
    });
}

function parsePositiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} must be a positive integer, got "${value}"`);
  return n;
}
