import { ApplicationFailure, Context } from '@temporalio/activity';
import { canonicalJson } from '../src/spec/canonical.ts';
import { MAX_SPLICED_SEED, parsedTrialKey, planStudy, seedSplice } from '../src/spec/keys.ts';
import { extendStudySpec, isEmptyExtension, parseStudySpec, plannedTrialCount, studyTemplates, type StudyExtension, type StudySpec } from '../src/spec/study.ts';
import { INLINE_SPEC_BYTES } from '../src/spec/study-model.ts';
import type { PendingTrial, RegistrationGroup, ResultsStore, StudyCounts } from './store.ts';
import { FAILURE_TYPES, storeRetrier, type ActivityConfig } from './common.ts';

/**
 * The light control activities of the study workflow (task queue mmsweep-control): register a study's trials,
 * hand out pending ones in pages, extend, retry failed, summarise. Their inputs and outputs are small and bounded
 * whatever the study's size: a spec travels by its sha256, trials in pages.
 */

export interface RegisterStudyInput {
  studyId: string;
  /** The spec inline (small specs) or … */
  spec?: StudySpec;
  /** … the sha256 of its stored document (study_specs). */
  specSha256?: string;
}

export interface RegisterStudyOutput {
  specSha256: string;
  counts: StudyCounts;
}

export interface ExtendStudyInput {
  studyId: string;
  specSha256: string;
  extensions: StudyExtension[];
}

export interface NextPendingInput {
  studyId: string;
  afterPosition: number;
  limit: number;
}

/** Legacy (workflow runs started before paging): the whole key list in one payload. */
export interface RegisterTrialsInput {
  spec: StudySpec;
}
export interface RegisterTrialsOutput {
  total: number;
  /** Keys still to train (neither done nor failed), in plan order. */
  pending: string[];
  done: number;
  failed: string[];
}

