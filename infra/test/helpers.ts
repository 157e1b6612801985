// Shared by the tests: synthesize a stage offline, with dummy Lambda bootstraps and the
// real state machine definitions (or the fixtures while statemachine/ has none).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';

import { STAGES } from '../config/stages';
import { FUNCTIONS, type StageConfig, type StageName, type StageOverrides, stageConfig } from '../lib/config';
import { DEFINITION_FILES } from '../lib/definitions';
import { INFRA_DIR, MursstStack } from '../lib/stack';

/**
 * The definitions the tests synthesize with: each of statemachine/update.asl.json and
 * backfill.asl.json where it exists, else its stand-in from test/fixtures/, gathered in
 * one temporary directory (the stack takes one definitionsDir).
 */
export const REAL_DEFINITIONS_DIR = path.resolve(INFRA_DIR, '..', 'statemachine');
export const FIXTURE_DEFINITIONS_DIR = path.join(INFRA_DIR, 'test', 'fixtures');
export const DEFINITION_ORIGIN = Object.fromEntries(
  Object.entries(DEFINITION_FILES).map(([kind, file]) => [
    kind,
    fs.existsSync(path.join(REAL_DEFINITIONS_DIR, file)) ? ('statemachine' as const) : ('fixture' as const),
  ]),
) as { [K in keyof typeof DEFINITION_FILES]: 'statemachine' | 'fixture' };
export const DEFINITIONS_DIR = fs.mkdtempSync(path.join(os.tmpdir(), 'mursst-infra-asl-'));
for (const [kind, file] of Object.entries(DEFINITION_FILES) as [keyof typeof DEFINITION_FILES, string][]) {
  const from = DEFINITION_ORIGIN[kind] === 'statemachine' ? REAL_DEFINITIONS_DIR : FIXTURE_DEFINITIONS_DIR;
  fs.copyFileSync(path.join(from, file), path.join(DEFINITIONS_DIR, file));
}

/** A temporary asset root holding `<crate>/bootstrap` for each Lambda (not executables, never run). */
export function dummyAssetRoot(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mursst-infra-assets-'));
  for (const crate of Object.values(FUNCTIONS)) {
    fs.mkdirSync(path.join(root, crate));
    fs.writeFileSync(path.join(root, crate, 'bootstrap'), `#!/bin/sh\n# dummy ${crate}\n`, { mode: 0o755 });
  }
  return root;
}

const ASSET_ROOT = dummyAssetRoot();

/** A stage's config from config/stages.ts, pointed at the dummy assets and the definitions. */
export function testConfig(stage: StageName, overrides: StageOverrides = {}): StageConfig {
  return stageConfig(stage, {
    ...STAGES[stage],
    assetRoot: ASSET_ROOT,
    definitionsDir: DEFINITIONS_DIR,
    ...overrides,
  });
}

export interface Synthesized {
  readonly stack: MursstStack;
  readonly template: Template;
  readonly json: Record<string, any>;
}

const cache = new Map<string, Synthesized>();

/** The feature flags `cdk.json` sets, so the tests synthesize what the CLI deploys. */
export const CDK_JSON_CONTEXT: Record<string, unknown> = JSON.parse(
  fs.readFileSync(path.join(INFRA_DIR, 'cdk.json'), 'utf8'),
).context;

/** Synthesize one stage (cached per config). */
export function synth(config: StageConfig): Synthesized {
  const key = JSON.stringify(config);
  const hit = cache.get(key);
  if (hit) return hit;
  const app = new App({
    outdir: fs.mkdtempSync(path.join(os.tmpdir(), 'mursst-infra-cdkout-')),
    context: CDK_JSON_CONTEXT,
  });
  const stack = new MursstStack(app, `mursst-${config.stage}`, { config });
  const template = Template.fromStack(stack);
  const out = { stack, template, json: template.toJSON() };
  cache.set(key, out);
  return out;
}

/**
 * A CloudFormation value as one string: `Fn::Join` flattened, `Ref` as `${Name}`,
 * `Fn::GetAtt` as `${Name.Attr}`, so ARNs can be compared as text.
 */
export function flat(v: unknown): string {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) throw new Error(`cannot flatten a list: ${JSON.stringify(v)}`);
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if ('Ref' in o) return '${' + String(o.Ref) + '}';
    if ('Fn::GetAtt' in o) return '${' + (o['Fn::GetAtt'] as string[]).join('.') + '}';
    if ('Fn::Join' in o) {
      const [sep, parts] = o['Fn::Join'] as [string, unknown[]];
      return parts.map(flat).join(sep);
    }
  }
  throw new Error(`cannot flatten ${JSON.stringify(v)}`);
}

/** cdk-nag's AwsSolutions findings that no acknowledgement covers, as `RuleId[finding] at path` lines. */
export function nagFindings(stack: MursstStack): string[] {
  const report = new AwsSolutionsChecks(undefined, { verbose: false }).validateScope(stack);
  return report.violations.flatMap((v) =>
    v.violatingResources.map((r) => `${v.ruleName} at ${r.constructPath}: ${v.description.slice(0, 120)}`),
  );
}

export interface Statement {
  readonly policy: string;
  readonly roles: string[];
  readonly actions: string[];
  readonly resources: string[];
  readonly condition?: Record<string, any>;
  readonly effect: string;
}

/** Every statement of every inline policy (AWS::IAM::Policy) in the template, flattened. */
export function statements(json: Record<string, any>): Statement[] {
  const out: Statement[] = [];
  for (const [id, r] of Object.entries<any>(json.Resources)) {
    if (r.Type !== 'AWS::IAM::Policy') continue;
    for (const s of r.Properties.PolicyDocument.Statement) {
      out.push({
        policy: id,
        roles: (r.Properties.Roles ?? []).map(flat),
        actions: ([] as string[]).concat(s.Action),
        resources: ([] as unknown[]).concat(s.Resource).map(flat),
        condition: s.Condition,
        effect: s.Effect,
      });
    }
  }
  return out;
}

/** The statements attached to the role with logical id prefix `rolePrefix`. */
export function roleStatements(json: Record<string, any>, rolePrefix: string): Statement[] {
  const id = logicalId(json, 'AWS::IAM::Role', rolePrefix);
  return statements(json).filter((s) => s.roles.includes('${' + id + '}'));
}

/** The one logical id of `type` starting with `prefix`. */
export function logicalId(json: Record<string, any>, type: string, prefix: string): string {
  const ids = Object.entries<any>(json.Resources)
    .filter(([id, r]) => r.Type === type && id.startsWith(prefix))
    .map(([id]) => id);
  if (ids.length !== 1) throw new Error(`${type} ${prefix}*: ${ids.length} matches (${ids.join(', ')})`);
  return ids[0];
}

export function resourcesOfType(json: Record<string, any>, type: string): [string, any][] {
  return Object.entries<any>(json.Resources).filter(([, r]) => r.Type === type);
}

/** Every action a role's policies grant, as `action resource` lines, sorted: an easy diff in a failure. */
export function grants(ss: Statement[]): string[] {
  return ss.flatMap((s) => s.actions.flatMap((a) => s.resources.map((r) => `${a} ${r}`))).sort();
}

