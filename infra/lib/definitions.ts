// The state machine definitions (`statemachine/*.asl.json`, JSONPath ASL) are read from
// disk and passed to CloudFormation with DefinitionSubstitutions; this module checks, at
// synth time, that a definition is JSON and uses no placeholder the stack cannot fill.

import * as fs from 'node:fs';
import * as path from 'node:path';

/** Every `${Name}` the stack substitutes, in both definitions. */
export const SUBSTITUTIONS = [
  'DiscoverFunctionArn',
  'GenerateRefsFunctionArn',
  'CommitFunctionArn',
  'ValidateFunctionArn',
  'MaterializeFunctionArn',
  'NotifyTopicArn',
  'ArtifactBucket',
  'ArtifactPrefix',
] as const;
export type SubstitutionName = (typeof SUBSTITUTIONS)[number];

export const DEFINITION_FILES = { update: 'update.asl.json', backfill: 'backfill.asl.json' } as const;
export type MachineKind = keyof typeof DEFINITION_FILES;

/** The `${Name}` placeholders in a definition's text, sorted and unique. */
export function placeholdersIn(text: string): string[] {
  return [...new Set([...text.matchAll(/\$\{([^}]*)\}/g)].map((m) => m[1]))].sort();
}

/**
 * Read `<dir>/<kind>.asl.json`, throwing with the file's name on anything the stack cannot
 * deploy, and set its top-level `TimeoutSeconds` (the stage config owns the execution
 * timeout; CloudFormation's StateMachine has no property for it).
 */
export function loadDefinition(dir: string, kind: MachineKind, timeoutSeconds: number): string {
  const file = path.join(dir, DEFINITION_FILES[kind]);
  if (!fs.existsSync(file)) {
    throw new Error(`${file}: no such state machine definition (definitionsDir is ${dir})`);
  }
  const text = fs.readFileSync(file, 'utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not JSON: ${(e as Error).message}`);
  }
  const states = (parsed as { States?: unknown }).States;
  if (typeof states !== 'object' || states === null || typeof (parsed as { StartAt?: unknown }).StartAt !== 'string') {
    throw new Error(`${file}: not an ASL definition (no StartAt / States)`);
  }
  const unknown = placeholdersIn(text).filter((p) => !(SUBSTITUTIONS as readonly string[]).includes(p));
  if (unknown.length > 0) {
    throw new Error(
      `${file}: placeholders the stack does not substitute: ${unknown.map((p) => '${' + p + '}').join(', ')} ` +
        `(known: ${SUBSTITUTIONS.join(', ')})`,
    );
  }
  return JSON.stringify({ ...(parsed as object), TimeoutSeconds: timeoutSeconds }, null, 2);
}
