// One stage of the pipeline: the five Lambdas, the update and backfill state machines,
// their schedules, notifications and alarms, and the IAM boundaries between them.

import * as fs from 'node:fs';
import * as path from 'node:path';

import {
  ArnFormat,
  Annotations,
  CfnOutput,
  Duration,
  RemovalPolicy,
  Size,
  Stack,
  type StackProps,
  TimeZone,
} from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';

import {
  type BucketSource,
  FUNCTIONS,
  type FunctionKey,
  type StageConfig,
  keyPrefix,
  s3Uri,
} from './config';
import { type MachineKind, type SubstitutionName, loadDefinition } from './definitions';
import { REASONS, acknowledge, acknowledgeWildcardResource } from './nag';
import { type Access, type PrefixLocation, grantPrefix, objectsArn } from './s3-access';

/** infra/, against which the config's relative paths resolve (this file runs from infra/dist/lib/). */
export const INFRA_DIR = path.resolve(__dirname, '..', '..');

export interface MursstStackProps extends StackProps {
  readonly config: StageConfig;
}

/** One S3 grant of a Lambda: the access, and why it needs it (the cdk-nag acknowledgement's reason). */
interface PrefixGrant {
  readonly access: Access;
  readonly why: string;
}

/** What each Lambda may touch; see docs/architecture.md, "IAM boundaries". */
const FUNCTION_ACCESS: {
  readonly [K in FunctionKey]: {
    readonly store?: PrefixGrant;
    /** Access to the store's chunk objects only (`<store prefix>/chunks/`). */
    readonly storeChunks?: PrefixGrant;
    readonly artifacts: PrefixGrant;
    readonly source?: PrefixGrant;
    /** GetSecretValue on the Earthdata secret, for PO.DAAC's temporary S3 credentials. */
    readonly secret: boolean;
  };
} = {
  discover: {
    store: { access: 'read', why: "discover reads the store's last day and snapshot, the run's base" },
    artifacts: { access: 'read-write', why: "discover writes the run's granule manifest, which the backfill's Map reads" },
    source: { access: 'read', why: 'discover lists and heads granules when the source is an S3 prefix' },
    secret: true,
  },
  generateRefs: {
    store: { access: 'read', why: "generate-refs reads the store's layout to check a granule fits before writing anything" },
    artifacts: { access: 'read-write', why: "generate-refs writes (or reuses) each granule's references as an artifact" },
    source: { access: 'read', why: "generate-refs reads each granule's HDF5 metadata with ranged GETs" },
    secret: true,
  },
  // The store's only writer: the run branch, main (compare-and-swap), expiry, GC, pruning.
  commit: {
    store: {
      access: 'read-write-delete',
      why: 'commit writes the run branch, moves main, and expires snapshots, collects garbage and prunes branches',
    },
    artifacts: { access: 'read-write-delete', why: "commit reads the references artifacts and deletes a merged run's artifacts" },
    secret: false,
  },
  // Writes chunk objects, never a snapshot, ref or branch: commit decides what they join.
  materialize: {
    store: { access: 'read', why: "materialize opens the repository at the run's base snapshot" },
    storeChunks: {
      access: 'read-write',
      why: 'materialize writes the native chunks of days chunked unlike the store, for commit to reference',
    },
    artifacts: { access: 'read-write', why: "materialize reads commit's plan and the day's references, and writes its chunk list" },
    source: { access: 'read', why: 'materialize decodes the granule variables it writes onto the store grid' },
    secret: true,
  },
  validate: {
    store: { access: 'read', why: 'validate reads the run branch back through icechunk' },
    artifacts: { access: 'read-write', why: "validate reads the run's references artifacts and may write its report" },
    source: { access: 'read', why: 'validate reads the source granules the branch references, to compare values' },
    secret: true,
  },
};

const DESCRIPTIONS: { readonly [K in FunctionKey]: string } = {
  discover: 'mursst discover: what the run takes (CMR or an S3 listing), the run identity',
  generateRefs: 'mursst generate-refs: one granule -> its chunk references (an artifact)',
  commit: 'mursst commit: write the run branch, merge it into main (CAS), store maintenance',
  materialize: 'mursst materialize: one day chunked unlike the store -> native chunks on its grid',
  validate: 'mursst validate: read the run branch back and compare with the source granules',
};

