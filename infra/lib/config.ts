// The one typed configuration every stage is built from. Values live in
// `config/stages.ts`; this module holds the shape, the defaults and the checks.

export const STAGE_NAMES = ['dev', 'staging', 'prod'] as const;
export type StageName = (typeof STAGE_NAMES)[number];

/** A bucket the stage creates (dev, staging) or imports by name (prod's existing ones). */
export type BucketSource =
  | { readonly kind: 'create'; readonly bucketName?: string }
  | { readonly kind: 'import'; readonly bucketName: string };

/** The five Lambdas, by the crate names `cargo lambda build` uses. */
export const FUNCTIONS = {
  discover: 'mursst-discover',
  generateRefs: 'mursst-generate-refs',
  validate: 'mursst-validate',
  commit: 'mursst-commit',
  materialize: 'mursst-materialize',
} as const;
export type FunctionKey = keyof typeof FUNCTIONS;

export interface FunctionSizing {
  readonly memoryMiB: number;
  readonly timeoutSeconds: number;
  /** /tmp size, 512 (the free minimum) to 10240. */
  readonly ephemeralStorageMiB: number;
}

export type ValidateMode = 'off' | 'metadata' | 'sample' | 'full';

export interface StageConfig {
  readonly stage: StageName;
  /** Deploy account; undefined leaves the stack environment-agnostic (account from the CLI's credentials). */
  readonly account?: string;
  /** Always us-west-2: PO.DAAC's temporary S3 credentials only work in the source bucket's region. */
  readonly region: string;

  /** The icechunk repository: `s3://<bucket>/<prefix>` (prefixes: non-empty, no leading or trailing slash). */
  readonly store: { readonly bucket: BucketSource; readonly prefix: string };
  /**
   * Run artifacts (references between steps, backfill manifests and Map results):
   * `s3://<bucket>/<prefix>`. `<prefix>/runs/` expires after `expireRunsAfterDays`.
   */
  readonly artifacts: {
    readonly bucket: BucketSource;
    readonly prefix: string;
    readonly expireRunsAfterDays: number;
  };
  /**
   * Where granules come from: `uri` is `cmr` or an `s3://bucket/prefix` of granules
   * (MURSST_SOURCE); `bucket` + `prefix` are what the Lambdas may read, for IAM.
   */
  readonly source: { readonly uri: string; readonly bucket: string; readonly prefix: string };

  /** Complete ARN (with the 6-character suffix) of the secret holding {"EARTHDATA_USERNAME","EARTHDATA_PASSWORD"}. */
  readonly edlSecretArn: string;
  readonly cmrUrl: string;
  readonly collection: string;
  readonly provider: string;
  readonly s3CredentialsUrl: string;

  readonly variables: readonly string[];
  readonly lagDays: number;
  /**
   * Stored days every run re-points at their current granule: `changed` finds those
   * PO.DAAC replaced since ingest (one HEAD per day of the last 30), so a short
   * `lagDays` stays correct; `off` never re-points.
   */
  readonly reprocess: 'changed' | 'off';
  readonly validate: ValidateMode;
  /** Parallel generate-refs invocations; passed in each execution's input as `map_concurrency`. */
  readonly mapConcurrency: number;

  /** EventBridge Scheduler expressions (`cron(...)` / `rate(...)`) in `timeZone`. */
  readonly schedule: {
    readonly update: string;
    readonly maintenance: string;
    readonly timeZone: string;
    readonly enabled: boolean;
  };
  /** The commit Lambda's `maintain` action: snapshot expiry + GC, and pruning of leftover run branches. */
  readonly maintenance: {
    readonly expireOlderThanDays: number;
    readonly pruneOlderThanDays: number;
  };

  readonly notificationEmail: string;
  readonly functions: { readonly [K in FunctionKey]: FunctionSizing };
  /** Whole-execution timeouts; an execution past it counts as TimedOut and alarms. */
  readonly stateMachineTimeoutMinutes: { readonly update: number; readonly backfill: number };
  readonly logRetentionDays: number;
  readonly rustLog: string;

  /** Directory holding `<crate>/bootstrap` for each Lambda, relative to infra/ (or absolute). */
  readonly assetRoot: string;
  /** Directory holding `update.asl.json` and `backfill.asl.json`, relative to infra/ (or absolute). */
  readonly definitionsDir: string;
  /** IAM principal ARNs that may assume the operator role; empty means the deploy account's root (its IAM policies decide). */
  readonly operatorPrincipalArns: readonly string[];
}

/** Overrides of a stage: any field, nested objects merged, arrays replaced. */
export type StageOverrides = {
  readonly [K in keyof StageConfig]?: StageConfig[K] extends readonly unknown[]
    ? StageConfig[K]
    : StageConfig[K] extends object
      ? Partial<StageConfig[K]>
      : StageConfig[K];
};

