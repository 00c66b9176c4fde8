/**
 * The import check: every import of every .ts/.mjs/.js file (static, `import type`, re-exports, dynamic `import()`,
 * `require`, `import('x').T` types), read with the TypeScript parser, against the order in layer-order.ts; no file
 * circles; the workflow sandbox. The first tests feed the checker small made-up trees so that each rule is seen to
 * fail; the last one runs it on the repository.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import {
  FORBIDDEN_PACKAGES,
  LAYER_DIRS,
  LAYER_ORDER,
  OUTSIDE_DIRS,
  SIDE_LAYERS,
  UNFOLLOWED_DYNAMIC_IMPORTS,
  WORKFLOW_SANDBOX,
  type Layer,
} from './layer-order.ts';

const TABLE = 'test/architecture/layer-order.ts';
const CODE_FILE = /\.(?:[cm]?ts|[cm]?js)$/;

interface ImportRef {
  specifier: string | null;
  /** The source text of a computed import() argument (specifier null). */
  computed?: string;
  typeOnly: boolean;
  line: number;
}

function parseImports(file: string, source: string): ImportRef[] {
  const kind = /\.[cm]?js$/.test(file) ? ts.ScriptKind.JS : ts.ScriptKind.TS;
  const sf = ts.createSourceFile(file, source, ts.ScriptTarget.Latest, true, kind);
  const refs: ImportRef[] = [];
  const add = (node: ts.Node, specifier: string | null, typeOnly: boolean, computed?: string) =>
    refs.push({ specifier, typeOnly, computed, line: sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1 });
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause;
      const named = clause?.namedBindings;
      const allNamedTypes = !!named && ts.isNamedImports(named) && named.elements.length > 0 && named.elements.every((e) => e.isTypeOnly);
      add(node, node.moduleSpecifier.text, !!clause && (clause.isTypeOnly || (!clause.name && allNamedTypes)));
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      const named = node.exportClause;
      const allNamedTypes = !!named && ts.isNamedExports(named) && named.elements.length > 0 && named.elements.every((e) => e.isTypeOnly);
      add(node, node.moduleSpecifier.text, node.isTypeOnly || allNamedTypes);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      const expr = node.moduleReference.expression;
      if (ts.isStringLiteral(expr)) add(node, expr.text, node.isTypeOnly);
    } else if (ts.isCallExpression(node) && (node.expression.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(node.expression) && node.expression.text === 'require'))) {
      const arg = node.arguments[0];
      if (arg && ts.isStringLiteralLike(arg)) add(node, arg.text, false);
      else if (node.expression.kind === ts.SyntaxKind.ImportKeyword) add(node, null, false, arg ? arg.getText(sf) : '');
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      add(node, node.argument.literal.text, true);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return refs;
}

const dirOf = (layer: Layer) => LAYER_DIRS[layer];
const under = (file: string, dir: string) => file === dir || file.startsWith(`${dir}/`);

type Place = { kind: 'layer'; layer: Layer } | { kind: 'outside' } | { kind: 'none' };

function placeOf(file: string): Place {
  const layers = (Object.keys(LAYER_DIRS) as Layer[]).filter((l) => under(file, dirOf(l)));
  // The longest folder wins (none of today's layers nest, but a nested one must not be read as its parent).
  layers.sort((a, b) => dirOf(b).length - dirOf(a).length);
  if (layers[0]) return { kind: 'layer', layer: layers[0] };
  if (!file.includes('/') || (OUTSIDE_DIRS as readonly string[]).some((d) => under(file, d))) return { kind: 'outside' };
  return { kind: 'none' };
}

const rankOf = (layer: Layer) => LAYER_ORDER.findIndex((rank) => rank.includes(layer));
const ORDER_TEXT = LAYER_ORDER.map((rank) => rank.join(' | ')).join(' → ');

