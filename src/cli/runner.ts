import { runCli } from './program.ts';
import { WARM_COMMAND } from '../runner/protocol.ts';

/**
 * The trial runner's entry point: the `train` command alone, so that a worker's runner process loads only what one
 * trial needs. Workers run it from a prebuilt bundle (activities/runner-bundle.ts) rather than through tsx, which
 * would transpile the CLI at every trial start; `node <bundle> train …` behaves exactly like `mmsweep train …`, and
 * `node <bundle> warm …` is a spare runner that takes its trial's `train` arguments on stdin (./warm.ts).
 */
if (process.argv[2] === WARM_COMMAND) {
  const { runWarm } = await import('./warm.ts');
  await runWarm(process.argv.slice(3));
} else {
  await runCli({ train: () => import('./commands/train.ts') }, process.argv);
}
