// The scripts in package.json as a user runs them: `npm run synth` through the pinned CDK
// CLI (with cdk.json's feature flags, every stage, cdk-nag as a validation plugin), then
// AWS's own template linter, cfn-lint, on every template it wrote.

import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';

import { INFRA_DIR } from '../lib/stack';
import { DEFINITIONS_DIR, dummyAssetRoot } from './helpers';

/** cfn-lint from the repository's venv (scripts/bootstrap.sh installs it), or PATH's. */
function cfnLint(): string {
  const venv = path.resolve(INFRA_DIR, '..', '.venv', 'bin', 'cfn-lint');
  return fs.existsSync(venv) ? venv : 'cfn-lint';
}

test('npm run synth succeeds with every feature flag set, and cfn-lint passes its templates', () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'mursst-infra-synth-'));
  const synth = spawnSync(
    'npm',
    [
      'run',
      'synth',
      '--',
      '-c',
      'allowPlaceholders=true',
      '-c',
      `assetRoot=${dummyAssetRoot()}`,
      '-c',
      `definitionsDir=${DEFINITIONS_DIR}`,
      '--output',
      out,
    ],
    { cwd: INFRA_DIR, encoding: 'utf8', timeout: 300_000 },
  );
  const said = `${synth.stdout}\n${synth.stderr}`;
  assert.equal(synth.status, 0, `npm run synth failed:\n${said}`);
  assert.doesNotMatch(said, /feature flags are not configured/, said);
  const templates = fs.readdirSync(out).filter((f) => f.endsWith('.template.json'));
  assert.deepEqual(templates.sort(), ['mursst-dev.template.json', 'mursst-prod.template.json', 'mursst-staging.template.json']);

  const lint = spawnSync(cfnLint(), templates.map((t) => path.join(out, t)), {
    cwd: INFRA_DIR,
    encoding: 'utf8',
    timeout: 300_000,
  });
  assert.ok(lint.error === undefined, `cannot run cfn-lint (run scripts/bootstrap.sh): ${lint.error?.message}`);
  assert.equal(lint.status, 0, `cfn-lint found:\n${lint.stdout}\n${lint.stderr}`);
});
