/**
 * The paper's published numbers that our reports set beside our own (paper-spec §12.1, Table 1 of Wu et al. 2022,
 * test accuracy in percent, mean ± std over 3 runs).
 */
import type { DatasetColumn } from './model.ts';

export type Table1RowKey = 'unimodal' | 'vanilla' | 'rubi' | 'random' | 'guided';

export interface PublishedValue {
  mean: number;
  /** Null where the paper gives only a mean (the three-view ModelNet40 numbers of §6.4). */
  std: number | null;
}

export const TABLE1_ROWS: readonly Table1RowKey[] = ['unimodal', 'vanilla', 'rubi', 'random', 'guided'];

export const TABLE1_ROW_LABELS: Record<Table1RowKey, string> = {
  unimodal: 'uni-modal (best)',
  vanilla: 'multi-modal (vanilla)',
  rubi: '+ RUBi',
  random: '+ random (proposed)',
  guided: '+ guided (proposed)',
};

export const PUBLISHED_TABLE1: Record<DatasetColumn, Partial<Record<Table1RowKey, PublishedValue>>> = {
  cmnist: {
    unimodal: { mean: 99.14, std: 0.11 },
    vanilla: { mean: 45.26, std: 0.46 },
    rubi: { mean: 44.79, std: 0.62 },
    random: { mean: 74.07, std: 2.75 },
    guided: { mean: 91.01, std: 1.2 },
  },
  modelnet40: {
    unimodal: { mean: 89.34, std: 0.39 },
    vanilla: { mean: 90.09, std: 0.58 },
    rubi: { mean: 90.45, std: 0.58 },
    random: { mean: 91.36, std: 0.1 },
    guided: { mean: 91.37, std: 0.28 },
  },
  // §6.4, "three views of ModelNet40": means only.
  'modelnet40-3views': {
    vanilla: { mean: 91.21, std: null },
    guided: { mean: 92.45, std: null },
  },
  'nvgesture-scratch': {
    unimodal: { mean: 77.59, std: 0.55 },
    vanilla: { mean: 79.81, std: 1.14 },
    rubi: { mean: 79.95, std: 0.12 },
    random: { mean: 79.88, std: 0.9 },
    guided: { mean: 80.22, std: 0.73 },
  },
  'nvgesture-pretrained': {
    unimodal: { mean: 78.98, std: 2.02 },
    vanilla: { mean: 83.2, std: 0.21 },
    rubi: { mean: 81.6, std: 1.28 },
    random: { mean: 82.64, std: 0.84 },
    guided: { mean: 83.82, std: 1.45 },
  },
};

/** The uni-modal best row's modality as the paper reports it (NVGesture: not stated). */
export const PUBLISHED_UNIMODAL_BEST: Partial<Record<DatasetColumn, string>> = {
  cmnist: 'gray (m1)',
  modelnet40: 'front (m0)',
};

/**
 * Table 1 footnote 1: the gray-scale branch (ŷ1) of the guided multi-modal CMNIST networks reaches 99.16 ± 0.14,
 * while the ensemble ŷ is hurt by the colored branch.
 */
export const PUBLISHED_CMNIST_GUIDED_GRAY_BRANCH: PublishedValue = { mean: 99.16, std: 0.14 };
