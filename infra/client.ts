import { Client, Connection, WorkflowNotFoundError, type WorkflowHandle } from '@temporalio/client';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { getPreset, presetNames } from '../src/spec/presets.ts';
import { parseStudySpec, type StudySpec } from '../src/spec/study.ts';
import { InvalidSpecError } from '../src/spec/strict.ts';
import { CONTROL_TASK_QUEUE, INLINE_SPEC_BYTES, studyWorkflowId } from '../src/spec/study-model.ts';
import { canonicalJson } from '../src/spec/canonical.ts';
import type { StudyOutcome, StudyWorkflowInput, studyWorkflow } from '../workflows/study.ts';
import { connectionOptions, temporalTargetFromEnv, type TemporalTarget } from './connection.ts';
import { stateFiles } from './temporal.ts';
import { mmsweepHome } from '../src/util/home.ts';

/** Local state of the embedded stack (dev server state file, checkpoints, workflow bundle cache). */
export function localStateDir(): string {
  return mmsweepHome();
}
export function temporalStateDir(): string {
  return path.join(localStateDir(), 'temporal');
}

/**
 * Where the CLI finds Temporal: --address / TEMPORAL_ADDRESS, else the dev server a `mmsweep run` on this machine
 * is running (its state file), else 127.0.0.1:7233.
 */
export function resolveTarget(flags: { address?: string; namespace?: string }): TemporalTarget {
  if (flags.address || process.env.TEMPORAL_ADDRESS) return temporalTargetFromEnv({ address: flags.address, namespace: flags.namespace });
  const state = stateFiles(temporalStateDir()).state;
  if (existsSync(state)) {
    const s = JSON.parse(readFileSync(state, 'utf8')) as { ip: string; port: number; namespace: string };
    return temporalTargetFromEnv({ address: `${s.ip}:${s.port}`, namespace: flags.namespace ?? s.namespace });
  }
  return temporalTargetFromEnv({ namespace: flags.namespace });
}

export async function connectClient(target: TemporalTarget): Promise<Client> {
  try {
    const connection = await Connection.connect({ ...connectionOptions(target), connectTimeout: '10 seconds' } as Parameters<typeof Connection.connect>[0]);
    return new Client({ connection, namespace: target.namespace });
  } catch (error) {
    throw new Error(
      `cannot reach Temporal at ${target.address} (namespace ${target.namespace}): ${(error as Error).message}. ` +
        'Set TEMPORAL_ADDRESS (or --address), or start the embedded stack with `mmsweep run <preset>`.',
    );
  }
}

/** A preset name or a StudySpec JSON file. */
export function loadStudySpec(presetOrFile: string): StudySpec {
  if (presetNames().includes(presetOrFile)) return parseStudySpec(getPreset(presetOrFile));
  if (existsSync(presetOrFile)) {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(presetOrFile, 'utf8'));
    } catch (error) {
      throw new InvalidSpecError(`${presetOrFile}: not valid JSON (${(error as Error).message})`, []);
    }
    return parseStudySpec(json);
  }
  throw new InvalidSpecError(`"${presetOrFile}" is neither a preset (${presetNames().join(', ')}) nor a StudySpec JSON file`, []);
}

export function studyHandle(client: Client, study: string): WorkflowHandle<typeof studyWorkflow> {
  return client.workflow.getHandle<typeof studyWorkflow>(studyWorkflowId(study));
}

export type WorkflowState = 'running' | 'completed' | 'other' | 'missing';

export async function studyState(client: Client, study: string): Promise<WorkflowState> {
  try {
    const description = await studyHandle(client, study).describe();
    if (description.status.name === 'RUNNING') return 'running';
    if (description.status.name === 'COMPLETED') return 'completed';
    return 'other';
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) return 'missing';
    throw error;
  }
}

