import type { Command } from 'commander';

/**
 * `mmsweep doctor [--backend <request>] [--json]`: which tfjs backend this machine would train on, the versions
 * involved, and for every backend why it is or is not used.
 */
export function register(program: Command): void {
  program
    .command('doctor')
    .description('report the tfjs backend chosen, versions, cores, and why preferred backends were not used')
    .option('--backend <request>', 'backend request to resolve: auto, tensorflow-gpu, tensorflow, wasm, cpu (env MMSWEEP_BACKEND replaces auto)', 'auto')
    .option('--json', 'print the report as one JSON object')
    .action(async (options: { backend: string; json?: boolean }) => {
      const { backendRequestSchema } = await import('../../spec/trial.ts');
      const parsed = backendRequestSchema.safeParse(options.backend);
      if (!parsed.success) {
        process.stderr.write(`--backend '${options.backend}' is not a backend; use one of ${backendRequestSchema.options.join(', ')}\n`);
        process.exitCode = 2;
        return;
      }
      const { describeBackends } = await import('../../backend/index.ts');
      let report;
      try {
        report = await describeBackends(parsed.data);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        if (options.json) process.stdout.write(`${JSON.stringify({ request: parsed.data, error: message })}\n`);
        else process.stderr.write(`mmsweep doctor: ${message}\n`);
        process.exitCode = 1;
        return;
      }
      if (options.json) {
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        return;
      }
      const { chosen } = report;
      const lines = [
        `node      ${report.nodeVersion} (${report.platform})`,
        `cpu       ${report.cpu}, ${report.cores} cores`,
        `tfjs      ${report.tfjsVersion}`,
        `request   ${report.request}${report.envOverride ? ` (from MMSWEEP_BACKEND=${report.envOverride})` : ''}`,
        `backend   ${chosen.name}`,
        `version   ${chosen.version}`,
        `device    ${chosen.device}`,
        '',
        'backends in order of preference:',
      ];
      for (const probe of report.backends) {
        const status =
          probe.name === chosen.name ? 'used' : probe.ok ? `available, not used (request was '${report.request}')` : 'unavailable';
        lines.push(`  ${probe.ok ? '✓' : '✗'} ${probe.name.padEnd(15)} ${status}`);
        if (probe.reason) lines.push(`      ${probe.reason}`);
      }
      if (report.gpuFallback) {
        lines.push(
          '',
          `GPU: a tfjs-node-gpu build is present but no GPU is used, so '${report.request}' fell back to '${report.gpuFallback.usedInstead}' (reason above).`,
          `     To see TensorFlow's library loader log: ${report.gpuFallback.loaderLog} mmsweep doctor`,
        );
      }
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
