import { readFileSync } from 'node:fs';
import { DataFileError } from './idx.ts';

/**
 * The split lists of the NVIDIA Dynamic Hand Gesture dataset (nvGesture_v1; paper-spec §3.3):
 * `nvgesture_train_correct_cvpr2016_v2.lst` and `nvgesture_test_correct_cvpr2016_v2.lst`, one clip per line:
 *
 *   path:./Video_data/class_01/subject13_r0 depth:sk_depth:12:92 color:sk_color:12:92 duo_left:duo_left:20:100 label:1
 *
 * `path` is the clip folder relative to the dataset root; each sensor field is `<sensor>:<file stem>:<START>:<END>`
 * (0-based video frame numbers, END exclusive: the gesture is frames START…END−1); `label` is 1…25.
 */

export const NVGESTURE_TRAIN_LIST = 'nvgesture_train_correct_cvpr2016_v2.lst';
export const NVGESTURE_TEST_LIST = 'nvgesture_test_correct_cvpr2016_v2.lst';
export const NVGESTURE_CLASSES = 25;

export interface SensorRange {
  /** File stem inside the clip folder, e.g. `sk_color` (the video is `<stem>.avi`). */
  file: string;
  start: number;
  end: number;
}

export interface NvgestureEntry {
  /** Clip folder as written in the list, e.g. `./Video_data/class_01/subject13_r0`. */
  path: string;
  /** 0-based class (the list's label − 1). */
  label: number;
  color: SensorRange;
  depth: SensorRange;
  /** Where the entry came from, for error messages. */
  listFile: string;
  line: number;
}

/** A bad list line. A DataFileError (name included), so the CLI reports it as missing/bad data (not retried). */
export class NvgestureListError extends DataFileError {
  constructor(
    file: string,
    readonly line: number,
    reason: string,
  ) {
    super(file, reason, '');
    this.message = `${file}:${line}: ${reason}`;
  }
}

const SENSORS = new Set(['depth', 'color', 'duo_left']);

/** Parses a list's text; `file` names it in errors. Blank lines are skipped; any other bad line throws. */
export function parseNvgestureList(text: string, file: string): NvgestureEntry[] {
  const entries: NvgestureEntry[] = [];
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const lineNumber = i + 1;
    const line = raw.trim();
    if (line.length === 0) return;
    const fail = (reason: string): never => {
      throw new NvgestureListError(file, lineNumber, `${reason} in line ${JSON.stringify(line)} (expected ` +
        '`path:./Video_data/class_XX/subjectS_rR depth:sk_depth:START:END color:sk_color:START:END ' +
        'duo_left:duo_left:START:END label:L`)');
    };
    let path: string | undefined;
    let label: number | undefined;
    const sensors = new Map<string, SensorRange>();
    for (const field of line.split(/\s+/)) {
      const parts = field.split(':');
      const key = parts[0]!;
      if (key === 'path') {
        if (parts.length !== 2 || parts[1]!.length === 0) fail(`bad path field '${field}'`);
        path = parts[1]!;
      } else if (key === 'label') {
        const value = parts.length === 2 && /^\d+$/.test(parts[1]!) ? Number(parts[1]) : NaN;
        if (!(value >= 1 && value <= NVGESTURE_CLASSES)) fail(`bad label field '${field}' (labels are 1…${NVGESTURE_CLASSES})`);
        label = value - 1;
      } else if (SENSORS.has(key)) {
        if (parts.length !== 4 || !/^\d+$/.test(parts[2]!) || !/^\d+$/.test(parts[3]!) || parts[1]!.length === 0) {
          fail(`bad sensor field '${field}' (expected ${key}:<file>:<START>:<END>)`);
        }
        const start = Number(parts[2]);
        const end = Number(parts[3]);
        if (end <= start) fail(`sensor field '${field}' has END ≤ START`);
        sensors.set(key, { file: parts[1]!, start, end });
      } else {
        fail(`unknown field '${field}'`);
      }
    }
    if (path === undefined) fail('no path field');
    if (label === undefined) fail('no label field');
    const color = sensors.get('color') ?? fail('no color field');
    const depth = sensors.get('depth') ?? fail('no depth field');
    entries.push({ path: path!, label: label!, color, depth, listFile: file, line: lineNumber });
  });
  return entries;
}

export function readNvgestureList(file: string): NvgestureEntry[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new DataFileError(
      file,
      `cannot read the NVGesture split list (${code ?? String(err)})`,
      `Point dataset.root (--data) at the nvGesture_v1 folder that holds ${NVGESTURE_TRAIN_LIST}, ${NVGESTURE_TEST_LIST} and Video_data/`,
    );
  }
  const entries = parseNvgestureList(text, file);
  if (entries.length === 0) throw new DataFileError(file, 'the NVGesture split list holds no clips', 'Check that it is the right file');
  return entries;
}
