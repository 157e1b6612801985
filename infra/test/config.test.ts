// The typed stage config: its values per stage, the checks that refuse a broken one, and
// the app's context overrides and placeholder guard.

import * as assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { App } from 'aws-cdk-lib';

import { configFor } from '../bin/mursst';
import { placeholders, STAGES } from '../config/stages';
import { DEFAULT_SIZING, keyPrefix, s3Uri, stageConfig } from '../lib/config';

const SECRET = 'arn:aws:secretsmanager:us-west-2:123456789012:secret:mursst/prod/earthdata-AbC123';

describe('config/stages.ts', () => {
  test('prod appends to the existing public spec-v1 store; dev and staging create their own', () => {
    assert.deepEqual(STAGES.prod.store, {
      bucket: { kind: 'import', bucketName: 'nasa-eodc-public' },
      prefix: 'icechunk/MUR-JPL-L4-GLOB-v4.1-virtual-v2-p2',
    });
    assert.equal(STAGES.dev.store.bucket.kind, 'create');
    assert.equal(STAGES.staging.store.bucket.kind, 'create');
    for (const s of Object.values(STAGES)) {
      assert.equal(s.region, 'us-west-2');
      assert.deepEqual(s.source, { uri: 'cmr', bucket: 'podaac-ops-cumulus-protected', prefix: 'MUR-JPL-L4-GLOB-v4.1' });
      assert.deepEqual(s.functions, DEFAULT_SIZING);
      assert.equal(s.lagDays, 10);
      assert.deepEqual(s.variables, ['analysed_sst', 'analysis_error', 'mask', 'sea_ice_fraction']);
      assert.deepEqual(s.maintenance, s.stage === 'dev' ? { expireOlderThanDays: 7, pruneOlderThanDays: 2 } : { expireOlderThanDays: 30, pruneOlderThanDays: 7 });
      assert.equal(s.assetRoot, '../target/lambda');
      assert.equal(s.definitionsDir, '../statemachine');
    }
    assert.equal(STAGES.dev.schedule.enabled, false, 'dev runs by hand until its store exists');
    assert.equal(STAGES.prod.schedule.enabled, true);
    assert.equal(STAGES.prod.artifacts.expireRunsAfterDays, 14);
  });

  test('the checked-in stages still hold placeholders, and they are recognised', () => {
    for (const s of Object.values(STAGES)) assert.deepEqual(placeholders(s), ['edlSecretArn', 'notificationEmail']);
    const real = stageConfig('prod', { ...STAGES.prod, edlSecretArn: SECRET, notificationEmail: 'ops@nasa.example.org' });
    assert.deepEqual(placeholders(real), []);
  });

  test('overrides merge one level deep; a given bucket is taken whole', () => {
    const c = stageConfig('staging', {
      edlSecretArn: SECRET,
      notificationEmail: 'a@b.org',
      schedule: { enabled: false },
      store: { bucket: { kind: 'import', bucketName: 'my-store' } },
    });
    assert.equal(c.schedule.enabled, false);
    assert.equal(c.schedule.update, 'cron(0 9 * * ? *)');
    assert.deepEqual(c.store.bucket, { kind: 'import', bucketName: 'my-store' });
    assert.equal(c.store.prefix, 'icechunk/MUR-JPL-L4-GLOB-v4.1-virtual');
  });

  test('URIs and key prefixes', () => {
    assert.equal(s3Uri('b', 'a/c'), 's3://b/a/c');
    assert.equal(keyPrefix('a/c'), 'a/c/');
  });
});

describe('checkConfig refuses', () => {
  const base = { edlSecretArn: SECRET, notificationEmail: 'ops@example.org' };
  const cases: [string, Parameters<typeof stageConfig>[1], RegExp][] = [
    ['another region', { region: 'us-east-1' }, /region: must be us-west-2/],
    ['a secret name without its suffix', { edlSecretArn: 'arn:aws:secretsmanager:us-west-2:123456789012:secret:mursst' }, /edlSecretArn/],
    ['a secret in another region', { edlSecretArn: SECRET.replace('us-west-2', 'eu-west-1') }, /edlSecretArn/],
    ['a wildcard secret', { edlSecretArn: 'arn:aws:secretsmanager:us-west-2:123456789012:secret:*' }, /edlSecretArn/],
    ['a trailing slash', { store: { prefix: 'icechunk/' } }, /store\.prefix: no leading or trailing slash/],
    ['a wildcard prefix', { source: { uri: 'cmr', bucket: 'x-bucket', prefix: 'a*' } }, /source\.prefix: no wildcards/],
    ['an empty store prefix', { store: { prefix: '' } }, /store\.prefix: must not be empty/],
    ['an empty artifacts prefix (a bucket-wide grant)', { artifacts: { prefix: '' } }, /artifacts\.prefix: must not be empty/],
    ['an imported bucket without a name', { store: { bucket: { kind: 'import', bucketName: '' } } }, /store\.bucket/],
    ['a bad source', { source: { uri: 'https://x', bucket: 'b-b', prefix: 'p' } }, /source\.uri/],
    ['no email', { notificationEmail: '' }, /notificationEmail/],
    ['a retention CloudWatch lacks', { logRetentionDays: 10 }, /logRetentionDays/],
    ['zero map concurrency', { mapConcurrency: 0 }, /mapConcurrency/],
    ['a Lambda over 15 minutes', { functions: { ...DEFAULT_SIZING, commit: { memoryMiB: 2048, timeoutSeconds: 901, ephemeralStorageMiB: 2048 } } }, /functions\.commit\.timeoutSeconds/],
    ['too little /tmp', { functions: { ...DEFAULT_SIZING, validate: { memoryMiB: 4096, timeoutSeconds: 900, ephemeralStorageMiB: 100 } } }, /functions\.validate\.ephemeralStorageMiB/],
    ['a schedule that is not an expression', { schedule: { update: '0 9 * * *' } }, /schedule\.update/],
    ['no variables', { variables: [] }, /variables/],
    ['an unknown validate mode', { validate: 'most' as never }, /validate/],
    ['an unknown reprocess mode', { reprocess: 'always' as never }, /reprocess: changed or off/],
    ['an operator that is not a principal ARN', { operatorPrincipalArns: ['bob'] }, /operatorPrincipalArns/],
  ];
  for (const [what, overrides, error] of cases) {
    test(what, () => {
      assert.throws(() => stageConfig('staging', { ...base, ...overrides }), error);
    });
  }
});

describe('bin/mursst.ts configFor', () => {
  test('refuses to synthesize a stage that still has placeholders', () => {
    assert.throws(() => configFor(new App(), 'prod'), /stage prod still has placeholder values for edlSecretArn, notificationEmail/);
  });

  test('takes the secret, email and account from the context', () => {
    const app = new App({
      context: { edlSecretArn: SECRET, notificationEmail: 'ops@nasa.example.org', account: '123456789012' },
    });
    const c = configFor(app, 'prod');
    assert.equal(c.edlSecretArn, SECRET);
    assert.equal(c.notificationEmail, 'ops@nasa.example.org');
    assert.equal(c.account, '123456789012');
    assert.equal(c.store.prefix, 'icechunk/MUR-JPL-L4-GLOB-v4.1-virtual-v2-p2');
  });

  test('allowPlaceholders=true lets an offline synth through', () => {
    const c = configFor(new App({ context: { allowPlaceholders: 'true' } }), 'dev');
    assert.deepEqual(placeholders(c), ['edlSecretArn', 'notificationEmail']);
  });
});