/**
 * Sizing from the production rehearsal (`scripts/rehearse.sh`: full-size days of every
 * era through both machines, each sandbox under these limits; README, "The production
 * rehearsal"). Peaks seen, December 2026: discover 36 MiB / 0.6 s; generate-refs 34 MiB /
 * 1.1 s for a backfill batch of 8 granules (I/O-bound: 256 MB, 0.14 vCPU, is plenty, half
 * the cost of the 512 MB it had); commit 44 MiB / 1.3 s, but it keeps 2048 MB for the
 * weekly `maintain` (garbage collection lists every chunk of the record, which the
 * rehearsal does not reach); validate 217 MiB / 10.6 s for a batch of 8 days in `sample`
 * mode (2048 MB: its libhdf5 half is serial, so 1.2 vCPUs lose little against the 2.3 of
 * the 4096 MB it had, for half the price); materialize 760 MiB / 58 s on the
 * 2023-09..2024-05 era (4096 MB: CPU-bound decoding and encoding, where more vCPUs cost
 * the same and end sooner, with the memory headroom for a real day's worse compression).
 */
export const DEFAULT_SIZING: StageConfig['functions'] = {
  discover: { memoryMiB: 256, timeoutSeconds: 60, ephemeralStorageMiB: 512 },
  generateRefs: { memoryMiB: 256, timeoutSeconds: 120, ephemeralStorageMiB: 512 },
  commit: { memoryMiB: 2048, timeoutSeconds: 900, ephemeralStorageMiB: 2048 },
  validate: { memoryMiB: 2048, timeoutSeconds: 900, ephemeralStorageMiB: 2048 },
  materialize: { memoryMiB: 4096, timeoutSeconds: 900, ephemeralStorageMiB: 512 },
};

/** Everything but the per-stage identity; `config/stages.ts` overrides per stage. */
export function defaults(stage: StageName): StageConfig {
  return {
    stage,
    account: undefined,
    region: 'us-west-2',
    store: { bucket: { kind: 'create' }, prefix: 'icechunk/MUR-JPL-L4-GLOB-v4.1-virtual' },
    artifacts: { bucket: { kind: 'create' }, prefix: 'mursst', expireRunsAfterDays: 14 },
    source: { uri: 'cmr', bucket: 'podaac-ops-cumulus-protected', prefix: 'MUR-JPL-L4-GLOB-v4.1' },
    edlSecretArn: '',
    cmrUrl: 'https://cmr.earthdata.nasa.gov',
    collection: 'MUR-JPL-L4-GLOB-v4.1',
    provider: 'POCLOUD',
    s3CredentialsUrl: 'https://archive.podaac.earthdata.nasa.gov/s3credentials',
    variables: ['analysed_sst', 'analysis_error', 'mask', 'sea_ice_fraction'],
    lagDays: 10,
    reprocess: 'changed',
    validate: 'sample',
    mapConcurrency: 10,
    schedule: {
      update: 'cron(0 9 * * ? *)',
      maintenance: 'cron(0 12 ? * SUN *)',
      timeZone: 'UTC',
      enabled: true,
    },
    maintenance: { expireOlderThanDays: 30, pruneOlderThanDays: 7 },
    notificationEmail: '',
    functions: DEFAULT_SIZING,
    stateMachineTimeoutMinutes: { update: 120, backfill: 24 * 60 },
    logRetentionDays: 90,
    rustLog: 'info',
    assetRoot: '../target/lambda',
    definitionsDir: '../statemachine',
    operatorPrincipalArns: [],
  };
}

/** `defaults(stage)` with `overrides` merged in (nested objects merged one level, arrays replaced). */
export function stageConfig(stage: StageName, overrides: StageOverrides = {}): StageConfig {
  const base = defaults(stage) as unknown as Record<string, unknown>;
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    const old = base[key];
    // One level: `store: { prefix }` keeps the default bucket; a `bucket` given is taken whole.
    merged[key] = isPlainObject(old) && isPlainObject(value) ? { ...old, ...value } : value;
  }
  const config = merged as unknown as StageConfig;
  checkConfig(config);
  return config;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The retention periods CloudWatch Logs accepts, in days. */
export const LOG_RETENTION_DAYS: readonly number[] = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
];

