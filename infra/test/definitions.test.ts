// The state machine definitions the stacks deploy (statemachine/*.asl.json, or the
// fixtures while those do not exist) keep the contract the stack relies on.

import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';

import { DEFINITION_FILES, SUBSTITUTIONS, loadDefinition, placeholdersIn } from '../lib/definitions';
import { DEFINITION_ORIGIN, DEFINITIONS_DIR } from './helpers';

type Json = Record<string, any>;

/** Every state in a definition, nested Map/Parallel states included. */
function allStates(def: Json): [string, Json][] {
  const out: [string, Json][] = [];
  const walk = (states: Json) => {
    for (const [name, s] of Object.entries<Json>(states ?? {})) {
      out.push([name, s]);
      if (s.ItemProcessor) walk(s.ItemProcessor.States);
      if (s.Iterator) walk(s.Iterator.States);
      for (const b of s.Branches ?? []) walk(b.States);
    }
  };
  walk(def.States);
  return out;
}

const FUNCTION_PLACEHOLDERS = SUBSTITUTIONS.filter((s) => s.endsWith('FunctionArn')).map((s) => '${' + s + '}');

function load(kind: keyof typeof DEFINITION_FILES): Json {
  return JSON.parse(loadDefinition(DEFINITIONS_DIR, kind, 3600));
}

/** The function a Task invokes: its Resource (direct form) or the lambda:invoke integration's FunctionName. */
function invoked(s: Json): string | undefined {
  const resource = String(s.Resource);
  if (resource.startsWith('arn:aws:states:::lambda:invoke')) return s.Parameters?.FunctionName ?? s.Arguments?.FunctionName;
  return resource.includes('FunctionArn}') || resource.startsWith('arn:aws:lambda:') ? resource : undefined;
}

