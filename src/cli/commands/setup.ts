import type { Command } from 'commander';

/**
 * `mmsweep setup native [--gpu] [--force] [--check]`: build the native TensorFlow backend from registry packages
 * only (scripts/setup-native.sh: tfjs-node from npm without its downloading install script, libtensorflow from
 * PyPI's tensorflow-cpu wheel, the binding compiled with node-gyp against Node's local headers). `--gpu` builds
 * tfjs-node-gpu the same way from PyPI's tensorflow wheel plus the CUDA 12 nvidia-*-cu12 wheels. Same as
 * `npm run setup:native [-- --gpu]`. Afterwards `--backend auto` picks `tensorflow` (or `tensorflow-gpu` where a
 * GPU is actually used).
 */
export function register(program: Command): void {
  const setup = program.command('setup').description('Install optional pieces of the toolchain');

  setup
    .command('native')
    .description(
      'Make the native TensorFlow backend (@tensorflow/tfjs-node) work offline: libtensorflow from PyPI, binding built locally (~260 MB download once, ~750 MB on disk, about a minute)',
    )
    .option('--gpu', 'build @tensorflow/tfjs-node-gpu instead: TensorFlow 2.20 with CUDA 12 libraries from PyPI (~2.1 GB download once, ~4.5 GB on disk; needs only the NVIDIA driver to use a GPU)')
    .option('--force', 'rebuild even if a working setup is found')
    .option('--check', 'only report whether the native backend loads (exit code 1 if not)')
    .action(async (opts: { gpu?: boolean; force?: boolean; check?: boolean }) => {
      const { spawnSync } = await import('node:child_process');
      const path = await import('node:path');
      const { fileURLToPath } = await import('node:url');
      const script = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../scripts/setup-native.sh');
      const args = [script, ...(opts.gpu ? ['--gpu'] : []), ...(opts.force ? ['--force'] : []), ...(opts.check ? ['--check'] : [])];
      const result = spawnSync('bash', args, { stdio: 'inherit' });
      if (result.error) {
        process.stderr.write(`mmsweep setup native: could not run bash ${script}: ${result.error.message}\n`);
        process.exitCode = 1;
        return;
      }
      process.exitCode = result.status ?? 1;
    });
}