export function createControlActivities(store: ResultsStore, config: ActivityConfig) {
  const withStore = storeRetrier(config, store.location);
  const quick = <T>(what: string, fn: () => Promise<T>) => withStore(what, fn, config.controlStoreRetryMs);

  function parse(input: unknown, origin: string): StudySpec {
    try {
      return parseStudySpec(input);
    } catch (error) {
      throw ApplicationFailure.nonRetryable(`${origin}: ${(error as Error).message}`, FAILURE_TYPES.invalidSpec);
    }
  }

  async function loadSpec(studyId: string, sha256: string): Promise<StudySpec> {
    const document = await quick('loadSpecDocument', () => store.loadSpecDocument(sha256));
    if (document === null) {
      throw ApplicationFailure.nonRetryable(
        `study ${studyId}: its spec document ${sha256} is not in the results store this worker uses: the client that ` +
          'started the study stored it elsewhere; give the client and every worker the same DATABASE_URL',
        FAILURE_TYPES.specDocumentMissing,
      );
    }
    return parse(JSON.parse(document), `study ${studyId}, spec document ${sha256}`);
  }

  /**
   * Store the spec document (when it came inline) and register every trial of the study, streaming: seeds are
   * taken one grid point at a time and inserted `registrationBatch` at a time, each batch committed, so a retry after a
   * failure inserts only what is missing. A spec whose trials are all registered is not expanded again.
   */
  async function registerStudy(input: RegisterStudyInput): Promise<RegisterStudyOutput> {
    const { studyId } = input;
    let spec: StudySpec;
    let sha256: string;
    if (input.spec) {
      spec = parse(input.spec, `study ${studyId}`);
      const canonical = canonicalJson(spec);
      sha256 = await quick('saveSpecDocument', () => store.saveSpecDocument(canonical));
    } else if (input.specSha256) {
      sha256 = input.specSha256;
      spec = await loadSpec(studyId, sha256);
    } else {
      throw ApplicationFailure.nonRetryable(`study ${studyId}: registerStudy needs a spec or a spec sha256`, FAILURE_TYPES.invalidSpec);
    }
    if (spec.name !== studyId) {
      throw ApplicationFailure.nonRetryable(`spec document ${sha256} names study ${spec.name}, not ${studyId}`, FAILURE_TYPES.invalidSpec);
    }
    const planned = plannedTrialCount(spec);
    if (planned > config.maxStudyTrials) {
      throw ApplicationFailure.nonRetryable(
        `study ${studyId} is too large: it expands to ${planned} trials, more than this worker registers ` +
          `(${config.maxStudyTrials}, MMSWEEP_MAX_STUDY_TRIALS); split it into several studies or raise the limit`,
        FAILURE_TYPES.studyTooLarge,
      );
    }
    await quick('upsertStudy', () => store.upsertStudy({ id: studyId, name: studyId, preset: spec.preset, spec }));
    const state = await quick('studySpecState', () => store.studySpecState(studyId));
    if (state?.registeredSha256 !== sha256) {
      await quick('setStudySpecState', () => store.setStudySpecState(studyId, sha256, false));
      const context = Context.current();
      let batch: RegistrationGroup[] = [];
      let inBatch = 0;
      let registered = 0;
      // One batch in flight while the next is expanded: the worker's CPU and the server's overlap. Batches still
      // commit one after the other, in plan order.
      let inFlight: Promise<void> | null = null;
      const flush = async () => {
        const groups = batch;
        const size = inBatch;
        batch = [];
        inBatch = 0;
        if (inFlight) await inFlight;
        const sent = quick('registerTrialBatch', () => store.registerTrialBatch(studyId, groups)).then(() => {
          registered += size;
          context.heartbeat({ registering: registered, of: planned });
        });
        sent.catch(() => undefined); // awaited (and thrown) at the next flush or below; not an unhandled rejection meanwhile
        inFlight = sent;
      };
      // Seeds only: the store makes each spliced trial's spec and key (the sha256 of its canonical JSON) itself, so
      // no per-trial string is built or held here.
      for (const { label, template, seeds } of studyTemplates(spec)) {
        const splice = seedSplice(template);
        for (const seed of seeds) {
          const last = batch.at(-1);
          if (splice && seed < MAX_SPLICED_SEED) {
            if (last?.template === template && last.splice) last.splice.seeds.push(seed);
            else batch.push({ label, template, splice: { ...splice, seeds: [seed] } });
          } else {
            const trial = { ...template, seed };
            const whole = { key: parsedTrialKey(trial), canonical: canonicalJson(trial), seed };
            if (last?.template === template && last.trials) last.trials.push(whole);
            else batch.push({ label, template, trials: [whole] });
          }
          if (++inBatch >= config.registrationBatch) await flush();
        }
      }
      if (inBatch > 0) await flush();
      if (inFlight) await inFlight;
      await quick('setStudySpecState', () => store.setStudySpecState(studyId, sha256, true));
    }
    const counts = await quick('studyCounts', () => store.studyCounts(studyId));
    return { specSha256: sha256, counts };
  }

  /**
   * Apply extensions to the stored spec; returns the new document's sha256 (registerStudy registers it) and, when
   * it is small enough to travel inline, the spec itself (the workflow hands it back in its outcome).
   */
  async function extendStudy(input: ExtendStudyInput): Promise<{ specSha256: string; spec?: StudySpec }> {
    let spec = await loadSpec(input.studyId, input.specSha256);
    for (const extension of input.extensions) if (!isEmptyExtension(extension)) spec = extendStudySpec(spec, extension);
    spec = parse(spec, `study ${input.studyId} extended`);
    const canonical = canonicalJson(spec);
    const specSha256 = await quick('saveSpecDocument', () => store.saveSpecDocument(canonical));
    return Buffer.byteLength(canonical) <= INLINE_SPEC_BYTES ? { specSha256, spec } : { specSha256 };
  }

  async function nextPendingTrials(input: NextPendingInput): Promise<PendingTrial[]> {
    return quick('nextPendingTrials', () => store.nextPendingTrials(input.studyId, input.afterPosition, input.limit));
  }

  async function markTrialFailed(input: { trialKey: string; error: string }): Promise<void> {
    await withStore('markTrialFailed', () => store.markTrialFailed(input.trialKey, input.error));
  }

  /** Legacy runs: the keys set back to pending. */
  async function resetFailedTrials(input: { studyId: string }): Promise<string[]> {
    return withStore('resetFailedTrials', () => store.resetFailedTrials(input.studyId));
  }

  /** Failed trials of the study back to pending; returns how many (the workflow pages them in again). */
  async function retryFailedTrials(input: { studyId: string }): Promise<number> {
    return (await withStore('resetFailedTrials', () => store.resetFailedTrials(input.studyId))).length;
  }

  async function summarizeStudy(input: {
    studyId: string;
    status?: 'running' | 'paused' | 'done' | 'cancelled';
  }): Promise<StudyCounts> {
    if (input.status) await withStore('setStudyStatus', () => store.setStudyStatus(input.studyId, input.status!));
    return withStore('studyCounts', () => store.studyCounts(input.studyId));
  }

  /** Legacy (workflow runs started before paging): registers and returns every key; kept so such runs finish. */
  async function registerTrials({ spec: input }: RegisterTrialsInput): Promise<RegisterTrialsOutput> {
    const spec = parse(input, 'study spec');
    const planned = planStudy(spec);
    await withStore('upsertStudy', () => store.upsertStudy({ id: spec.name, name: spec.name, preset: spec.preset, spec }));
    await withStore('registerTrials', () =>
      store.registerTrials(spec.name, planned.map((t) => ({ key: t.key, label: t.label, spec: t.spec }))),
    );
    const states = new Map((await withStore('trialStates', () => store.trialStates(spec.name))).map((s) => [s.key, s.state]));
    const pending: string[] = [];
    const failed: string[] = [];
    let done = 0;
    for (const trial of planned) {
      const state = states.get(trial.key);
      if (state === 'done') done++;
      else if (state === 'failed') failed.push(trial.key);
      else pending.push(trial.key);
    }
    return { total: planned.length, pending, done, failed };
  }

  return {
    registerStudy,
    extendStudy,
    nextPendingTrials,
    retryFailedTrials,
    registerTrials,
    markTrialFailed,
    resetFailedTrials,
    summarizeStudy,
  };
}
