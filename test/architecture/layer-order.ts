/**
 * The layer order of mmsweep, written once (DESIGN.md §2 and the README's "Layout" point here). The import check
 * (layers.test.ts, part of `npm test`) reads every import of every .ts/.mjs/.js file against these tables.
 *
 * Reading it: a file may import files of its own layer (without a file circle) and of any layer in a LOWER rank;
 * layers that share a rank (data, backend) are peers and import neither each other nor anything above. The side
 * layers (db, report, ui) are outside the column: only the layers listed import them, and they import only the
 * layers listed. The workflow sandbox narrows what `workflows/` may reach further.
 */

/** Where each layer lives (a folder relative to the repository root; every file under it belongs to the layer). */
export const LAYER_DIRS = {
  cli: 'src/cli',
  infra: 'infra',
  workflows: 'workflows',
  activities: 'activities',
  runner: 'src/runner',
  train: 'src/train',
  metrics: 'src/metrics',
  nn: 'src/nn',
  data: 'src/data',
  backend: 'src/backend',
  spec: 'src/spec',
  util: 'src/util',
  db: 'db',
  report: 'src/report',
  ui: 'src/ui',
} as const;

export type Layer = keyof typeof LAYER_DIRS;

/** Top to bottom: every import points down this column. */
export const LAYER_ORDER: readonly (readonly Layer[])[] = [
  ['cli'],
  ['infra'],
  ['workflows'],
  ['activities'],
  ['runner'],
  ['train'],
  ['metrics'],
  ['nn'],
  ['data', 'backend'],
  ['spec'],
  ['util'],
];

/** Layers beside the column: who may import them, and what they may import. */
export const SIDE_LAYERS: Readonly<Partial<Record<Layer, { importedBy: readonly Layer[]; imports: readonly Layer[] }>>> = {
  // Postgres stays out of the runner and below: the runner knows nothing of storage (DESIGN.md §2).
  db: { importedBy: ['cli', 'activities', 'report', 'ui'], imports: ['spec', 'util'] },
  report: { importedBy: ['cli', 'ui'], imports: ['db', 'spec', 'util'] },
  // The live page (`mmsweep ui`) draws with the report's own figures, so the static report and the page agree.
  ui: { importedBy: ['cli'], imports: ['report', 'db', 'spec', 'util'] },
};

/**
 * Folders outside the order: launchers, benchmarks, setup scripts, tests and tools may import anything (they drive
 * the system from outside), and no layer may import them.
 */
export const OUTSIDE_DIRS = ['bin', 'bench', 'scripts', 'test', 'tools'] as const;

/**
 * Temporal bundles the workflow code and everything it imports by value into a deterministic sandbox: no node APIs,
 * no tfjs, no db. Its value imports (followed transitively) may reach only these files and packages; activities are
 * reached through `import type` only (the workflow calls them by name through proxyActivities).
 */
export const WORKFLOW_SANDBOX = {
  layer: 'workflows' as Layer,
  files: ['src/spec/study-model.ts'],
  packages: ['@temporalio/workflow'],
  typeOnly: ['activities'] as readonly Layer[],
};

/** Packages some layers must never import, with the reason. Matched as the package name or its prefix + '/'. */
export const FORBIDDEN_PACKAGES: readonly { layers: readonly Layer[]; packages: readonly string[]; why: string }[] = [
  {
    layers: ['runner', 'train', 'metrics', 'nn', 'data', 'backend', 'spec', 'util'],
    packages: ['@temporalio', 'drizzle-orm', 'postgres', '@electric-sql'],
    why: 'the trial runner and everything below it know nothing of Temporal or Postgres',
  },
  {
    layers: ['spec', 'util'],
    packages: ['@tensorflow'],
    why: 'spec and util stay free of tfjs (workflows and the db read them)',
  },
];

/**
 * Dynamic imports whose target is computed at run time, so the check cannot follow them; each must be listed with
 * why it is safe. Any other non-literal import() fails the check.
 */
export const UNFOLLOWED_DYNAMIC_IMPORTS: Readonly<Record<string, string>> = {
  'src/backend/index.ts': 'loads the optional native package (@tensorflow/tfjs-node or -gpu) by its name',
};
