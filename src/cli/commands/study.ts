import type { Command } from 'commander';

interface ConnectFlags {
  address?: string;
  namespace?: string;
}

function numberList(name: string, integer: boolean) {
  return (value: string): number[] =>
    value.split(',').map((part) => {
      const n = Number(part.trim());
      if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < 0) {
        throw new Error(`${name}: "${part}" is not a ${integer ? 'non-negative integer' : 'non-negative number'}`);
      }
      return n;
    });
}

async function connect(flags: ConnectFlags) {
  const { connectClient, resolveTarget } = await import('../../../infra/client.ts');
  return connectClient(resolveTarget(flags));
}

/**
 * The results store's spec documents, opened only when a spec is too large to travel inline (DATABASE_URL, else
 * the embedded database of `mmsweep run`).
 */
function lazySpecStore() {
  let opened: Promise<import('../../../db/client.ts').DbHandle> | null = null;
  const open = async () => {
    const { openDatabase } = await import('../../../db/client.ts');
    opened ??= openDatabase();
    return (await opened).db;
  };
  return {
    store: {
      save: async (canonical: string) => (await import('../../../db/registration.ts')).saveSpecDocument(await open(), canonical),
      load: async (sha256: string) => (await import('../../../db/registration.ts')).loadSpecDocument(await open(), sha256),
    },
    close: async () => void (opened && (await (await opened).close())),
  };
}

function withConnection(command: Command): Command {
  return command
    .option('--address <host:port>', 'Temporal frontend (default TEMPORAL_ADDRESS, else the local dev server of `mmsweep run`)')
    .option('--namespace <ns>', 'Temporal namespace (default TEMPORAL_NAMESPACE or default)');
}

async function requireRunning(flags: ConnectFlags, study: string) {
  const client = await connect(flags);
  const { studyHandle, studyState } = await import('../../../infra/client.ts');
  const state = await studyState(client, study);
  if (state !== 'running') {
    throw new Error(`study "${study}" has no running workflow (${state}); start it with \`mmsweep study start ${study}\``);
  }
  return { client, handle: studyHandle(client, study) };
}

