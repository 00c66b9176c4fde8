import type { TrialSpec } from '../src/spec/trial.ts';

/**
 * The columns that name an experimental condition (the paper's grouping for every table and figure):
 * dataset (+ variant: NVGesture scratch/pretrained, non-default ModelNet40 views, CMNIST σ² or CREMA-D frames/size), architecture
 * (two-branch MMTM or a uni-modal SE baseline on one modality), modalities (distinct or duplicated), algorithm,
 * fidelity profile, learning rate, λ, α, Q; and condition_key (md5 of the trial spec without its seed, computed by the
 * views), which separates trials that differ in anything else (epoch cap, width, subset, batch size…).
 */
export const conditionColumns = [
  'dataset',
  'dataset_variant',
  'architecture',
  'modalities',
  'algorithm',
  'profile',
  'lr',
  'l1',
  'alpha',
  'q',
  'condition_key',
] as const;
export type ConditionColumn = (typeof conditionColumns)[number];

export function isConditionColumn(name: string): name is ConditionColumn {
  return (conditionColumns as readonly string[]).includes(name);
}

/** The condition columns of one trial, as stored in `trials`. */
export interface TrialConditionColumns {
  kind: string;
  dataset: string;
  datasetVariant: string;
  architecture: string;
  modalities: string | null;
  algorithm: string | null;
  profile: string | null;
  lr: number | null;
  seed: number | null;
  l1: number | null;
  alpha: number | null;
  q: number | null;
}

/** The condition columns without the seed: what all the seeds of one grid point share. */
export type TemplateConditionColumns = Omit<TrialConditionColumns, 'seed'>;

export function conditionOf(spec: TrialSpec): TrialConditionColumns {
  if (spec.kind === 'noop') {
    return {
      kind: 'noop',
      dataset: 'noop',
      datasetVariant: '',
      architecture: 'noop',
      modalities: null,
      algorithm: null,
      profile: null,
      lr: null,
      seed: spec.seed,
      l1: null,
      alpha: null,
      q: null,
    };
  }
  const overrides = Object.entries(spec.fidelity ?? {})
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${String(v)}`);
  return {
    kind: 'train',
    dataset: spec.dataset.name,
    datasetVariant: datasetVariant(spec),
    architecture: spec.architecture === 'unimodal-se' ? `unimodal-se:m${spec.unimodalModality}` : spec.architecture,
    modalities: spec.modalities,
    algorithm: spec.algorithm,
    profile: overrides.length > 0 ? `${spec.profile}+${overrides.join(',')}` : spec.profile,
    lr: spec.lr,
    seed: spec.seed,
    l1: spec.l1,
    // α and Q only steer the guided balancer; storing the schema defaults for the other algorithms would show
    // meaningless values in every table.
    alpha: spec.algorithm === 'guided' ? spec.alpha : null,
    q: spec.algorithm === 'guided' ? spec.q : null,
  };
}

/** '' for the dataset as the paper's main experiments use it; otherwise what differs. */
function datasetVariant(spec: Extract<TrialSpec, { kind: 'train' }>): string {
  const d = spec.dataset;
  switch (d.name) {
    case 'cmnist': {
      const parts = [...(d.sigma2 === 0.02 ? [] : [`sigma2=${d.sigma2}`]), ...(d.heldOutValidation === undefined ? [] : [`heldOutVal=${d.heldOutValidation}`])];
      return parts.join(',');
    }
    case 'modelnet40':
      return d.views.join(',') === '0,6' ? '' : `views=${d.views.join(',')}`;
    case 'nvgesture':
      return d.pretrained ? 'pretrained' : 'scratch';
    case 'cremad':
      return [...(d.frames === 2 ? [] : [`frames=${d.frames}`]), ...(d.imageSize === 224 ? [] : [`imageSize=${d.imageSize}`])].join(',');
  }
}
