// Where `setpriv --pdeathsig` is not available (runner-process.ts): runs the trial runner and ties its life to the
// worker's: when the worker dies (even by kill -9) this process's stdin closes and the runner is killed at once, so
// no orphan keeps training and writing checkpoints behind the next attempt's back. What the worker writes on stdin
// is passed on to the runner (a spare runner's trial line).
// Plain JavaScript on purpose: it starts in milliseconds, without the TypeScript loader.
import { spawn } from 'node:child_process';

const [command, ...args] = process.argv.slice(2);
const child = spawn(command, args, { stdio: ['pipe', 'inherit', 'inherit'] });
child.stdin.on('error', () => undefined); // a runner that stopped reading: nothing to pass on
process.stdin.on('data', (chunk) => child.stdin.write(chunk));
process.stdin.on('end', () => child.kill('SIGKILL'));
process.stdin.on('error', () => child.kill('SIGKILL'));
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, () => child.kill(signal));
child.on('error', (error) => {
  process.stderr.write(`cannot start the trial runner ${command}: ${error.message}\n`);
  process.exit(1);
});
child.on('exit', (code, signal) => {
  if (signal) {
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
  } else process.exit(code ?? 1);
});
