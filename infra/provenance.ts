import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * What code ran a study (studies.code_version): mmsweep's version, the git commit with a dirty flag when this is
 * a git checkout, and the sha256 of package-lock.json (the exact dependency tree). Parts that cannot be read are
 * named as unknown rather than guessed.
 */
const repoRoot = fileURLToPath(new URL('..', import.meta.url));

function git(args: string[]): string | null {
  try {
    return execFileSync('git', args, { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 }).trim();
  } catch {
    return null;
  }
}

export function codeVersion(): string {
  let version = 'unknown';
  try {
    version = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    // keep 'unknown'
  }
  const commit = git(['rev-parse', 'HEAD']);
  const dirty = commit ? (git(['status', '--porcelain', '--untracked-files=no']) ?? '') !== '' : false;
  let lock = 'unknown';
  try {
    lock = createHash('sha256').update(readFileSync(new URL('../package-lock.json', import.meta.url))).digest('hex').slice(0, 16);
  } catch {
    // keep 'unknown'
  }
  return `mmsweep ${version} git ${commit ? `${commit.slice(0, 12)}${dirty ? '-dirty' : ''}` : 'unknown'} lock sha256:${lock}`;
}
