import * as tf from '@tensorflow/tfjs';
import type { Dataset } from '../data/types.ts';
import { acceleratedModality, type ForwardMode, type ForwardOutput, type MultimodalNet } from '../nn/types.ts';
import type { CheckpointRef, EpochMetrics, TrialEvent, TrialResult } from '../spec/contracts.ts';
import { trialFidelity, type FidelitySwitches } from '../spec/fidelity.ts';
import type { TrainTrialSpec } from '../spec/trial.ts';
import { trialKey } from '../spec/keys.ts';
import { classFeatureMeans, correctCounts, evaluateSplit, headLosses, toTensors, utilizationReport } from '../metrics/evaluate.ts';
import { sparsityRatio } from '../metrics/sparsity.ts';
import { GuidedBalancer, RandomBalancer, VanillaBalancer, type Balancer, type BalancerState } from './balancers.ts';
import * as fs from 'node:fs';
import {
  checkpointPath,
  latestValidCheckpoint,
  midEpochCheckpointPath,
  prepareCheckpointDir,
  pruneCheckpoints,
  reportSkippedCheckpoints,
  readCheckpointFile,
  ResumeMismatchError,
  writeCheckpointFile,
  type CheckpointContent,
} from './checkpoint.ts';
import { sumsOfSquares } from '../backend/native-ops.ts';
import { defaultLoss } from './loss.ts';
import { createMethod, type EpochProbe, type MaskedForward } from './methods.ts';
import { LateFusionNet } from '../nn/late-fusion.ts';
import { RubiHead } from './rubi.ts';
import { CompletedStopping, ReduceLROnPlateau, type PlateauState, type StoppingState } from './schedule.ts';
import { Sgd } from './sgd.ts';
import { groupMus, SpeedTracker, type GroupIndices, type SpeedState } from './speed.ts';
import type { GpuInfo } from '../spec/gpu.ts';

export interface TrainerOptions {
  spec: TrainTrialSpec;
  dataset: Dataset;
  net: MultimodalNet;
  /** Where the per-epoch checkpoints go; without it nothing is written and resume is impossible. */
  checkpointDir?: string;
  /** Continue from the newest checkpoint in `checkpointDir` (a fresh start if there is none). */
  resume?: boolean;
  onEvent?: (event: TrialEvent) => void;
  /** As initBackend chose it; `gpu` (null or absent: no GPU) is recorded with the result. */
  backend: { name: string; device: string; gpu?: GpuInfo | null };
  /** Stop (as if killed) after this epoch's checkpoint: lets tests interrupt a run at a chosen epoch. */
  haltAfterEpoch?: number;
  /**
   * Also checkpoint inside an epoch once this many seconds have passed since the last checkpoint (epoch or
   * mid-epoch), so that a crash during a long epoch (ModelNet40 or NVGesture on a CPU: 30 min to many hours) loses
   * at most that much work. Undefined: epoch checkpoints only; 0: after every step (tests).
   */
  midEpochCheckpointSeconds?: number;
  /** Stop (as if killed) right after the mid-epoch checkpoint taken at this global step: test hook. */
  haltAfterStep?: number;
  /** Emit a progress event at most this often (ms); default 1000. */
  progressIntervalMs?: number;
  /** How many epoch checkpoints to keep (default 2). */
  keepCheckpoints?: number;
  /**
   * Loss of one step; default CE(ŷ0)+CE(ŷ1) (summed over every branch for M > 2). The uni-modal SE baseline passes CE of its single head.
   * (RUBi is selected by spec.algorithm, not here.)
   */
  lossFn?: (out: ForwardOutput, oneHot: tf.Tensor2D) => tf.Scalar;
  /** Skip the conditional-utilization evaluation (uni-modal nets have no cross-modal flow to remove). */
  skipUtilization?: boolean;
}

/** The best-validation snapshot kept in memory and in every checkpoint. */
interface BestSnapshot {
  epoch: number;
  valAcc: number;
  testAcc: number;
  step: number;
  dSpeed: number | null;
  variables: Float32Array[];
  state: Record<string, Float32Array>;
}

