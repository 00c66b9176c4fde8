import { z } from 'zod';
import { DATASET_SCOPED_SWITCHES, defaultProfileFor, fidelityProfileSchema, fidelitySwitchesSchema } from './fidelity.ts';
import { agmSchema, gradientBlendingSchema, LATE_FUSION_METHODS, METHOD_FIELDS, mmParetoSchema, ogmGeSchema, pmrSchema } from './methods.ts';
import { InvalidSpecError, parseStrict } from './strict.ts';

/**
 * A TrialSpec is one fully resolved training run. It is pure data (no tfjs, no db) so that workflows,
 * the CLI, the trial runner and the database all share it. Defaults follow paper-spec §5.6 for CMNIST.
 */

/** The largest seed: the results store keeps a trial's seed in a Postgres `integer` column. */
export const MAX_SEED = 2 ** 31 - 1;
export const seedSchema = z
  .number()
  .int()
  .nonnegative()
  .max(MAX_SEED, { message: `a seed is at most ${MAX_SEED} (2^31 − 1: the results store keeps seeds as 32-bit integers)` });

export const backendRequestSchema = z.enum(['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu']);
export type BackendRequest = z.infer<typeof backendRequestSchema>;

/**
 * The ten class mean colors of CMNIST (src/data/cmnist.ts documents both): `hue-wheel`, ten hues at one saturation
 * calibrated against Kim et al.'s colored-only baseline (the default), or `rgb-corners`, the palette of CMNIST
 * generator version 1 (a near-perfect color shortcut).
 */
export const CMNIST_PALETTE_NAMES = ['hue-wheel', 'rgb-corners'] as const;
export const cmnistPaletteSchema = z.enum(CMNIST_PALETTE_NAMES);
export type CmnistPaletteName = z.infer<typeof cmnistPaletteSchema>;

export const cmnistDatasetSchema = z.object({
  name: z.literal('cmnist'),
  /** Variance σ² of the per-image color jitter around the class mean color (paper-spec §3.1). */
  sigma2: z.number().nonnegative().default(0.02),
  /** The palette of class mean colors (part of the trial key, recorded in every result). */
  palette: cmnistPaletteSchema.default('hue-wheel'),
  /** Seed of the palette permutation (which class gets which of the ten documented colors). */
  paletteSeed: z.number().int().nonnegative().default(0),
  /** Seed of the color draws (jitter and random test colors). */
  dataSeed: z.number().int().nonnegative().default(0),
  /**
   * Unset (the paper's reading, paper-spec A1): validation = test = the 10,000 MNIST test digits with random colors.
   * n: validation = n MNIST training digits held out of training, with random colors, so that checkpoint selection
   * and the reported test accuracy use different digits (src/data/cmnist.ts).
   */
  heldOutValidation: z.number().int().positive().max(59_999).optional(),
});

export const modelnet40DatasetSchema = z.object({
  name: z.literal('modelnet40'),
  /** Root of the MVCNN 12-view renders (`<root>/<class>/<train|test>/…`). */
  root: z.string().optional(),
  /**
   * View indices (0 = v001 … 11 = v012), one per modality: two (the paper's front/rear [0, 6]) or three
   * (§6.4's three-view experiment, paper-spec §8.6). Distinct: a repeated view is the duplicated-input control,
   * which `modalities: 'duplicate-m0' | 'duplicate-m1'` expresses.
   */
  views: z
    .array(z.number().int().min(0).max(11))
    .min(2)
    .max(3)
    .default([0, 6])
    .superRefine((views, ctx) => {
      const repeated = views.filter((v, i) => views.indexOf(v) !== i);
      if (repeated.length > 0) {
        ctx.addIssue({
          code: 'custom',
          message:
            `view ${repeated[0]} is given twice in [${views.join(', ')}]: give distinct view indices (for the ` +
            `duplicated-input control keep two distinct views and set modalities to 'duplicate-m0' or 'duplicate-m1')`,
        });
      }
    }),
  splitSeed: z.number().int().default(10),
  imageSize: z.number().int().positive().default(224),
});

