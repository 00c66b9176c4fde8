import type { Dataset } from '../data/types.ts';
import { trialFidelity } from '../spec/fidelity.ts';
import type { TrainTrialSpec } from '../spec/trial.ts';
import { UnimodalAsMultimodal } from './unimodal.ts';
import { createCmnistLateFusionNet, createCmnistNet, createCmnistUnimodalSeNet } from './cmnist.ts';
import { createI3dNet, createI3dUnimodalSeNet } from './i3d.ts';
import { createResnet18LateFusionNet, createResnet18MmtmNet, createResnet18UnimodalSeNet } from './resnet18.ts';
import { loadI3dWeightsFile } from './weights.ts';
import type { MultimodalNet } from './types.ts';

/**
 * The single entry point from a TrialSpec (+ its Dataset) to a network: the dataset picks the backbone
 * (CMNIST 4-conv, ModelNet40 ResNet18, NVGesture I3D; CREMA-D ResNet18 audio + frame encoders, late fusion only),
 * `architecture` the multi-branch MMTM net, the late-fusion net or the uni-modal SE
 * baseline on `unimodalModality` (wrapped so the multi-modal trainer can run it; train it with `unimodalLoss`).
 * Input channels and the number of classes come from the dataset, the width multiplier and seed from the spec.
 */
export function createNet(spec: TrainTrialSpec, dataset: Dataset): MultimodalNet {
  const fidelity = trialFidelity(spec);
  const channels = dataset.modalities.map((m) => m.shape[m.shape.length - 1]!);
  const common = { numClasses: dataset.numClasses, seed: spec.seed, fidelity, width: spec.width };
  const unimodal = spec.architecture === 'unimodal-se';
  const k = spec.unimodalModality;
  if (spec.architecture === 'late-fusion') {
    // The spec schema admits late fusion on CMNIST and CREMA-D only; per-branch heads exactly when the method trains them.
    const unimodalHeads = methodNeedsUnimodalHeads(spec.algorithm);
    if (spec.dataset.name === 'cremad') {
      return createResnet18LateFusionNet({ ...common, shapes: dataset.modalities.map((m) => m.shape), unimodalHeads });
    }
    if (spec.dataset.name !== 'cmnist') throw new Error(`no late-fusion network for dataset ${spec.dataset.name}`);
    return createCmnistLateFusionNet({ ...common, channels, unimodalHeads });
  }
  switch (spec.dataset.name) {
    case 'cmnist':
      return unimodal
        ? new UnimodalAsMultimodal(createCmnistUnimodalSeNet({ ...common, channels: channels[k], modality: k }), k, channels.length)
        : createCmnistNet({ ...common, channels });
    case 'modelnet40':
      return unimodal
        ? new UnimodalAsMultimodal(createResnet18UnimodalSeNet({ ...common, channels: channels[k], modality: k }), k, channels.length)
        : createResnet18MmtmNet({ ...common, channels });
    case 'nvgesture': {
      // NVGesture-pretrained: both I3D branches (or the SE baseline's one) from converted Kinetics weights (weights.ts).
      const pretrained = spec.dataset.pretrained;
      if (unimodal) {
        const se = createI3dUnimodalSeNet({ ...common, channels: channels[k], modality: k });
        return new UnimodalAsMultimodal(pretrained ? withWeights(se, pretrained) : se, k, channels.length);
      }
      const net = createI3dNet({ ...common, channels });
      return pretrained ? withWeights(net, pretrained) : net;
    }
    case 'cremad':
      // Refused by the spec schema (CREMA-D is late fusion only): reaching here is a caller that skipped it.
      throw new Error(`no ${spec.architecture} network for cremad; CREMA-D trains the late-fusion net`);
    default: {
      const unknown: never = spec.dataset;
      throw new Error(`no network for dataset ${JSON.stringify((unknown as { name?: unknown }).name)}`);
    }
  }
}

/** Gradient-Blending and MMPareto train a loss on every per-branch head; the other methods need none. */
export function methodNeedsUnimodalHeads(algorithm: TrainTrialSpec['algorithm']): boolean {
  return algorithm === 'gradient-blending' || algorithm === 'mmpareto';
}

/** Loads pretrained I3D weights into a fresh net; frees the net if the file does not fit. */
function withWeights<T extends Parameters<typeof loadI3dWeightsFile>[0] & { dispose(): void }>(net: T, file: string): T {
  try {
    loadI3dWeightsFile(net, file);
    return net;
  } catch (error) {
    net.dispose();
    throw error;
  }
}

export type { ForwardMode, ForwardOptions, ForwardOutput, MultimodalNet, ParameterGroups } from './types.ts';