/** Throws, naming the field, on a value the stack would turn into a broken deployment. */
export function checkConfig(c: StageConfig): void {
  const fail = (field: string, why: string): never => {
    throw new Error(`stage ${c.stage}: ${field}: ${why}`);
  };
  if (!STAGE_NAMES.includes(c.stage)) fail('stage', `unknown stage ${JSON.stringify(c.stage)}`);
  if (c.region !== 'us-west-2') {
    fail('region', "must be us-west-2: PO.DAAC's temporary S3 credentials only work in-region");
  }
  if (c.account !== undefined && !/^\d{12}$/.test(c.account)) fail('account', 'not a 12-digit account id');
  // Never empty: S3 grants stop at a key prefix, never cover a whole bucket.
  const prefix = (field: string, p: string) => {
    if (p === '') fail(field, 'must not be empty');
    if (p.startsWith('/') || p.endsWith('/')) fail(field, 'no leading or trailing slash');
    if (/[*?\s]/.test(p)) fail(field, 'no wildcards or whitespace');
  };
  prefix('store.prefix', c.store.prefix);
  prefix('artifacts.prefix', c.artifacts.prefix);
  prefix('source.prefix', c.source.prefix);
  const bucket = (field: string, b: BucketSource) => {
    if (b.kind === 'import' && !b.bucketName) fail(field, 'an imported bucket needs bucketName');
    if (b.bucketName !== undefined && !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(b.bucketName)) {
      fail(field, `not a bucket name: ${JSON.stringify(b.bucketName)}`);
    }
  };
  bucket('store.bucket', c.store.bucket);
  bucket('artifacts.bucket', c.artifacts.bucket);
  if (c.source.uri !== 'cmr' && !/^s3:\/\/[a-z0-9][a-z0-9.-]+[a-z0-9](\/.*)?$/.test(c.source.uri)) {
    fail('source.uri', 'must be "cmr" or s3://bucket/prefix');
  }
  // The complete ARN, so IAM can name exactly this secret (no `-??????` wildcard).
  if (!/^arn:aws:secretsmanager:us-west-2:\d{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$/.test(c.edlSecretArn)) {
    fail('edlSecretArn', 'must be the complete secret ARN in us-west-2, ending in its 6-character suffix');
  }
  if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(c.notificationEmail)) fail('notificationEmail', 'not an email address');
  if (c.variables.length === 0 || c.variables.some((v) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(v))) {
    fail('variables', 'a non-empty list of variable names');
  }
  const int = (field: string, v: number, min: number, max: number) => {
    if (!Number.isInteger(v) || v < min || v > max) fail(field, `an integer in ${min}..${max}, got ${v}`);
  };
  int('lagDays', c.lagDays, 0, 365);
  int('mapConcurrency', c.mapConcurrency, 1, 1000);
  int('artifacts.expireRunsAfterDays', c.artifacts.expireRunsAfterDays, 1, 3650);
  int('maintenance.expireOlderThanDays', c.maintenance.expireOlderThanDays, 1, 3650);
  int('maintenance.pruneOlderThanDays', c.maintenance.pruneOlderThanDays, 1, 3650);
  if (!LOG_RETENTION_DAYS.includes(c.logRetentionDays)) {
    fail('logRetentionDays', `one of CloudWatch Logs' retention periods: ${LOG_RETENTION_DAYS.join(', ')}`);
  }
  int('stateMachineTimeoutMinutes.update', c.stateMachineTimeoutMinutes.update, 5, 7 * 24 * 60);
  int('stateMachineTimeoutMinutes.backfill', c.stateMachineTimeoutMinutes.backfill, 5, 365 * 24 * 60);
  if (!['off', 'metadata', 'sample', 'full'].includes(c.validate)) fail('validate', 'off, metadata, sample or full');
  if (!['changed', 'off'].includes(c.reprocess)) fail('reprocess', 'changed or off');
  for (const [key, s] of Object.entries(c.functions) as [FunctionKey, FunctionSizing][]) {
    int(`functions.${key}.memoryMiB`, s.memoryMiB, 128, 10240);
    int(`functions.${key}.timeoutSeconds`, s.timeoutSeconds, 1, 900);
    int(`functions.${key}.ephemeralStorageMiB`, s.ephemeralStorageMiB, 512, 10240);
  }
  for (const [field, expr] of [
    ['schedule.update', c.schedule.update],
    ['schedule.maintenance', c.schedule.maintenance],
  ] as const) {
    if (!/^(cron|rate)\(.+\)$/.test(expr)) fail(field, 'a cron(...) or rate(...) expression');
  }
  for (const arn of c.operatorPrincipalArns) {
    if (!/^arn:aws:(iam|sts)::\d{12}:.+$/.test(arn)) fail('operatorPrincipalArns', `not an IAM principal ARN: ${arn}`);
  }
}

/** `s3://bucket/prefix`. */
export function s3Uri(bucket: string, prefix: string): string {
  return `s3://${bucket}/${prefix}`;
}

/** A key prefix as S3 keys start with it: `prefix/`. */
export function keyPrefix(prefix: string): string {
  return `${prefix}/`;
}