export const nvgestureDatasetSchema = z.object({
  name: z.literal('nvgesture'),
  root: z.string().optional(),
  frames: z.number().int().positive().default(64),
  imageSize: z.number().int().positive().default(224),
  splitSeed: z.number().int().default(0),
  pretrained: z.string().optional(),
  /** Frames are resized to resizeSize² before the imageSize² crop; default round(imageSize·256/224) (256 for 224). */
  resizeSize: z.number().int().positive().optional(),
  /** Training flip (paper-spec §3.3, AMBIGUOUS): one per clip for both modalities (default 'shared'), one per modality, or none. */
  flip: z.enum(['shared', 'independent', 'none']).optional(),
  /** Clips shorter than `frames` are padded with 0 in the [−1, 1] input scale ('zeros', default) or black (−1). */
  padding: z.enum(['zeros', 'black']).optional(),
});

/**
 * CREMA-D audio + video frames (src/data/cremad.ts): the log spectrogram of OGM-GE's loader (fixed: 257 × 188) and
 * `frames` frames per clip at imageSize². Trained with the late-fusion net only (ResNet18 audio and frame encoders).
 */
export const cremadDatasetSchema = z.object({
  name: z.literal('cremad'),
  /** Root holding AudioWAV/, Image-01-FPS/, train.csv and test.csv (else --data or $MMSWEEP_CREMAD_DIR). */
  root: z.string().optional(),
  /** Frames per clip (BalanceBenchmark's CREMA-D setting: 2; OGM-GE's code: 1). */
  frames: z.number().int().positive().default(2),
  imageSize: z.number().int().positive().default(224),
  /** Seed of the held-out validation split of train.csv and of subsets. */
  splitSeed: z.number().int().default(0),
  /** Share of train.csv held out for validation. */
  valFraction: z.number().gt(0).lt(1).default(0.1),
});

export const datasetSpecSchema = z.discriminatedUnion('name', [
  cmnistDatasetSchema,
  modelnet40DatasetSchema,
  nvgestureDatasetSchema,
  cremadDatasetSchema,
]);
export type DatasetSpec = z.infer<typeof datasetSpecSchema>;

/**
 * `distinct`: m0 and m1 as the dataset defines them (CMNIST: colored, gray).
 * `duplicate-m0` / `duplicate-m1`: both inputs carry the same modality (the paper's controls; CMNIST gray+gray
 * is `duplicate-m1`).
 */
export const modalitiesSchema = z.enum(['distinct', 'duplicate-m0', 'duplicate-m1']);
export type Modalities = z.infer<typeof modalitiesSchema>;

/**
 * The paper's algorithms (vanilla, guided, random, RUBi; MMTM net) and the later balancing methods (late-fusion
 * net; src/spec/methods.ts).
 */
export const algorithmSchema = z.enum(['vanilla', 'guided', 'random', 'rubi', ...LATE_FUSION_METHODS]);
export type Algorithm = z.infer<typeof algorithmSchema>;

