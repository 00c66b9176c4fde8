import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  askYesNo,
  nativeSetupPreference,
  NativeSetupError,
  offerNativeSetup,
  planNativeOffer,
  registriesReachable,
  runningInCi,
  type OfferIo,
  type OfferPlan,
  type OfferSituation,
} from '../../src/cli/native-offer.ts';
import { runMmsweep } from './run-cli.ts';

/**
 * `mmsweep run`'s offer to build the missing native backend: who is asked (a terminal, not CI, no preference given),
 * who is not, what an explicit yes or no does, the registry check (a real HTTP server on loopback and a closed port),
 * the question's answers — and that nothing is built unless the answer is yes. No download happens here: the build
 * is a recording stand-in.
 */
function io(o: { reachable: boolean; answer?: boolean; buildCode?: number }) {
  const calls = { reachable: 0, asked: [] as string[], built: 0, logs: [] as string[] };
  const value: OfferIo = {
    log: (m) => void calls.logs.push(m),
    ask: async (question) => {
      calls.asked.push(question);
      return o.answer ?? false;
    },
    reachable: async () => {
      calls.reachable++;
      return o.reachable ? { ok: true, failed: [] } : { ok: false, failed: ['https://pypi.example/simple/'] };
    },
    build: async () => {
      calls.built++;
      return o.buildCode ?? 0;
    },
  };
  return { io: value, calls };
}

const situation = (o: Partial<OfferSituation> = {}): OfferSituation => ({ nativeMissing: true, preference: undefined, interactive: true, ci: false, ...o });

describe('whether to offer the native backend', () => {
  it('asks only on a terminal, outside CI, when native is missing and no preference was given', () => {
    expect(planNativeOffer(situation())).toEqual({ kind: 'ask' });
    expect(planNativeOffer(situation({ interactive: false }))).toEqual({ kind: 'hint-only', why: 'not an interactive terminal' });
    expect(planNativeOffer(situation({ ci: true }))).toEqual({ kind: 'hint-only', why: 'CI' });
    expect(planNativeOffer(situation({ nativeMissing: false }))).toEqual({ kind: 'nothing' });
    expect(planNativeOffer(situation({ preference: false }))).toEqual({ kind: 'nothing' });
    // An explicit yes builds without asking, also in scripts and CI.
    expect(planNativeOffer(situation({ preference: true, interactive: false, ci: true }))).toEqual({ kind: 'build' });
    expect(planNativeOffer(situation({ preference: true, nativeMissing: false }))).toEqual({ kind: 'nothing' });
  });

  it('takes the preference from the flag, else MMSWEEP_SETUP_NATIVE; anything else in the variable is refused naming it (exit 2)', () => {
    expect(nativeSetupPreference(undefined, {})).toBeUndefined();
    expect(nativeSetupPreference(undefined, { MMSWEEP_SETUP_NATIVE: '' })).toBeUndefined();
    expect(nativeSetupPreference(undefined, { MMSWEEP_SETUP_NATIVE: '1' })).toBe(true);
    expect(nativeSetupPreference(undefined, { MMSWEEP_SETUP_NATIVE: '0' })).toBe(false);
    expect(nativeSetupPreference(false, { MMSWEEP_SETUP_NATIVE: '1' })).toBe(false);
    expect(nativeSetupPreference(true, { MMSWEEP_SETUP_NATIVE: '0' })).toBe(true);
    expect(() => nativeSetupPreference(undefined, { MMSWEEP_SETUP_NATIVE: 'yes' })).toThrow(/MMSWEEP_SETUP_NATIVE must be 1 .* or 0 .*got "yes"/);
    try {
      nativeSetupPreference(undefined, { MMSWEEP_SETUP_NATIVE: 'yes' });
    } catch (error) {
      expect((error as { exitCode?: number }).exitCode).toBe(2);
    }
  });

  it('knows CI from the CI variable', () => {
    expect(runningInCi({ CI: 'true' })).toBe(true);
    expect(runningInCi({ CI: '1' })).toBe(true);
    for (const no of [{}, { CI: '' }, { CI: 'false' }, { CI: '0' }]) expect(runningInCi(no)).toBe(false);
  });
});

