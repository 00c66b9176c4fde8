import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync, type Stats } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The trial runner as a prebuilt JavaScript bundle, so that starting a trial does not transpile the TypeScript CLI
 * (through tsx that cost about a second per trial). esbuild bundles `src/cli/runner.ts` (the `train` command alone)
 * with its dependencies into a directory of ES modules, split at every dynamic import so a noop trial never loads
 * tfjs; tfjs stays external and resolves from the project's node_modules, which is why the cache lives inside the
 * project.
 *
 * Staleness: the manifest records the sha256 of every source file esbuild read (its metafile) and of every file it
 * wrote. Before each use every input is compared with the manifest (a file is re-hashed only when its stat changed
 * since this process last hashed it), and so is every output file: an edited source or a damaged bundle is never
 * run, it is rebuilt. A source that starts importing a new file is itself changed, so the input list stays complete.
 */

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const RUNNER_ENTRY = path.join(repoRoot, 'src', 'cli', 'runner.ts');
const MANIFEST = 'manifest.json';
/** Bump when the build options below change: the outputs change without any input changing. */
const BUILD_RECIPE = 2;

export interface RunnerBundle {
  /** The entry module: `node <entry> train …` is `mmsweep train …`. */
  entry: string;
  /** Hash of the inputs the bundle was built from (names its directory). */
  key: string;
  /** Whether this call built it (false: a valid cached bundle was used). */
  built: boolean;
}

interface Manifest {
  key: string;
  esbuild: string;
  recipe: number;
  entry: string;
  /** Relative to the project root → sha256. */
  inputs: Record<string, string>;
  /** Relative to the bundle directory → sha256. */
  outputs: Record<string, string>;
}

export interface RunnerBundleOptions {
  /** Where bundles and the manifest live; must be inside the project (packages resolve from its node_modules). */
  cacheDir?: string;
  /** The entry module (tests bundle a small one). */
  entry?: string;
}

export function defaultBundleDir(): string {
  return path.join(repoRoot, '.mmsweep', 'cache', 'runner');
}

/** sha256 of a file, remembered per (inode, size, ctime): a rewrite changes ctime, so a stale hash is never used. */
const hashMemo = new Map<string, { stamp: string; sha256: string }>();

function statStamp(stats: Stats): string {
  return `${stats.ino}:${stats.size}:${stats.ctimeMs}:${stats.mtimeMs}`;
}

function fileSha256(file: string): string | null {
  let stats: Stats;
  try {
    stats = statSync(file);
  } catch {
    return null;
  }
  const stamp = statStamp(stats);
  const memo = hashMemo.get(file);
  if (memo && memo.stamp === stamp) return memo.sha256;
  const sha256 = createHash('sha256').update(readFileSync(file)).digest('hex');
  hashMemo.set(file, { stamp, sha256 });
  return sha256;
}

function readManifest(file: string): Manifest | null {
  try {
    const m = JSON.parse(readFileSync(file, 'utf8')) as Manifest;
    if (typeof m.key !== 'string' || !/^[0-9a-f]{24}$/.test(m.key)) return null;
    if (typeof m.inputs !== 'object' || m.inputs === null || typeof m.outputs !== 'object' || m.outputs === null) return null;
    // Output names are plain file names inside the bundle's directory.
    if (!Object.keys(m.outputs).every((name) => /^[\w.-]+\.js$/.test(name))) return null;
    return m;
  } catch {
    return null;
  }
}

/** Why the manifest's bundle cannot be used, or null when it can. */
function staleness(manifest: Manifest | null, cacheDir: string, entry: string, esbuildVersion: string): string | null {
  if (!manifest) return 'no bundle yet';
  if (manifest.esbuild !== esbuildVersion || manifest.recipe !== BUILD_RECIPE) return 'the bundler changed';
  if (manifest.entry !== path.relative(repoRoot, entry)) return 'another entry';
  for (const [rel, sha256] of Object.entries(manifest.inputs)) {
    if (fileSha256(path.join(repoRoot, rel)) !== sha256) return `${rel} changed`;
  }
  const dir = path.join(cacheDir, manifest.key);
  if (!manifest.outputs['runner.js']) return 'the manifest names no entry module';
  for (const [rel, sha256] of Object.entries(manifest.outputs)) {
    if (fileSha256(path.join(dir, rel)) !== sha256) return `bundle file ${rel} is missing or damaged`;
  }
  return null;
}

let building: Promise<RunnerBundle> | null = null;

/**
 * The runner bundle for the current sources: the cached one when every input and output still matches its
 * manifest, otherwise a fresh build (about a second). Concurrent callers in one process share one build; builds in
 * several processes each write their own directory and rename it into place, so none sees a half-written bundle.
 */
export async function runnerBundle(options: RunnerBundleOptions = {}): Promise<RunnerBundle> {
  const cacheDir = options.cacheDir ?? defaultBundleDir();
  const entry = options.entry ?? RUNNER_ENTRY;
  const esbuild = await import('esbuild');
  const manifestFile = path.join(cacheDir, MANIFEST);
  const manifest = readManifest(manifestFile);
  if (staleness(manifest, cacheDir, entry, esbuild.version) === null) {
    return { entry: path.join(cacheDir, manifest!.key, 'runner.js'), key: manifest!.key, built: false };
  }
  building ??= build(esbuild, cacheDir, entry).finally(() => (building = null));
  return building;
}