export const trainTrialSpecSchema = z.object({
  kind: z.literal('train').default('train'),
  dataset: datasetSpecSchema,
  modalities: modalitiesSchema.default('distinct'),
  /**
   * `mmtm`: the MMTM fusion net (one branch per modality); `unimodal-se`: one branch with SE blocks on
   * `unimodalModality`; `late-fusion`: the same branches as encoders, one linear head on their concatenated
   * features (CMNIST 4-conv, CREMA-D ResNet18; src/nn/late-fusion.ts). Unset: `late-fusion` for CREMA-D and for the
   * methods that need it (ogm-ge, gradient-blending, …), `mmtm` otherwise; the parsed spec holds the resolved value.
   */
  architecture: z.enum(['mmtm', 'unimodal-se', 'late-fusion']).optional(),
  unimodalModality: z.union([z.literal(0), z.literal(1)]).default(0),
  algorithm: algorithmSchema.default('vanilla'),
  /**
   * Fidelity profile (paper-spec §14). Unset: `paper` for CMNIST and NVGesture (no released code), `code` for
   * ModelNet40 (defaultProfileFor). The parsed spec holds the resolved profile, so the trial key hashes it.
   */
  profile: fidelityProfileSchema.optional(),
  fidelity: fidelitySwitchesSchema.partial().default({}),
  lr: z.number().positive(),
  momentum: z.number().min(0).max(1).default(0.9),
  weightDecay: z.number().min(0).default(0),
  batchSize: z.number().int().positive().default(128),
  evalBatchSize: z.number().int().positive().default(500),
  /** L1 penalty λ‖θ‖₁ as a subgradient (paper-spec §10); 0 disables it. */
  l1: z.number().min(0).default(0),
  /** Guided: imbalance tolerance α (in log units of `fidelity.speedLogBase`). */
  alpha: z.number().nonnegative().default(0.1),
  /** Guided: re-balancing window Q. */
  q: z.number().int().positive().default(5),
  /** RUBi: the bias modality whose features drive the mask (paper-spec §9.2). */
  rubiBiasModality: z.union([z.literal(0), z.literal(1)]).default(0),
  /** OGM-GE hyperparameters (only with algorithm 'ogm-ge'; defaults filled in when parsed). */
  ogmGe: ogmGeSchema.partial().optional(),
  /** Gradient-Blending hyperparameters (only with algorithm 'gradient-blending'; defaults filled in when parsed). */
  gradientBlending: gradientBlendingSchema.partial().optional(),
  /** PMR hyperparameters (only with algorithm 'pmr'; defaults filled in when parsed). */
  pmr: pmrSchema.partial().optional(),
  /** MMPareto hyperparameters (only with algorithm 'mmpareto'; defaults filled in when parsed). */
  mmPareto: mmParetoSchema.partial().optional(),
  /** AGM hyperparameters (only with algorithm 'agm'; defaults filled in when parsed). */
  agm: agmSchema.partial().optional(),
  /** Seed of the model initialisation and of the data order (0 when unset, so a bare `mmsweep train` runs). */
  seed: seedSchema.default(0),
  /** Epoch cap (the code's loop runs epochs 1…299). */
  maxEpochs: z.number().int().positive().default(299),
  /** Stop after this many (not necessarily consecutive) epochs at exactly 100 % running train accuracy. */
  completedEpochsToStop: z.number().int().positive().default(5),
  /** Balancing is unlocked from this epoch on (epoch numbering starts at 1). */
  balancingStartEpoch: z.number().int().positive().default(2),
  lrSchedule: z
    .object({
      factor: z.number().positive().default(0.3),
      patience: z.number().int().nonnegative().default(10),
      threshold: z.number().nonnegative().default(1e-3),
      minLr: z.number().nonnegative().default(1e-6),
      eps: z.number().nonnegative().default(1e-8),
    })
    .default({ factor: 0.3, patience: 10, threshold: 1e-3, minLr: 1e-6, eps: 1e-8 }),
  /** Scale knobs for small machines: the first n examples of each split (after a seeded shuffle). */
  subset: z
    .object({
      train: z.number().int().positive().optional(),
      val: z.number().int().positive().optional(),
      test: z.number().int().positive().optional(),
    })
    .default({}),
  /** Channel width multiplier of the branches (1 = the paper's network). */
  width: z.number().positive().default(1),
  backend: backendRequestSchema.default('auto'),
}).superRefine((spec, ctx) => {
  // A loader quirk of one dataset cannot be switched on for another (src/spec/fidelity.ts, D10/D11).
  for (const [name, only] of Object.entries(DATASET_SCOPED_SWITCHES)) {
    if (spec.fidelity[name as keyof typeof DATASET_SCOPED_SWITCHES] === true && spec.dataset.name !== only) {
      ctx.addIssue({
        code: 'custom',
        path: ['fidelity', name],
        message:
          `${name} replicates a quirk of the released ${only} loader (paper-spec §13); ${spec.dataset.name} ` +
          `inference is unaugmented (centre crop, no flip) in every profile: drop the override or set it to false`,
      });
    }
  }
  checkMethod({ ...spec, architecture: resolvedArchitecture(spec) }, ctx);
  // Three-view ModelNet40 (paper-spec §8.6) trains one three-branch net with vanilla / guided / random; the
  // duplicated-input controls, RUBi and the uni-modal baselines are two-modality constructions.
  if (spec.dataset.name !== 'modelnet40' || spec.dataset.views.length <= 2) return;
  const views = `dataset.views [${spec.dataset.views.join(', ')}]`;
  if (spec.modalities !== 'distinct') {
    ctx.addIssue({
      code: 'custom',
      path: ['modalities'],
      message: `'${spec.modalities}' is a two-view control, but ${views} has three views: use modalities 'distinct' with three views, or give two views for the control`,
    });
  }
  if (spec.algorithm === 'rubi') {
    ctx.addIssue({
      code: 'custom',
      path: ['algorithm'],
      message: `'rubi' is defined for two modalities only (one bias modality masks the other), but ${views} has three views: use vanilla, guided or random, or give two views`,
    });
  }
  if (spec.architecture === 'unimodal-se') {
    ctx.addIssue({
      code: 'custom',
      path: ['architecture'],
      message: `'unimodal-se' is a uni-modal baseline that uses one view, but ${views} has three: give two views and pick the baseline's view with unimodalModality, or use architecture 'mmtm'`,
    });
  }
}).transform((spec) => ({
  ...spec,
  profile: spec.profile ?? defaultProfileFor(spec.dataset.name),
  architecture: resolvedArchitecture(spec),
  // The chosen method's hyperparameters with their published defaults (hashed into the key); none otherwise.
  ...(spec.algorithm === 'ogm-ge' ? { ogmGe: ogmGeSchema.parse(spec.ogmGe ?? {}) } : {}),
  ...(spec.algorithm === 'gradient-blending' ? { gradientBlending: gradientBlendingSchema.parse(spec.gradientBlending ?? {}) } : {}),
  ...(spec.algorithm === 'pmr' ? { pmr: pmrSchema.parse(spec.pmr ?? {}) } : {}),
  ...(spec.algorithm === 'mmpareto' ? { mmPareto: mmParetoSchema.parse(spec.mmPareto ?? {}) } : {}),
  ...(spec.algorithm === 'agm' ? { agm: agmSchema.parse(spec.agm ?? {}) } : {}),
}));
export type TrainTrialSpec = z.infer<typeof trainTrialSpecSchema>;