/** The study's spec as its last finished run left it (extensions included), or null. */
export async function lastOutcome(client: Client, study: string): Promise<StudyOutcome | null> {
  if ((await studyState(client, study)) !== 'completed') return null;
  return (await studyHandle(client, study).result()) as StudyOutcome;
}

export interface StartOptions {
  /** Tests: a lowered history threshold and short timeouts. */
  workflowInput?: Partial<Omit<StudyWorkflowInput, 'spec'>>;
  /** Where specs too large to travel inline are stored (the workers' results store). */
  specStore?: SpecStore;
}

/** The results store's spec documents, as the client needs them (db/registration.ts through an open database). */
export interface SpecStore {
  save(canonical: string): Promise<string>;
  load(sha256: string): Promise<string | null>;
}

export class SpecTooLargeError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'SpecTooLargeError';
  }
}

/**
 * The workflow input that carries `spec`: the spec inline when small, else its header and the sha256 of its
 * document, stored first through `specStore` (a 10⁶-seed spec is megabytes; Temporal caps a payload at 2 MB).
 */
export async function specInput(spec: StudySpec, specStore?: SpecStore): Promise<Pick<StudyWorkflowInput, 'spec' | 'study' | 'specSha256'>> {
  const canonical = canonicalJson(spec);
  const bytes = Buffer.byteLength(canonical);
  if (bytes <= INLINE_SPEC_BYTES) return { spec };
  if (!specStore) {
    throw new SpecTooLargeError(
      `study ${spec.name}: its spec is ${(bytes / 1024).toFixed(0)} KiB, more than the ${INLINE_SPEC_BYTES / 1024} KiB that travel ` +
        'inline to Temporal; mmsweep stores larger specs in the results store: set DATABASE_URL to the database the workers use',
    );
  }
  const specSha256 = await specStore.save(canonical);
  return { study: { name: spec.name, queue: spec.queue, concurrency: spec.concurrency, maxAttempts: spec.maxAttempts }, specSha256 };
}

/** The spec a finished run ended with: inline in its outcome, or its stored document. */
export async function outcomeSpec(outcome: StudyOutcome, specStore?: SpecStore): Promise<StudySpec> {
  if (outcome.spec) return outcome.spec;
  if (!outcome.specSha256) throw new Error(`study ${outcome.study}: its last run names no spec`);
  if (!specStore) {
    throw new SpecTooLargeError(
      `study ${outcome.study}: its last spec is stored in the results store (document ${outcome.specSha256}): set DATABASE_URL to read it`,
    );
  }
  const document = await specStore.load(outcome.specSha256);
  if (document === null) throw new Error(`study ${outcome.study}: spec document ${outcome.specSha256} is not in this results store`);
  return parseStudySpec(JSON.parse(document));
}

/**
 * Start the study's workflow, or attach to the running one: the workflow id is derived from the study name, and
 * a second start while it runs returns the same run. After a finished run, a new run continues from that run's
 * spec (its extensions kept); trials already done are skipped by key.
 */
export async function startStudy(
  client: Client,
  spec: StudySpec,
  options: StartOptions = {},
): Promise<{ handle: WorkflowHandle<typeof studyWorkflow>; attached: boolean; spec: StudySpec }> {
  const state = await studyState(client, spec.name);
  if (state === 'running') return { handle: studyHandle(client, spec.name), attached: true, spec };
  const previous = state === 'completed' ? await lastOutcome(client, spec.name) : null;
  const effective = previous ? mergeSpecs(spec, await outcomeSpec(previous, options.specStore)) : spec;
  const handle = await client.workflow.start<typeof studyWorkflow>('studyWorkflow', {
    workflowId: studyWorkflowId(spec.name),
    taskQueue: CONTROL_TASK_QUEUE,
    args: [{ ...options.workflowInput, ...(await specInput(effective, options.specStore)) }],
    workflowIdConflictPolicy: 'USE_EXISTING',
  });
  return { handle, attached: false, spec: effective };
}