const SUBSTITUTION_FOR_FUNCTION: { readonly [K in FunctionKey]: SubstitutionName } = {
  discover: 'DiscoverFunctionArn',
  generateRefs: 'GenerateRefsFunctionArn',
  commit: 'CommitFunctionArn',
  materialize: 'MaterializeFunctionArn',
  validate: 'ValidateFunctionArn',
};

export class MursstStack extends Stack {
  readonly config: StageConfig;
  readonly storeBucket: s3.IBucket;
  readonly artifactsBucket: s3.IBucket;
  readonly functions: { readonly [K in FunctionKey]: lambda.Function };
  readonly stateMachines: { readonly [K in MachineKind]: sfn.StateMachine };
  readonly topic: sns.Topic;
  readonly operatorRole: iam.Role;
  readonly alarms: cloudwatch.Alarm[] = [];
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: MursstStackProps) {
    const cfg = props.config;
    super(scope, id, {
      description: `mursst ${cfg.stage}: daily virtual icechunk store of MUR SST v4.1`,
      ...props,
      env: { account: cfg.account, region: cfg.region, ...props.env },
    });
    this.config = cfg;
    const stage = cfg.stage;
    const name = (suffix: string) => `mursst-${stage}-${suffix}`;
    // Only dev's resources go with the stack; elsewhere data and logs outlive a deletion.
    const removalPolicy = stage === 'dev' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN;
    const retention = cfg.logRetentionDays as logs.RetentionDays;

    // ---- Buckets -------------------------------------------------------------------
    this.storeBucket = this.bucket('StoreBucket', cfg.store.bucket, removalPolicy, [], REASONS.accessLogsStore);
    this.artifactsBucket = this.bucket('ArtifactsBucket', cfg.artifacts.bucket, removalPolicy, [
      {
        id: 'expire-run-artifacts',
        prefix: `${keyPrefix(cfg.artifacts.prefix)}runs/`,
        expiration: Duration.days(cfg.artifacts.expireRunsAfterDays),
        abortIncompleteMultipartUploadAfter: Duration.days(1),
      },
    ], REASONS.accessLogsArtifacts);
    if (cfg.artifacts.bucket.kind === 'import') {
      Annotations.of(this).addWarningV2(
        'mursst:artifacts-lifecycle',
        `artifacts bucket ${cfg.artifacts.bucket.bucketName} is imported: add the rule expiring ` +
          `${keyPrefix(cfg.artifacts.prefix)}runs/ after ${cfg.artifacts.expireRunsAfterDays} days to it by hand`,
      );
    }
    const store: PrefixLocation = { bucket: this.storeBucket, prefix: cfg.store.prefix };
    const artifacts: PrefixLocation = { bucket: this.artifactsBucket, prefix: cfg.artifacts.prefix };
    const source: PrefixLocation = {
      bucket: s3.Bucket.fromBucketName(this, 'SourceBucket', cfg.source.bucket),
      prefix: cfg.source.prefix,
    };

    // ---- Notifications ---------------------------------------------------------------
    this.topic = new sns.Topic(this, 'NotifyTopic', {
      topicName: name('notify'),
      displayName: `mursst ${stage}`,
      enforceSSL: true,
    });
    this.topic.addSubscription(new subscriptions.EmailSubscription(cfg.notificationEmail));

    // ---- Lambdas ---------------------------------------------------------------------
    const environment: Record<string, string> = {
      MURSST_STORE: s3Uri(this.storeBucket.bucketName, cfg.store.prefix),
      MURSST_SOURCE: cfg.source.uri,
      MURSST_ARTIFACTS: s3Uri(this.artifactsBucket.bucketName, cfg.artifacts.prefix),
      MURSST_VARIABLES: cfg.variables.join(','),
      MURSST_LAG_DAYS: String(cfg.lagDays),
      MURSST_REPROCESS: cfg.reprocess,
      MURSST_VALIDATE: cfg.validate,
      MURSST_CMR_URL: cfg.cmrUrl,
      MURSST_COLLECTION: cfg.collection,
      MURSST_PROVIDER: cfg.provider,
      MURSST_EDL_SECRET_ARN: cfg.edlSecretArn,
      MURSST_S3_CREDENTIALS_URL: cfg.s3CredentialsUrl,
      RUST_LOG: cfg.rustLog,
      MURSST_LOG_FORMAT: 'json',
      // Each step's figures as Embedded Metric Format lines (namespace `mursst`).
      MURSST_METRICS: 'emf',
      MURSST_STAGE: stage,
    };
    const assetRoot = path.resolve(INFRA_DIR, cfg.assetRoot);
    const fns = {} as { [K in FunctionKey]: lambda.Function };
    const stageLogGroups: logs.LogGroup[] = [];
    for (const key of Object.keys(FUNCTIONS) as FunctionKey[]) {
      const crate = FUNCTIONS[key];
      const short = shortName(key);
      const functionName = name(short);
      const assetDir = path.join(assetRoot, crate);
      if (!fs.existsSync(path.join(assetDir, 'bootstrap'))) {
        throw new Error(
          `${path.join(assetDir, 'bootstrap')} is missing: run \`cargo lambda build --profile deploy --arm64\` ` +
            `at the repository root first (assetRoot is ${assetRoot})`,
        );
      }
      const logGroup = new logs.LogGroup(this, `${pascal(key)}Logs`, {
        logGroupName: `/aws/lambda/${functionName}`,
        retention,
        removalPolicy,
      });
      stageLogGroups.push(logGroup);
      const role = new iam.Role(this, `${pascal(key)}Role`, {
        roleName: name(`${short}-fn`),
        description: `${functionName}: ${DESCRIPTIONS[key]}`,
        assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      });
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
          resources: [logGroup.logGroupArn],
        }),
      );
      const access = FUNCTION_ACCESS[key];
      if (access.store) grantPrefix(role, store, access.store.access, access.store.why);
      if (access.storeChunks) {
        const chunks = { bucket: store.bucket, prefix: `${store.prefix}/chunks` };
        grantPrefix(role, chunks, access.storeChunks.access, access.storeChunks.why);
      }
      grantPrefix(role, artifacts, access.artifacts.access, access.artifacts.why);
      if (access.source) grantPrefix(role, source, access.source.access, access.source.why);
      if (access.secret) {
        role.addToPrincipalPolicy(
          new iam.PolicyStatement({ actions: ['secretsmanager:GetSecretValue'], resources: [cfg.edlSecretArn] }),
        );
      }
      acknowledge(role, 'AwsSolutions-IAM5[Resource::*]', REASONS.xrayLambda);
      const sizing = cfg.functions[key];
      fns[key] = new lambda.Function(this, `${pascal(key)}Function`, {
        functionName,
        description: DESCRIPTIONS[key],
        runtime: lambda.Runtime.PROVIDED_AL2023,
        architecture: lambda.Architecture.ARM_64,
        handler: 'bootstrap',
        code: lambda.Code.fromAsset(assetDir),
        role,
        memorySize: sizing.memoryMiB,
        timeout: Duration.seconds(sizing.timeoutSeconds),
        ephemeralStorageSize: Size.mebibytes(sizing.ephemeralStorageMiB),
        environment,
        logGroup,
        loggingFormat: lambda.LoggingFormat.JSON,
        tracing: lambda.Tracing.ACTIVE,
        // Step Functions retries synchronous invocations itself; only the maintenance
        // schedule invokes asynchronously, and its next run repeats the work.
        retryAttempts: 0,
      });
    }
    this.functions = fns;

    // ---- State machines --------------------------------------------------------------
    const substitutions = {
      NotifyTopicArn: this.topic.topicArn,
      ArtifactBucket: this.artifactsBucket.bucketName,
      ArtifactPrefix: keyPrefix(cfg.artifacts.prefix),
    } as Record<SubstitutionName, string>;
    for (const key of Object.keys(fns) as FunctionKey[]) {
      substitutions[SUBSTITUTION_FOR_FUNCTION[key]] = fns[key].functionArn;
    }
    const definitionsDir = path.resolve(INFRA_DIR, cfg.definitionsDir);
    const machines = {} as { [K in MachineKind]: sfn.StateMachine };
    for (const kind of ['update', 'backfill'] as const) {
      const machineName = name(kind);
      const machineArn = this.formatArn({
        service: 'states',
        resource: 'stateMachine',
        resourceName: machineName,
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      });
      const logGroup = new logs.LogGroup(this, `${pascal(kind)}MachineLogs`, {
        // The vendedlogs/ prefix keeps the account's CloudWatch Logs resource policy small.
        logGroupName: `/aws/vendedlogs/states/${machineName}`,
        retention,
        removalPolicy,
      });
      const role = new iam.Role(this, `${pascal(kind)}MachineRole`, {
        roleName: name(`${kind}-sfn`),
        description: `${machineName}: invoke the stage's Lambdas, publish failures`,
        assumedBy: new iam.ServicePrincipal('states.amazonaws.com', {
          conditions: {
            StringEquals: { 'aws:SourceAccount': this.account },
            ArnLike: { 'aws:SourceArn': machineArn },
          },
        }),
      });
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          actions: ['lambda:InvokeFunction'],
          resources: Object.values(fns).map((f) => f.functionArn),
        }),
      );
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({ actions: ['sns:Publish'], resources: [this.topic.topicArn] }),
      );
      if (kind === 'backfill') {
        // The Distributed Map runs each batch as a child execution of this machine...
        role.addToPrincipalPolicy(
          new iam.PolicyStatement({ actions: ['states:StartExecution'], resources: [machineArn] }),
        );
        const children = executionsArn(this, machineName, '/');
        role.addToPrincipalPolicy(
          new iam.PolicyStatement({
            actions: ['states:DescribeExecution', 'states:StopExecution', 'states:RedriveExecution'],
            resources: [children],
          }),
        );
        acknowledgeWildcardResource(
          role,
          children,
          "The Distributed Map's child executions are named by Step Functions at run time " +
            `(execution:${machineName}/<map run>:<id>); the wildcard covers only this machine's children.`,
        );
        // ...reads its manifest (ItemReader) and writes its results (ResultWriter) under the artifact prefix.
        grantPrefix(
          role,
          artifacts,
          'read-write',
          "The Distributed Map's ItemReader reads the run manifest and its ResultWriter writes the results",
        );
        role.addToPrincipalPolicy(
          new iam.PolicyStatement({
            actions: ['s3:ListMultipartUploadParts'],
            resources: [objectsArn(artifacts)],
          }),
        );
      }
      acknowledge(role, 'AwsSolutions-IAM5[Resource::*]', REASONS.stateMachineLogsAndTracing);
      stageLogGroups.push(logGroup);
      machines[kind] = new sfn.StateMachine(this, `${pascal(kind)}Machine`, {
        stateMachineName: machineName,
        stateMachineType: sfn.StateMachineType.STANDARD,
        definitionBody: sfn.DefinitionBody.fromString(
          loadDefinition(definitionsDir, kind, cfg.stateMachineTimeoutMinutes[kind] * 60),
        ),
        definitionSubstitutions: substitutions,
        role,
        logs: { destination: logGroup, level: sfn.LogLevel.ALL, includeExecutionData: true },
        tracingEnabled: true,
      });
    }
    this.stateMachines = machines;

    // ---- Schedules -------------------------------------------------------------------
    const group = new scheduler.ScheduleGroup(this, 'Schedules', {
      scheduleGroupName: name('schedules'),
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const schedulerRole = (id: string, what: string) =>
      new iam.Role(this, id, {
        roleName: name(`${what}-schedule`),
        description: `EventBridge Scheduler: the mursst ${stage} ${what} schedule's target`,
        assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
          conditions: {
            StringEquals: { 'aws:SourceAccount': this.account, 'aws:SourceArn': group.scheduleGroupArn },
          },
        }),
      });
    const maintenanceRole = schedulerRole('MaintenanceScheduleRole', 'maintenance');
    acknowledgeWildcardResource(
      maintenanceRole,
      `${fns.commit.functionArn}:*`,
      "The Scheduler target construct grants lambda:InvokeFunction on the commit function's versions and " +
        'aliases too (`<arn>:*`); the schedule invokes the unqualified function, and the grant reaches no other function.',
    );
    new scheduler.Schedule(this, 'UpdateSchedule', {
      scheduleName: name('update'),
      description: `Daily mursst ${stage} update`,
      scheduleGroup: group,
      schedule: scheduler.ScheduleExpression.expression(cfg.schedule.update, TimeZone.of(cfg.schedule.timeZone)),
      enabled: cfg.schedule.enabled,
      target: new targets.StepFunctionsStartExecution(machines.update, {
        role: schedulerRole('UpdateScheduleRole', 'update'),
        input: scheduler.ScheduleTargetInput.fromObject({ map_concurrency: cfg.mapConcurrency }),
        retryAttempts: 3,
        maxEventAge: Duration.hours(2),
      }),
    });
    new scheduler.Schedule(this, 'MaintenanceSchedule', {
      scheduleName: name('maintenance'),
      description: `mursst ${stage} store maintenance: expire snapshots + GC, prune old run branches`,
      scheduleGroup: group,
      schedule: scheduler.ScheduleExpression.expression(cfg.schedule.maintenance, TimeZone.of(cfg.schedule.timeZone)),
      enabled: cfg.schedule.enabled,
      target: new targets.LambdaInvoke(fns.commit, {
        role: maintenanceRole,
        input: scheduler.ScheduleTargetInput.fromObject({
          action: 'maintain',
          expire_older_than_days: cfg.maintenance.expireOlderThanDays,
          prune_older_than_days: cfg.maintenance.pruneOlderThanDays,
        }),
        retryAttempts: 3,
        maxEventAge: Duration.hours(2),
      }),
    });

    // ---- Alarms: each fires only on a failure, never on a successful run ----------------
    const alarmOn = (
      id: string,
      alarmName: string,
      metric: cloudwatch.IMetric,
      what: string,
      runbook: string,
      condition: Pick<cloudwatch.AlarmProps, 'threshold' | 'comparisonOperator' | 'treatMissingData'> = {
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      },
    ) => {
      const alarm = new cloudwatch.Alarm(this, id, {
        alarmName: name(alarmName),
        alarmDescription: `${what}. See docs/runbook.md, "${runbook}".`,
        metric,
        evaluationPeriods: 1,
        datapointsToAlarm: 1,
        ...condition,
      });
      // No OK or INSUFFICIENT_DATA actions: a quiet day sends nothing.
      alarm.addAlarmAction(new cwActions.SnsAction(this.topic));
      this.alarms.push(alarm);
    };
    const period = Duration.minutes(5);
    for (const kind of ['update', 'backfill'] as const) {
      const sm = machines[kind];
      alarmOn(
        `${pascal(kind)}FailedAlarm`,
        `${kind}-failed`,
        sm.metricFailed({ period, statistic: 'Sum' }),
        `${kind === 'update' ? 'An update' : 'A backfill'} execution failed`,
        'Alarm: execution failed',
      );
      alarmOn(
        `${pascal(kind)}TimedOutAlarm`,
        `${kind}-timed-out`,
        sm.metricTimedOut({ period, statistic: 'Sum' }),
        `${kind === 'update' ? 'An update' : 'A backfill'} execution ran past its ${cfg.stateMachineTimeoutMinutes[kind]} minute timeout`,
        'Alarm: execution timed out',
      );
    }
    for (const key of Object.keys(FUNCTIONS) as FunctionKey[]) {
      const short = shortName(key);
      alarmOn(
        `${pascal(key)}ErrorsAlarm`,
        `${short}-errors`,
        fns[key].metricErrors({ period, statistic: 'Sum' }),
        `The ${short} Lambda returned an error or timed out`,
        'Alarm: Lambda errors',
      );
    }
    // The store's own freshness, from the steps' metrics: main's last day further behind
    // than the settling lag allows, or no run reporting at all that day.
    const stepMetric = (metricName: string, statistic: string, extra: Record<string, string> = {}) =>
      new cloudwatch.Metric({
        namespace: 'mursst',
        metricName,
        dimensionsMap: { Stage: stage, Branch: 'main', ...extra },
        statistic,
        period: Duration.days(1),
      });
    alarmOn(
      'MainStaleAlarm',
      'main-stale',
      stepMetric('StoreAgeDays', 'Minimum'),
      `main's newest day is more than ${cfg.lagDays + 2} days old (the lag, ${cfg.lagDays}, and two), ` +
        'or no step reported the store age that day',
      'Alarm: main is stale',
      {
        threshold: cfg.lagDays + 2,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      },
    );
    alarmOn(
      'ScheduleDroppedAlarm',
      'schedule-dropped',
      group.metricDropped({ period, statistic: 'Sum' }),
      'A schedule could not start its target after every retry (no run happened)',
      'Alarm: schedule dropped',
    );

    // ---- Dashboard: the store's freshness and what each run did, beside the alarms ----
    const graph = (title: string, metrics: cloudwatch.IMetric[]) =>
      new cloudwatch.GraphWidget({ title, left: metrics, width: 12, height: 6 });
    const sum = (m: string) => stepMetric(m, 'Sum');
    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: name('store'),
      defaultInterval: Duration.days(30),
      widgets: [
        [
          graph('Age of main (days behind today)', [stepMetric('StoreAgeDays', 'Minimum')]),
          graph('Days on main', [sum('DaysAdded'), sum('DaysRepointed'), sum('DaysRejected')]),
        ],
        [
          graph('Granule reads', [sum('RequestsMade'), sum('BytesRead')]),
          graph('Validation', [sum('ValidationChunksCompared'), sum('ValidationMismatches')]),
        ],
        [
          graph(
            'Step duration (max)',
            (Object.keys(FUNCTIONS) as FunctionKey[]).map((k) =>
              stepMetric('StepDuration', 'Maximum', { Step: shortName(k) }),
            ),
          ),
          graph('Step errors', [sum('StepErrors')]),
        ],
        [new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: this.alarms, width: 24, height: 4 })],
      ],
    });

    // ---- Operator role ---------------------------------------------------------------
    const machineNames = (['update', 'backfill'] as const).map((k) => name(k));
    this.operatorRole = new iam.Role(this, 'OperatorRole', {
      roleName: name('operator'),
      description: `Start, inspect and redrive mursst ${stage} executions`,
      assumedBy:
        cfg.operatorPrincipalArns.length === 0
          ? new iam.AccountRootPrincipal()
          : new iam.CompositePrincipal(...cfg.operatorPrincipalArns.map((a) => new iam.ArnPrincipal(a))),
      maxSessionDuration: Duration.hours(4),
    });
    this.operatorRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['states:StartExecution', 'states:ListExecutions'],
        resources: Object.values(machines).map((m) => m.stateMachineArn),
      }),
    );
    const executions = machineNames.map((m) => executionsArn(this, m, ':'));
    this.operatorRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['states:DescribeExecution', 'states:RedriveExecution', 'states:GetExecutionHistory'],
        resources: executions,
      }),
    );
    for (const arn of executions) {
      acknowledgeWildcardResource(
        this.operatorRole,
        arn,
        'Execution ARNs are named per run (execution:<machine>:<run name>); the wildcard covers only the ' +
          "executions of this stage's machine, so operators can inspect and redrive any of its runs.",
      );
    }
    this.operatorRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['logs:FilterLogEvents', 'logs:GetLogEvents'],
        resources: stageLogGroups.map((g) => g.logGroupArn),
      }),
    );

    // ---- Outputs ---------------------------------------------------------------------
    new CfnOutput(this, 'StoreUri', { value: environment.MURSST_STORE });
    new CfnOutput(this, 'ArtifactsUri', { value: environment.MURSST_ARTIFACTS });
    new CfnOutput(this, 'UpdateStateMachineArn', { value: machines.update.stateMachineArn });
    new CfnOutput(this, 'BackfillStateMachineArn', { value: machines.backfill.stateMachineArn });
    new CfnOutput(this, 'NotifyTopicArn', { value: this.topic.topicArn });
    new CfnOutput(this, 'OperatorRoleArn', { value: this.operatorRole.roleArn });
  }

  /** A bucket of the stage's own (private, encrypted, TLS only) or an imported one. */
  private bucket(
    id: string,
    src: BucketSource,
    removalPolicy: RemovalPolicy,
    lifecycleRules: s3.LifecycleRule[],
    accessLogsReason: string,
  ): s3.IBucket {
    if (src.kind === 'import') return s3.Bucket.fromBucketName(this, id, src.bucketName);
    const bucket = new s3.Bucket(this, id, {
      bucketName: src.bucketName,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      // dev: deleted with the stack once empty. No autoDeleteObjects: its handler needs
      // wildcard S3 actions, and emptying a store is a step to take on purpose (runbook).
      removalPolicy,
      lifecycleRules,
    });
    acknowledge(bucket, 'AwsSolutions-S1', accessLogsReason);
    return bucket;
  }
}

/** The executions of a state machine: `execution:<name>:*` (runs), `execution:<name>/*` (Distributed Map children). */
function executionsArn(stack: Stack, machineName: string, separator: ':' | '/'): string {
  return stack.formatArn({
    service: 'states',
    resource: 'execution',
    resourceName: `${machineName}${separator}*`,
    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
  });
}

/** A Lambda's name within the stage: its crate name without `mursst-` (`generate-refs`). */
function shortName(key: FunctionKey): string {
  return FUNCTIONS[key].replace(/^mursst-/, '');
}

function pascal(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