/** Why `from` may not import `to` (null: allowed). Both are layers. */
function layerRule(from: Layer, to: Layer): string | null {
  if (from === to) return null;
  const toSide = SIDE_LAYERS[to];
  const fromSide = SIDE_LAYERS[from];
  if (toSide && !toSide.importedBy.includes(from)) return `${to} is imported only by ${toSide.importedBy.join(', ')}; ${from} may not import it`;
  if (fromSide && !fromSide.imports.includes(to)) return `${from} may import only ${fromSide.imports.join(', ')}; not ${to}`;
  if (toSide || fromSide) return null;
  const [rf, rt] = [rankOf(from), rankOf(to)];
  if (rf === rt) return `${from} and ${to} are peers at one rank of the order and import neither each other`;
  if (rf > rt) return `imports point down the order ${ORDER_TEXT}; ${from} may not import ${to}, which is above it`;
  return null;
}

function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}
const isPackage = (specifier: string) => !specifier.startsWith('.') && !specifier.startsWith('/');
const matchesPackage = (name: string, listed: string) => name === listed || name.startsWith(`${listed}/`);

interface Edge {
  from: string;
  to: string;
  ref: ImportRef;
}

/**
 * Checks a tree: `files` maps repository-relative paths to their source. Relative imports resolve as Node with
 * tsx does (the exact file, `.js` written for `.ts`, a folder's index); `exists` answers for files that are not code
 * (JSON, SQL). Returns one message per broken rule, each naming the file and line, the import and the rule.
 */
function checkTree(files: ReadonlyMap<string, string>, exists: (file: string) => boolean = () => false): string[] {
  const errors: string[] = [];
  const edges: Edge[] = [];
  const packageImports: { from: string; name: string; ref: ImportRef }[] = [];
  const resolve = (from: string, specifier: string): string | null => {
    const base = path.posix.normalize(path.posix.join(path.posix.dirname(from), specifier));
    const candidates = [base, `${base}.ts`, base.replace(/\.js$/, '.ts'), `${base}/index.ts`, `${base}/index.js`];
    return candidates.find((c) => files.has(c)) ?? candidates.find((c) => exists(c)) ?? null;
  };
  const where = (file: string, ref: ImportRef) => `${file}:${ref.line}: ${ref.typeOnly ? 'import type' : 'import'} '${ref.specifier ?? ref.computed}'`;

  for (const [file, source] of files) {
    const place = placeOf(file);
    if (place.kind === 'none') {
      errors.push(`${file}: belongs to no layer; put it in a layer's folder or add the folder to ${TABLE}`);
      continue;
    }
    for (const ref of parseImports(file, source)) {
      if (ref.specifier === null) {
        if (place.kind === 'layer' && !(file in UNFOLLOWED_DYNAMIC_IMPORTS)) {
          errors.push(`${where(file, ref)}: a computed import() cannot be checked against the layer order; import a literal path, or list the file in UNFOLLOWED_DYNAMIC_IMPORTS (${TABLE}) with why it is safe`);
        }
        continue;
      }
      if (isPackage(ref.specifier)) {
        if (!ref.specifier.startsWith('node:')) packageImports.push({ from: file, name: packageName(ref.specifier), ref });
        else packageImports.push({ from: file, name: ref.specifier, ref });
        continue;
      }
      const target = resolve(file, ref.specifier);
      if (target === null) {
        errors.push(`${where(file, ref)}: does not resolve to a file of the repository`);
        continue;
      }
      edges.push({ from: file, to: target, ref });
    }
  }

  // The order, the side layers and the outside folders.
  for (const { from, to, ref } of edges) {
    const [pf, pt] = [placeOf(from), placeOf(to)];
    if (pf.kind !== 'layer') continue;
    if (pt.kind !== 'layer') {
      errors.push(`${where(from, ref)} → ${to}: ${pf.layer} may not import ${to.split('/')[0]}/ (outside the layer order: ${OUTSIDE_DIRS.join(', ')} and top-level files; ${TABLE})`);
      continue;
    }
    const broken = layerRule(pf.layer, pt.layer);
    if (broken) errors.push(`${where(from, ref)} → ${to}: ${broken} (${TABLE})`);
  }

  // Packages some layers never import.
  for (const { from, name, ref } of packageImports) {
    const place = placeOf(from);
    if (place.kind !== 'layer') continue;
    for (const rule of FORBIDDEN_PACKAGES) {
      if (rule.layers.includes(place.layer) && rule.packages.some((p) => matchesPackage(name, p))) {
        errors.push(`${where(from, ref)}: ${place.layer} may not import ${name}: ${rule.why} (${TABLE})`);
      }
    }
  }

  // The workflow sandbox: workflows/ and what it reaches by value.
  const sandboxDir = dirOf(WORKFLOW_SANDBOX.layer);
  const reached = new Set([...files.keys()].filter((f) => under(f, sandboxDir)));
  const queue = [...reached];
  const sandboxRule = `the workflow sandbox admits only ${sandboxDir}/, ${WORKFLOW_SANDBOX.files.join(', ')}, ${WORKFLOW_SANDBOX.packages.join(', ')} and ${WORKFLOW_SANDBOX.typeOnly.join(', ')} types (import type) (${TABLE})`;
  while (queue.length > 0) {
    const file = queue.shift()!;
    const direct = under(file, sandboxDir);
    for (const { to, ref } of edges.filter((e) => e.from === file)) {
      if (!direct && ref.typeOnly) continue; // erased before bundling
      const toLayer = placeOf(to);
      const typeOnlyLayer = toLayer.kind === 'layer' && WORKFLOW_SANDBOX.typeOnly.includes(toLayer.layer);
      const admitted = under(to, sandboxDir) || WORKFLOW_SANDBOX.files.includes(to) || (typeOnlyLayer && ref.typeOnly);
      if (!admitted) {
        const how = typeOnlyLayer ? ' by value' : '';
        errors.push(`${where(file, ref)} → ${to}${how}: ${sandboxRule}`);
      } else if (!ref.typeOnly && !reached.has(to)) {
        reached.add(to);
        queue.push(to);
      }
    }
    for (const { name, ref } of packageImports.filter((p) => p.from === file)) {
      if (!direct && ref.typeOnly) continue;
      if (!WORKFLOW_SANDBOX.packages.includes(name)) errors.push(`${where(file, ref)}: ${sandboxRule}`);
    }
  }

  // File circles (type-only imports included: a circle of types still ties the files together).
  for (const circle of fileCircles(edges)) {
    errors.push(`file circle: ${circle.join(' → ')}; move what both sides need into a third file below them`);
  }
  return errors;
}