describe('carrying out the offer', () => {
  const ask: OfferPlan = { kind: 'ask' };
  const build: OfferPlan = { kind: 'build' };

  it('does not ask, and builds nothing, when the registries do not answer', async () => {
    const { io: offer, calls } = io({ reachable: false, answer: true });
    expect(await offerNativeSetup(ask, offer)).toBe('unreachable');
    expect(calls).toMatchObject({ reachable: 1, asked: [], built: 0 });
    expect(calls.logs.join('\n')).toMatch(/do not answer from here \(https:\/\/pypi\.example\/simple\/\)/);
  });

  it('asks when they answer; a no builds nothing and says how to build later', async () => {
    const { io: offer, calls } = io({ reachable: true, answer: false });
    expect(await offerNativeSetup(ask, offer)).toBe('declined');
    expect(calls.asked).toHaveLength(1);
    expect(calls.asked[0]).toMatch(/Build the native backend now \(npx mmsweep setup native: ~260 MB .*\)\? \[y\/N\] \(no in 20 s\)/);
    expect(calls.built).toBe(0);
    expect(calls.logs.join('\n')).toMatch(/not building it; .*npx mmsweep setup native builds it later; --no-setup-native/);
  });

  it('a yes builds it once', async () => {
    const { io: offer, calls } = io({ reachable: true, answer: true });
    expect(await offerNativeSetup(ask, offer)).toBe('built');
    expect(calls).toMatchObject({ reachable: 1, built: 1 });
  });

  it('an explicit yes builds without asking, and fails loudly when it cannot be honoured', async () => {
    const ok = io({ reachable: true });
    expect(await offerNativeSetup(build, ok.io)).toBe('built');
    expect(ok.calls).toMatchObject({ asked: [], built: 1 });

    const offline = io({ reachable: false });
    await expect(offerNativeSetup(build, offline.io)).rejects.toThrow(NativeSetupError);
    await expect(offerNativeSetup(build, offline.io)).rejects.toThrow(/run npx mmsweep setup native where they answer, or drop --setup-native/);
    expect(offline.calls.built).toBe(0);

    const broken = io({ reachable: true, buildCode: 3 });
    await expect(offerNativeSetup(build, broken.io)).rejects.toThrow(/npx mmsweep setup native failed \(exit code 3\)/);
  });

  it('touches nothing when there is nothing to offer or no one to ask', async () => {
    for (const plan of [{ kind: 'nothing' }, { kind: 'hint-only', why: 'CI' }] as OfferPlan[]) {
      const { io: offer, calls } = io({ reachable: true, answer: true });
      expect(await offerNativeSetup(plan, offer)).toBe(plan.kind === 'nothing' ? 'not-needed' : 'hint-only');
      expect(calls).toMatchObject({ reachable: 0, asked: [], built: 0 });
    }
  });
});

describe('registry check', () => {
  let server: Server;
  let url: string;
  const methods: string[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      methods.push(req.method ?? '');
      res.writeHead(404).end(); // any answer means reachable
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/simple/`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('sends one HEAD per registry; a closed port is unreachable and named', async () => {
    // A port that was free a moment ago: nothing listens there.
    const spare = createServer();
    await new Promise<void>((resolve) => spare.listen(0, '127.0.0.1', resolve));
    const closed = `http://127.0.0.1:${(spare.address() as AddressInfo).port}/`;
    await new Promise<void>((resolve) => spare.close(() => resolve()));

    expect(await registriesReachable([url])).toEqual({ ok: true, failed: [] });
    expect(methods).toEqual(['HEAD']);
    expect(await registriesReachable([url, closed])).toEqual({ ok: false, failed: [closed] });
  });
});

describe('the question', () => {
  const answer = async (lines: string | null, timeoutMs = 5_000) => {
    const input = new PassThrough();
    const output = new PassThrough();
    let shown = '';
    output.on('data', (d) => (shown += d));
    const pending = askYesNo('Build? [y/N] ', timeoutMs, input, output);
    if (lines === null) input.end();
    else if (lines !== '') input.write(lines);
    return { yes: await pending, shown };
  };

  it('is yes only for y or yes; no for anything else, for the input ending, and after the timeout', async () => {
    expect((await answer('y\n')).yes).toBe(true);
    expect((await answer(' YES \n')).yes).toBe(true);
    expect((await answer('\n')).yes).toBe(false);
    expect((await answer('nope\n')).yes).toBe(false);
    expect((await answer(null)).yes).toBe(false);
    const silent = await answer('', 50);
    expect(silent.yes).toBe(false);
    expect(silent.shown).toBe('Build? [y/N] no answer: not building it\n');
  });
});

describe('mmsweep run', () => {
  it('refuses a bad MMSWEEP_SETUP_NATIVE with exit code 2 before starting anything', async () => {
    const out = await runMmsweep(['run', 'cmnist-greedy-small'], { MMSWEEP_SETUP_NATIVE: 'please', MMSWEEP_HOME: '/tmp/i14-overhead/cli-home' });
    expect(out.exitCode).toBe(2);
    expect(out.stderr).toMatch(/MMSWEEP_SETUP_NATIVE must be 1 \(build the native backend when it is missing\) or 0 \(never offer it\), got "please"/);
  });

  it('lists --setup-native and --no-setup-native in its help', async () => {
    const out = await runMmsweep(['run', '--help']);
    expect(out.exitCode).toBe(0);
    expect(out.stdout).toMatch(/--setup-native\s/);
    expect(out.stdout).toMatch(/--no-setup-native\s/);
  });
});
