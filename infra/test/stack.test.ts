// Each stage synthesizes, and its template holds exactly the resources, wiring and IAM
// boundaries the pipeline needs. Offline: dummy bootstraps, no Docker, no AWS.

import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';

import { Match } from 'aws-cdk-lib/assertions';

import { FUNCTIONS, type FunctionKey, STAGE_NAMES, type StageConfig } from '../lib/config';
import { DEFINITION_FILES, SUBSTITUTIONS, placeholdersIn } from '../lib/definitions';
import { INFRA_DIR } from '../lib/stack';
import {
  DEFINITIONS_DIR,
  flat,
  grants,
  logicalId,
  resourcesOfType,
  roleStatements,
  statements,
  synth,
  testConfig,
} from './helpers';

const FUNCTION_KEYS = Object.keys(FUNCTIONS) as FunctionKey[];
const RUNBOOK_HEADINGS = fs
  .readFileSync(path.join(INFRA_DIR, '..', 'docs', 'runbook.md'), 'utf8')
  .split('\n')
  .filter((l) => l.startsWith('#'))
  .map((l) => l.replace(/^#+\s*/, ''));
const PASCAL: Record<FunctionKey, string> = {
  discover: 'Discover',
  generateRefs: 'GenerateRefs',
  commit: 'Commit',
  validate: 'Validate',
  materialize: 'Materialize',
};

/** How a stage's buckets appear in flattened ARNs and names. */
function bucketRefs(json: Record<string, any>, cfg: StageConfig) {
  const ref = (id: string, src: StageConfig['store']['bucket']) => {
    if (src.kind === 'import') {
      return { name: src.bucketName, arn: `arn:aws:s3:::${src.bucketName}` };
    }
    const lid = logicalId(json, 'AWS::S3::Bucket', id);
    return { name: '${' + lid + '}', arn: '${' + lid + '.Arn}' };
  };
  return {
    store: ref('StoreBucket', cfg.store.bucket),
    artifacts: ref('ArtifactsBucket', cfg.artifacts.bucket),
    source: { name: cfg.source.bucket, arn: `arn:aws:s3:::${cfg.source.bucket}` },
  };
}

/** Lines `grants()` produces for an S3 prefix grant. */
function s3Lines(arn: string, prefix: string, actions: string[]): string[] {
  return [...actions.map((a) => `${a} ${arn}/${prefix}/*`), `s3:ListBucket ${arn}`];
}

for (const stage of STAGE_NAMES) {
  describe(`stage ${stage}`, () => {
    const cfg = testConfig(stage);
    const { template, json } = synth(cfg);
    const buckets = bucketRefs(json, cfg);
    const fnId = (k: FunctionKey) => logicalId(json, 'AWS::Lambda::Function', `${PASCAL[k]}Function`);
    const machineId = (kind: 'Update' | 'Backfill') =>
      logicalId(json, 'AWS::StepFunctions::StateMachine', `${kind}Machine`);
    const topicId = logicalId(json, 'AWS::SNS::Topic', 'NotifyTopic');

    test('the five Lambdas: provided.al2023 on arm64, sized from the config, logging to their own groups', () => {
      const ours = resourcesOfType(json, 'AWS::Lambda::Function').filter(
        ([, r]) => r.Properties.Runtime === 'provided.al2023',
      );
      assert.equal(ours.length, 5);
      assert.equal(resourcesOfType(json, 'AWS::Lambda::Function').length, 5, 'no helper Lambdas (custom resources)');
      for (const key of FUNCTION_KEYS) {
        const crate = FUNCTIONS[key];
        const sizing = cfg.functions[key];
        const fn = json.Resources[fnId(key)].Properties;
        assert.equal(fn.FunctionName, `mursst-${stage}-${crate.replace('mursst-', '')}`);
        assert.equal(fn.Runtime, 'provided.al2023');
        assert.deepEqual(fn.Architectures, ['arm64']);
        assert.equal(fn.Handler, 'bootstrap');
        assert.equal(fn.MemorySize, sizing.memoryMiB);
        assert.equal(fn.Timeout, sizing.timeoutSeconds);
        assert.deepEqual(fn.EphemeralStorage, { Size: sizing.ephemeralStorageMiB });
        assert.deepEqual(fn.TracingConfig, { Mode: 'Active' });
        assert.equal(fn.LoggingConfig.LogFormat, 'JSON');
        assert.equal(flat(fn.LoggingConfig.LogGroup), '${' + logicalId(json, 'AWS::Logs::LogGroup', `${PASCAL[key]}Logs`) + '}');
        assert.equal(flat(fn.Role), '${' + logicalId(json, 'AWS::IAM::Role', `${PASCAL[key]}Role`) + '.Arn}');
        // Code.fromAsset of <assetRoot>/<crate>: a staged file asset, no bundling.
        assert.ok(fn.Code.S3Key, `${crate}: an S3 asset`);
      }
      const sized = (k: FunctionKey) => [json.Resources[fnId(k)].Properties.MemorySize, json.Resources[fnId(k)].Properties.Timeout];
      assert.deepEqual(
        FUNCTION_KEYS.map(sized),
        [
          [256, 60],
          [256, 120],
          [2048, 900],
          [2048, 900],
          [4096, 900],
        ],
        'discover, generate-refs, validate, commit, materialize: the sizing from the rehearsal',
      );
    });

    test('every Lambda gets the same, complete environment', () => {
      const expected = {
        MURSST_STORE: `s3://${buckets.store.name}/${cfg.store.prefix}`,
        MURSST_SOURCE: 'cmr',
        MURSST_ARTIFACTS: `s3://${buckets.artifacts.name}/${cfg.artifacts.prefix}`,
        MURSST_VARIABLES: 'analysed_sst,analysis_error,mask,sea_ice_fraction',
        MURSST_LAG_DAYS: '10',
        MURSST_REPROCESS: 'changed',
        MURSST_VALIDATE: 'sample',
        MURSST_CMR_URL: 'https://cmr.earthdata.nasa.gov',
        MURSST_COLLECTION: 'MUR-JPL-L4-GLOB-v4.1',
        MURSST_PROVIDER: 'POCLOUD',
        MURSST_EDL_SECRET_ARN: cfg.edlSecretArn,
        MURSST_S3_CREDENTIALS_URL: 'https://archive.podaac.earthdata.nasa.gov/s3credentials',
        RUST_LOG: 'info',
        MURSST_LOG_FORMAT: 'json',
        MURSST_METRICS: 'emf',
        MURSST_STAGE: stage,
      };
      for (const key of FUNCTION_KEYS) {
        const vars = json.Resources[fnId(key)].Properties.Environment.Variables;
        const flatVars = Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, flat(v)]));
        assert.deepEqual(flatVars, expected, FUNCTIONS[key]);
      }
      if (stage === 'prod') {
        assert.equal(expected.MURSST_STORE, 's3://nasa-eodc-public/icechunk/MUR-JPL-L4-GLOB-v4.1-virtual-v2-p2');
      }
    });

    test('log groups: one per Lambda and state machine, with the stage retention', () => {
      const groups = resourcesOfType(json, 'AWS::Logs::LogGroup');
      const names = groups.map(([, r]) => r.Properties.LogGroupName).sort();
      assert.deepEqual(
        names,
        [
          ...['commit', 'discover', 'generate-refs', 'materialize', 'validate'].map((n) => `/aws/lambda/mursst-${stage}-${n}`),
          `/aws/vendedlogs/states/mursst-${stage}-backfill`,
          `/aws/vendedlogs/states/mursst-${stage}-update`,
        ].sort(),
      );
      for (const [, r] of groups) {
        assert.equal(r.Properties.RetentionInDays, cfg.logRetentionDays);
        assert.equal(r.DeletionPolicy, stage === 'dev' ? 'Delete' : 'Retain');
      }
    });

    test('the update and backfill machines: the definitions from disk, every placeholder substituted', () => {
      const machines = resourcesOfType(json, 'AWS::StepFunctions::StateMachine');
      assert.equal(machines.length, 2);
      for (const kind of ['update', 'backfill'] as const) {
        const id = machineId(kind === 'update' ? 'Update' : 'Backfill');
        const p = json.Resources[id].Properties;
        assert.equal(p.StateMachineName, `mursst-${stage}-${kind}`);
        assert.equal(p.StateMachineType, 'STANDARD');
        assert.deepEqual(p.TracingConfiguration, { Enabled: true });
        assert.equal(p.LoggingConfiguration.Level, 'ALL');
        assert.equal(p.LoggingConfiguration.IncludeExecutionData, true);
        assert.equal(
          flat(p.LoggingConfiguration.Destinations[0].CloudWatchLogsLogGroup.LogGroupArn),
          '${' + logicalId(json, 'AWS::Logs::LogGroup', `${kind === 'update' ? 'Update' : 'Backfill'}MachineLogs`) + '.Arn}',
        );

        // The definition is the file's, with the stage's execution timeout added.
        const text: string = p.DefinitionString;
        const onDisk = JSON.parse(fs.readFileSync(path.join(DEFINITIONS_DIR, DEFINITION_FILES[kind]), 'utf8'));
        assert.deepEqual(JSON.parse(text), { ...onDisk, TimeoutSeconds: cfg.stateMachineTimeoutMinutes[kind] * 60 });

        // Substitutions: all seven, each bound to the right resource...
        const subs = Object.fromEntries(Object.entries<any>(p.DefinitionSubstitutions).map(([k, v]) => [k, flat(v)]));
        assert.deepEqual(Object.keys(subs).sort(), [...SUBSTITUTIONS].sort());
        for (const key of FUNCTION_KEYS) {
          assert.equal(subs[`${PASCAL[key]}FunctionArn`], '${' + fnId(key) + '.Arn}');
        }
        assert.equal(subs.NotifyTopicArn, '${' + topicId + '}');
        assert.equal(subs.ArtifactBucket, buckets.artifacts.name);
        assert.equal(subs.ArtifactPrefix, `${cfg.artifacts.prefix}/`);
        for (const v of Object.values(subs)) {
          assert.deepEqual(placeholdersIn(v).filter((p) => (SUBSTITUTIONS as readonly string[]).includes(p)), [], v);
        }
        // ...and once CloudFormation applies them, no `${` is left in the definition.
        const placeholders = placeholdersIn(text);
        assert.ok(placeholders.length > 0, 'the definition uses the substitutions');
        let applied = text;
        for (const name of placeholders) {
          assert.ok(name in subs, `\${${name}} has a substitution`);
          applied = applied.split('${' + name + '}').join(subs[name].replace(/\$\{/g, '<'));
        }
        assert.ok(!applied.includes('${'), 'a placeholder is left after substitution');
      }
    });

    test('the state machine roles: invoke the five Lambdas, publish to the topic, nothing else of the stage', () => {
      const fnArns = FUNCTION_KEYS.map((k) => '${' + fnId(k) + '.Arn}');
      const machineArn = (kind: string) => `arn:aws:states:us-west-2:\${AWS::AccountId}:stateMachine:mursst-${stage}-${kind}`;
      const common = [...fnArns.map((a) => `lambda:InvokeFunction ${a}`), 'sns:Publish ${' + topicId + '}'];
      const loggingAndTracing = (ss: ReturnType<typeof roleStatements>) =>
        ss.filter((s) => s.resources.length === 1 && s.resources[0] === '*');
      const update = roleStatements(json, 'UpdateMachineRole');
      const backfill = roleStatements(json, 'BackfillMachineRole');
      assert.deepEqual(grants(update.filter((s) => !loggingAndTracing(update).includes(s))), common.sort());
      const a = buckets.artifacts.arn;
      const ap = cfg.artifacts.prefix;
      assert.deepEqual(
        grants(backfill.filter((s) => !loggingAndTracing(backfill).includes(s))),
        [
          ...common,
          `states:StartExecution ${machineArn('backfill')}`,
          ...['DescribeExecution', 'StopExecution', 'RedriveExecution'].map(
            (x) => `states:${x} arn:aws:states:us-west-2:\${AWS::AccountId}:execution:mursst-${stage}-backfill/*`,
          ),
          ...s3Lines(a, ap, ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload']),
          `s3:ListMultipartUploadParts ${a}/${ap}/*`,
        ].sort(),
      );
      // Trusted by Step Functions for this machine only.
      for (const kind of ['update', 'backfill']) {
        const role = json.Resources[logicalId(json, 'AWS::IAM::Role', `${kind === 'update' ? 'Update' : 'Backfill'}MachineRole`)];
        const [st] = role.Properties.AssumeRolePolicyDocument.Statement;
        assert.deepEqual(st.Principal, { Service: 'states.amazonaws.com' });
        assert.equal(flat(st.Condition.ArnLike['aws:SourceArn']), machineArn(kind));
      }
    });

    test('each Lambda role reaches only its prefixes and, where it needs it, the configured secret', () => {
      const { store, artifacts, source } = buckets;
      const sp = cfg.store.prefix;
      const ap = cfg.artifacts.prefix;
      const srcp = cfg.source.prefix;
      const logs = (k: FunctionKey) =>
        ['logs:CreateLogStream', 'logs:PutLogEvents'].map(
          (a) => `${a} \${${logicalId(json, 'AWS::Logs::LogGroup', `${PASCAL[k]}Logs`)}.Arn}`,
        );
      const xray = ['xray:PutTraceSegments *', 'xray:PutTelemetryRecords *'];
      const secret = [`secretsmanager:GetSecretValue ${cfg.edlSecretArn}`];
      const rw = ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload'];
      const reader = (k: FunctionKey) => [
        ...logs(k),
        ...xray,
        ...secret,
        ...s3Lines(store.arn, sp, ['s3:GetObject']),
        ...s3Lines(artifacts.arn, ap, rw),
        ...s3Lines(source.arn, srcp, ['s3:GetObject']),
      ];
      const expected: Record<FunctionKey, string[]> = {
        discover: reader('discover'),
        generateRefs: reader('generateRefs'),
        validate: reader('validate'),
        commit: [
          ...logs('commit'),
          ...xray,
          ...s3Lines(store.arn, sp, [...rw, 's3:DeleteObject']),
          ...s3Lines(artifacts.arn, ap, [...rw, 's3:DeleteObject']),
        ],
        materialize: [...reader('materialize'), ...s3Lines(store.arn, `${sp}/chunks`, rw)],
      };
      for (const key of FUNCTION_KEYS) {
        assert.deepEqual(grants(roleStatements(json, `${PASCAL[key]}Role`)), expected[key].sort(), FUNCTIONS[key]);
      }
      // Listing is allowed only within the prefix.
      for (const s of statements(json).filter((s) => s.actions.includes('s3:ListBucket'))) {
        const bucket = [store, artifacts, source].find((b) => b.arn === s.resources[0]);
        assert.ok(bucket, `ListBucket on ${s.resources[0]}`);
        const prefixes = bucket === store ? [sp, `${sp}/chunks`] : bucket === artifacts ? [ap] : [srcp];
        assert.ok(
          prefixes.some((p) => JSON.stringify(s.condition) === JSON.stringify({ StringLike: { 's3:prefix': [p, `${p}/*`] } })),
          JSON.stringify(s.condition),
        );
      }
    });

    test('no wildcard action anywhere; Resource "*" only for the X-Ray and log-delivery actions', () => {
      const all = statements(json);
      // Bucket and topic policies too.
      for (const [, r] of [
        ...resourcesOfType(json, 'AWS::S3::BucketPolicy'),
        ...resourcesOfType(json, 'AWS::SNS::TopicPolicy'),
      ]) {
        for (const s of r.Properties.PolicyDocument.Statement) {
          if (s.Effect === 'Allow') assert.ok(![].concat(s.Action).some((a: string) => a.includes('*')), JSON.stringify(s));
        }
      }
      const noResourceLevel = new Set([
        'xray:PutTraceSegments',
        'xray:PutTelemetryRecords',
        'xray:GetSamplingRules',
        'xray:GetSamplingTargets',
        'logs:CreateLogDelivery',
        'logs:GetLogDelivery',
        'logs:UpdateLogDelivery',
        'logs:DeleteLogDelivery',
        'logs:ListLogDeliveries',
        'logs:PutResourcePolicy',
        'logs:DescribeResourcePolicies',
        'logs:DescribeLogGroups',
      ]);
      assert.ok(all.length > 40);
      for (const s of all) {
        assert.equal(s.effect, 'Allow');
        for (const a of s.actions) assert.ok(!a.includes('*'), `wildcard action ${a} in ${s.policy}`);
        if (s.resources.includes('*')) {
          for (const a of s.actions) assert.ok(noResourceLevel.has(a), `${a} on Resource "*" in ${s.policy}`);
        }
        if (s.actions.some((a) => a.startsWith('s3:') || a.startsWith('secretsmanager:'))) {
          for (const r of s.resources) {
            assert.ok(r !== '*' && !/^arn:[^:]*:s3:::[^/]*\/\*$/.test(r) && !r.endsWith(':*'), `${r} in ${s.policy}`);
          }
        }
      }
      // Managed policies: none.
      for (const [, r] of resourcesOfType(json, 'AWS::IAM::Role')) assert.equal(r.Properties.ManagedPolicyArns, undefined);
      assert.equal(resourcesOfType(json, 'AWS::IAM::ManagedPolicy').length, 0);
    });

    test('the secret: GetSecretValue on exactly the configured ARN, for the four Lambdas that read granules', () => {
      const withSecret = statements(json).filter((s) => s.actions.some((a) => a.startsWith('secretsmanager:')));
      assert.equal(withSecret.length, 4);
      for (const s of withSecret) {
        assert.deepEqual(s.actions, ['secretsmanager:GetSecretValue']);
        assert.deepEqual(s.resources, [cfg.edlSecretArn]);
      }
      const roles = withSecret.flatMap((s) => s.roles).sort();
      assert.deepEqual(
        roles,
        ['Discover', 'GenerateRefs', 'Materialize', 'Validate'].map((k) => '${' + logicalId(json, 'AWS::IAM::Role', `${k}Role`) + '}').sort(),
      );
    });

    test('only commit writes the store, materialize only its chunk objects; the source is read-only for everyone', () => {
      const storeArn = `${buckets.store.arn}/${cfg.store.prefix}/`;
      const writers = statements(json).filter(
        (s) => s.resources.some((r) => r.startsWith(storeArn)) && s.actions.some((a) => a !== 's3:GetObject'),
      );
      const role = (k: string) => '${' + logicalId(json, 'AWS::IAM::Role', `${k}Role`) + '}';
      assert.deepEqual(
        // Only the store's resources: minimizePolicies merges a role's statements of equal actions.
        writers.map((s) => [s.roles.join(), s.resources.filter((r) => r.startsWith(storeArn)).join()]).sort(),
        [
          [role('Commit'), `${storeArn}*`],
          [role('Materialize'), `${storeArn}chunks/*`],
        ].sort(),
      );
      const sourceStatements = statements(json).filter((s) => s.resources.some((r) => r.includes(`:::${cfg.source.bucket}`)));
      assert.equal(sourceStatements.length, 8);
      for (const s of sourceStatements) assert.ok(['s3:GetObject', 's3:ListBucket'].includes(s.actions.join()), s.actions.join());
    });

    test('the daily schedule starts the update machine with the stage map concurrency', () => {
      const schedules = resourcesOfType(json, 'AWS::Scheduler::Schedule');
      assert.equal(schedules.length, 2);
      template.hasResourceProperties('AWS::Scheduler::Schedule', {
        Name: `mursst-${stage}-update`,
        GroupName: `mursst-${stage}-schedules`,
        ScheduleExpression: cfg.schedule.update,
        ScheduleExpressionTimezone: 'UTC',
        State: cfg.schedule.enabled ? 'ENABLED' : 'DISABLED',
        FlexibleTimeWindow: { Mode: 'OFF' },
        Target: Match.objectLike({
          Arn: { Ref: machineId('Update') },
          RetryPolicy: { MaximumRetryAttempts: 3, MaximumEventAgeInSeconds: 7200 },
        }),
      });
      const update = schedules.find(([, r]) => r.Properties.Name === `mursst-${stage}-update`)![1];
      assert.deepEqual(JSON.parse(update.Properties.Target.Input), { map_concurrency: cfg.mapConcurrency });
      const role = roleStatements(json, 'UpdateScheduleRole');
      assert.deepEqual(grants(role), ['states:StartExecution ${' + machineId('Update') + '}']);
    });

    test('the maintenance schedule invokes the commit Lambda with the maintain action', () => {
      const [, maintenance] = resourcesOfType(json, 'AWS::Scheduler::Schedule').find(
        ([, r]) => r.Properties.Name === `mursst-${stage}-maintenance`,
      )!;
      const p = maintenance.Properties;
      assert.equal(p.ScheduleExpression, cfg.schedule.maintenance);
      assert.equal(p.State, cfg.schedule.enabled ? 'ENABLED' : 'DISABLED');
      assert.equal(flat(p.Target.Arn), '${' + fnId('commit') + '.Arn}');
      assert.deepEqual(JSON.parse(p.Target.Input), {
        action: 'maintain',
        expire_older_than_days: cfg.maintenance.expireOlderThanDays,
        prune_older_than_days: cfg.maintenance.pruneOlderThanDays,
      });
      const commit = '${' + fnId('commit') + '.Arn}';
      assert.deepEqual(grants(roleStatements(json, 'MaintenanceScheduleRole')), [
        `lambda:InvokeFunction ${commit}`,
        `lambda:InvokeFunction ${commit}:*`,
      ]);
    });

    test('alarms: failures, time-outs, Lambda errors and dropped schedules, each mailing only when it fires', () => {
      const alarms = resourcesOfType(json, 'AWS::CloudWatch::Alarm')
        .map(([, r]) => r.Properties)
        .filter((a) => a.AlarmName !== `mursst-${stage}-main-stale`);
      assert.equal(alarms.length, 10);
      const byName = Object.fromEntries(alarms.map((a) => [a.AlarmName, a]));
      const expected: Record<string, [string, string, string, string]> = {
        'update-failed': ['AWS/States', 'ExecutionsFailed', 'StateMachineArn', '${' + machineId('Update') + '}'],
        'update-timed-out': ['AWS/States', 'ExecutionsTimedOut', 'StateMachineArn', '${' + machineId('Update') + '}'],
        'backfill-failed': ['AWS/States', 'ExecutionsFailed', 'StateMachineArn', '${' + machineId('Backfill') + '}'],
        'backfill-timed-out': ['AWS/States', 'ExecutionsTimedOut', 'StateMachineArn', '${' + machineId('Backfill') + '}'],
        'discover-errors': ['AWS/Lambda', 'Errors', 'FunctionName', '${' + fnId('discover') + '}'],
        'generate-refs-errors': ['AWS/Lambda', 'Errors', 'FunctionName', '${' + fnId('generateRefs') + '}'],
        'validate-errors': ['AWS/Lambda', 'Errors', 'FunctionName', '${' + fnId('validate') + '}'],
        'commit-errors': ['AWS/Lambda', 'Errors', 'FunctionName', '${' + fnId('commit') + '}'],
        'materialize-errors': ['AWS/Lambda', 'Errors', 'FunctionName', '${' + fnId('materialize') + '}'],
        'schedule-dropped': ['AWS/Scheduler', 'InvocationDroppedCount', 'ScheduleGroup', `mursst-${stage}-schedules`],
      };
      assert.deepEqual(Object.keys(byName).sort(), Object.keys(expected).map((n) => `mursst-${stage}-${n}`).sort());
      for (const [n, [namespace, metric, dimension, value]] of Object.entries(expected)) {
        const a = byName[`mursst-${stage}-${n}`];
        assert.equal(a.Namespace, namespace, n);
        assert.equal(a.MetricName, metric, n);
        assert.deepEqual(a.Dimensions.map((d: any) => [d.Name, flat(d.Value)]), [[dimension, value]], n);
        assert.equal(a.Statistic, 'Sum', n);
        assert.equal(a.Period, 300, n);
        assert.equal(a.Threshold, 1, n);
        assert.equal(a.ComparisonOperator, 'GreaterThanOrEqualToThreshold', n);
        assert.equal(a.EvaluationPeriods, 1, n);
        assert.equal(a.TreatMissingData, 'notBreaching', n);
        assert.deepEqual(a.AlarmActions, [{ Ref: topicId }], n);
        assert.equal(a.OKActions, undefined, `${n}: no mail on recovery`);
        assert.equal(a.InsufficientDataActions, undefined, n);
        // The description points at a runbook section that exists.
        const section = /See docs\/runbook\.md, "([^"]+)"\./.exec(a.AlarmDescription)?.[1];
        assert.ok(section && RUNBOOK_HEADINGS.includes(section), `${n}: runbook section ${section}`);
      }
    });

    test("a freshness alarm on main's age from the steps' metrics, breaching when no step reports", () => {
      const [stale] = resourcesOfType(json, 'AWS::CloudWatch::Alarm')
        .map(([, r]) => r.Properties)
        .filter((a) => a.AlarmName === `mursst-${stage}-main-stale`);
      assert.ok(stale, 'main-stale alarm');
      assert.equal(stale.Namespace, 'mursst');
      assert.equal(stale.MetricName, 'StoreAgeDays');
      assert.deepEqual(
        stale.Dimensions.map((d: any) => [d.Name, d.Value]).sort(),
        [
          ['Branch', 'main'],
          ['Stage', stage],
        ],
      );
      assert.equal(stale.Statistic, 'Minimum');
      assert.equal(stale.Period, 86400);
      assert.equal(stale.Threshold, cfg.lagDays + 2);
      assert.equal(stale.ComparisonOperator, 'GreaterThanThreshold');
      assert.equal(stale.TreatMissingData, 'breaching');
      assert.deepEqual(stale.AlarmActions, [{ Ref: topicId }]);
      const section = /See docs\/runbook\.md, "([^"]+)"\./.exec(stale.AlarmDescription)?.[1];
      assert.ok(section && RUNBOOK_HEADINGS.includes(section), `runbook section ${section}`);
      // Every Lambda writes the metrics the alarm reads, under its stage.
      for (const [, fn] of resourcesOfType(json, 'AWS::Lambda::Function')) {
        const env = fn.Properties.Environment.Variables;
        assert.equal(env.MURSST_METRICS, 'emf');
        assert.equal(env.MURSST_STAGE, stage);
      }
    });

    test('a dashboard of the store metrics and every alarm', () => {
      const dashboards = resourcesOfType(json, 'AWS::CloudWatch::Dashboard');
      assert.equal(dashboards.length, 1);
      const body = JSON.stringify(dashboards[0][1].Properties.DashboardBody);
      for (const m of [
        'StoreAgeDays',
        'DaysAdded',
        'DaysRepointed',
        'DaysRejected',
        'BytesRead',
        'RequestsMade',
        'ValidationChunksCompared',
        'ValidationMismatches',
        'StepDuration',
        'StepErrors',
      ]) {
        assert.ok(body.includes(`\\"${m}\\"`), `${m} on the dashboard`);
      }
      const alarmIds = resourcesOfType(json, 'AWS::CloudWatch::Alarm').map(([id]) => id);
      assert.equal(alarmIds.length, 11);
      for (const id of alarmIds) assert.ok(body.includes(id), `alarm ${id} on the dashboard`);
    });

    test('one topic, TLS only, with the stage email subscription', () => {
      assert.equal(resourcesOfType(json, 'AWS::SNS::Topic').length, 1);
      template.hasResourceProperties('AWS::SNS::Topic', { TopicName: `mursst-${stage}-notify` });
      const subs = resourcesOfType(json, 'AWS::SNS::Subscription').map(([, r]) => r.Properties);
      assert.deepEqual(subs, [{ Protocol: 'email', Endpoint: cfg.notificationEmail, TopicArn: { Ref: topicId } }]);
      const [[, policy]] = resourcesOfType(json, 'AWS::SNS::TopicPolicy');
      assert.ok(
        policy.Properties.PolicyDocument.Statement.some(
          (s: any) => s.Effect === 'Deny' && s.Condition?.Bool?.['aws:SecureTransport'] === 'false',
        ),
      );
    });

    test('buckets: private, encrypted, TLS only; run artifacts expire; prod imports its store', () => {
      const created = resourcesOfType(json, 'AWS::S3::Bucket');
      assert.equal(created.length, stage === 'prod' ? 1 : 2);
      for (const [, b] of created) {
        assert.deepEqual(b.Properties.PublicAccessBlockConfiguration, {
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        });
        assert.equal(b.Properties.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm, 'AES256');
        assert.equal(b.DeletionPolicy, stage === 'dev' ? 'Delete' : 'Retain');
      }
      const policies = resourcesOfType(json, 'AWS::S3::BucketPolicy');
      assert.equal(policies.length, created.length);
      for (const [, p] of policies) {
        assert.ok(
          p.Properties.PolicyDocument.Statement.some(
            (s: any) => s.Effect === 'Deny' && s.Condition?.Bool?.['aws:SecureTransport'] === 'false',
          ),
        );
      }
      const artifacts = json.Resources[logicalId(json, 'AWS::S3::Bucket', 'ArtifactsBucket')];
      assert.deepEqual(artifacts.Properties.LifecycleConfiguration.Rules, [
        {
          Id: 'expire-run-artifacts',
          Prefix: `${cfg.artifacts.prefix}/runs/`,
          ExpirationInDays: cfg.artifacts.expireRunsAfterDays,
          AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
          Status: 'Enabled',
        },
      ]);
      // No stage empties a bucket by itself, not even dev (docs/runbook.md: deleting a dev store).
      assert.equal(resourcesOfType(json, 'Custom::S3AutoDeleteObjects').length, 0);
      if (stage === 'prod') {
        assert.ok(!JSON.stringify(json).includes('StoreBucket'), 'prod creates no store bucket');
        assert.equal(buckets.store.arn, 'arn:aws:s3:::nasa-eodc-public');
      }
    });

    test('the operator role: start, inspect and redrive executions of this stage, read its logs', () => {
      const ss = roleStatements(json, 'OperatorRole');
      const exec = (kind: string) => `arn:aws:states:us-west-2:\${AWS::AccountId}:execution:mursst-${stage}-${kind}:*`;
      const groups = resourcesOfType(json, 'AWS::Logs::LogGroup').map(([id]) => '${' + id + '.Arn}');
      assert.deepEqual(
        grants(ss),
        [
          ...['StartExecution', 'ListExecutions'].flatMap((a) =>
            [machineId('Update'), machineId('Backfill')].map((m) => `states:${a} \${${m}}`),
          ),
          ...['DescribeExecution', 'RedriveExecution', 'GetExecutionHistory'].flatMap((a) =>
            ['update', 'backfill'].map((k) => `states:${a} ${exec(k)}`),
          ),
          ...['logs:FilterLogEvents', 'logs:GetLogEvents'].flatMap((a) => groups.map((g) => `${a} ${g}`)),
        ].sort(),
      );
      const role = json.Resources[logicalId(json, 'AWS::IAM::Role', 'OperatorRole')].Properties;
      assert.equal(role.RoleName, `mursst-${stage}-operator`);
      assert.equal(flat(role.AssumeRolePolicyDocument.Statement[0].Principal.AWS), 'arn:aws:iam::${AWS::AccountId}:root');
    });

    test('outputs name the store, artifacts, machines, topic and operator role', () => {
      assert.deepEqual(Object.keys(json.Outputs).sort(), [
        'ArtifactsUri',
        'BackfillStateMachineArn',
        'NotifyTopicArn',
        'OperatorRoleArn',
        'StoreUri',
        'UpdateStateMachineArn',
      ]);
      assert.equal(flat(json.Outputs.StoreUri.Value), `s3://${buckets.store.name}/${cfg.store.prefix}`);
    });
  });
}