/** One shortest circle per strongly connected component of the import graph (Tarjan), as a path back to its start. */
function fileCircles(edges: readonly Edge[]): string[][] {
  const next = new Map<string, string[]>();
  for (const { from, to } of edges) {
    if (from === to) continue;
    next.set(from, [...(next.get(from) ?? []), to]);
  }
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const strong = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v) ?? []) {
      if (!index.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) components.push(component);
    }
  };
  for (const v of [...next.keys()].sort()) if (!index.has(v)) strong(v);
  return components.map((component) => {
    const inside = new Set(component);
    const start = [...component].sort()[0]!;
    const previous = new Map<string, string>();
    const queue = [start];
    while (queue.length > 0) {
      const v = queue.shift()!;
      for (const w of next.get(v) ?? []) {
        if (!inside.has(w)) continue;
        if (w === start) {
          const circle = [start];
          for (let u = v; u !== start; u = previous.get(u)!) circle.splice(1, 0, u);
          return [...circle, start];
        }
        if (!previous.has(w)) {
          previous.set(w, v);
          queue.push(w);
        }
      }
    }
    return [...component, component[0]!];
  });
}

const tree = (entries: Record<string, string>) => new Map(Object.entries(entries));

/** Exactly these errors, in any order: one per expected fragment. */
function expectErrors(errors: string[], fragments: string[]): void {
  expect(errors, errors.join('\n')).toHaveLength(fragments.length);
  for (const fragment of fragments) expect(errors.some((e) => e.includes(fragment)), `no error contains: ${fragment}\n${errors.join('\n')}`).toBe(true);
}