/** Where in an epoch a mid-epoch checkpoint was taken, and the epoch's running sums so far. */
interface MidEpochState {
  /** sha256 of the epoch checkpoint the interrupted epoch started from (null: it was the first epoch). */
  baseSha256: string | null;
  stepInEpoch: number;
  lossSum: number;
  /** Σ over the epoch's steps of λ‖θ‖₁·batch size (0 without an L1 penalty or when the plateau watches the loss alone). */
  penaltySum?: number;
  seen: number;
  correct: number[];
  regularSteps: number;
  rebalanceSteps: number;
  epochWallSeconds: number;
}

interface CheckpointPayload {
  specKey: string;
  spec: TrainTrialSpec;
  /** Completed epochs (for a mid-epoch checkpoint: the epochs before the interrupted one). */
  epoch: number;
  step: number;
  lr: number;
  finished: boolean;
  diverged: boolean;
  wallSeconds: number;
  history: EpochMetrics[];
  plateau: PlateauState;
  stopping: StoppingState;
  balancer: BalancerState;
  /** The training method's state (Gradient-Blending weights …); absent in checkpoints of older versions. */
  method?: BalancerState;
  speed: SpeedState;
  variableNames: string[];
  slotPresent: boolean[];
  stateKeys: string[];
  best: Omit<BestSnapshot, 'variables' | 'state'> | null;
  /** Present only in the mid-epoch checkpoint. */
  midEpoch?: MidEpochState;
}

/** Re-exported: callers that load the trainer anyway name it from here. */
export { ResumeMismatchError };

/**
 * The step's `MaskedForward` (src/train/methods.ts): ŷ with the given modalities' inputs zeroed, in inference mode.
 * Zero is the input tensor as the net receives it (CMNIST: a black image, before the net's input BatchNorm), as
 * AGM's code zeroes its loaders' tensors.
 */
export function maskedForward(net: MultimodalNet, inputs: readonly tf.Tensor[]): MaskedForward {
  return (zeroed) => net.forward(inputs.map((x, k) => (zeroed.includes(k) ? tf.zerosLike(x) : x)), { mode: 'regular', training: false }).logits;
}

export function createBalancer(spec: TrainTrialSpec, modalityCount = 2): Balancer {
  switch (spec.algorithm) {
    case 'vanilla':
    case 'rubi':
    // The later methods modify losses or gradients (src/train/methods.ts); every forward is regular.
    case 'ogm-ge':
    case 'gradient-blending':
    case 'pmr':
    case 'mmpareto':
    case 'agm':
      return new VanillaBalancer();
    case 'guided':
      return new GuidedBalancer({ alpha: spec.alpha, q: spec.q, startEpoch: spec.balancingStartEpoch });
    case 'random':
      // A stream distinct from the init/data seeds but fixed by the trial seed.
      return new RandomBalancer({ startEpoch: spec.balancingStartEpoch, seed: spec.seed * 2654435761 + 777, modalityCount });
  }
}

/**
 * Train one trial (paper-spec §5–§8): epochs of SGD steps whose forward mode the balancer decides, per-epoch
 * evaluation, LR plateau schedule, stopping rule, best-val snapshot, per-epoch atomic checkpoints; then the
 * utilization evaluation of the best-val model. A NaN/∞ loss ends the trial with `diverged: true`.
 */
