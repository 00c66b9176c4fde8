import fs from 'node:fs';

/** Whether a process with this pid exists (EPERM: it does, under another user). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface PidLockHolder {
  pid: number;
  /** What the holder wrote beside its pid (e.g. the study it runs). */
  detail: Record<string, unknown>;
}

/**
 * Take a lock file naming this process (created exclusively, 0600), or report the live process that holds it. A
 * lock whose process is dead (kill -9, power loss) is taken over. `release` removes it only while it is ours.
 */
export function takePidLock(file: string, detail: Record<string, unknown> = {}): { release(): void } | { holder: PidLockHolder } {
  const content = JSON.stringify({ pid: process.pid, ...detail, since: new Date().toISOString() }) + '\n';
  for (let tries = 0; tries < 5; tries++) {
    try {
      fs.writeFileSync(file, content, { flag: 'wx', mode: 0o600 });
      const release = () => {
        process.removeListener('exit', release);
        try {
          if (readHolder(file)?.pid === process.pid) fs.rmSync(file);
        } catch {
          // already gone
        }
      };
      process.once('exit', release);
      return { release };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const seen = readText(file);
    const holder = seen === null ? null : parseHolder(seen);
    if (holder && holder.pid !== process.pid && pidAlive(holder.pid)) return { holder };
    // A dead holder, or a half-written file of one that died while writing it. Re-read first, so that a lock a
    // third process has just taken over is not the one removed.
    if (seen !== null && readText(file) === seen) fs.rmSync(file, { force: true });
  }
  throw new Error(`cannot take the lock ${file}; remove it by hand if no process holds it`);
}

function readText(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

function parseHolder(text: string): PidLockHolder | null {
  try {
    const parsed = JSON.parse(text) as Record<string, unknown>;
    const pid = Number(parsed.pid);
    if (!Number.isInteger(pid) || pid <= 0) return null;
    return { pid, detail: parsed };
  } catch {
    return null;
  }
}

function readHolder(file: string): PidLockHolder | null {
  const text = readText(file);
  return text === null ? null : parseHolder(text);
}