describe('the import check on made-up trees (each rule seen to fail)', () => {
  it('accepts imports that point down, within a layer, into util, and from outside folders', () => {
    expect(
      checkTree(
        tree({
          'src/train/trainer.ts': "import { a } from '../nn/index.ts';\nimport type { R } from '../spec/contracts.ts';\nimport { b } from './loss.ts';",
          'src/train/loss.ts': "import { Rng } from '../util/rng.ts';",
          'src/nn/index.ts': "export * from './layers.ts';",
          'src/nn/layers.ts': "import * as tf from '@tensorflow/tfjs';",
          'src/spec/contracts.ts': '',
          'src/util/rng.ts': '',
          'test/train/trainer.test.ts': "import { c } from '../../src/cli/main.ts';",
          'src/cli/main.ts': "import { x } from '../../db/client.ts';",
          'db/client.ts': "import type { T } from '../src/spec/contracts.ts';",
        }),
      ),
    ).toEqual([]);
  });

  it('names the file, the import and the rule for an import that points up, whatever its form', () => {
    const forms = [
      "import { UnimodalAsMultimodal } from '../train/unimodal.ts';",
      "import type { UnimodalAsMultimodal } from '../train/unimodal.ts';",
      "import { type UnimodalAsMultimodal } from '../train/unimodal.ts';",
      "export { UnimodalAsMultimodal } from '../train/unimodal.ts';",
      "export * from '../train/unimodal.ts';",
      "const m = await import('../train/unimodal.ts');",
      "type U = import('../train/unimodal.ts').UnimodalAsMultimodal;",
    ];
    for (const form of forms) {
      const errors = checkTree(tree({ 'src/nn/index.ts': `// a net factory\n${form}`, 'src/train/unimodal.ts': '' }));
      expect(errors, form).toHaveLength(1);
      expect(errors[0]).toContain("src/nn/index.ts:2:");
      expect(errors[0]).toContain("'../train/unimodal.ts' → src/train/unimodal.ts");
      expect(errors[0]).toContain('nn may not import train, which is above it');
    }
  });

  it('keeps peers apart, side layers to their users, and layers away from the outside folders', () => {
    const errors = checkTree(
      tree({
        'src/data/cmnist.ts': "import { initBackend } from '../backend/index.ts';",
        'src/backend/index.ts': '',
        'src/runner/run.ts': "import { open } from '../../db/client.ts';",
        'db/client.ts': "import { trainTrial } from '../src/train/trainer.ts';",
        'src/train/trainer.ts': "import { fixture } from '../../test/fixtures/x.ts';",
        'test/fixtures/x.ts': '',
      }),
    );
    expectErrors(errors, [
      'src/data/cmnist.ts:1: import \'../backend/index.ts\' → src/backend/index.ts: data and backend are peers',
      'src/runner/run.ts:1: import \'../../db/client.ts\' → db/client.ts: db is imported only by cli, activities, report, ui; runner may not import it',
      'db/client.ts:1: import \'../src/train/trainer.ts\' → src/train/trainer.ts: db may import only spec, util; not train',
      'src/train/trainer.ts:1: import \'../../test/fixtures/x.ts\' → test/fixtures/x.ts: train may not import test/',
    ]);
  });

  it('finds file circles, type-only ones included, and names the path around', () => {
    const errors = checkTree(
      tree({
        'src/report/html.ts': "import type { Report } from './report.ts';",
        'src/report/report.ts': "import { renderReportHtml } from './html.ts';",
        'src/runner/noop.ts': "import type { RunTrialOptions } from './run.ts';",
        'src/runner/run.ts': "const { runNoopTrial } = await import('./noop.ts');",
      }),
    );
    expectErrors(errors, [
      'file circle: src/report/html.ts → src/report/report.ts → src/report/html.ts',
      'file circle: src/runner/noop.ts → src/runner/run.ts → src/runner/noop.ts',
    ]);
  });

  it('holds the workflow sandbox: activity types only, the study model, @temporalio/workflow, transitively', () => {
    const base = {
      'activities/index.ts': "import fs from 'node:fs';",
      'src/spec/study-model.ts': '',
      'src/spec/canonical.ts': '',
    };
    const ok = "import { proxyActivities } from '@temporalio/workflow';\nimport type { StudyActivities } from '../activities/index.ts';\nimport { trainTaskQueue } from '../src/spec/study-model.ts';";
    expect(checkTree(tree({ ...base, 'workflows/study.ts': ok }))).toEqual([]);

    const byValue = checkTree(tree({ ...base, 'workflows/study.ts': "import { activities } from '../activities/index.ts';" }));
    expect(byValue).toEqual([expect.stringMatching(/^workflows\/study\.ts:1: import '\.\.\/activities\/index\.ts' → activities\/index\.ts by value: the workflow sandbox admits only/)]);

    const otherSpec = checkTree(tree({ ...base, 'workflows/study.ts': "import { canonicalJson } from '../src/spec/canonical.ts';" }));
    expect(otherSpec).toEqual([expect.stringContaining('workflows/study.ts:1: import \'../src/spec/canonical.ts\' → src/spec/canonical.ts: the workflow sandbox')]);

    const node = checkTree(tree({ ...base, 'workflows/study.ts': "import { createHash } from 'node:crypto';" }));
    expect(node).toEqual([expect.stringContaining("workflows/study.ts:1: import 'node:crypto': the workflow sandbox")]);

    // The study model is bundled too: what it imports by value is held to the same rule (its type imports are erased).
    const transitive = checkTree(
      tree({
        ...base,
        'workflows/study.ts': "import { trainTaskQueue } from '../src/spec/study-model.ts';",
        'src/spec/study-model.ts': "import { z } from 'zod';\nimport type { T } from './canonical.ts';",
      }),
    );
    expect(transitive).toEqual([expect.stringContaining("src/spec/study-model.ts:1: import 'zod': the workflow sandbox")]);
  });

  it('rejects forbidden packages, computed imports, unresolved paths and files in no layer', () => {
    const errors = checkTree(
      tree({
        'src/runner/run.ts': "import { Client } from '@temporalio/client';",
        'src/spec/trial.ts': "import type * as tf from '@tensorflow/tfjs';",
        'src/nn/index.ts': "const name = 'x';\nconst m = await import(`./${name}.ts`);",
        'src/train/trainer.ts': "import { gone } from './missing.ts';",
        'src/contracts/result.ts': '',
      }),
    );
    expectErrors(errors, [
      "src/runner/run.ts:1: import '@temporalio/client': runner may not import @temporalio/client: the trial runner and everything below it know nothing of Temporal or Postgres",
      "src/spec/trial.ts:1: import type '@tensorflow/tfjs': spec may not import @tensorflow/tfjs",
      'src/nn/index.ts:2: import \'`./${name}.ts`\': a computed import() cannot be checked',
      "src/train/trainer.ts:1: import './missing.ts': does not resolve",
      'src/contracts/result.ts: belongs to no layer',
    ]);
  });
});