export async function trainTrial(options: TrainerOptions): Promise<TrialResult> {
  const { spec, dataset, net } = options;
  const fidelity: FidelitySwitches = trialFidelity(spec);
  const emit = options.onEvent ?? (() => {});
  const started = Date.now();
  const modalityCount = net.modalityCount;
  if (dataset.modalities.length !== modalityCount) {
    throw new Error(`the ${dataset.name} data has ${dataset.modalities.length} modalities but the net has ${modalityCount} branches`);
  }

  const rubi =
    spec.algorithm === 'rubi'
      ? new RubiHead(spec.rubiBiasModality, featureWidth(net, dataset), dataset.numClasses, spec.seed)
      : null;
  const netVariables = [...net.trainableVariables];
  const variables = [...netVariables, ...(rubi?.variables ?? [])];
  const groups = groupIndices(net, variables);
  // What a re-balancing step accelerating m_k may update (D4): θk ∪ θk′ (`branchAndFusion`) or θk (`branchOnly`).
  const rebalanceUpdatable: Set<number>[] | null =
    fidelity.rebalanceUpdates === 'branchAndFusion'
      ? groups.theta.map((theta, k) => new Set([...theta, ...groups.thetaPrime[k]!]))
      : fidelity.rebalanceUpdates === 'branchOnly'
        ? groups.theta.map((theta) => new Set(theta))
        : null;
  // The plateau watches loss + λ‖θ‖₁ (the objective minimised) unless the profile says the loss alone.
  const watchPenalty = spec.l1 > 0 && fidelity.plateauLoss === 'lossPlusL1';
  const sgd = new Sgd(variables, { lr: spec.lr, momentum: spec.momentum, weightDecay: spec.weightDecay });
  const plateau = new ReduceLROnPlateau(spec.lrSchedule);
  const stopping = new CompletedStopping(spec.completedEpochsToStop, spec.maxEpochs);
  const balancer = createBalancer(spec, modalityCount);
  const speed = new SpeedTracker(fidelity.speedLogBase, modalityCount);
  const lossFn =
    options.lossFn ??
    (rubi
      ? (out: ForwardOutput, oneHot: tf.Tensor2D) => rubi.loss(out, oneHot)
      : defaultLoss);
  const heads = net instanceof LateFusionNet && net.unimodalHeads ? net.encoders.map((e) => e.head.map((p) => p.variable)) : [];
  const fusionWeights = net instanceof LateFusionNet ? net.fusionWeights.map((w) => w.variable) : [];
  const method = createMethod({ spec, encoders: net.groups.theta, heads, fusionWeights, numClasses: dataset.numClasses }, lossFn);
  const probeHeads: EpochProbe = {
    headLosses: (split) => headLosses(net, dataset, split, { batchSize: spec.evalBatchSize }),
    classFeatureMeans: (fraction) => classFeatureMeans(net, dataset, { batchSize: spec.evalBatchSize, fraction }),
  };
  const key = trialKey(spec);

  let epoch = 0;
  let step = 0;
  let history: EpochMetrics[] = [];
  let best: BestSnapshot | null = null;
  let finished = false;
  let diverged = false;
  let priorWallSeconds = 0;
  let resumedFromEpoch: number | null = null;

  const snapshotVariables = () => netVariables.map((v) => (v.dataSync() as Float32Array).slice());

  // The epoch checkpoint the current epoch started from, and a mid-epoch state to continue from.
  let baseSha256: string | null = null;
  let midEpoch: MidEpochState | null = null;

  type ReadCheckpoint = ReturnType<typeof readCheckpointFile<CheckpointPayload>>;
  function checkBelongsToTrial(file: string, ckpt: ReadCheckpoint): void {
    const p = ckpt.payload;
    if (p.specKey !== key) {
      throw new ResumeMismatchError(
        `checkpoint ${file} belongs to another trial (key ${p.specKey.slice(0, 12)}, this spec ${key.slice(0, 12)}); ` +
          'use an empty --checkpoint-dir or the same spec',
      );
    }
  }
  function restore(file: string, ckpt: ReadCheckpoint): void {
    const p = ckpt.payload;
    checkBelongsToTrial(file, ckpt);
    if (p.variableNames.length !== variables.length) {
      throw new ResumeMismatchError(`checkpoint ${file} has ${p.variableNames.length} variables, the model ${variables.length}`);
    }
    variables.forEach((v, i) => tf.tidy(() => v.assign(tf.tensor(ckpt.blobs[`var/${i}`], v.shape, 'float32'))));
    sgd.setState({ lr: p.lr, buffers: p.slotPresent.map((present, i) => (present ? ckpt.blobs[`slot/${i}`] : null)) });
    net.setState(Object.fromEntries(p.stateKeys.map((k) => [k, ckpt.blobs[`state/${k}`]])));
    plateau.setState(p.plateau);
    stopping.setState(p.stopping);
    balancer.setState(p.balancer);
    method.setState(p.method ?? {});
    speed.setState(p.speed);
    epoch = p.epoch;
    step = p.step;
    history = p.history;
    finished = p.finished;
    diverged = p.diverged;
    priorWallSeconds = p.wallSeconds;
    best = p.best
      ? {
          ...p.best,
          variables: netVariables.map((_, i) => ckpt.blobs[`best/var/${i}`]),
          state: Object.fromEntries(p.stateKeys.map((k) => [k, ckpt.blobs[`best/state/${k}`]])),
        }
      : null;
  }

  // Before epoch 1: a directory that is a file, not writable or another trial's is refused now, not after an epoch.
  if (options.checkpointDir) prepareCheckpointDir(options.checkpointDir, key, { resume: options.resume });
  if (options.resume) {
    if (!options.checkpointDir) throw new Error('resume needs a checkpoint directory');
    const { found, skipped } = latestValidCheckpoint<CheckpointPayload>(options.checkpointDir, key);
    reportSkippedCheckpoints(skipped, found);
    const base = found ? { path: found.path, ckpt: found.content } : null;
    baseSha256 = base?.ckpt.sha256 ?? null;
    // A mid-epoch checkpoint counts only if it continues exactly that epoch checkpoint (not an older or newer one,
    // e.g. after the orchestrator dropped an epoch it never recorded or fetched a newer one from the database).
    const midPath = midEpochCheckpointPath(options.checkpointDir);
    let mid: ReadCheckpoint | null = null;
    if (fs.existsSync(midPath)) {
      try {
        mid = readCheckpointFile<CheckpointPayload>(midPath);
      } catch (error) {
        process.stderr.write(`mmsweep: ignoring unreadable mid-epoch checkpoint ${midPath}: ${(error as Error).message}\n`);
      }
      const p = mid?.payload;
      const continuesBase = p?.midEpoch?.baseSha256 === baseSha256 && p?.epoch === (base?.ckpt.payload.epoch ?? 0);
      if (!(p?.midEpoch && p.specKey === key && continuesBase)) {
        mid = null;
        fs.rmSync(midPath, { force: true });
      }
    }
    if (mid) {
      restore(midPath, mid);
      midEpoch = mid.payload.midEpoch!;
    } else if (base) {
      restore(base.path, base.ckpt);
    }
    if (mid || base) resumedFromEpoch = epoch;
  }

  emit({
    type: 'start',
    backend: options.backend.name,
    device: options.backend.device,
    resumedFromEpoch,
    totalEpochs: spec.maxEpochs,
    ...(midEpoch ? { resumedAtStep: midEpoch.stepInEpoch } : {}),
  });

  const numClasses = dataset.numClasses;
  const progressInterval = options.progressIntervalMs ?? 1000;
  const stepsInEpoch = Math.ceil(dataset.size('train') / spec.batchSize);

  let lastCheckpointAt = Date.now();
  while (!finished && !diverged) {
    epoch += 1;
    // Continuing an interrupted epoch: its running sums and position come from the mid-epoch checkpoint.
    const resumed = midEpoch;
    midEpoch = null;
    const epochStart = Date.now() - (resumed?.epochWallSeconds ?? 0) * 1000;
    balancer.onEpochBegin(epoch);
    method.onEpochBegin(epoch, probeHeads);
    const lrUsed = sgd.lr;
    let lossSum = resumed?.lossSum ?? 0;
    let penaltySum = resumed?.penaltySum ?? 0;
    let seen = resumed?.seen ?? 0;
    const correct: number[] = resumed ? [...resumed.correct] : new Array(1 + modalityCount).fill(0);
    let regularSteps = resumed?.regularSteps ?? 0;
    let rebalanceSteps = resumed?.rebalanceSteps ?? 0;
    let lastProgress = Date.now();
    let stepInEpoch = resumed?.stepInEpoch ?? 0;

    for (const batch of dataset.batches('train', {
      batchSize: spec.batchSize,
      shuffle: true,
      augment: true,
      seed: spec.seed,
      epoch,
      startBatch: stepInEpoch,
    })) {
      const mode: ForwardMode = balancer.mode;
      const regular = mode === 'regular';
      const inputs = toTensors(dataset, batch);
      const y = tf.tensor1d(batch.y, 'int32');
      const oneHot = tf.tidy(() => tf.oneHot(y, numClasses).toFloat()) as tf.Tensor2D; // not the int32 one-hot it is cast from
      const kept: { counts?: tf.Tensor1D; observed?: tf.Tensor[] } = {};
      const { value: loss, grads: namedGrads } = tf.variableGrads(() => {
        const out = net.forward(inputs, { mode, training: true, regularTrainingStep: regular });
        kept.counts = tf.keep(correctCounts([out.logits, ...out.branchLogits], y));
        kept.observed = method.observe(out, oneHot).map((t) => tf.keep(t));
        return method.loss(out, oneHot, maskedForward(net, inputs));
      }, variables);
      // Gradients of further losses on the same batch (MMPareto): one more forward/backward each, after which the
      // net's state (BatchNorm running statistics) is put back as the step's own forward left it.
      const auxiliary = (method.auxiliaryLosses?.() ?? []).map((lossOf) => {
        const saved = net.getState();
        try {
          const { value, grads } = tf.variableGrads(() => lossOf(net.forward(inputs, { mode, training: true }), oneHot), variables);
          value.dispose();
          return grads;
        } finally {
          net.setState(saved);
        }
      });
      // The method's gradient (OGM-GE's modulated one) is what the optimizer and µ see from here on.
      method.modifyGradients(namedGrads, kept.observed!, { epoch, step: step + 1 }, auxiliary);
      tf.dispose([...kept.observed!, ...auxiliary.flatMap((g) => Object.values(g))]);

      // A variable the loss does not reach (e.g. branch k's excitation in a re-balancing step) has a zero
      // gradient and is still updated through momentum/weight decay, as PyTorch with zeroed grads does.
      const masked = rebalanceUpdatable && !regular ? rebalanceUpdatable[acceleratedModality(mode)!]! : null;
      const penalised = (i: number) => spec.l1 > 0 && i < netVariables.length;
      const grads: (tf.Tensor | null)[] = variables.map((v, i) => {
        if (masked && !masked.has(i)) return null;
        const g = namedGrads[v.name] ?? null;
        if (penalised(i)) {
          return tf.tidy(() => (g ?? tf.zerosLike(v)).add(tf.sign(v).mul(spec.l1)));
        }
        return g ? g : tf.zerosLike(v);
      });
      // λ‖θ‖₁ at the parameters this step's loss was computed with (before the update).
      const penalty = watchPenalty ? tf.tidy(() => tf.addN(netVariables.map((v) => tf.sum(tf.abs(v)))).mul(spec.l1)) : null;

      // µ needs Σ‖G‖² and Σ‖θ‖² per tensor; only regular steps feed the cumulative sums (paper-spec §7.3). G is
      // the gradient of the loss, with or without the L1 subgradient (fidelity.muGradientIncludesL1).
      let gradSq: tf.Tensor | null = null;
      let thetaSq: tf.Tensor | null = null;
      // Inside tidy: a variable the loss does not reach contributes a zero tensor that must not leak.
      const muGrad = (i: number) =>
        (fidelity.muGradientIncludesL1 || !penalised(i) ? grads[i] : namedGrads[variables[i]!.name]) ?? tf.zerosLike(variables[i]!);
      if (regular) {
        gradSq = tf.tidy(() => sumsOfSquares(variables.map((_, i) => muGrad(i))));
        if (fidelity.muThetaBeforeUpdate) thetaSq = sumsOfSquares(variables);
      }
      sgd.step(grads);
      if (regular && !fidelity.muThetaBeforeUpdate) thetaSq = sumsOfSquares(variables);

      const lossValue = (await loss.data())[0];
      const penaltyValue = penalty ? (await penalty.data())[0]! : 0;
      const counts = kept.counts!;
      const countValues = await counts.data();
      const gradSqValues = gradSq ? ((await gradSq.data()) as Float32Array) : null;
      const thetaSqValues = thetaSq ? ((await thetaSq.data()) as Float32Array) : null;
      tf.dispose([...inputs, y, oneHot, loss, counts, ...(gradSq ? [gradSq] : []), ...(thetaSq ? [thetaSq] : []), ...(penalty ? [penalty] : []), ...Object.values(namedGrads)]);
      grads.forEach((g, i) => {
        if (g && g !== namedGrads[variables[i].name]) g.dispose();
      });

      step += 1;
      stepInEpoch += 1;
      if (!Number.isFinite(lossValue)) {
        diverged = true;
        break;
      }
      lossSum += lossValue * batch.size;
      penaltySum += penaltyValue * batch.size;
      seen += batch.size;
      for (let i = 0; i < correct.length; i++) correct[i]! += countValues[i]!;
      if (regular) {
        regularSteps += 1;
        speed.accumulate(groupMus(gradSqValues!, thetaSqValues!, groups));
      } else {
        rebalanceSteps += 1;
      }
      balancer.afterStep({ mode, d: speed.d(), slowest: speed.slowestModality() });

      if (Date.now() - lastProgress >= progressInterval || stepInEpoch === stepsInEpoch) {
        lastProgress = Date.now();
        emit({ type: 'progress', epoch, step: stepInEpoch, stepsInEpoch });
      }
      const midEpochDue =
        options.checkpointDir !== undefined &&
        options.midEpochCheckpointSeconds !== undefined &&
        stepInEpoch < stepsInEpoch &&
        Date.now() - lastCheckpointAt >= options.midEpochCheckpointSeconds * 1000;
      if (midEpochDue) {
        const state: MidEpochState = {
          baseSha256,
          stepInEpoch,
          lossSum,
          penaltySum,
          seen,
          correct: [...correct],
          regularSteps,
          rebalanceSteps,
          epochWallSeconds: (Date.now() - epochStart) / 1000,
        };
        writeCheckpointFile(midEpochCheckpointPath(options.checkpointDir!), buildCheckpoint(state));
        lastCheckpointAt = Date.now();
        if (options.haltAfterStep !== undefined && step >= options.haltAfterStep) throw new HaltedForTest(epoch, step);
      }
    }
    if (diverged) break;

    // Evaluation (paper-spec §5.5): the trainer's current mode in the `code` profile, regular in `paper`.
    const evalMode: ForwardMode = fidelity.evalInCurrentMode ? balancer.mode : 'regular';
    const val = evaluateSplit(net, dataset, 'val', {
      mode: evalMode,
      batchSize: spec.evalBatchSize,
      augment: fidelity.augmentValidation,
      seed: spec.seed,
      epoch,
    });
    const test = evaluateSplit(net, dataset, 'test', { mode: evalMode, batchSize: spec.evalBatchSize });
    const pct = (n: number) => (seen > 0 ? (100 * n) / seen : 0);

    method.onEpochEnd(epoch, probeHeads);
    // Epoch-end order of the code (§5.1): stopping → LR schedule → balancer → history → best checkpoint.
    finished = stopping.shouldStop(epoch, correct[0]!, seen);
    const meanLoss = seen > 0 ? lossSum / seen : 0;
    sgd.lr = plateau.step(seen > 0 ? (lossSum + penaltySum) / seen : 0, sgd.lr);
    const trainBranchAcc = correct.slice(1).map(pct);
    const metrics: EpochMetrics = {
      epoch,
      trainAcc: pct(correct[0]!),
      trainAcc0: trainBranchAcc[0]!,
      trainAcc1: trainBranchAcc[1]!,
      valAcc: val.acc,
      valAcc0: val.branchAcc[0]!,
      valAcc1: val.branchAcc[1]!,
      testAcc: test.acc,
      testAcc0: test.branchAcc[0]!,
      testAcc1: test.branchAcc[1]!,
      loss: meanLoss,
      lr: lrUsed,
      dSpeed: speed.d(),
      regularSteps,
      rebalanceSteps,
      wallSeconds: (Date.now() - epochStart) / 1000,
    };
    if (modalityCount > 2) metrics.branchAcc = { train: trainBranchAcc, val: val.branchAcc, test: test.branchAcc };
    history.push(metrics);
    if (!best || val.acc > best.valAcc) {
      best = { epoch, valAcc: val.acc, testAcc: test.acc, step, dSpeed: metrics.dSpeed, variables: snapshotVariables(), state: net.getState() };
    }

    let checkpoint: CheckpointRef = { path: '', epoch, sha256: '', bytes: 0 };
    if (options.checkpointDir) {
      const content = buildCheckpoint();
      const written = writeCheckpointFile(checkpointPath(options.checkpointDir, epoch), content);
      // The epoch checkpoint supersedes any mid-epoch one (which is only trusted against its base sha anyway).
      fs.rmSync(midEpochCheckpointPath(options.checkpointDir), { force: true });
      pruneCheckpoints(options.checkpointDir, options.keepCheckpoints ?? 2, key);
      checkpoint = { ...written, epoch };
      baseSha256 = written.sha256;
      lastCheckpointAt = Date.now();
    }
    emit({ type: 'epoch', metrics, checkpoint });
    if (options.haltAfterEpoch !== undefined && epoch >= options.haltAfterEpoch && !finished) {
      throw new HaltedForTest(epoch);
    }
  }

  /** The full training state; with `mid`, a mid-epoch checkpoint inside epoch `epoch` (whose payload epoch is epoch − 1). */
  function buildCheckpoint(mid?: MidEpochState): CheckpointContent<CheckpointPayload> {
    const blobs: Record<string, Float32Array> = {};
    variables.forEach((v, i) => (blobs[`var/${i}`] = (v.dataSync() as Float32Array).slice()));
    const sgdState = sgd.getState();
    sgdState.buffers.forEach((b, i) => {
      if (b) blobs[`slot/${i}`] = b;
    });
    const state = net.getState();
    const stateKeys = Object.keys(state);
    for (const k of stateKeys) blobs[`state/${k}`] = state[k];
    if (best) {
      best.variables.forEach((values, i) => (blobs[`best/var/${i}`] = values));
      for (const k of stateKeys) blobs[`best/state/${k}`] = best.state[k];
    }
    const { variables: _v, state: _s, ...bestMeta } = best ?? ({} as BestSnapshot);
    return {
      trialKey: key,
      payload: {
        specKey: key,
        spec,
        epoch: mid ? epoch - 1 : epoch,
        step,
        lr: sgd.lr,
        finished,
        diverged,
        wallSeconds: priorWallSeconds + (Date.now() - started) / 1000,
        history,
        plateau: plateau.getState(),
        stopping: stopping.getState(),
        balancer: balancer.getState(),
        method: method.getState(),
        speed: speed.getState(),
        variableNames: variables.map((v) => v.name),
        slotPresent: sgdState.buffers.map((b) => b !== null),
        stateKeys,
        best: best ? bestMeta : null,
        ...(mid ? { midEpoch: mid } : {}),
      },
      blobs,
    };
  }

  sgd.dispose();
  const wallSeconds = priorWallSeconds + (Date.now() - started) / 1000;
  const base = {
    diverged,
    backend: options.backend.name,
    device: options.backend.device,
    gpu: options.backend.gpu ?? null,
    epochs: epoch,
    profile: spec.profile,
    fidelity,
    ...(spec.dataset.name === 'cmnist' ? { palette: spec.dataset.palette } : {}),
    wallSeconds,
  };
  if (!best) {
    rubi?.dispose();
    // Diverged inside the first epoch: no model was ever evaluated.
    const empty: TrialResult = {
      ...base,
      testAcc: 0, accF: 0, accF0: 0, accF1: 0, accF0Prime: 0, accF1Prime: 0,
      uM1GivenM0: null, uM0GivenM1: null, dUtil: null, dSpeed: null, rF: 0, bestEpoch: 0, stepsT: 0,
    };
    emit({ type: 'result', result: empty });
    return empty;
  }
  // Utilization and R(f) of the best-validation model.
  netVariables.forEach((v, i) => tf.tidy(() => v.assign(tf.tensor(best!.variables[i], v.shape, 'float32'))));
  net.setState(best.state);
  const rF = sparsityRatio(best.variables);
  rubi?.dispose();
  const util = options.skipUtilization
    ? null
    : utilizationReport(net, dataset, { batchSize: spec.evalBatchSize, augmentMeans: fidelity.augmentUtilizationMeans, seed: spec.seed });
  const [m0, m1] = util?.perModality ?? [];
  const result: TrialResult = {
    ...base,
    testAcc: best.testAcc,
    // The fixed fields are modalities 0 and 1 of perModality (u(m1|m0), u(m0|m1) for two; u(rest|m_k) for more).
    accF: util?.accF ?? best.testAcc,
    accF0: m0?.accF ?? 0,
    accF1: m1?.accF ?? 0,
    accF0Prime: m0?.accFPrime ?? 0,
    accF1Prime: m1?.accFPrime ?? 0,
    uM1GivenM0: m0?.u ?? null,
    uM0GivenM1: m1?.u ?? null,
    dUtil: util?.dUtil ?? null,
    dSpeed: best.dSpeed,
    rF,
    bestEpoch: best.epoch,
    stepsT: best.step,
  };
  if (util) result.perModality = util.perModality;
  emit({ type: 'result', result });
  return result;
}

