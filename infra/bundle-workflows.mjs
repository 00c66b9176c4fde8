// Builds the workflow bundle (webpack) in a process of its own and writes it to the cache file named on the command
// line: webpack leaves about 100 MB in a process's resident memory that Node never hands back, which a worker would
// otherwise carry for its whole life (issue 15). Plain JavaScript: no TypeScript loader needed to start it.
import { renameSync, writeFileSync } from 'node:fs';
import { bundleWorkflowCode } from '@temporalio/worker';

const [workflowsPath, outFile, stamp] = process.argv.slice(2);
const quiet = {
  log: () => undefined,
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: (message) => console.warn(message),
  error: (message) => console.error(message),
};
const bundle = await bundleWorkflowCode({ workflowsPath, logger: quiet });
const tmp = `${outFile}.${process.pid}.tmp`;
writeFileSync(tmp, JSON.stringify({ ...bundle, stamp: Number(stamp) }));
renameSync(tmp, outFile);
