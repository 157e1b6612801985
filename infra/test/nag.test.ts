// cdk-nag's AwsSolutions pack finds nothing unacknowledged in any stage, every
// acknowledgement carries a written reason, and the app's synthesis fails on a finding.

import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';

import { App, Validations } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks } from 'cdk-nag';

import { buildApp } from '../bin/mursst';
import { STAGE_NAMES } from '../lib/config';
import { acknowledge } from '../lib/nag';
import { MursstStack } from '../lib/stack';
import { DEFINITIONS_DIR, dummyAssetRoot, nagFindings, synth, testConfig } from './helpers';

/** Every acknowledgement recorded in the construct tree under `stack`: [path, id, reason]. */
function acknowledgements(stack: MursstStack): [string, string, string][] {
  const out: [string, string, string][] = [];
  for (const c of stack.node.findAll()) {
    for (const m of c.node.metadata) {
      if (m.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
      for (const [id, reason] of Object.entries(m.data as Record<string, unknown>)) {
        out.push([c.node.path, id, typeof reason === 'string' ? reason : JSON.stringify(reason)]);
      }
    }
  }
  return out;
}

describe('cdk-nag AwsSolutions', () => {
  for (const stage of STAGE_NAMES) {
    test(`${stage}: no unacknowledged finding (error or warning)`, () => {
      const { stack } = synth(testConfig(stage));
      assert.deepEqual(nagFindings(stack), []);
    });

    test(`${stage}: every acknowledgement names one finding and gives a specific reason`, () => {
      const { stack } = synth(testConfig(stage));
      const acks = acknowledgements(stack);
      assert.ok(acks.length >= 15, `${acks.length} acknowledgements`);
      for (const [where, id, reason] of acks) {
        assert.match(id, /^(Annotation::)?AwsSolutions-(IAM5\[Resource::.+\]|S1)$/, `${where}: ${id}`);
        assert.ok(reason.length >= 80, `${where} ${id}: reason too short: ${reason}`);
      }
      // No rule is acknowledged for the whole stack.
      assert.ok(acks.every(([where]) => where !== stack.node.path));
      // The bucket-wide wildcard (`<bucket>/*`) is never acknowledged: grants stop at a prefix.
      assert.ok(acks.every(([, id]) => !/\.Arn>\/\*\]$|:::[^/]+\/\*\]$/.test(id)), 'a bucket-wide acknowledgement');
    });
  }

  test('an unacknowledged finding fails the app synthesis', () => {
    const app = new App({ outdir: fs.mkdtempSync(path.join(os.tmpdir(), 'mursst-infra-nag-')) });
    const stack = new MursstStack(app, 'mursst-dev', { config: testConfig('dev') });
    new s3.Bucket(stack, 'Unchecked'); // no TLS-only policy, no access logs
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    assert.throws(() => app.synth(), /Validation failed/);
  });

  test('the app (bin/mursst.ts) synthesizes every stage with the checks registered', () => {
    const app = new App({
      outdir: fs.mkdtempSync(path.join(os.tmpdir(), 'mursst-infra-app-')),
      context: { allowPlaceholders: 'true', assetRoot: dummyAssetRoot(), definitionsDir: DEFINITIONS_DIR },
    });
    const stacks = buildApp(app);
    assert.deepEqual(
      stacks.map((s) => s.stackName),
      ['mursst-dev', 'mursst-staging', 'mursst-prod'],
    );
    const assembly = app.synth();
    assert.equal(assembly.stacks.length, 3);
  });

  test('acknowledge() refuses a reason that says nothing', () => {
    const { stack } = synth(testConfig('dev'));
    assert.throws(() => acknowledge(stack, 'AwsSolutions-S1', 'n/a'), /needs a written reason/);
  });
});
