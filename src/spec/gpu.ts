/**
 * The GPU a result was trained on, recorded with every TrialResult (null when no GPU computed it). Each field is
 * null where the machine does not tell (e.g. the stock tfjs-node-gpu build records no CUDA wheel versions).
 */
export interface GpuInfo {
  /** As TensorFlow names the device, e.g. "NVIDIA H100 80GB HBM3". */
  model: string | null;
  /** e.g. "9.0". */
  computeCapability: string | null;
  /** NVIDIA kernel driver version, e.g. "550.54.15". */
  driver: string | null;
  /** CUDA runtime the build ships (nvidia-cuda-runtime-cu12 wheel), e.g. "12.5.82". */
  cuda: string | null;
  /** cuDNN as TensorFlow loaded it (else as the build ships it), e.g. "9.3.0". */
  cudnn: string | null;
  /** CUDA_VISIBLE_DEVICES of the process (which physical GPU, in PCI bus order under mmsweep workers). */
  visibleDevices: string | null;
  /**
   * TF32 matmuls/convolutions (Ampere and newer): TensorFlow enables them by default; NVIDIA_TF32_OVERRIDE=0
   * turns them off (full float32 products, for parity runs).
   */
  tf32: boolean;
}
