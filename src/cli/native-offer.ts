import { createInterface } from 'node:readline';
import { NATIVE_SETUP_COMMAND } from '../backend/notice.ts';

/**
 * `mmsweep run` on a machine without the native backend: offer to build it (`mmsweep setup native`) before the study
 * starts. Asked only on an interactive terminal, only when the package registries answer, never in CI; the answer
 * defaults to no after a timeout. `--setup-native` / `MMSWEEP_SETUP_NATIVE=1` say yes without asking (scripts), and
 * `--no-setup-native` / `MMSWEEP_SETUP_NATIVE=0` no. Nothing is downloaded unless the answer is yes.
 */

/** What the user said in advance: a flag, else the environment variable; undefined when neither. */
export function nativeSetupPreference(flag: boolean | undefined, env: NodeJS.ProcessEnv = process.env): boolean | undefined {
  if (flag !== undefined) return flag;
  const raw = env.MMSWEEP_SETUP_NATIVE;
  if (raw === undefined || raw === '') return undefined;
  if (raw === '1') return true;
  if (raw === '0') return false;
  throw Object.assign(
    new Error(`MMSWEEP_SETUP_NATIVE must be 1 (build the native backend when it is missing) or 0 (never offer it), got "${raw}"`),
    { exitCode: 2 },
  );
}

export interface OfferSituation {
  /** The native backend is not installed (a build that is installed but fails to load is not offered a rebuild). */
  nativeMissing: boolean;
  preference: boolean | undefined;
  /** stdin and stderr are terminals. */
  interactive: boolean;
  /** A CI system runs us (CI set and not "false"/"0"). */
  ci: boolean;
}

export type OfferPlan =
  /** Native is there, or the user said no: the backend notice (with its hint) is all. */
  | { kind: 'nothing' }
  /** Build it without asking (the user said yes in advance), once the registries answer. */
  | { kind: 'build' }
  /** Ask, once the registries answer. */
  | { kind: 'ask' }
  /** Not asked: no terminal to ask on, or CI. */
  | { kind: 'hint-only'; why: string };

/** The decision before anything touches the network. */
export function planNativeOffer(s: OfferSituation): OfferPlan {
  if (!s.nativeMissing || s.preference === false) return { kind: 'nothing' };
  if (s.preference === true) return { kind: 'build' };
  if (s.ci) return { kind: 'hint-only', why: 'CI' };
  if (!s.interactive) return { kind: 'hint-only', why: 'not an interactive terminal' };
  return { kind: 'ask' };
}

/** The registries `mmsweep setup native` downloads from: PyPI (libtensorflow) and npm (tfjs-node). */
export function setupRegistries(env: NodeJS.ProcessEnv = process.env): string[] {
  return [env.PIP_INDEX_URL || 'https://pypi.org/simple/', env.npm_config_registry || env.NPM_CONFIG_REGISTRY || 'https://registry.npmjs.org/'];
}

/** Whether every URL answers a HEAD request within `timeoutMs` (any HTTP status counts: the host is reachable). */
export async function registriesReachable(urls: string[], timeoutMs = 3_000, fetchImpl: typeof fetch = fetch): Promise<{ ok: boolean; failed: string[] }> {
  const results = await Promise.all(
    urls.map(async (url) => {
      try {
        await fetchImpl(url, { method: 'HEAD', signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
        return null;
      } catch {
        return url;
      }
    }),
  );
  const failed = results.filter((u): u is string => u !== null);
  return { ok: failed.length === 0, failed };
}

export interface OfferIo {
  log(message: string): void;
  /** Ask a yes/no question; resolves false after `timeoutMs` without an answer. */
  ask(question: string, timeoutMs: number): Promise<boolean>;
  reachable(): Promise<{ ok: boolean; failed: string[] }>;
  /** Run `mmsweep setup native`; resolves its exit code. */
  build(): Promise<number>;
}

export type OfferOutcome = 'not-needed' | 'hint-only' | 'unreachable' | 'declined' | 'built' | 'build-failed';

export const ASK_TIMEOUT_MS = 20_000;

/**
 * Carry out the plan. An explicit yes that cannot be honoured (registries unreachable, the build failing) is an error
 * the caller reports; a question that is not asked or is declined leaves the study on the backend it has.
 */
export async function offerNativeSetup(plan: OfferPlan, io: OfferIo): Promise<OfferOutcome> {
  if (plan.kind === 'nothing') return 'not-needed';
  if (plan.kind === 'hint-only') return 'hint-only';
  const reach = await io.reachable();
  if (!reach.ok) {
    const message = `the package registries do not answer from here (${reach.failed.join(', ')}), so the native backend cannot be built now`;
    if (plan.kind === 'build') throw new NativeSetupError(`${message}; run ${NATIVE_SETUP_COMMAND} where they answer, or drop --setup-native / MMSWEEP_SETUP_NATIVE=1`);
    io.log(message);
    return 'unreachable';
  }
  if (plan.kind === 'ask') {
    const yes = await io.ask(
      `Build the native backend now (${NATIVE_SETUP_COMMAND}: ~260 MB from PyPI once, about a minute)? [y/N] (no in ${ASK_TIMEOUT_MS / 1000} s) `,
      ASK_TIMEOUT_MS,
    );
    if (!yes) {
      io.log(`not building it; the study trains on the backend above (${NATIVE_SETUP_COMMAND} builds it later; --no-setup-native stops this question)`);
      return 'declined';
    }
  }
  io.log(`building the native backend: ${NATIVE_SETUP_COMMAND}`);
  const code = await io.build();
  if (code !== 0) throw new NativeSetupError(`${NATIVE_SETUP_COMMAND} failed (exit code ${code}); its output above says why`);
  return 'built';
}

export class NativeSetupError extends Error {
  readonly exitCode = 1;
  constructor(message: string) {
    super(message);
    this.name = 'NativeSetupError';
  }
}

/** A CI system runs us: CI set to anything but "", "0" or "false" (GitHub, GitLab and most others set CI=true). */
export function runningInCi(env: NodeJS.ProcessEnv = process.env): boolean {
  const ci = env.CI?.trim().toLowerCase();
  return ci !== undefined && ci !== '' && ci !== '0' && ci !== 'false';
}

/**
 * A yes/no question on `output`, the answer a line from `input`: yes only for "y"/"yes"; no for anything else, for
 * Ctrl-C, for the input ending, and when `timeoutMs` passes first (so an unattended terminal does not wait forever).
 */
export function askYesNo(question: string, timeoutMs: number, input: NodeJS.ReadableStream = process.stdin, output: NodeJS.WritableStream = process.stderr): Promise<boolean> {
  return new Promise((resolve) => {
    const rl = createInterface({ input, output, terminal: false });
    let settled = false;
    const finish = (yes: boolean, note?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (note) output.write(note);
      rl.close();
      // The run goes on: stdin must not keep the process alive or swallow its Ctrl-C.
      (input as { pause?: () => void }).pause?.();
      resolve(yes);
    };
    const timer = setTimeout(() => finish(false, 'no answer: not building it\n'), timeoutMs);
    // Ctrl-C answers no (and still reaches the command's own handler, which stops the run).
    const onSigint = () => finish(false, '\n');
    process.once('SIGINT', onSigint);
    rl.on('close', () => {
      process.off('SIGINT', onSigint);
      finish(false);
    });
    rl.once('line', (answer) => finish(/^\s*y(es)?\s*$/i.test(answer)));
    output.write(question);
  });
}