export function register(program: Command): void {
  const study = program.command('study').description('plan, start and steer studies on Temporal (workers run them)');

  study
    .command('plan <presetOrFile>')
    .description('print the trials a preset or StudySpec file expands to, with their keys')
    .option('--json', 'print JSON: {study, trials: [{key, label, spec}]}')
    .action(async (presetOrFile: string, options: { json?: boolean }) => {
      const { loadStudySpec } = await import('../../../infra/client.ts');
      const { iterateKeyedTrials } = await import('../../spec/keys.ts');
      const spec = loadStudySpec(presetOrFile);
      // Streamed: a study of 10⁶ trials is printed as it expands, holding only the keys seen (trials two
      // conditions share are listed once).
      const seen = new Set<string>();
      const out = process.stdout;
      const write = (text: string) => (out.write(text) ? undefined : new Promise<void>((resolve) => out.once('drain', () => resolve())));
      if (options.json) await write(`{"study":${JSON.stringify(spec)},"trials":[`);
      for (const t of iterateKeyedTrials(spec)) {
        if (seen.has(t.key)) continue;
        seen.add(t.key);
        if (options.json) {
          await write(`${seen.size > 1 ? ',' : ''}\n${JSON.stringify({ condition: t.condition, label: t.label, spec: t.spec, key: t.key })}`);
          continue;
        }
        const s = t.spec as Record<string, unknown>;
        const fields = ['kind', 'algorithm', 'modalities', 'architecture', 'lr', 'l1', 'alpha', 'q', 'seed', 'sleepMs', 'epochs', 'maxEpochs']
          .filter((f) => s[f] !== undefined)
          .map((f) => `${f}=${s[f]}`)
          .join(' ');
        await write(`${t.key.slice(0, 12)}  ${t.label.padEnd(22)}  ${fields}\n`);
      }
      if (options.json) await write('\n]}\n');
      else await write(`study ${spec.name}: ${seen.size} trials, queue mmsweep-train-${spec.queue}, concurrency ${spec.concurrency}\n`);
    });

  withConnection(
    study
      .command('start <presetOrFile>')
      .description('start the study (or attach to it when it already runs): trials go to the workers of its queue')
      .option('--concurrency <n>', 'trials in flight at once', (v) => Number(v))
      .option('--queue <class>', 'worker class (task queue mmsweep-train-<class>)')
      .option('--name <name>', 'study name (default: the preset / spec name)')
      .option('--wait', 'wait until the study finishes and print its counts'),
  ).action(async (presetOrFile: string, options: ConnectFlags & { concurrency?: number; queue?: string; name?: string; wait?: boolean }) => {
    const { loadStudySpec, startStudy } = await import('../../../infra/client.ts');
    const { parseStudySpec } = await import('../../spec/study.ts');
    const base = loadStudySpec(presetOrFile);
    const spec = parseStudySpec({
      ...base,
      ...(options.name ? { name: options.name } : {}),
      ...(options.queue ? { queue: options.queue } : {}),
      ...(options.concurrency ? { concurrency: options.concurrency } : {}),
    });
    const client = await connect(options);
    const specs = lazySpecStore();
    let started;
    try {
      started = await startStudy(client, spec, { specStore: specs.store });
    } finally {
      await specs.close();
    }
    const { handle, attached } = started;
    console.log(`${attached ? 'attached to' : 'started'} study ${spec.name} (workflow ${handle.workflowId}); trials run on queue mmsweep-train-${spec.queue}`);
    if (options.wait) {
      const { failureMessage } = await import('../../../infra/client.ts');
      const outcome = await handle.result().catch((error: unknown) => {
        throw new Error(`study ${spec.name} failed: ${failureMessage(error)}`);
      });
      console.log(JSON.stringify({ ...outcome, spec: undefined }, null, 2));
    }
  });

  withConnection(study.command('status <study>').description('progress of a study').option('--json', 'print JSON')).action(
    async (name: string, options: ConnectFlags & { json?: boolean }) => {
      const client = await connect(options);
      const { studyHandle, studyState, diagnoseStudy, failureMessage } = await import('../../../infra/client.ts');
      const { progressQuery } = await import('../../../workflows/study.ts');
      const { defaultPayloadConverter } = await import('@temporalio/common');
      const state = await studyState(client, name);
      if (state === 'missing') throw new Error(`no study "${name}" on this Temporal; start it with \`mmsweep study start\``);
      const handle = studyHandle(client, name);
      if (state === 'running') {
        // Both answers come from the workflow's counters and the server's view of its activities: no key lists.
        const [p, description] = await Promise.all([handle.query(progressQuery), handle.describe()]);
        const diagnosis = diagnoseStudy(description, (payload) => defaultPayloadConverter.fromPayload(payload as never));
        if (options.json) {
          console.log(JSON.stringify({ state, ...p, problems: diagnosis.problems, registering: diagnosis.registering }, null, 2));
          return;
        }
        const registering = p.registered === false ? `, registering trials${diagnosis.registering ? ` (${diagnosis.registering.registering} so far)` : ''}` : '';
        console.log(`${name}: ${p.status}${registering}, ${p.done}/${p.total} done, ${p.running.length} running, ${p.pending} pending, ${p.failed} failed (workflow run ${p.runs})`);
        for (const problem of diagnosis.problems) console.log(`  stuck: ${problem}`);
        return;
      }
      const outcome = await handle.result().then(
        (o) => ({ ...o, spec: undefined }),
        (error: unknown) => ({ error: failureMessage(error) }),
      );
      if (options.json) console.log(JSON.stringify({ state: 'error' in outcome ? 'failed' : state, ...outcome }, null, 2));
      else if ('error' in outcome) console.log(`${name}: failed: ${outcome.error}`);
      else console.log(`${name}: ${state}\n${JSON.stringify(outcome, null, 2)}`);
    },
  );

  for (const [name, description] of [
    ['pause', 'stop scheduling new trials (running ones finish)'],
    ['resume', 'schedule trials again'],
  ] as const) {
    withConnection(study.command(`${name} <study>`).description(description)).action(async (studyName: string, options: ConnectFlags) => {
      const { handle } = await requireRunning(options, studyName);
      const { pauseSignal, resumeSignal } = await import('../../../workflows/study.ts');
      await handle.signal(name === 'pause' ? pauseSignal : resumeSignal);
      console.log(`${name === 'pause' ? 'paused' : 'resumed'} ${studyName}`);
    });
  }

  withConnection(study.command('cancel <study>').description('cancel the study: running trials are cancelled and their runner processes killed')).action(
    async (studyName: string, options: ConnectFlags) => {
      const { handle } = await requireRunning(options, studyName);
      const { cancelSignal } = await import('../../../workflows/study.ts');
      await handle.signal(cancelSignal);
      const outcome = await handle.result();
      console.log(`cancelled ${studyName}: ${JSON.stringify(outcome.counts)}`);
    },
  );

  const signalWithStart = async (studyName: string, options: ConnectFlags & { spec?: string }, which: 'retryFailed' | 'extend', args: unknown[]) => {
    const client = await connect(options);
    const { signalStudy, loadStudySpec } = await import('../../../infra/client.ts');
    const specs = lazySpecStore();
    try {
      await signalStudy(client, studyName, which, args, { spec: options.spec ? loadStudySpec(options.spec) : undefined, specStore: specs.store });
    } finally {
      await specs.close();
    }
  };

  withConnection(
    study
      .command('retry-failed <study>')
      .description('schedule the failed trials again (restarts a finished study)')
      .option('--spec <presetOrFile>', 'the spec to restart a study whose last run did not finish cleanly'),
  ).action(async (studyName: string, options: ConnectFlags & { spec?: string }) => {
    await signalWithStart(studyName, options, 'retryFailed', []);
    console.log(`retrying the failed trials of ${studyName}`);
  });

  withConnection(
    study
      .command('extend <study>')
      .description('add seeds (every condition) or grid points (conditions with that axis); finished trials are reused by key')
      .option('--seeds <list>', 'comma-separated seeds', numberList('--seeds', true))
      .option('--lr <list>', 'learning rates', numberList('--lr', false))
      .option('--l1 <list>', 'L1 λ values', numberList('--l1', false))
      .option('--alpha <list>', 'α values', numberList('--alpha', false))
      .option('--q <list>', 'Q values', numberList('--q', true))
      .option('--spec <presetOrFile>', 'the spec to restart a study whose last run did not finish cleanly'),
  ).action(async (studyName: string, options: ConnectFlags & { spec?: string; seeds?: number[]; lr?: number[]; l1?: number[]; alpha?: number[]; q?: number[] }) => {
    const extension = { seeds: options.seeds, lr: options.lr, l1: options.l1, alpha: options.alpha, q: options.q };
    const { isEmptyExtension } = await import('../../spec/study-model.ts');
    if (isEmptyExtension(extension)) throw new Error('extend: give at least one of --seeds, --lr, --l1, --alpha, --q');
    await signalWithStart(studyName, options, 'extend', [extension]);
    console.log(`extended ${studyName} with ${JSON.stringify(extension)}`);
  });
}
