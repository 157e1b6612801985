// S3 access scoped to one key prefix of one bucket: the only shape of S3 grant the stack
// makes (no bucket-wide object access, no `s3:*`).

import * as iam from 'aws-cdk-lib/aws-iam';
import type * as s3 from 'aws-cdk-lib/aws-s3';

import { keyPrefix } from './config';
import { acknowledgeWildcardResource } from './nag';

/** A key prefix in a bucket (non-empty, without leading or trailing slash). */
export interface PrefixLocation {
  readonly bucket: s3.IBucket;
  readonly prefix: string;
}

export const READ_ACTIONS = ['s3:GetObject'] as const;
export const LIST_ACTIONS = ['s3:ListBucket'] as const;
export const WRITE_ACTIONS = ['s3:PutObject', 's3:AbortMultipartUpload'] as const;
export const DELETE_ACTIONS = ['s3:DeleteObject'] as const;

/** `arn:…:s3:::bucket/prefix/*`: every object under the prefix. */
export function objectsArn(loc: PrefixLocation): string {
  return loc.bucket.arnForObjects(`${keyPrefix(loc.prefix)}*`);
}

/** ListBucket on the bucket, limited by condition to listings of the prefix. */
function listStatement(loc: PrefixLocation): iam.PolicyStatement {
  return new iam.PolicyStatement({
    actions: [...LIST_ACTIONS],
    resources: [loc.bucket.bucketArn],
    conditions: { StringLike: { 's3:prefix': [loc.prefix, `${loc.prefix}/*`] } },
  });
}

export type Access = 'read' | 'read-write' | 'read-write-delete';

/** The statements granting `access` under `loc`. */
export function prefixStatements(loc: PrefixLocation, access: Access): iam.PolicyStatement[] {
  const objectActions: string[] = [...READ_ACTIONS];
  if (access !== 'read') objectActions.push(...WRITE_ACTIONS);
  if (access === 'read-write-delete') objectActions.push(...DELETE_ACTIONS);
  return [
    new iam.PolicyStatement({ actions: objectActions, resources: [objectsArn(loc)] }),
    listStatement(loc),
  ];
}

/**
 * Grant `access` under `loc` to `role`, acknowledging cdk-nag's wildcard finding for
 * the `prefix/*` object ARN with `why` (why this role needs the objects under it).
 */
export function grantPrefix(role: iam.Role, loc: PrefixLocation, access: Access, why: string): void {
  for (const statement of prefixStatements(loc, access)) role.addToPrincipalPolicy(statement);
  acknowledgeWildcardResource(
    role,
    objectsArn(loc),
    `${why}. The wildcard is the key prefix ${JSON.stringify(keyPrefix(loc.prefix))}: object keys under it ` +
      '(content-addressed icechunk objects, per-run artifacts, dated granules) are not known in advance.',
  );
}
