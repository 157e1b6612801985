// The deployed stages. Each is `defaults(stage)` (lib/config.ts) plus what is listed here;
// edit this file to change a stage. Values marked PLACEHOLDER must be replaced (or given
// with `-c edlSecretArn=... -c notificationEmail=...`) before `cdk deploy`: bin/mursst.ts
// refuses to synthesize a stage that still holds one unless `-c allowPlaceholders=true`.

import { type StageConfig, type StageName, stageConfig } from '../lib/config';

/** The account id used in placeholder ARNs; never a real account. */
export const PLACEHOLDER_ACCOUNT = '000000000000';
/** The reserved example domain used in placeholder addresses. */
export const PLACEHOLDER_EMAIL_DOMAIN = 'example.com';

export const STAGES: { readonly [S in StageName]: StageConfig } = {
  // A scratch store of its own: bucket and logs are deleted with the stack. Scheduled
  // runs are off until the store exists (create it with the backfill machine first).
  dev: stageConfig('dev', {
    store: { prefix: 'icechunk/MUR-JPL-L4-GLOB-v4.1-virtual' },
    artifacts: { prefix: 'mursst', expireRunsAfterDays: 7 },
    edlSecretArn: `arn:aws:secretsmanager:us-west-2:${PLACEHOLDER_ACCOUNT}:secret:mursst/dev/earthdata-PLHOLD`,
    notificationEmail: `mursst-dev@${PLACEHOLDER_EMAIL_DOMAIN}`,
    mapConcurrency: 4,
    schedule: { enabled: false },
    maintenance: { expireOlderThanDays: 7, pruneOlderThanDays: 2 },
    logRetentionDays: 14,
  }),

  // prod's twin on its own buckets: the release rehearsal for every change.
  staging: stageConfig('staging', {
    store: { prefix: 'icechunk/MUR-JPL-L4-GLOB-v4.1-virtual' },
    edlSecretArn: `arn:aws:secretsmanager:us-west-2:${PLACEHOLDER_ACCOUNT}:secret:mursst/staging/earthdata-PLHOLD`,
    notificationEmail: `mursst-staging@${PLACEHOLDER_EMAIL_DOMAIN}`,
    schedule: { update: 'cron(0 8 * * ? *)' },
    logRetentionDays: 30,
  }),

  // The public store: the existing bucket and the existing spec-v1 repository, which
  // the pipeline appends to without migrating. Both are imported, never owned.
  prod: stageConfig('prod', {
    store: {
      bucket: { kind: 'import', bucketName: 'nasa-eodc-public' },
      prefix: 'icechunk/MUR-JPL-L4-GLOB-v4.1-virtual-v2-p2',
    },
    edlSecretArn: `arn:aws:secretsmanager:us-west-2:${PLACEHOLDER_ACCOUNT}:secret:mursst/prod/earthdata-PLHOLD`,
    notificationEmail: `mursst-prod@${PLACEHOLDER_EMAIL_DOMAIN}`,
    mapConcurrency: 10,
    logRetentionDays: 365,
  }),
};

/** Whether a stage still carries a placeholder value that must not be deployed. */
export function placeholders(c: StageConfig): string[] {
  const found: string[] = [];
  if (c.edlSecretArn.includes(`:${PLACEHOLDER_ACCOUNT}:`)) found.push('edlSecretArn');
  if (c.notificationEmail.endsWith(`@${PLACEHOLDER_EMAIL_DOMAIN}`)) found.push('notificationEmail');
  if (c.account === PLACEHOLDER_ACCOUNT) found.push('account');
  return found;
}
