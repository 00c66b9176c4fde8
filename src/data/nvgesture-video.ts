import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readCacheFile, writeCacheFile, type CacheMeta } from './cache.ts';
import { DataFileError } from './idx.ts';

/**
 * Video decoding for NVGesture through the `ffmpeg` program, with the decoded frames cached on disk.
 *
 * One decode yields the frames START…END−1 of one sensor video, each resized to size×size (aspect ratio not kept,
 * paper-spec §3.3) by ffmpeg's bilinear scaler, as uint8 channels-last bytes: RGB (`rgb24`) for the color sensor,
 * one channel (`gray`, the luma plane; the depth videos store depth as gray) for depth. The cache file holds
 * exactly those bytes (layout [frames, size, size, channels]) and is keyed by the source file's absolute path,
 * byte size and modification time, the range, the size and the channel count, so an edited video is decoded again.
 */

/** Bump when the decoded bytes for equal inputs change (ffmpeg arguments, layout). */
export const NVGESTURE_DECODER_VERSION = 1;

export const FFMPEG_ENV_VAR = 'MMSWEEP_FFMPEG';

/** DataFileErrors (name included): the CLI reports them as missing data, which orchestration does not retry. */
export class FfmpegNotFoundError extends DataFileError {
  constructor(readonly ffmpeg: string, detail: string) {
    super(ffmpeg, 'not runnable', '');
    this.message = (
      `ffmpeg is needed to decode the NVGesture videos but '${ffmpeg}' could not be run (${detail}). Install it ` +
        `(Debian/Ubuntu: apt-get install ffmpeg; macOS: brew install ffmpeg) or point ${FFMPEG_ENV_VAR} (or the ` +
        'ffmpegPath option) at the ffmpeg binary'
    );
  }
}

export class VideoDecodeError extends DataFileError {
  constructor(file: string, readonly reason: string) {
    super(file, reason, '');
    this.message = `cannot decode the video ${file}: ${reason}`;
  }
}

/** The ffmpeg to run: the option, else `$MMSWEEP_FFMPEG`, else `ffmpeg` on PATH. */
export function resolveFfmpeg(option?: string): string {
  const fromEnv = process.env[FFMPEG_ENV_VAR]?.trim();
  return option ?? (fromEnv && fromEnv.length > 0 ? fromEnv : 'ffmpeg');
}

/** Throws `FfmpegNotFoundError` unless `ffmpeg -version` runs; returns its first output line. */
export function checkFfmpeg(ffmpeg: string): string {
  const result = spawnSync(ffmpeg, ['-version'], { encoding: 'utf8' });
  if (result.error) {
    const code = (result.error as NodeJS.ErrnoException).code;
    throw new FfmpegNotFoundError(ffmpeg, code === 'ENOENT' ? 'not found' : (code ?? result.error.message));
  }
  if (result.status !== 0) throw new FfmpegNotFoundError(ffmpeg, `'-version' exited with status ${result.status}`);
  return result.stdout.split('\n')[0] ?? '';
}

export interface DecodeRequest {
  /** The .avi file. */
  file: string;
  /** Frames start…end−1 (0-based). */
  start: number;
  end: number;
  /** Output frames are size×size. */
  size: number;
  channels: 1 | 3;
}

export interface DecodedClip {
  /** [frames, size, size, channels] uint8. */
  bytes: Uint8Array;
  frames: number;
  size: number;
  channels: 1 | 3;
}