describe('the layer table', () => {
  it('puts every layer in exactly one place: a rank of the order or beside it', () => {
    const placed = [...LAYER_ORDER.flat(), ...(Object.keys(SIDE_LAYERS) as Layer[])];
    expect([...placed].sort()).toEqual((Object.keys(LAYER_DIRS) as Layer[]).sort());
  });
});

describe('the repository', () => {
  const root = path.resolve(import.meta.dirname, '../..');
  // Tracked and new files, not ignored ones: build output, coverage and node_modules are nobody's layer.
  const listed = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8' });
  const files = new Map<string, string>();
  for (const rel of listed.split('\n')) {
    if (CODE_FILE.test(rel) && fs.existsSync(path.join(root, rel))) files.set(rel, fs.readFileSync(path.join(root, rel), 'utf8'));
  }

  it('has every import pointing down the layer order, no file circle, and a sandboxed workflow', () => {
    expect(files.size).toBeGreaterThan(100);
    const errors = checkTree(files, (file) => fs.existsSync(path.join(root, file)));
    expect(errors, `\n${errors.join('\n')}\n`).toEqual([]);
  });

  it('lists only computed imports that still exist', () => {
    for (const file of Object.keys(UNFOLLOWED_DYNAMIC_IMPORTS)) {
      const computed = parseImports(file, files.get(file) ?? '').filter((r) => r.specifier === null);
      expect(computed.length, `${file} is listed in UNFOLLOWED_DYNAMIC_IMPORTS (${TABLE}) but has no computed import()`).toBeGreaterThan(0);
    }
  });
});