/** The new spec, keeping what a previous run added by `extend` (seeds and grid points of matching conditions). */
function mergeSpecs(next: StudySpec, previous: StudySpec): StudySpec {
  return {
    ...next,
    conditions: next.conditions.map((c) => {
      const old = previous.conditions.find((p) => p.label === c.label);
      if (!old) return c;
      const add = <T>(a: T[] | undefined, b: T[] | undefined) => (a ? [...a, ...(b ?? []).filter((x) => !a.includes(x))] : a);
      return { ...c, seeds: add(c.seeds, old.seeds)!, extraLr: c.lr ? add(c.extraLr, old.extraLr)! : c.extraLr, l1: add(c.l1, old.l1), alpha: add(c.alpha, old.alpha), q: add(c.q, old.q) };
    }),
  };
}

/**
 * Send `retryFailed` or `extend` to the study, starting it again (from `spec`, else from its last finished run's
 * spec) when it is not running: the signal is delivered as the new run starts.
 */
export async function signalStudy(
  client: Client,
  study: string,
  signal: 'retryFailed' | 'extend',
  args: unknown[],
  options: { spec?: StudySpec } & StartOptions = {},
): Promise<void> {
  const state = await studyState(client, study);
  const last = options.spec ? null : await lastOutcome(client, study);
  const spec = options.spec ?? (last ? await outcomeSpec(last, options.specStore) : undefined);
  if (state !== 'running' && !spec) {
    throw new Error(`study "${study}" is not running and its last spec is unknown: pass --spec <preset|file>`);
  }
  await client.workflow.signalWithStart('studyWorkflow', {
    workflowId: studyWorkflowId(study),
    taskQueue: CONTROL_TASK_QUEUE,
    args: [{ ...options.workflowInput, ...(await specInput(spec!, options.specStore)) }],
    signal,
    signalArgs: args as [],
  });
}

/**
 * What a failed study run says, innermost cause first: `registerStudy failed: study x is too large: … (StudyTooLarge)`
 * rather than the SDK's bare "Workflow execution failed".
 */
export function failureMessage(error: unknown): string {
  let innermost = error as (Error & { type?: string | null; activityType?: string; cause?: unknown }) | undefined;
  let activity: string | undefined;
  while (innermost && innermost.cause instanceof Error) {
    if (innermost.activityType) activity = innermost.activityType;
    innermost = innermost.cause as typeof innermost;
  }
  if (!innermost) return String(error);
  if (innermost.activityType) activity = innermost.activityType;
  const type = innermost.type ? ` (${innermost.type})` : '';
  return `${activity ? `${activity} failed: ` : ''}${innermost.message}${type}`;
}

/** Trouble a running study's control steps are in: a control activity failing and being retried, with its cause. */
export interface StudyDiagnosis {
  problems: string[];
  /** Trials registered so far while `registerStudy` streams them (its heartbeat), else null. */
  registering: { registering: number; of: number } | null;
}

type Description = Awaited<ReturnType<WorkflowHandle['describe']>>;

export function diagnoseStudy(description: Description, decode: (payload: unknown) => unknown): StudyDiagnosis {
  const problems: string[] = [];
  let registering: StudyDiagnosis['registering'] = null;
  for (const activity of description.raw.pendingActivities ?? []) {
    const type = activity.activityType?.name ?? 'activity';
    if (type === 'trainTrial') continue; // a trial's own retries are the trial's business, shown per trial
    const failure = activity.lastFailure;
    if ((activity.attempt ?? 1) > 1 && failure?.message) {
      const cause = failure.cause?.message ? `: ${failure.cause.message}` : '';
      problems.push(`${type} failed ${activity.attempt! - 1} time(s) and is retried: ${failure.message}${cause}`);
    }
    const payload = activity.heartbeatDetails?.payloads?.[0];
    if (type === 'registerStudy' && payload) registering = decode(payload) as StudyDiagnosis['registering'];
  }
  return { problems, registering };
}
