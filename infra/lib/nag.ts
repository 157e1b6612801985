// cdk-nag (v3) acknowledgements. Every one names the exact finding it covers (no rule
// is acknowledged wholesale) and carries the reason it is acceptable; they are made
// next to the grant or resource they concern, through these helpers.

import { Stack, Validations } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';
// cdk-nag's own rendering of a CloudFormation value in finding ids (`<Logical.Arn>/p/*`),
// so an acknowledgement matches the finding exactly; pinned with cdk-nag's version.
import { flattenCfnReference } from 'cdk-nag/lib/utils/flatten-cfn-reference';

/** Acknowledge the finding `id` (e.g. `AwsSolutions-S1`) on `scope` and everything under it. */
export function acknowledge(scope: IConstruct, id: string, reason: string): void {
  if (reason.trim().length < 40) throw new Error(`acknowledgement of ${id} needs a written reason, got ${JSON.stringify(reason)}`);
  Validations.of(scope).acknowledge({ id, reason });
}

/** The AwsSolutions-IAM5 finding id for a wildcard in `resource` (an ARN string or token). */
export function wildcardResourceFinding(scope: IConstruct, resource: string): string {
  return `AwsSolutions-IAM5[Resource::${flattenCfnReference(Stack.of(scope).resolve(resource))}]`;
}

/** Acknowledge the wildcard in `resource` on the role (or policy) `scope`. */
export function acknowledgeWildcardResource(scope: IConstruct, resource: string, reason: string): void {
  acknowledge(scope, wildcardResourceFinding(scope, resource), reason);
}

export const REASONS = {
  xrayLambda:
    'Resource "*" here holds only xray:PutTraceSegments and xray:PutTelemetryRecords (Lambda active tracing), ' +
    'which support no resource-level permissions.',
  stateMachineLogsAndTracing:
    'Resource "*" here holds only the CloudWatch Logs vended-delivery actions (logs:*LogDelivery*, ' +
    'PutResourcePolicy, DescribeResourcePolicies, DescribeLogGroups) and X-Ray trace actions that CDK adds for ' +
    'state-machine logging and tracing; none of them supports resource-level permissions.',
  accessLogsArtifacts:
    'The artifacts bucket holds pipeline-internal run outputs that expire with the lifecycle rule; only this ' +
    "stage's roles write them and their calls are in CloudTrail. Server access logs would add a second bucket " +
    'per stage to audit data that exists for days.',
  accessLogsStore:
    'A dev/staging store is a rehearsal copy of the public store, written only by the stage commit Lambda and ' +
    'read by the stage Lambdas; access logs would only repeat the Lambda and Step Functions logs.',
} as const;