describe('definitions', () => {
  for (const kind of ['update', 'backfill'] as const) {
    test(`${kind} (${DEFINITION_ORIGIN[kind]}): Lambdas only through the function substitutions, failures published to the topic`, () => {
      const def = load(kind);
      assert.equal(def.TimeoutSeconds, 3600);
      const states = allStates(def);
      const tasks = states.filter(([, s]) => s.Type === 'Task');
      const invokes = tasks.filter(([, s]) => invoked(s) !== undefined);
      assert.ok(invokes.length >= 4, `${invokes.length} Lambda tasks`);
      for (const [name, s] of invokes) {
        assert.ok(FUNCTION_PLACEHOLDERS.includes(invoked(s)!), `${name}: invokes ${invoked(s)}`);
      }
      // Every Task is a Lambda, an SNS publish, or (the backfill's Map) an S3 integration.
      for (const [name, s] of tasks) {
        assert.ok(
          invoked(s) !== undefined || /^arn:aws:states:::(sns:publish|s3:)/.test(String(s.Resource)),
          `${name}: unexpected Task resource ${s.Resource}`,
        );
      }
      const used = new Set(invokes.map(([, s]) => invoked(s)));
      for (const f of [
        '${DiscoverFunctionArn}',
        '${GenerateRefsFunctionArn}',
        '${CommitFunctionArn}',
        '${ValidateFunctionArn}',
        '${MaterializeFunctionArn}',
      ]) {
        assert.ok(used.has(f), `${f} invoked`);
      }
      const publishes = states.filter(([, s]) => s.Type === 'Task' && String(s.Resource).startsWith('arn:aws:states:::sns:publish'));
      assert.ok(publishes.length >= 1, 'an sns:publish task');
      for (const [name, s] of publishes) {
        assert.equal(s.Parameters?.TopicArn ?? s.Arguments?.TopicArn, '${NotifyTopicArn}', name);
      }
      // No other ARN is hard-coded: every resource the machine touches comes from the stack.
      const text = JSON.stringify(def);
      assert.ok(!/arn:aws:(lambda|sns|s3):/.test(text), 'a hard-coded Lambda, SNS or S3 ARN');
      // Map concurrency comes from the execution input, never a fixed number or a substitution.
      const maps = states.filter(([, s]) => s.Type === 'Map');
      assert.ok(maps.length >= 1);
      for (const [name, m] of maps) {
        assert.ok(m.MaxConcurrencyPath, `${name}: MaxConcurrencyPath`);
        assert.equal(m.MaxConcurrency, undefined, `${name}: a fixed MaxConcurrency`);
      }
    });
  }

  test('both machines route native days to the materialize Lambda, then write again', () => {
    for (const kind of ['update', 'backfill'] as const) {
      const states = allStates(load(kind));
      const byName = Object.fromEntries(states);
      const materialize = states.filter(([, s]) => s.Type === 'Task' && s.Resource === '${MaterializeFunctionArn}');
      assert.equal(materialize.length, 1, kind);
      // The Choice after the write sends a write that asked for native days to the Map
      // around that Task, which goes back to the write.
      const write = kind === 'update' ? 'WriteBranch' : 'CommitBatch';
      const choice = byName[byName[write].Next];
      assert.equal(choice.Type, 'Choice', kind);
      const [rule] = choice.Choices;
      assert.equal(rule.IsPresent, true, kind);
      assert.match(rule.Variable, /\.materialize\[0\]$/, kind);
      const map = byName[rule.Next];
      assert.equal(map.Type, 'Map', kind);
      assert.equal(map.ItemProcessor.States[map.ItemProcessor.StartAt].Resource, '${MaterializeFunctionArn}', kind);
      assert.equal(map.Next, write, `${kind}: back to the write`);
      assert.equal(map.ResultPath, null, `${kind}: the chunks travel as artifacts`);
    }
  });

  test('backfill: a Distributed Map reading its manifest from, and writing results to, the artifact prefix', () => {
    const maps = allStates(load('backfill')).filter(
      ([, s]) => s.Type === 'Map' && s.ItemProcessor?.ProcessorConfig?.Mode === 'DISTRIBUTED' && s.ItemReader,
    );
    assert.equal(maps.length, 1);
    const [, m] = maps[0];
    for (const part of ['ItemReader', 'ResultWriter']) {
      const args = m[part]?.Parameters ?? m[part]?.Arguments;
      assert.ok(args, `${part} present`);
      assert.equal(args.Bucket, '${ArtifactBucket}', `${part}.Bucket`);
      assert.ok(JSON.stringify(args).includes('${ArtifactPrefix}'), `${part} stays under \${ArtifactPrefix}`);
    }
  });

  test('update: the Map over granules runs inline', () => {
    const maps = allStates(load('update')).filter(([, s]) => s.Type === 'Map');
    for (const [name, m] of maps) assert.notEqual(m.ItemProcessor?.ProcessorConfig?.Mode, 'DISTRIBUTED', name);
  });
});

describe('loadDefinition refuses', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mursst-infra-asl-'));
  const write = (text: string) => fs.writeFileSync(path.join(dir, 'update.asl.json'), text);

  test('a missing file', () => {
    assert.throws(() => loadDefinition(path.join(dir, 'none'), 'update', 60), /update\.asl\.json: no such state machine definition/);
  });
  test('text that is not JSON', () => {
    write('{"StartAt": ');
    assert.throws(() => loadDefinition(dir, 'update', 60), /not JSON/);
  });
  test('JSON that is not ASL', () => {
    write('{"States": {}}');
    assert.throws(() => loadDefinition(dir, 'update', 60), /not an ASL definition/);
  });
  test('a placeholder the stack does not substitute', () => {
    write('{"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "${PromoteFunctionArn}", "End": true}}}');
    assert.throws(() => loadDefinition(dir, 'update', 60), /placeholders the stack does not substitute: \$\{PromoteFunctionArn\}/);
  });
  test('and placeholdersIn lists each placeholder once', () => {
    assert.deepEqual(placeholdersIn('${B} ${A} ${B} $.x States.Format(\'{}\')'), ['A', 'B']);
  });
});