/** Datasets with a late-fusion net (src/nn/index.ts); CREMA-D has no other. */
export const LATE_FUSION_DATASETS = ['cmnist', 'cremad'] as const;

/** The architecture a spec names, or the default for its dataset and algorithm. */
function resolvedArchitecture(spec: { architecture?: 'mmtm' | 'unimodal-se' | 'late-fusion'; algorithm: Algorithm; dataset: { name: string } }) {
  if (spec.architecture) return spec.architecture;
  return spec.dataset.name === 'cremad' || (LATE_FUSION_METHODS as readonly string[]).includes(spec.algorithm) ? 'late-fusion' : 'mmtm';
}

type CheckedSpec = {
  dataset: { name: string; heldOutValidation?: number };
  architecture: string;
  algorithm: Algorithm;
  ogmGe?: unknown;
  gradientBlending?: unknown;
  pmr?: unknown;
  mmPareto?: unknown;
  agm?: unknown;
};

/** Which algorithm runs on which architecture, and method hyperparameters only for their own method. */
function checkMethod(spec: CheckedSpec, ctx: z.RefinementCtx): void {
  const late = (LATE_FUSION_METHODS as readonly string[]).includes(spec.algorithm);
  for (const [method, field] of Object.entries(METHOD_FIELDS) as [string, (typeof METHOD_FIELDS)[keyof typeof METHOD_FIELDS]][]) {
    if (spec[field] !== undefined && spec.algorithm !== method) {
      ctx.addIssue({
        code: 'custom',
        path: [field],
        message: `${field} holds the hyperparameters of '${method}', but the algorithm is '${spec.algorithm}': set algorithm '${method}' or drop ${field}`,
      });
    }
  }
  if (late && spec.architecture !== 'late-fusion') {
    ctx.addIssue({
      code: 'custom',
      path: ['architecture'],
      message: `'${spec.algorithm}' balances the branches of a late-fusion net, but the architecture is '${spec.architecture}': set architecture 'late-fusion'`,
    });
  }
  if (spec.dataset.name === 'cremad' && spec.architecture !== 'late-fusion') {
    ctx.addIssue({
      code: 'custom',
      path: ['architecture'],
      message: `cremad is trained with the late-fusion net (ResNet18 audio and frame encoders); '${spec.architecture}' is not built for it: set architecture 'late-fusion' or drop it`,
    });
  }
  if (spec.architecture === 'late-fusion') {
    if (!(LATE_FUSION_DATASETS as readonly string[]).includes(spec.dataset.name)) {
      ctx.addIssue({
        code: 'custom',
        path: ['architecture'],
        message: `'late-fusion' is built for ${LATE_FUSION_DATASETS.join(' and ')}, not ${spec.dataset.name}: use architecture 'mmtm'`,
      });
    }
    if (spec.algorithm === 'guided' || spec.algorithm === 'random' || spec.algorithm === 'rubi') {
      ctx.addIssue({
        code: 'custom',
        path: ['algorithm'],
        message:
          `'${spec.algorithm}' acts on the MMTM net (its gates or branch heads), not on 'late-fusion': use vanilla, ${LATE_FUSION_METHODS.join(', ')}` +
          (spec.dataset.name === 'cremad' ? ' (cremad has no MMTM net)' : ", or architecture 'mmtm'"),
      });
    }
  }
  // G-Blend estimates its weights on held-out data; CMNIST's default validation split is the test split.
  if (spec.algorithm === 'gradient-blending' && spec.dataset.name === 'cmnist' && spec.dataset.heldOutValidation === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['dataset', 'heldOutValidation'],
      message:
        "'gradient-blending' estimates its weights on the validation split, which for cmnist is the test split unless " +
        'dataset.heldOutValidation is set: set it (e.g. 5000) so the weights never see test digits',
    });
  }
}
export type TrainTrialSpecInput = z.input<typeof trainTrialSpecSchema>;

/** A trial that trains nothing and sleeps: measures orchestration overhead. */
export const noopTrialSpecSchema = z.object({
  kind: z.literal('noop'),
  sleepMs: z.number().int().nonnegative().default(100),
  epochs: z.number().int().positive().default(1),
  seed: seedSchema.default(0),
});
export type NoopTrialSpec = z.infer<typeof noopTrialSpecSchema>;

export const trialSpecSchema = z.union([noopTrialSpecSchema, trainTrialSpecSchema]);
export type TrialSpec = z.infer<typeof trialSpecSchema>;

/**
 * Validate a TrialSpec; on failure throw an error whose message names every bad field by its path (unknown keys
 * included, with a "did you mean"), so the CLI can reject invalid input before any work.
 */
export function parseTrialSpec(input: unknown): TrialSpec {
  const kind = (input as { kind?: unknown } | null)?.kind;
  // The member schema the input means, so issues name its fields rather than the union's.
  return parseStrict(kind === 'noop' ? noopTrialSpecSchema : trainTrialSpecSchema, input, 'trial spec', '(spec)');
}

export { InvalidSpecError };