/** Why the cached bundle would be rebuilt (null: it is current). For diagnostics and tests. */
export async function runnerBundleStaleness(options: RunnerBundleOptions = {}): Promise<string | null> {
  const cacheDir = options.cacheDir ?? defaultBundleDir();
  const esbuild = await import('esbuild');
  return staleness(readManifest(path.join(cacheDir, MANIFEST)), cacheDir, options.entry ?? RUNNER_ENTRY, esbuild.version);
}

async function build(esbuild: typeof import('esbuild'), cacheDir: string, entry: string): Promise<RunnerBundle> {
  mkdirSync(cacheDir, { recursive: true });
  const tmp = path.join(cacheDir, `.build-${process.pid}-${Date.now().toString(36)}`);
  try {
    const result = await esbuild.build({
      absWorkingDir: repoRoot,
      entryPoints: { runner: entry },
      outdir: tmp,
      bundle: true,
      // Split at dynamic imports: each command and backend loads its chunk (and tfjs) only when it runs.
      splitting: true,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      // Dependencies are bundled too (zod alone is ~100 files to resolve and read); tfjs stays outside: its native
      // bindings and backends load from node_modules, and only when a trial trains.
      external: ['@tensorflow/*'],
      // Bundled CommonJS packages call require(); ES modules have none.
      banner: { js: "import { createRequire as __mmsweepRequire } from 'node:module'; const require = __mmsweepRequire(import.meta.url);" },
      chunkNames: 'chunk-[hash]',
      metafile: true,
      logLevel: 'silent',
    });
    const inputs: Record<string, string> = {};
    for (const input of Object.keys(result.metafile.inputs).sort()) {
      const sha256 = fileSha256(path.resolve(repoRoot, input));
      if (sha256 === null) throw new Error(`esbuild read ${input}, which is gone`);
      inputs[path.relative(repoRoot, path.resolve(repoRoot, input))] = sha256;
    }
    const outputs: Record<string, string> = {};
    for (const name of readdirSync(tmp).sort()) outputs[name] = fileSha256(path.join(tmp, name))!;
    const key = createHash('sha256')
      .update(JSON.stringify({ esbuild: esbuild.version, recipe: BUILD_RECIPE, entry: path.relative(repoRoot, entry), inputs }))
      .digest('hex')
      .slice(0, 24);
    const dir = path.join(cacheDir, key);
    const intact = (d: string) => Object.entries(outputs).every(([name, sha256]) => fileSha256(path.join(d, name)) === sha256);
    // Another process may have put the same build there a moment ago (and may be running it): keep it if intact;
    // a damaged or partial one is replaced.
    if (!(existsSync(dir) && intact(dir))) {
      rmSync(dir, { recursive: true, force: true });
      try {
        renameSync(tmp, dir);
      } catch (error) {
        if (!intact(dir)) throw error;
      }
    }
    const manifest: Manifest = { key, esbuild: esbuild.version, recipe: BUILD_RECIPE, entry: path.relative(repoRoot, entry), inputs, outputs };
    const manifestTmp = path.join(cacheDir, `${MANIFEST}.${process.pid}.tmp`);
    writeFileSync(manifestTmp, JSON.stringify(manifest, null, 1));
    renameSync(manifestTmp, path.join(cacheDir, MANIFEST));
    pruneOldBundles(cacheDir, key);
    return { entry: path.join(dir, 'runner.js'), key, built: true };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Keep the newest few bundles: a runner started a moment ago may still load chunks from its (older) directory. */
function pruneOldBundles(cacheDir: string, current: string, keep = 3): void {
  const dirs = readdirSync(cacheDir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && d.name !== current && !d.name.startsWith('.'))
    .map((d) => ({ name: d.name, mtime: statSync(path.join(cacheDir, d.name)).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime);
  for (const old of dirs.slice(keep - 1)) rmSync(path.join(cacheDir, old.name), { recursive: true, force: true });
}

/** argv prefix that starts the trial runner from the bundle: `[node, <bundle>/runner.js, 'train']`. */
export async function bundledRunnerCommand(options: RunnerBundleOptions = {}): Promise<string[]> {
  return [...(await bundledRunnerPrefix(options)), 'train'];
}

/** `[node, <bundle>/runner.js]`: followed by `train …` (a runner) or `warm …` (a spare runner, src/cli/warm.ts). */
export async function bundledRunnerPrefix(options: RunnerBundleOptions = {}): Promise<string[]> {
  let bundle: RunnerBundle;
  try {
    bundle = await runnerBundle(options);
  } catch (error) {
    throw new Error(
      `cannot build the trial runner bundle in ${options.cacheDir ?? defaultBundleDir()}: ${(error as Error).message} ` +
        `(reinstall dependencies with \`npm ci\`, or set MMSWEEP_RUNNER="node bin/mmsweep.js train" to run the runner through tsx)`,
    );
  }
  return [process.execPath, bundle.entry];
}
