import path from 'node:path';

/**
 * mmsweep's local state on this machine: `MMSWEEP_HOME`, else `.mmsweep` under the current directory. Everything
 * local lives under it (embedded database, Temporal state, checkpoints, data cache), so moving the directory and
 * pointing MMSWEEP_HOME at the new place moves all of it.
 */
export function mmsweepHome(cwd: string = process.cwd()): string {
  return process.env.MMSWEEP_HOME ? path.resolve(process.env.MMSWEEP_HOME) : path.join(path.resolve(cwd), '.mmsweep');
}
