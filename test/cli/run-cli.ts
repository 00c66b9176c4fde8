import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { vi } from 'vitest';

export interface CliOutcome {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** Run one command module in this process (fast), capturing its output and exit code. */
export async function runInProcess(register: (program: Command) => void, args: string[]): Promise<CliOutcome> {
  const out: string[] = [];
  const err: string[] = [];
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => (out.push(typeof c === 'string' ? c : Buffer.from(c).toString()), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((c: string | Uint8Array) => (err.push(String(c)), true));
  process.exitCode = 0;
  try {
    const program = new Command().exitOverride();
    register(program);
    await program.parseAsync(['node', 'mmsweep', ...args]);
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
  const exitCode = Number(process.exitCode ?? 0);
  process.exitCode = 0;
  return { stdout: out.join(''), stderr: err.join(''), exitCode };
}

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** Run `bin/mmsweep.js …` as a user would, in its own process. */
export function runMmsweep(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000): Promise<CliOutcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/mmsweep.js', ...args], {
      cwd: repoRoot,
      env: { ...process.env, MMSWEEP_DEBUG: '', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`mmsweep ${args.join(' ')} did not finish in ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, exitCode: code ?? -1 });
    });
  });
}
