/**
 * GPU slots of a worker: `--gpus 0,0,0,0,1,1,1,1` gives eight slots, four trials sharing each of two GPUs. Each
 * runner sees exactly its slot's GPU through CUDA_VISIBLE_DEVICES (tfjs-node-gpu takes the last GPU it sees).
 */

/** An id CUDA_VISIBLE_DEVICES accepts: an index (as nvidia-smi numbers GPUs) or a GPU-/MIG- UUID. */
const GPU_ID = /^(?:\d{1,3}|(?:GPU|MIG)-[0-9A-Za-z][0-9A-Za-z/-]*)$/;

export class GpuListError extends Error {
  override name = 'GpuListError';
  /** Invalid input: the CLI exits with 2. */
  readonly exitCode = 2;
}

/** Parses `--gpus`: comma-separated ids, one per slot; an id may repeat (slots sharing a GPU). */
export function parseGpuIds(text: string): string[] {
  const ids = text.split(',').map((id) => id.trim());
  const bad = ids.filter((id) => !GPU_ID.test(id));
  if (text.trim() === '' || bad.length > 0) {
    throw new GpuListError(
      `--gpus '${text}': ${text.trim() === '' ? 'no GPU id given' : `${bad.map((b) => `'${b}'`).join(', ')} is not a GPU id`}; ` +
        'give one id per slot, comma-separated, as nvidia-smi numbers them (e.g. --gpus 0,1 or --gpus 0,0,1,1 for two trials per GPU) or GPU-/MIG- UUIDs',
    );
  }
  return ids;
}

/** The slot count: `--slots` if given (then it must match `--gpus`), else one slot per listed id, else 1. */
export function resolveSlots(gpus: string[], slots: number | undefined): number {
  if (slots === undefined) return Math.max(1, gpus.length);
  if (gpus.length > 0 && gpus.length !== slots) {
    throw new GpuListError(
      `--gpus lists ${gpus.length} id${gpus.length === 1 ? '' : 's'} but --slots is ${slots}: give one GPU id per slot ` +
        '(repeat an id to run several trials on one GPU, e.g. --gpus 0,0,1,1), or drop --slots',
    );
  }
  return slots;
}

/**
 * The environment of the runner in `slot`: its GPU (ids as nvidia-smi numbers them, hence PCI bus order rather
 * than CUDA's default fastest-first), and TensorFlow's memory growth on so that slots can share a GPU. Settings
 * already in `base` win (e.g. TF_FORCE_GPU_ALLOW_GROWTH=false for one big trial per GPU). No GPU list: unchanged.
 */
export function slotEnvironment(gpus: readonly string[], slot: number, base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  if (gpus.length === 0) return base;
  const id = gpus[slot];
  if (id === undefined) throw new Error(`slot ${slot} has no GPU: the worker has ${gpus.length} GPU slot(s)`);
  return {
    CUDA_DEVICE_ORDER: 'PCI_BUS_ID',
    TF_FORCE_GPU_ALLOW_GROWTH: 'true',
    ...base,
    CUDA_VISIBLE_DEVICES: id,
  };
}
