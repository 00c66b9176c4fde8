import { z } from 'zod';

/**
 * The two fidelity profiles of paper-spec §14: `code` reproduces the authors' released code (quirks
 * included), `paper` what the paper describes. Every discrepancy of paper-spec §13 that differs between
 * the profiles is one switch here, individually overridable in a TrialSpec.
 */
export const fidelitySwitchesSchema = z.object({
  /** D1: MMTM rescaling Ã = gateScale·σ(w) ⊙ A. */
  gateScale: z.union([z.literal(1), z.literal(2)]),
  /** D2: the constant gate of a re-balancing step. */
  rebalanceAverage: z.enum(['codeRunningSigmoid', 'paperRegularPreSigmoid']),
  /** D3: the code updates the modality-1 running average with modality-0 gates. */
  replicateSkeletonAvgBug: z.boolean(),
  /** D4: what a re-balancing step updates: all parameters (code) or only branch k and the fusion layers. */
  rebalanceUpdates: z.enum(['all', 'branchAndFusion']),
  /** D6: logarithm base of s and d_speed (α is in these units). */
  speedLogBase: z.enum(['10', 'e']),
  /** D7: ‖θ‖ in µ taken before (code) or after (paper) the optimizer step. */
  muThetaBeforeUpdate: z.boolean(),
  /** D9: validation/test passes run in the trainer's current balancing mode (code) or always regular. */
  evalInCurrentMode: z.boolean(),
  /** D10: training augmentation also applied to the validation split (ModelNet40 code quirk). */
  augmentValidation: z.boolean(),
  /** D11: h̄ for utilization computed on augmented training images (code) or clean ones. */
  augmentUtilizationMeans: z.boolean(),
});
export type FidelitySwitches = z.infer<typeof fidelitySwitchesSchema>;

export const fidelityProfileSchema = z.enum(['code', 'paper']);
export type FidelityProfile = z.infer<typeof fidelityProfileSchema>;

export const FIDELITY_PROFILES: Record<FidelityProfile, FidelitySwitches> = {
  code: {
    gateScale: 1,
    rebalanceAverage: 'codeRunningSigmoid',
    replicateSkeletonAvgBug: true,
    rebalanceUpdates: 'all',
    speedLogBase: '10',
    muThetaBeforeUpdate: true,
    evalInCurrentMode: true,
    augmentValidation: true,
    augmentUtilizationMeans: true,
  },
  paper: {
    gateScale: 2,
    rebalanceAverage: 'paperRegularPreSigmoid',
    replicateSkeletonAvgBug: false,
    // D4 is ambiguous even in the paper (paper-spec §13); both profiles update all parameters by default.
    rebalanceUpdates: 'all',
    // D6 is a notational difference; keeping log10 in both profiles keeps α comparable with the paper's values.
    speedLogBase: '10',
    muThetaBeforeUpdate: false,
    evalInCurrentMode: false,
    augmentValidation: false,
    augmentUtilizationMeans: false,
  },
};

export function resolveFidelity(
  profile: FidelityProfile,
  overrides: Partial<FidelitySwitches> = {},
): FidelitySwitches {
  return fidelitySwitchesSchema.parse({ ...FIDELITY_PROFILES[profile], ...overrides });
}
