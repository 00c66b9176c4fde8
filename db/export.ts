import type { BasicType } from 'hyparquet-writer';
import type { Db } from './client.ts';
import { trialOutcomes } from './store.ts';
import { formatRows } from './format.ts';

/**
 * `mmsweep export`: a study's per-trial outcomes (the `trial_outcomes` view) as CSV or Parquet.
 * Parquet columns carry explicit types so that empty studies and all-null columns still have a schema.
 */

export const exportColumns: [string, BasicType][] = [
  ['study_id', 'STRING'],
  ['trial_key', 'STRING'],
  ['position', 'INT32'],
  ['label', 'STRING'],
  ['dataset', 'STRING'],
  ['dataset_variant', 'STRING'],
  ['architecture', 'STRING'],
  ['modalities', 'STRING'],
  ['algorithm', 'STRING'],
  ['profile', 'STRING'],
  ['lr', 'DOUBLE'],
  ['l1', 'DOUBLE'],
  ['alpha', 'DOUBLE'],
  ['q', 'INT32'],
  ['seed', 'INT32'],
  ['attempt', 'INT32'],
  ['worker', 'STRING'],
  ['backend', 'STRING'],
  ['device', 'STRING'],
  ['test_acc', 'DOUBLE'],
  ['acc_f', 'DOUBLE'],
  ['acc_f0', 'DOUBLE'],
  ['acc_f1', 'DOUBLE'],
  ['acc_f0_prime', 'DOUBLE'],
  ['acc_f1_prime', 'DOUBLE'],
  ['u_m1_given_m0', 'DOUBLE'],
  ['u_m0_given_m1', 'DOUBLE'],
  ['d_util', 'DOUBLE'],
  ['d_speed', 'DOUBLE'],
  ['abs_d_util', 'DOUBLE'],
  ['abs_d_speed', 'DOUBLE'],
  ['r_f', 'DOUBLE'],
  ['best_epoch', 'INT32'],
  ['steps_t', 'INT32'],
  ['epochs', 'INT32'],
  ['diverged', 'BOOLEAN'],
  ['started_at', 'TIMESTAMP'],
  ['finished_at', 'TIMESTAMP'],
];

export type ExportFormat = 'csv' | 'parquet';

export async function exportStudy(db: Db, studyId: string, format: ExportFormat): Promise<Uint8Array> {
  const rows = (await trialOutcomes(db, studyId)) as unknown as Record<string, unknown>[];
  const names = exportColumns.map(([name]) => name);
  if (format === 'csv') return new TextEncoder().encode(formatRows(names, rows, 'csv'));
  const { parquetWriteBuffer } = await import('hyparquet-writer');
  const buffer = parquetWriteBuffer({
    columnData: exportColumns.map(([name, type]) => ({ name, type, data: rows.map((r) => r[name] ?? null) })),
  });
  return new Uint8Array(buffer);
}