describe('variants', () => {
  test('an imported artifacts bucket: no bucket created, grants on the named bucket, a warning about the lifecycle rule', () => {
    const cfg = testConfig('prod', {
      artifacts: { bucket: { kind: 'import', bucketName: 'mursst-prod-artifacts' }, prefix: 'runs-root' },
    });
    const { stack, json } = synth(cfg);
    assert.equal(resourcesOfType(json, 'AWS::S3::Bucket').length, 0);
    const commit = grants(roleStatements(json, 'CommitRole'));
    assert.ok(commit.includes('s3:DeleteObject arn:aws:s3:::mursst-prod-artifacts/runs-root/*'), commit.join('\n'));
    const warnings = stack.node.metadata.filter((m) => m.type === 'aws:cdk:warning').map((m) => String(m.data));
    assert.ok(warnings.some((w) => w.includes('runs-root/runs/') && w.includes('by hand')), warnings.join('\n'));
  });

  test('an s3:// source and operator principals from the config', () => {
    const cfg = testConfig('staging', {
      source: { uri: 's3://mursst-mirror/granules', bucket: 'mursst-mirror', prefix: 'granules' },
      operatorPrincipalArns: ['arn:aws:iam::123456789012:role/ops'],
      mapConcurrency: 25,
      schedule: { enabled: false },
    });
    const { json } = synth(cfg);
    const discover = grants(roleStatements(json, 'DiscoverRole'));
    assert.ok(discover.includes('s3:GetObject arn:aws:s3:::mursst-mirror/granules/*'));
    assert.ok(!JSON.stringify(json).includes('podaac-ops-cumulus-protected'));
    const fn = resourcesOfType(json, 'AWS::Lambda::Function')[0][1];
    assert.equal(fn.Properties.Environment.Variables.MURSST_SOURCE, 's3://mursst-mirror/granules');
    const role = json.Resources[logicalId(json, 'AWS::IAM::Role', 'OperatorRole')].Properties;
    assert.deepEqual(role.AssumeRolePolicyDocument.Statement[0].Principal, { AWS: 'arn:aws:iam::123456789012:role/ops' });
    for (const [, s] of resourcesOfType(json, 'AWS::Scheduler::Schedule')) assert.equal(s.Properties.State, 'DISABLED');
    const update = resourcesOfType(json, 'AWS::Scheduler::Schedule').find(([, s]) => s.Properties.Name.endsWith('-update'))!;
    assert.deepEqual(JSON.parse(update[1].Properties.Target.Input), { map_concurrency: 25 });
  });

  test('a missing bootstrap names the build command', () => {
    assert.throws(
      () => synth(testConfig('dev', { assetRoot: '/nonexistent/target/lambda' })),
      /\/nonexistent\/target\/lambda\/mursst-discover\/bootstrap is missing: run `cargo lambda build --profile deploy --arm64`/,
    );
  });
});
