import { runCli } from './program.ts';

/**
 * The trial runner's entry point: the `train` command alone, so that a worker's runner process loads only what one
 * trial needs. Workers run it from a prebuilt bundle (activities/runner-bundle.ts) rather than through tsx, which
 * would transpile the CLI at every trial start; `node <bundle> train …` behaves exactly like `mmsweep train …`.
 */
await runCli({ train: () => import('./commands/train.ts') }, process.argv);
