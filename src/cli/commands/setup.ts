import type { Command } from 'commander';

/**
 * `mmsweep setup native [flags]`: build the native TensorFlow backend from registry packages only
 * (scripts/setup-native.sh: tfjs-node from npm without its downloading install script, libtensorflow from PyPI,
 * the binding compiled with node-gyp against Node's local headers). A thin wrapper: every flag goes to the script
 * unchanged (`--gpu`, `--force`, `--check`, `--help`), and its exit code is ours.
 * Same as `npm run setup:native -- [flags]`. Afterwards `--backend auto` picks `tensorflow`.
 */
export function register(program: Command): void {
  const setup = program.command('setup').description('Install optional pieces of the toolchain');

  setup
    .command('native')
    .description(
      'Make the native TensorFlow backend (@tensorflow/tfjs-node) work offline: libtensorflow from PyPI, binding built locally ' +
        '(~260 MB download once, ~750 MB on disk, about a minute); --gpu: @tensorflow/tfjs-node-gpu with CUDA 12 from PyPI ' +
        '(~2.1 GB download once, ~3.4 GB on disk). Flags go to scripts/setup-native.sh (see --help).',
    )
    .argument('[flags...]', 'passed to scripts/setup-native.sh, e.g. --force, --check')
    .helpOption(false)
    .allowUnknownOption()
    .action(async (flags: string[]) => {
      process.exitCode = await runNativeSetup(flags);
    });
}

/** Run scripts/setup-native.sh with `flags`, its output on ours; resolves its exit code (1 when bash cannot run). */
export async function runNativeSetup(flags: string[] = []): Promise<number> {
  const { spawnSync } = await import('node:child_process');
  const path = await import('node:path');
  const { fileURLToPath } = await import('node:url');
  const script = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../scripts/setup-native.sh');
  const result = spawnSync('bash', [script, ...flags], { stdio: 'inherit' });
  if (result.error) {
    process.stderr.write(`mmsweep setup native: could not run bash ${script}: ${result.error.message}\n`);
    return 1;
  }
  return result.status ?? 1;
}
