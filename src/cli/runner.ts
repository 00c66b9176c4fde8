import { runCli } from './program.ts';
import { EXIT_CODES, RUNNER_PARENT_ENV, WARM_COMMAND } from '../runner/protocol.ts';

/**
 * The trial runner's entry point: the `train` command alone, so that a worker's runner process loads only what one
 * trial needs. Workers run it from a prebuilt bundle (activities/runner-bundle.ts) rather than through tsx, which
 * would transpile the CLI at every trial start; `node <bundle> train …` behaves exactly like `mmsweep train …`, and
 * `node <bundle> warm …` is a spare runner that takes its trial's `train` arguments on stdin (./warm.ts).
 */
const parent = process.env[RUNNER_PARENT_ENV];
delete process.env[RUNNER_PARENT_ENV];
if (parent !== undefined && String(process.ppid) !== parent) {
  // The worker died before the kernel's death signal was armed (activities/runner-process.ts): an orphan must not train.
  process.stderr.write(`mmsweep trial runner: its worker (pid ${parent}) is gone; not starting\n`);
  process.exit(EXIT_CODES.crash);
}
if (process.argv[2] === WARM_COMMAND) {
  const { runWarm } = await import('./warm.ts');
  await runWarm(process.argv.slice(3));
} else {
  await runCli({ train: () => import('./commands/train.ts') }, process.argv);
}