/** Thrown by `haltAfterEpoch` to simulate a killed runner in tests. */
export class HaltedForTest extends Error {
  override name = 'HaltedForTest';
  constructor(
    readonly epoch: number,
    readonly step?: number,
  ) {
    super(step === undefined ? `halted after epoch ${epoch} (test hook)` : `halted in epoch ${epoch} after step ${step} (test hook)`);
  }
}

function groupIndices(net: MultimodalNet, variables: tf.Variable[]): GroupIndices {
  const indexOf = new Map(variables.map((v, i) => [v, i]));
  const indices = (vs: tf.Variable[], name: string) =>
    vs.map((v) => {
      const i = indexOf.get(v);
      if (i === undefined) throw new Error(`parameter group ${name} holds ${v.name}, which is not a trainable variable of the net`);
      return i;
    });
  return {
    theta: net.groups.theta.map((vs, k) => indices(vs, `θ${k}`)),
    thetaPrime: net.groups.thetaPrime.map((vs, k) => indices(vs, `θ${k}′`)),
  };
}

/** Width F of the final pooled features (RUBi's bias branch input), read from one forward pass. */
function featureWidth(net: MultimodalNet, dataset: Dataset): number {
  // The probe forward must leave no trace in the net's running statistics.
  const saved = net.getState();
  try {
    return probe();
  } finally {
    net.setState(saved);
  }
  function probe(): number {
    return tf.tidy(() => {
      const out = net.forward(dataset.modalities.map((m) => tf.zeros([1, ...m.shape])), { mode: 'regular', training: false });
      return out.branchFeatures[0]!.shape[1];
    });
  }
}
