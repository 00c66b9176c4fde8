import type { Dataset } from '../data/types.ts';
import { resolveFidelity } from '../spec/fidelity.ts';
import type { TrainTrialSpec } from '../spec/trial.ts';
import { UnimodalAsMultimodal } from '../train/unimodal.ts';
import { createCmnistNet, createCmnistUnimodalSeNet } from './cmnist.ts';
import { createResnet18MmtmNet, createResnet18UnimodalSeNet } from './resnet18.ts';
import type { MultimodalNet } from './types.ts';

/**
 * The single entry point from a TrialSpec (+ its Dataset) to a network: the dataset picks the backbone
 * (CMNIST 4-conv, ModelNet40 ResNet18, NVGesture I3D), `architecture` the two-branch MMTM net or the uni-modal SE
 * baseline on `unimodalModality` (wrapped so the two-branch trainer can run it; train it with `unimodalLoss`).
 * Input channels and the number of classes come from the dataset, the width multiplier and seed from the spec.
 */
export function createNet(spec: TrainTrialSpec, dataset: Dataset): MultimodalNet {
  const fidelity = resolveFidelity(spec.profile, spec.fidelity);
  const channels = dataset.modalities.map((m) => m.shape[m.shape.length - 1]!) as [number, number];
  const common = { numClasses: dataset.numClasses, seed: spec.seed, fidelity, width: spec.width };
  const unimodal = spec.architecture === 'unimodal-se';
  const k = spec.unimodalModality;
  switch (spec.dataset.name) {
    case 'cmnist':
      return unimodal
        ? new UnimodalAsMultimodal(createCmnistUnimodalSeNet({ ...common, channels: channels[k], modality: k }), k)
        : createCmnistNet({ ...common, channels });
    case 'modelnet40':
      return unimodal
        ? new UnimodalAsMultimodal(createResnet18UnimodalSeNet({ ...common, channels: channels[k], modality: k }), k)
        : createResnet18MmtmNet({ ...common, channels });
    case 'nvgesture':
      // The NVGesture helper adds the I3D-MMTM net and its uni-modal SE baseline here.
      throw new Error("network for dataset 'nvgesture' (I3D) is not implemented yet in this version of mmsweep");
    default: {
      const unknown: never = spec.dataset;
      throw new Error(`no network for dataset ${JSON.stringify((unknown as { name?: unknown }).name)}`);
    }
  }
}

export type { ForwardMode, ForwardOptions, ForwardOutput, MultimodalNet, ParameterGroups } from './types.ts';
