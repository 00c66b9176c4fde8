/**
 * Records the history fixture of the replay test (test/fixtures/study-workflow-history-paged.json): a real study on
 * a throw-away dev server and database, with signals (pause, resume, extend) in the middle and pages of two trials,
 * so the replay covers those code paths. test/fixtures/study-workflow-history.json is the same story recorded
 * before trials were paged (the legacy code path): keep it as it is. Run this again after an intentional,
 * patched change of the workflow:
 *   npx tsx test/orchestration/record-history.ts
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { dbResultsStore } from '../../activities/db-store.ts';
import { startWorkers } from '../../infra/worker.ts';
import { startStudy } from '../../infra/client.ts';
import { parseStudySpec } from '../../src/spec/study.ts';
import { extendSignal, pauseSignal, progressQuery, resumeSignal } from '../../workflows/study.ts';
import { startDevServer } from '../../infra/temporal.ts';
import { createDatabase, repoRoot, temporalClient, tempDir, waitUntil } from './harness.ts';

// The server's default continue-as-new suggestion (not the tests' lowered one): one run holds the whole story.
const server = await startDevServer({ stateDir: tempDir('mmsweep-record-'), allowPipInstall: false });
const database = await createDatabase();
const client = await temporalClient(server.address);
const workers = await startWorkers({
  target: { address: server.address, namespace: 'default' },
  store: dbResultsStore(database.handle.db),
  queueClass: 'record',
  slots: 2,
  activity: { checkpointRoot: tempDir('mmsweep-record-ckpt-'), heartbeatIntervalMs: 500 },
});
try {
  const spec = parseStudySpec({
    name: 'recorded',
    queue: 'record',
    concurrency: 2,
    conditions: [{ label: 'noop', base: { kind: 'noop', sleepMs: 300, epochs: 1 }, seeds: [0, 1, 2] }],
  });
  const { handle } = await startStudy(client, spec, { workflowInput: { pageSize: 2 } });
  await waitUntil(async () => (await handle.query(progressQuery)).running.length > 0, 30_000);
  await handle.signal(pauseSignal);
  await handle.signal(extendSignal, { seeds: [3] });
  await waitUntil(async () => (await handle.query(progressQuery)).running.length === 0, 30_000);
  await handle.signal(resumeSignal);
  const outcome = await handle.result();
  const history = await handle.fetchHistory();
  const file = path.join(repoRoot, 'test', 'fixtures', 'study-workflow-history-paged.json');
  writeFileSync(file, historyToJSON(history));
  console.log(`recorded ${history.events?.length} events (outcome ${JSON.stringify(outcome.counts)}) to ${file}`);
} finally {
  await workers.shutdown();
  await client.connection.close();
  await database.drop();
  await server.stop();
}
