import { z } from 'zod';

/**
 * Hyperparameters of the balancing methods that came after the paper, each with its published default. A TrialSpec
 * carries the block of its own algorithm only (filled with these defaults when parsed, so the trial key hashes
 * them); specs of the paper's algorithms carry none, so their keys are unchanged.
 */

/**
 * OGM-GE (Peng et al., CVPR 2022, §3.2–3.3): α of Eq. 10 — the official README's default setting is α = 0.1
 * (0.8 recommended for CREMA-D); `noise` is the generalisation enhancement (GE, §3.3); modulation runs in
 * epochs startEpoch…endEpoch (1-based, inclusive; the official default modulates the first 50 epochs).
 */
export const ogmGeSchema = z.object({
  alpha: z.number().positive().default(0.1),
  /**
   * `published`: k = 1 − tanh(α·ρ) (Eq. 10 and the official code); `shifted`: k = 1 − tanh(α·(ρ − 1)), the form of
   * some later re-implementations (k → 1 as the modalities balance).
   */
  coefficient: z.enum(['published', 'shifted']).default('published'),
  noise: z.boolean().default(true),
  startEpoch: z.number().int().positive().default(1),
  endEpoch: z.number().int().positive().default(50),
});
export type OgmGeSpec = z.infer<typeof ogmGeSchema>;

/**
 * Gradient-Blending (Wang et al., CVPR 2020, §4, online G-Blend): the blending weights of the fused and per-branch
 * losses are re-estimated every `superEpoch` epochs from the change of each head's training and held-out loss.
 */
export const gradientBlendingSchema = z.object({
  superEpoch: z.number().int().positive().default(1),
});
export type GradientBlendingSpec = z.infer<typeof gradientBlendingSchema>;

/**
 * PMR (Fan et al., CVPR 2023) as its official code trains it (main_Prototype_grad.py; the paper's prototypical
 * entropy regularisation is not in that script, so not here): `alpha` weighs the prototypical cross-entropy of the
 * slower modality (code default 1.0), `momentum` mixes the previous prototypes into the new ones (0.2),
 * `prototypeFraction` of the training split computes them (a tenth), modulation in epochs startEpoch…endEpoch
 * (the code: its first 101 of 150 epochs; here 1…100).
 */
export const pmrSchema = z.object({
  alpha: z.number().nonnegative().default(1),
  momentum: z.number().min(0).max(1).default(0.2),
  prototypeFraction: z.number().positive().max(1).default(0.1),
  startEpoch: z.number().int().positive().default(1),
  endEpoch: z.number().int().positive().default(100),
});
export type PmrSpec = z.infer<typeof pmrSchema>;

/**
 * MMPareto (Wei & Hu, ICML 2024) as its official code trains (code/MMPareto.py): `gamma` scales the combined
 * encoder gradients (1.5 there, a constant of the script).
 */
export const mmParetoSchema = z.object({
  gamma: z.number().positive().default(1.5),
});
export type MmParetoSpec = z.infer<typeof mmParetoSchema>;

/**
 * AGM (Li et al., ICCV 2023, "Boosting Multi-modal Model Performance with Adaptive Gradient Modulation") as its
 * official code trains (github.com/lihong2303/AGM_ICCV2023, run/AVMNIST_main.py and model/AVMNIST_net.py):
 * - `alpha` 2.5: the README's AV-MNIST command and the authors' AV-MNIST setting (repository issue 10; the
 *   argparse default is 1.0, CREMA-D used 1.5, UR-Funny 4.0).
 * - startEpoch…endEpoch (1-based, inclusive) 1…1000: the authors modulate for the whole run ("AV-MNIST: 1000 epochs,
 *   modulation window 0, 1000", issue 10; the argparse default window 0…20 is not what they ran).
 * - `exponentCap`: null, the AV-MNIST script's exp(α·(r̃ − r)) without a bound; its CREMA-D script computes
 *   exp(α·min(r̃ − r, 10)) and its UR-Funny script min(·, 7) — set 10 or 7 for those variants.
 * - `gradientClip` true: every script of the official code rescales all gradients to global norm 1 when an entry
 *   of the fused head's weight gradient leaves [−1, 1] (a guard against the exponential coefficients, absent from
 *   the paper; false drops it).
 */
export const agmSchema = z.object({
  alpha: z.number().positive().default(2.5),
  startEpoch: z.number().int().positive().default(1),
  endEpoch: z.number().int().positive().default(1000),
  exponentCap: z.number().positive().nullable().default(null),
  gradientClip: z.boolean().default(true),
});
export type AgmSpec = z.infer<typeof agmSchema>;

/** The methods that read per-modality terms, features or heads of a late-fusion net (src/nn/late-fusion.ts). */
export const LATE_FUSION_METHODS = ['ogm-ge', 'gradient-blending', 'pmr', 'mmpareto', 'agm'] as const;
export type LateFusionMethod = (typeof LATE_FUSION_METHODS)[number];

/** The spec field that holds each method's hyperparameters. */
export const METHOD_FIELDS = { 'ogm-ge': 'ogmGe', 'gradient-blending': 'gradientBlending', pmr: 'pmr', mmpareto: 'mmPareto', agm: 'agm' } as const satisfies Record<LateFusionMethod, string>;