/** Runs ffmpeg once for a request; rejects with a `VideoDecodeError` naming the file (or `FfmpegNotFoundError`). */
export function decodeClip(ffmpeg: string, request: DecodeRequest): Promise<DecodedClip> {
  const { file, start, end, size, channels } = request;
  const args = [
    '-nostdin', '-v', 'error', '-i', file, '-map', '0:v:0',
    '-vf', `select=between(n\\,${start}\\,${end - 1}),scale=${size}:${size}:flags=bilinear`,
    // Keep exactly the selected frames: no duplication or dropping to a constant output rate.
    '-vsync', '0',
    '-f', 'rawvideo', '-pix_fmt', channels === 3 ? 'rgb24' : 'gray', 'pipe:1',
  ];
  return new Promise((resolvePromise, reject) => {
    const child = spawn(ffmpeg, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
      if (stderr.length > 8192) stderr = stderr.slice(-8192);
    });
    child.on('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'ENOENT' ? new FfmpegNotFoundError(ffmpeg, 'not found') : new VideoDecodeError(file, err.message));
    });
    child.on('close', (status) => {
      if (status !== 0) {
        const last = stderr.trim().split('\n').slice(-2).join(' | ');
        reject(new VideoDecodeError(file, `ffmpeg exited with status ${status}${last ? `: ${last}` : ''}`));
        return;
      }
      const bytes = new Uint8Array(Buffer.concat(chunks));
      const frameBytes = size * size * channels;
      if (bytes.length % frameBytes !== 0) {
        reject(new VideoDecodeError(file, `ffmpeg returned ${bytes.length} bytes, not a whole number of ${size}×${size}×${channels} frames`));
        return;
      }
      const frames = bytes.length / frameBytes;
      if (frames === 0) {
        reject(new VideoDecodeError(file, `it has no frames in the listed range [${start}, ${end}) (is START beyond the end of the video?)`));
        return;
      }
      resolvePromise({ bytes, frames, size, channels });
    });
  });
}

export interface ClipCacheOptions {
  cacheDir: string;
  ffmpeg: string;
}

function sourceStamp(file: string): { bytes: number; mtimeMs: number } {
  try {
    const stat = statSync(file);
    return { bytes: stat.size, mtimeMs: Math.round(stat.mtimeMs) };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new VideoDecodeError(file, code === 'ENOENT' ? 'the file does not exist' : `cannot stat it (${code ?? String(err)})`);
  }
}

export function clipCacheKey(request: DecodeRequest): { file: string; meta: CacheMeta } {
  const absolute = resolve(request.file);
  const stamp = sourceStamp(absolute);
  const meta: CacheMeta = {
    dataset: 'nvgesture',
    decoderVersion: NVGESTURE_DECODER_VERSION,
    source: absolute,
    sourceBytes: stamp.bytes,
    sourceMtimeMs: stamp.mtimeMs,
    start: request.start,
    end: request.end,
    size: request.size,
    channels: request.channels,
  };
  const digest = createHash('sha256').update(JSON.stringify(meta)).digest('hex').slice(0, 32);
  return { file: digest, meta };
}

export function clipCachePath(cacheDir: string, request: DecodeRequest): { path: string; meta: CacheMeta } {
  const key = clipCacheKey(request);
  return { path: join(cacheDir, 'nvgesture', `clip-${key.file}.bin`), meta: key.meta };
}

/** The clip from the cache, or `null` when it is not cached (or the cached file is invalid: `onInvalid` says why). */
export function readCachedClip(cacheDir: string, request: DecodeRequest, onInvalid?: (reason: string, path: string) => void): DecodedClip | null {
  const { path, meta } = clipCachePath(cacheDir, request);
  const cached = readCacheFile(path, meta, ['frames']);
  if (cached.status === 'invalid') onInvalid?.(cached.reason, path);
  if (cached.status !== 'ok') return null;
  const bytes = cached.sections.get('frames')!;
  const frameBytes = request.size * request.size * request.channels;
  if (bytes.length === 0 || bytes.length % frameBytes !== 0) {
    onInvalid?.(`${bytes.length} bytes is not a whole number of frames`, path);
    return null;
  }
  return { bytes, frames: bytes.length / frameBytes, size: request.size, channels: request.channels };
}

/** Decodes the clip (always) and writes it to the cache. */
export async function decodeAndCache(options: ClipCacheOptions, request: DecodeRequest): Promise<DecodedClip> {
  const { path, meta } = clipCachePath(options.cacheDir, request);
  const clip = await decodeClip(options.ffmpeg, request);
  writeCacheFile(path, meta, [{ name: 'frames', bytes: clip.bytes }]);
  return clip;
}
