#!/usr/bin/env node
// The CDK app: `npx cdk synth -c stage=dev` (or staging, prod) builds one stage's stack,
// `mursst-<stage>`; without `-c stage` all three are synthesized.
//
// Context overrides (-c key=value), for values that are not kept in config/stages.ts:
//   account, edlSecretArn, notificationEmail, assetRoot, definitionsDir
//   allowPlaceholders=true   synthesize a stage that still holds PLACEHOLDER values (never deploy that)

import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';

import { placeholders, STAGES } from '../config/stages';
import { type StageConfig, type StageName, STAGE_NAMES, stageConfig } from '../lib/config';
import { MursstStack } from '../lib/stack';

const CONTEXT_OVERRIDES = ['account', 'edlSecretArn', 'notificationEmail', 'assetRoot', 'definitionsDir'] as const;

/** The stage's config with the app's context overrides applied (and checked again). */
export function configFor(app: App, stage: StageName): StageConfig {
  const base = STAGES[stage];
  const overrides: Record<string, string> = {};
  for (const key of CONTEXT_OVERRIDES) {
    const v = app.node.tryGetContext(key);
    if (typeof v === 'string' && v !== '') overrides[key] = v;
  }
  const config = stageConfig(stage, { ...base, ...overrides });
  const left = placeholders(config);
  if (left.length > 0 && String(app.node.tryGetContext('allowPlaceholders')) !== 'true') {
    throw new Error(
      `stage ${stage} still has placeholder values for ${left.join(', ')}: set them in infra/config/stages.ts ` +
        `or pass -c ${left[0]}=... (or -c allowPlaceholders=true to synthesize without deploying)`,
    );
  }
  return config;
}

export function buildApp(app: App): MursstStack[] {
  const wanted = app.node.tryGetContext('stage');
  if (wanted !== undefined && !(STAGE_NAMES as readonly string[]).includes(wanted)) {
    throw new Error(`-c stage=${wanted}: not one of ${STAGE_NAMES.join(', ')}`);
  }
  const stages = wanted === undefined ? [...STAGE_NAMES] : [wanted as StageName];
  const stacks = stages.map((s) => new MursstStack(app, `mursst-${s}`, { config: configFor(app, s) }));
  // Every synth runs cdk-nag's AwsSolutions pack: a finding not acknowledged (with its
  // reason, lib/nag.ts) stops the synthesis.
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
  return stacks;
}

if (require.main === module) {
  const app = new App();
  buildApp(app);
  app.synth();
}
