#!/usr/bin/env node
// Runs one execution of a real state-machine definition with aws-local-stepfunctions,
// every Lambda Task served by the real handler binary through a Lambda Runtime API
// emulator, SNS publishes sent to a real (moto) SNS endpoint; what is emulated, and how,
// is below.
//
//   node tests/sfn/run.mjs --definition FILE --substitutions JSON --lambdas JSON
//        --input JSON --out RESULT [--sns-endpoint URL] [--s3-endpoint URL]
//        [--start-at STATE --state-input JSON] [--inline-distributed-map]
//        [--retry-interval-ms N] [--crash-first MATCH]... [--execution-name NAME]
//
// What is emulated, and how:
// - `${Name}` placeholders are replaced from the substitutions file (any left over is an
//   error), then the definition is validated with asl-validator 4.
// - Lambda Tasks (Resource = a function ARN from --lambdas, anywhere: top level, Map
//   ItemProcessor/Iterator, Parallel branches) get a `taskResourceLocalHandlers`
//   override, keyed by state name, that invokes the function as Lambda does: a pool of
//   sandboxes per function, each one process of the binary with its own Runtime API
//   server on 127.0.0.1 (as every Lambda execution environment has its own), one
//   invocation at a time per sandbox; a concurrent invocation starts another sandbox
//   (a cold start), a finished sandbox is reused (warm). The handler's
//   `POST .../error` body becomes an Error whose `name` is its `errorType` (what Retry
//   and Catch match) and whose message, hence the Catch output's `Cause`, is that body
//   as a JSON string, as Step Functions reports a Lambda function error. A sandbox
//   that exits mid-invocation fails it with `Lambda.Unknown`, as Lambda reports a
//   crashed sandbox; the next invocation gets a fresh sandbox.
// - `arn:aws:states:::sns:publish` Tasks POST a SigV4-signed SNS `Publish` (query
//   protocol) to --sns-endpoint; an object `Message` is JSON-stringified, as Step
//   Functions does. An error answer fails the Task as `SNS.<Code>`.
// - --inline-distributed-map: a Map whose ItemProcessor.ProcessorConfig.Mode is
//   DISTRIBUTED becomes an inline Map over the same child inputs. Its ItemReader (an S3
//   JSON array) becomes a Task state `<Map>.ItemReader` inserted before it (taking over
//   every transition to the Map, and its Catch), which GETs the object from
//   --s3-endpoint (path-style, SigV4-signed) and, with an ItemBatcher, groups the items as
//   Step Functions does: `{"Items": [...up to MaxItemsPerBatch], "BatchInput": {...}}`.
//   The result lands at `$.__mursst_items.<Map>` and the Map's ItemsPath points there
//   (so the Map's own output, when its ResultPath keeps the input, still carries that
//   field). A ResultWriter is dropped: with a ResultPath of null (the backfill's case)
//   nothing reads the Map's result; otherwise the Map's result becomes what a
//   ResultWriter makes Step Functions return, `{"MapRunArn", "ResultWriterDetails":
//   {"Bucket", "Key"}}` (no results are written to S3). ToleratedFailure* other than 0,
//   an ItemSelector together with an ItemBatcher, or an InputPath are refused.
// - --start-at STATE --state-input FILE: the execution starts at that top-level state
//   with that input (a redrive of the failed state and everything after it).
// - A function whose --lambdas entry has `"limits": true` runs each sandbox as Lambda sizes
//   it: a memory cgroup limited to `memory_mb` (cgroup v1 under /sys/fs/cgroup/memory, or
//   v2), a CPU quota of memory_mb / 1769 vCPUs (Lambda's ratio) where the cpu controller is
//   there, its own TMPDIR (Lambda's /tmp), and `timeout_s`. An invocation the kernel kills
//   for memory fails `Runtime.OutOfMemory`; one past its timeout is killed and fails
//   `Sandbox.Timedout`. Each invocation records its peak RSS (VmHWM, reset when the event
//   is delivered), the cgroup's peak charge, and the peak size of its TMPDIR.
// - Every state with a Retry waits --retry-interval-ms (default 50) between attempts;
//   `--retry-interval-ms definition` keeps the definition's own intervals and backoff.
// - --crash-first MATCH (repeatable): the first invocation whose event JSON contains
//   MATCH has its sandbox killed (SIGKILL) once the handler has logged the invocation
//   (or, if it answers first, instead of delivering that answer): a crash mid-invocation.
//
// Output (--out): {status, output, error, cause, events, logs_dir}; events are the
// execution's event log plus one `LambdaInvocation` / `SnsPublish` event per call (an
// invocation Step Functions would not have made, a failed Map's queued iteration, has
// `abandoned: true`).
// Exit code 0 when the execution ran (whatever its status), 2 when the harness failed.

import { spawn } from "node:child_process";
import { createHash, createHmac, randomUUID } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";

// aws-local-stepfunctions 3 wants Node 22 for this one API; Node 20 lacks it.
if (typeof Promise.withResolvers !== "function") {
  Promise.withResolvers = function withResolvers() {
    let resolve;
    let reject;
    const promise = new this((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}
const { StateMachine, ExecutionError, ExecutionTimeoutError } = await import("aws-local-stepfunctions");
const { default: aslValidator } = await import("asl-validator");

const SNS_PUBLISH = "arn:aws:states:::sns:publish";
const S3_GET_OBJECT = "arn:aws:states:::s3:getObject";
const ITEMS_ROOT = "__mursst_items";

class HarnessError extends Error {}

function fail(message) {
  throw new HarnessError(message);
}

// ---------------------------------------------------------------------------------------
// Command line

function parseArgs(argv) {
  const opts = { crashFirst: [], retryIntervalMs: 50, inlineDistributedMap: false };
  const valued = {
    "--definition": "definition",
    "--substitutions": "substitutions",
    "--lambdas": "lambdas",
    "--input": "input",
    "--out": "out",
    "--sns-endpoint": "snsEndpoint",
    "--s3-endpoint": "s3Endpoint",
    "--start-at": "startAt",
    "--state-input": "stateInput",
    "--retry-interval-ms": "retryIntervalMs",
    "--execution-name": "executionName",
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--inline-distributed-map") {
      opts.inlineDistributedMap = true;
    } else if (arg === "--crash-first") {
      if (i + 1 >= argv.length) fail("--crash-first needs a value");
      opts.crashFirst.push(argv[++i]);
    } else if (arg in valued) {
      if (i + 1 >= argv.length) fail(`${arg} needs a value`);
      opts[valued[arg]] = argv[++i];
    } else {
      fail(`unknown argument ${arg}`);
    }
  }
  for (const need of ["definition", "lambdas", "input", "out"]) {
    if (!opts[need]) fail(`--${need} is required`);
  }
  if ((opts.startAt === undefined) !== (opts.stateInput === undefined)) {
    fail("--start-at and --state-input go together");
  }
  if (opts.retryIntervalMs !== "definition") {
    opts.retryIntervalMs = Number(opts.retryIntervalMs);
    if (!Number.isFinite(opts.retryIntervalMs) || opts.retryIntervalMs < 0) {
      fail("--retry-interval-ms must be a number >= 0, or definition");
    }
  }
  return opts;
}

function readJson(file, what) {
  let text;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    fail(`${what} ${file}: ${e.message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    fail(`${what} ${file} is not JSON: ${e.message}`);
  }
}

// ---------------------------------------------------------------------------------------
// The definition: substitutions, validation, walking every state

function substitute(text, substitutions, file) {
  const out = text.replace(/\$\{([A-Za-z0-9_]+)\}/g, (whole, name) =>
    Object.hasOwn(substitutions, name) ? String(substitutions[name]) : whole,
  );
  const left = [...new Set([...out.matchAll(/\$\{([A-Za-z0-9_]+)\}/g)].map((m) => m[1]))];
  if (left.length > 0) fail(`${file}: no substitution for ${left.map((n) => "${" + n + "}").join(", ")}`);
  return out;
}

function validate(definition, file) {
  // The validator annotates the states it reads; give it a copy.
  const result = aslValidator(structuredClone(definition), { checkPaths: true, checkArn: true });
  if (!result.isValid) fail(`${file} is not a valid state machine:\n${result.errorsText("\n")}`);
}

// Call fn(states, name, state) for every state, nested ones too.
function forEachState(machine, fn) {
  for (const [name, state] of Object.entries(machine.States)) {
    fn(machine.States, name, state);
    if (state.Type === "Map") {
      const inner = state.ItemProcessor ?? state.Iterator;
      if (inner) forEachState(inner, fn);
    } else if (state.Type === "Parallel") {
      for (const branch of state.Branches) forEachState(branch, fn);
    }
  }
}

// Step Functions stops a Map at its first failed iteration (no failures tolerated): it
// starts no more. aws-local-stepfunctions goes on starting the queued ones, and the
// harness lets them run; they are marked `abandoned` (started at or after the failure of
// their Map, or of the execution) so that no one counts them as the execution's work.
function markAbandoned(definition, events, records) {
  const mapOf = {};
  const walk = (machine, map) => {
    for (const [name, state] of Object.entries(machine.States)) {
      if (map) mapOf[name] = map;
      if (state.Type === "Map") {
        const inner = state.ItemProcessor ?? state.Iterator;
        if (inner) walk(inner, name);
      } else if (state.Type === "Parallel") {
        for (const branch of state.Branches) walk(branch, map);
      }
    }
  };
  walk(definition, null);
  const failedAt = {};
  let endedAt = Infinity;
  for (const e of events) {
    if (e.type === "StateFailed" && e.index === undefined && failedAt[e.state?.name] === undefined) {
      failedAt[e.state.name] = e.timestamp;
    }
    if (e.type === "ExecutionFailed" || e.type === "ExecutionSucceeded") endedAt = Math.min(endedAt, e.timestamp);
  }
  for (const r of records) {
    const map = mapOf[r.state];
    if (r.timestamp >= endedAt || (map && r.timestamp >= (failedAt[map] ?? Infinity))) r.abandoned = true;
  }
}

// Every place a machine names a state it transitions to, as [object, key] pairs.
function transitionsIn(machine) {
  const out = [[machine, "StartAt"]];
  for (const state of Object.values(machine.States)) {
    if (state.Next !== undefined) out.push([state, "Next"]);
    if (state.Default !== undefined) out.push([state, "Default"]);
    for (const c of state.Choices ?? []) out.push([c, "Next"]);
    for (const c of state.Catch ?? []) out.push([c, "Next"]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// --inline-distributed-map

function inlineDistributedMaps(machine, readers) {
  for (const [name, state] of Object.entries({ ...machine.States })) {
    if (state.Type === "Map") {
      const inner = state.ItemProcessor ?? state.Iterator;
      if (inner) inlineDistributedMaps(inner, readers);
      if (state.ItemProcessor?.ProcessorConfig?.Mode === "DISTRIBUTED") inlineOne(machine, name, state, readers);
    } else if (state.Type === "Parallel") {
      for (const branch of state.Branches) inlineDistributedMaps(branch, readers);
    }
  }
}

function inlineOne(machine, name, state, readers) {
  const refuse = (why) => fail(`--inline-distributed-map: Map ${name}: ${why}`);
  if (state.InputPath !== undefined && state.InputPath !== "$") refuse("an InputPath is not supported");
  for (const field of ["ToleratedFailurePercentage", "ToleratedFailureCount"]) {
    if (state[field] !== undefined && state[field] !== 0) refuse(`${field} ${state[field]} is not emulated (an inline Map fails on the first failure)`);
  }
  for (const field of ["ToleratedFailurePercentagePath", "ToleratedFailureCountPath"]) {
    if (state[field] !== undefined) refuse(`${field} is not emulated`);
  }
  if (state.ItemBatcher && (state.ItemSelector || state.Parameters)) refuse("an ItemSelector with an ItemBatcher is not emulated");
  const batcher = state.ItemBatcher;
  if (batcher && (batcher.MaxInputBytesPerBatch !== undefined || batcher.MaxInputBytesPerBatchPath !== undefined)) {
    refuse("ItemBatcher.MaxInputBytesPerBatch is not emulated");
  }
  const itemsPath = `$.${ITEMS_ROOT}.${name.replace(/[^A-Za-z0-9_]/g, "_")}`;
  if (state.ItemReader) {
    const reader = state.ItemReader;
    if (reader.Resource !== S3_GET_OBJECT) refuse(`ItemReader.Resource ${reader.Resource} is not emulated (only ${S3_GET_OBJECT})`);
    if (reader.ReaderConfig?.InputType !== "JSON") refuse("only ItemReader.ReaderConfig.InputType JSON is emulated");
    if (reader.ReaderConfig?.MaxItems !== undefined || reader.ReaderConfig?.MaxItemsPath !== undefined) refuse("ReaderConfig.MaxItems is not emulated");
    const readerName = `${name}.ItemReader`;
    const parameters = { ...reader.Parameters };
    if (batcher) {
      if (batcher.BatchInput !== undefined) parameters.BatchInput = batcher.BatchInput;
      if (batcher.MaxItemsPerBatch !== undefined) parameters.MaxItemsPerBatch = batcher.MaxItemsPerBatch;
      if (batcher.MaxItemsPerBatchPath !== undefined) parameters["MaxItemsPerBatch.$"] = batcher.MaxItemsPerBatchPath;
    }
    const readerState = {
      Type: "Task",
      Comment: `Emulates the ItemReader${batcher ? " and ItemBatcher" : ""} of the distributed Map ${name}.`,
      Resource: S3_GET_OBJECT,
      Parameters: parameters,
      ResultPath: itemsPath,
      Next: name,
    };
    if (state.Catch) readerState.Catch = structuredClone(state.Catch);
    for (const [obj, key] of transitionsIn(machine)) {
      if (obj[key] === name && obj !== readerState) obj[key] = readerName;
    }
    machine.States[readerName] = readerState;
    readers.set(readerName, { map: name, batched: Boolean(batcher) });
    delete state.ItemReader;
    state.ItemsPath = itemsPath;
  } else if (batcher) {
    refuse("an ItemBatcher without an ItemReader is not emulated");
  }
  delete state.ItemBatcher;
  if (state.ResultWriter) {
    if (state.ResultPath !== null) {
      if (state.ResultSelector) refuse("a ResultSelector with a ResultWriter is not emulated");
      const p = state.ResultWriter.Parameters ?? {};
      state.ResultSelector = {
        MapRunArn: `arn:aws:states:us-west-2:123456789012:mapRun:emulated/${name}`,
        ResultWriterDetails: { Bucket: p.Bucket ?? "", Key: `${p.Prefix ?? ""}/emulated/manifest.json` },
      };
    }
    delete state.ResultWriter;
  }
  delete state.ToleratedFailurePercentage;
  delete state.ToleratedFailureCount;
  delete state.Label;
  state.ItemProcessor.ProcessorConfig = { Mode: "INLINE" };
}

async function readItems(s3Endpoint, input, readerName) {
  if (!s3Endpoint) fail(`${readerName}: --s3-endpoint is needed to read the ItemReader's object`);
  const { Bucket, Key } = input;
  if (typeof Bucket !== "string" || typeof Key !== "string") fail(`${readerName}: Bucket and Key must be strings`);
  const url = `${s3Endpoint.replace(/\/$/, "")}/${encodeURIComponent(Bucket)}/${Key.split("/").map(encodeURIComponent).join("/")}`;
  // Signed as Step Functions' own GetObject is (with the execution role's credentials).
  const headers = sigv4Headers({
    method: "GET",
    url,
    region: process.env.AWS_REGION || "us-west-2",
    service: "s3",
    body: "",
    accessKey: process.env.AWS_ACCESS_KEY_ID || "testing",
    secretKey: process.env.AWS_SECRET_ACCESS_KEY || "testing",
    sessionToken: process.env.AWS_SESSION_TOKEN,
  });
  const res = await fetch(url, { headers });
  const text = await res.text();
  if (!res.ok) {
    const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? `HTTP${res.status}`;
    throw namedError(`S3.${code}`, `GET s3://${Bucket}/${Key}: ${res.status} ${text.slice(0, 500)}`);
  }
  let items;
  try {
    items = JSON.parse(text);
  } catch (e) {
    throw namedError("States.ItemReaderFailed", `s3://${Bucket}/${Key} is not JSON: ${e.message}`);
  }
  if (!Array.isArray(items)) throw namedError("States.ItemReaderFailed", `s3://${Bucket}/${Key} is not a JSON array`);
  if (input.MaxItemsPerBatch === undefined && input.BatchInput === undefined) return items;
  const size = input.MaxItemsPerBatch ?? items.length;
  if (!Number.isInteger(size) || size < 1) fail(`${readerName}: MaxItemsPerBatch must be an integer >= 1`);
  const batches = [];
  for (let i = 0; i < items.length; i += size) {
    const batch = { Items: items.slice(i, i + size) };
    if (input.BatchInput !== undefined) batch.BatchInput = input.BatchInput;
    batches.push(batch);
  }
  return batches;
}

function namedError(name, message) {
  const e = new Error(message);
  e.name = name;
  return e;
}

// ---------------------------------------------------------------------------------------
// Logs: one JSON-lines file per function, every line tagged with its sandbox

class LogFile {
  constructor(file) {
    this.stream = fs.createWriteStream(file, { flags: "a" });
  }
  line(sandbox, stream, text) {
    let record;
    try {
      const parsed = JSON.parse(text);
      record = parsed && typeof parsed === "object" && !Array.isArray(parsed) ? { sandbox, stream, ...parsed } : null;
    } catch {
      record = null;
    }
    this.stream.write(JSON.stringify(record ?? { sandbox, stream, text }) + "\n");
  }
  close() {
    return new Promise((resolve) => this.stream.end(resolve));
  }
}

// ---------------------------------------------------------------------------------------
// Lambda's limits on one sandbox: a memory cgroup, a CPU quota, its own /tmp

// Lambda gives one vCPU per 1,769 MB of memory.
const MB_PER_VCPU = 1769;

class Limits {
  static create(root, id, config) {
    if (!root) fail(`${id}: "limits" needs a writable cgroup hierarchy (v1 /sys/fs/cgroup/memory or v2 /sys/fs/cgroup)`);
    const memoryMb = Number(config.memory_mb);
    if (!Number.isFinite(memoryMb) || memoryMb <= 0) fail(`${id}: "limits" needs memory_mb`);
    return new Limits(root, id, memoryMb);
  }

  // The cgroup hierarchy this machine has, with a directory made for this harness run; null
  // when there is none we may write.
  static root(runId) {
    const v1 = "/sys/fs/cgroup/memory";
    const tryMake = (dir) => {
      try {
        fs.mkdirSync(dir, { recursive: true });
        return true;
      } catch {
        return false;
      }
    };
    if (fs.existsSync(path.join(v1, "memory.limit_in_bytes"))) {
      const memory = path.join(v1, `mursst-sfn-${runId}`);
      if (!tryMake(memory)) return null;
      const cpuBase = "/sys/fs/cgroup/cpu";
      const cpu = fs.existsSync(path.join(cpuBase, "cpu.cfs_quota_us")) && tryMake(path.join(cpuBase, `mursst-sfn-${runId}`))
        ? path.join(cpuBase, `mursst-sfn-${runId}`)
        : null;
      return { version: 1, memory, cpu };
    }
    const v2 = "/sys/fs/cgroup";
    if (fs.existsSync(path.join(v2, "cgroup.controllers"))) {
      const dir = path.join(v2, `mursst-sfn-${runId}`);
      if (!tryMake(dir)) return null;
      try {
        fs.writeFileSync(path.join(dir, "cgroup.subtree_control"), "+memory +cpu");
      } catch {
        try {
          fs.writeFileSync(path.join(dir, "cgroup.subtree_control"), "+memory");
        } catch {
          return null;
        }
      }
      const cpu = fs.readFileSync(path.join(dir, "cgroup.subtree_control"), "utf8").includes("cpu");
      return { version: 2, memory: dir, cpu: cpu ? dir : null };
    }
    return null;
  }

  static removeRoot(root) {
    for (const dir of new Set([root?.memory, root?.cpu].filter(Boolean))) {
      try {
        fs.rmdirSync(dir);
      } catch {}
    }
  }

  constructor(root, id, memoryMb) {
    this.version = root.version;
    this.memoryMb = memoryMb;
    this.vcpus = memoryMb / MB_PER_VCPU;
    this.memory = path.join(root.memory, id);
    this.cpu = root.cpu ? path.join(root.cpu, id) : null;
    fs.mkdirSync(this.memory);
    if (this.cpu && this.cpu !== this.memory) fs.mkdirSync(this.cpu);
    const bytes = String(memoryMb * 1024 * 1024);
    const period = 100_000;
    const quota = String(Math.max(1000, Math.round(period * this.vcpus)));
    if (this.version === 1) {
      fs.writeFileSync(path.join(this.memory, "memory.limit_in_bytes"), bytes);
      if (this.cpu) {
        fs.writeFileSync(path.join(this.cpu, "cpu.cfs_period_us"), String(period));
        fs.writeFileSync(path.join(this.cpu, "cpu.cfs_quota_us"), quota);
      }
    } else {
      fs.writeFileSync(path.join(this.memory, "memory.max"), bytes);
      try {
        fs.writeFileSync(path.join(this.memory, "memory.swap.max"), "0");
      } catch {}
      if (this.cpu) fs.writeFileSync(path.join(this.cpu, "cpu.max"), `${quota} ${period}`);
    }
    this.tmpdir = fs.mkdtempSync(path.join(os.tmpdir(), `mursst-sandbox-${id}-`));
    this.tmpPeak = 0;
  }

  joinScript() {
    const dirs = [...new Set([this.memory, this.cpu].filter(Boolean))];
    return dirs.map((d) => `echo $$ > '${d}/cgroup.procs' &&`).join(" ");
  }

  read(dir, file) {
    try {
      return fs.readFileSync(path.join(dir, file), "utf8");
    } catch {
      return "";
    }
  }

  oomKills() {
    const text = this.read(this.memory, this.version === 1 ? "memory.oom_control" : "memory.events");
    return Number(/^oom_kill (\d+)/m.exec(text)?.[1] ?? 0);
  }

  resetPeaks(pid) {
    try {
      fs.writeFileSync(`/proc/${pid}/clear_refs`, "5");
    } catch {}
    try {
      fs.writeFileSync(path.join(this.memory, this.version === 1 ? "memory.max_usage_in_bytes" : "memory.peak"), "0");
    } catch {}
    this.tmpPeak = 0;
    this.pollTmp();
  }

  pollTmp() {
    this.tmpPeak = Math.max(this.tmpPeak, dirBytes(this.tmpdir));
  }

  usage(pid) {
    this.pollTmp();
    let peakRss = null;
    try {
      const kb = /^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
      if (kb !== undefined) peakRss = Number(kb) * 1024;
    } catch {}
    const charged = Number(this.read(this.memory, this.version === 1 ? "memory.max_usage_in_bytes" : "memory.peak").trim()) || null;
    return {
      peak_rss_bytes: peakRss,
      cgroup_peak_bytes: charged,
      tmp_peak_bytes: this.tmpPeak,
      memory_limit_mb: this.memoryMb,
      cpu_quota_vcpus: this.cpu ? this.vcpus : null,
      cgroup_version: this.version,
    };
  }

  remove() {
    for (const dir of new Set([this.memory, this.cpu].filter(Boolean))) {
      for (let i = 0; i < 20; i++) {
        try {
          fs.rmdirSync(dir);
          break;
        } catch {
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
        }
      }
    }
    fs.rmSync(this.tmpdir, { recursive: true, force: true });
  }
}

// Bytes of the files under `dir` (0 if it is gone).
function dirBytes(dir) {
  let total = 0;
  let entries;
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    try {
      if (e.isDirectory()) total += dirBytes(p);
      else if (e.isFile()) total += fs.statSync(p).blocks * 512;
    } catch {}
  }
  return total;
}

// ---------------------------------------------------------------------------------------
// The Lambda Runtime API emulator

const RUNTIME = "/2018-06-01/runtime";

class LambdaFunctionError extends Error {}

function lambdaError(errorType, cause) {
  // Step Functions: Error = the errorType, Cause = the function's error document.
  const e = new LambdaFunctionError(JSON.stringify(cause));
  e.name = errorType;
  return e;
}

class Sandbox {
  constructor(fn, id) {
    this.fn = fn;
    this.id = id;
    this.current = null; // the invocation it is handling (assigned, maybe not yet delivered)
    this.pendingNext = null; // the runtime's long-poll `next` request, waiting for an event
    this.dead = false;
    this.initError = null;
    this.stderrTail = [];
    this.exited = new Promise((resolve) => (this.onExited = resolve));
  }

  async start() {
    this.server = http.createServer((req, res) => this.route(req, res));
    this.server.keepAliveTimeout = 0;
    await new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(0, "127.0.0.1", resolve);
    });
    const port = this.server.address().port;
    const { config, name } = this.fn;
    const limits = config.limits ? Limits.create(this.fn.cgroupRoot, this.id, config) : null;
    this.limits = limits;
    const env = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: process.env.HOME ?? "/tmp",
      ...(limits ? { TMPDIR: limits.tmpdir } : {}),
      AWS_LAMBDA_RUNTIME_API: `127.0.0.1:${port}`,
      AWS_LAMBDA_FUNCTION_NAME: name,
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(config.memory_mb ?? 1024),
      AWS_LAMBDA_FUNCTION_VERSION: "$LATEST",
      AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${name}`,
      AWS_LAMBDA_LOG_STREAM_NAME: `emulated/${this.id}`,
      AWS_EXECUTION_ENV: "AWS_Lambda_provided.al2023",
      LAMBDA_TASK_ROOT: path.dirname(config.command),
      ...(config.env ?? {}),
    };
    // Under limits the process joins its cgroups before it execs the handler, so every
    // byte the handler allocates is charged there.
    const [command, args] = limits
      ? ["/bin/sh", ["-c", `${limits.joinScript()} exec "$0" "$@"`, config.command, ...(config.args ?? [])]]
      : [config.command, config.args ?? []];
    this.process = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    this.pid = this.process.pid;
    this.process.once("error", (e) => {
      this.spawnError = e.message;
    });
    for (const stream of ["stdout", "stderr"]) {
      const lines = readline.createInterface({ input: this.process[stream], crlfDelay: Infinity });
      lines.on("line", (text) => this.onLine(stream, text));
    }
    this.process.once("close", (code, signal) => this.onExit(code, signal));
    this.fn.log.line(this.id, "harness", JSON.stringify({ message: "sandbox started", pid: this.pid, port }));
  }

  onLine(stream, text) {
    this.fn.log.line(this.id, stream, text);
    this.stderrTail.push(text);
    if (this.stderrTail.length > 20) this.stderrTail.shift();
    const inv = this.current;
    if (inv?.crash && inv.delivered && text.includes(inv.requestId)) this.crash(inv, "after the handler logged the invocation");
  }

  crash(inv, when) {
    if (inv.crashedAt) return;
    inv.crashedAt = when;
    this.fn.log.line(this.id, "harness", JSON.stringify({ message: `--crash-first: SIGKILL ${when}`, request: inv.requestId }));
    this.process.kill("SIGKILL");
  }

  onExit(code, signal) {
    this.dead = true;
    this.fn.log.line(this.id, "harness", JSON.stringify({ message: "sandbox exited", code, signal }));
    const how = signal ? `signal: ${signal}` : `exit status ${code}`;
    const inv = this.current;
    const oomKilled = this.limits?.oomKills() > 0;
    if (inv && !inv.settled && (oomKilled || inv.timedOut)) {
      inv.measure?.();
      inv.fail(
        oomKilled
          ? lambdaError("Runtime.OutOfMemory", {
              errorType: "Runtime.OutOfMemory",
              errorMessage: `RequestId: ${inv.requestId} Error: Runtime exited with error: ${how} (memory limit ${this.fn.config.memory_mb} MB)`,
            })
          : lambdaError("Sandbox.Timedout", {
              errorType: "Sandbox.Timedout",
              errorMessage: `RequestId: ${inv.requestId} Error: Task timed out after ${Number(this.fn.config.timeout_s).toFixed(2)} seconds`,
            }),
      );
    }
    if (inv && !inv.settled) {
      const detail = this.initError
        ? `init error ${JSON.stringify(this.initError)}`
        : this.spawnError
          ? `cannot start ${this.fn.config.command}: ${this.spawnError}`
          : `last output: ${this.stderrTail.slice(-5).join(" | ")}`;
      inv.fail(
        lambdaError("Lambda.Unknown", {
          errorType: "Runtime.ExitError",
          errorMessage: `RequestId: ${inv.requestId} Error: Runtime exited with error: ${how}; ${detail}`,
        }),
      );
    }
    this.current = null;
    if (this.pendingNext) {
      this.pendingNext.destroy();
      this.pendingNext = null;
    }
    this.server.close();
    this.server.closeAllConnections?.();
    this.limits?.remove();
    this.onExited();
  }

  assign(inv) {
    this.current = inv;
    inv.sandbox = this;
    if (this.pendingNext) this.deliver();
  }

  deliver() {
    const res = this.pendingNext;
    const inv = this.current;
    this.pendingNext = null;
    inv.delivered = true;
    inv.started = Date.now();
    if (this.limits) {
      this.limits.resetPeaks(this.pid);
      const limits = this.limits;
      const pid = this.pid;
      inv.measure = () => {
        if (inv.measured) return;
        inv.measured = true;
        clearInterval(inv.tmpPoll);
        inv.usage = limits.usage(pid);
      };
      inv.tmpPoll = setInterval(() => limits.pollTmp(), 500);
    }
    const body = JSON.stringify(inv.event);
    res.writeHead(200, {
      "Content-Type": "application/json",
      "Content-Length": Buffer.byteLength(body),
      "Lambda-Runtime-Aws-Request-Id": inv.requestId,
      "Lambda-Runtime-Deadline-Ms": String(Date.now() + (this.fn.config.timeout_s ?? 900) * 1000),
      "Lambda-Runtime-Invoked-Function-Arn": this.fn.arn,
      "Lambda-Runtime-Trace-Id": `Root=1-${Math.floor(Date.now() / 1000).toString(16)}-${randomUUID().replace(/-/g, "").slice(0, 24)};Parent=${randomUUID().replace(/-/g, "").slice(0, 16)};Sampled=0`,
    });
    res.end(body);
    if (this.fn.config.timeout_s) {
      inv.timer = setTimeout(() => {
        if (inv.settled) return;
        this.fn.log.line(this.id, "harness", JSON.stringify({ message: "function timeout: SIGKILL", request: inv.requestId }));
        inv.timedOut = true;
        this.process.kill("SIGKILL");
      }, this.fn.config.timeout_s * 1000);
    }
  }

  route(req, res) {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const url = new URL(req.url, "http://runtime");
      const reply = (status, obj) => {
        const text = JSON.stringify(obj ?? { status: "OK" });
        res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
        res.end(text);
      };
      if (req.method === "GET" && url.pathname === `${RUNTIME}/invocation/next`) {
        if (this.pendingNext) this.pendingNext.destroy();
        this.pendingNext = res;
        if (this.current && !this.current.delivered) this.deliver();
        return;
      }
      if (req.method === "POST" && url.pathname === `${RUNTIME}/init/error`) {
        this.initError = parseBody(body);
        this.fn.log.line(this.id, "harness", JSON.stringify({ message: "init error", body: this.initError }));
        return reply(202);
      }
      const m = /^\/2018-06-01\/runtime\/invocation\/([^/]+)\/(response|error)$/.exec(url.pathname);
      if (req.method === "POST" && m) {
        const [, requestId, kind] = m;
        const inv = this.current;
        if (!inv || inv.requestId !== requestId || !inv.delivered) {
          return reply(400, { errorMessage: `no invocation ${requestId} in progress`, errorType: "InvalidRequestID" });
        }
        if (inv.crash) {
          // The crash comes before the answer gets out.
          reply(202);
          this.crash(inv, "instead of delivering its answer");
          return;
        }
        reply(202);
        this.current = null;
        inv.measure?.();
        if (kind === "response") {
          inv.succeed(parseBody(body));
        } else {
          const doc = parseBody(body);
          const errorType = (doc && typeof doc === "object" && doc.errorType) || req.headers["lambda-runtime-function-error-type"] || "Unhandled";
          inv.fail(lambdaError(errorType, doc));
        }
        return;
      }
      reply(404, { errorMessage: `${req.method} ${url.pathname}`, errorType: "UnknownRequest" });
    });
  }

  async stop() {
    if (!this.dead) {
      this.process.kill("SIGTERM");
      const t = setTimeout(() => this.process.kill("SIGKILL"), 2000);
      await this.exited;
      clearTimeout(t);
    }
  }
}

function parseBody(text) {
  if (text === "") return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

class LambdaFunction {
  constructor(arn, config, logDir, recorder, cgroupRoot) {
    if (!config || typeof config.command !== "string") fail(`--lambdas: ${arn}: "command" is required`);
    if (!path.isAbsolute(config.command)) fail(`--lambdas: ${arn}: command ${config.command} is not absolute`);
    if (!fs.existsSync(config.command)) fail(`--lambdas: ${arn}: ${config.command} does not exist`);
    this.arn = arn;
    this.config = config;
    this.name = /^arn:aws[\w-]*:lambda:[^:]*:[^:]*:function:([^:]+)/.exec(arn)?.[1] ?? arn;
    this.log = new LogFile(path.join(logDir, `${this.name}.log`));
    this.sandboxes = [];
    this.recorder = recorder;
    this.cgroupRoot = cgroupRoot;
  }

  async invoke(stateName, event) {
    const inv = this.recorder.begin(this, stateName, event);
    let sandbox = this.sandboxes.find((s) => !s.dead && !s.current);
    if (!sandbox) {
      sandbox = new Sandbox(this, `${this.name}-${this.sandboxes.length + 1}`);
      this.sandboxes.push(sandbox);
      inv.cold = true;
      // Taken before it starts, so a concurrent invocation starts another sandbox
      // instead of claiming this one; delivered on the runtime's first `next`.
      sandbox.assign(inv);
      await sandbox.start();
      return inv.promise;
    }
    sandbox.assign(inv);
    return inv.promise;
  }

  async stop() {
    await Promise.all(this.sandboxes.map((s) => s.stop()));
    await this.log.close();
  }
}

// Every call a Task made, for the event log; settles the invocation's promise.
class Recorder {
  constructor(crashFirst) {
    this.crashFirst = crashFirst.map((match) => ({ match, used: false }));
    this.records = [];
    this.inFlight = new Set();
  }

  begin(fn, stateName, event) {
    const { promise, resolve, reject } = Promise.withResolvers();
    const text = JSON.stringify(event);
    const crash = this.crashFirst.find((c) => !c.used && text.includes(c.match));
    if (crash) crash.used = true;
    const record = {
      type: "LambdaInvocation",
      timestamp: Date.now(),
      function: fn.name,
      function_arn: fn.arn,
      state: stateName,
      request_id: randomUUID(),
      event,
    };
    const inv = {
      requestId: record.request_id,
      event,
      crash: Boolean(crash),
      cold: false,
      promise,
      settled: false,
      succeed: (result) => {
        if (inv.settled) return;
        finish();
        record.result = result;
        resolve(result);
      },
      fail: (error) => {
        if (inv.settled) return;
        finish();
        record.error = { Error: error.name, Cause: error.message };
        reject(error);
      },
    };
    const finish = () => {
      inv.settled = true;
      clearTimeout(inv.timer);
      record.sandbox = inv.sandbox?.id;
      record.pid = inv.sandbox?.pid;
      record.cold = inv.cold;
      record.duration_ms = Date.now() - (inv.started ?? record.timestamp);
      if (inv.crashedAt) record.crashed = inv.crashedAt;
      if (inv.usage) Object.assign(record, inv.usage, { timeout_s: fn.config.timeout_s ?? null });
      if (inv.timedOut) record.timed_out = true;
      this.inFlight.delete(promise);
    };
    this.records.push(record);
    this.inFlight.add(promise);
    promise.catch(() => {});
    return inv;
  }
}

// ---------------------------------------------------------------------------------------
// SNS Publish, as the Step Functions integration sends it

function sigv4Headers({ method = "POST", url, region, service, body, accessKey, secretKey, sessionToken }) {
  const u = new URL(url);
  const now = new Date();
  const amzDate = now.toISOString().replace(/[:-]|\.\d{3}/g, "");
  const day = amzDate.slice(0, 8);
  const sha = (s) => createHash("sha256").update(s, "utf8").digest("hex");
  const hmac = (k, s) => createHmac("sha256", k).update(s, "utf8").digest();
  const headers = { host: u.host, "x-amz-date": amzDate };
  if (method === "POST") headers["content-type"] = "application/x-www-form-urlencoded; charset=utf-8";
  if (service === "s3") headers["x-amz-content-sha256"] = sha(body);
  if (sessionToken) headers["x-amz-security-token"] = sessionToken;
  const signed = Object.keys(headers).sort();
  const canonical = [
    method,
    u.pathname || "/",
    "",
    ...signed.map((h) => `${h}:${headers[h]}`),
    "",
    signed.join(";"),
    sha(body),
  ].join("\n");
  const scope = `${day}/${region}/${service}/aws4_request`;
  const toSign = ["AWS4-HMAC-SHA256", amzDate, scope, sha(canonical)].join("\n");
  const key = hmac(hmac(hmac(hmac(`AWS4${secretKey}`, day), region), service), "aws4_request");
  const signature = createHmac("sha256", key).update(toSign, "utf8").digest("hex");
  headers.authorization = `AWS4-HMAC-SHA256 Credential=${accessKey}/${scope}, SignedHeaders=${signed.join(";")}, Signature=${signature}`;
  return headers;
}

async function snsPublish(endpoint, input, stateName, records) {
  const { TopicArn, Subject, Message, MessageAttributes, ...rest } = input ?? {};
  if (typeof TopicArn !== "string") fail(`${stateName}: sns:publish needs a TopicArn (got ${JSON.stringify(input)})`);
  if (MessageAttributes !== undefined) fail(`${stateName}: MessageAttributes are not emulated`);
  const unknown = Object.keys(rest).filter((k) => !["MessageGroupId", "MessageDeduplicationId", "MessageStructure"].includes(k));
  if (unknown.length) fail(`${stateName}: sns:publish parameters not emulated: ${unknown.join(", ")}`);
  const form = new URLSearchParams();
  form.set("Action", "Publish");
  form.set("TopicArn", TopicArn);
  if (Subject !== undefined) form.set("Subject", Subject);
  form.set("Message", typeof Message === "string" ? Message : JSON.stringify(Message));
  for (const [k, v] of Object.entries(rest)) form.set(k, String(v));
  form.set("Version", "2010-03-31");
  const body = form.toString();
  const region = TopicArn.split(":")[3] || process.env.AWS_REGION || "us-east-1";
  const headers = sigv4Headers({
    url: endpoint,
    region,
    service: "sns",
    body,
    accessKey: process.env.AWS_ACCESS_KEY_ID || "testing",
    secretKey: process.env.AWS_SECRET_ACCESS_KEY || "testing",
    sessionToken: process.env.AWS_SESSION_TOKEN,
  });
  const record = { type: "SnsPublish", timestamp: Date.now(), state: stateName, topic_arn: TopicArn, subject: Subject, message: form.get("Message") };
  records.push(record);
  let res;
  let text;
  try {
    res = await fetch(endpoint, { method: "POST", headers, body });
    text = await res.text();
  } catch (e) {
    fail(`${stateName}: SNS endpoint ${endpoint} unreachable: ${e.message}`);
  }
  if (!res.ok) {
    const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? `HTTP${res.status}`;
    record.error = { Error: `SNS.${code}`, Cause: text };
    throw namedError(`SNS.${code}`, text);
  }
  const messageId = /<MessageId>([^<]*)<\/MessageId>/.exec(text)?.[1];
  if (!messageId) fail(`${stateName}: SNS answered without a MessageId: ${text.slice(0, 500)}`);
  const requestId = /<RequestId>([^<]*)<\/RequestId>/.exec(text)?.[1] ?? randomUUID();
  record.message_id = messageId;
  return {
    MessageId: messageId,
    SdkHttpMetadata: { HttpStatusCode: res.status },
    SdkResponseMetadata: { RequestId: requestId },
  };
}

// ---------------------------------------------------------------------------------------
// One execution

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const substitutions = opts.substitutions ? readJson(opts.substitutions, "--substitutions") : {};
  let raw;
  try {
    raw = fs.readFileSync(opts.definition, "utf8");
  } catch (e) {
    fail(`--definition ${opts.definition}: ${e.message}`);
  }
  let definition;
  try {
    definition = JSON.parse(substitute(raw, substitutions, opts.definition));
  } catch (e) {
    if (e instanceof HarnessError) throw e;
    fail(`${opts.definition} is not JSON after substitution: ${e.message}`);
  }
  validate(definition, opts.definition);
  const lambdas = readJson(opts.lambdas, "--lambdas");
  const input = opts.stateInput ? readJson(opts.stateInput, "--state-input") : readJson(opts.input, "--input");
  const executionInput = readJson(opts.input, "--input");

  const readers = new Map();
  if (opts.inlineDistributedMap) inlineDistributedMaps(definition, readers);
  if (opts.startAt !== undefined) {
    if (!Object.hasOwn(definition.States, opts.startAt)) fail(`--start-at ${opts.startAt}: no such top-level state`);
    const reader = `${opts.startAt}.ItemReader`;
    definition.StartAt = readers.has(reader) ? reader : opts.startAt;
  }

  const outDir = path.dirname(path.resolve(opts.out));
  const logDir = path.join(outDir, `${path.basename(opts.out).replace(/\.json$/, "")}-logs`);
  fs.mkdirSync(logDir, { recursive: true });

  const recorder = new Recorder(opts.crashFirst);
  let cgroupRoot;
  const snsRecords = [];
  const functions = new Map();
  const handlers = {};
  const retryIntervalOverrides = {};
  const harnessErrors = [];
  const guard = (stateName, fn) => async (taskInput) => {
    try {
      return await fn(taskInput);
    } catch (e) {
      if (e instanceof HarnessError || !(e instanceof Error) || e instanceof TypeError || e instanceof ReferenceError) {
        harnessErrors.push(`${stateName}: ${e?.stack ?? e}`);
        throw namedError("Harness.Error", String(e?.message ?? e));
      }
      throw e;
    }
  };

  const problems = [];
  forEachState(definition, (states, name, state) => {
    if (Array.isArray(state.Retry) && state.Retry.length > 0 && opts.retryIntervalMs !== "definition") {
      retryIntervalOverrides[name] = opts.retryIntervalMs;
    }
    if (state.Type !== "Task") return;
    if (Object.hasOwn(handlers, name)) problems.push(`two Task states are named ${name}`);
    const resource = state.Resource;
    if (Object.hasOwn(lambdas, resource)) {
      if (!functions.has(resource)) {
        if (lambdas[resource]?.limits && cgroupRoot === undefined) cgroupRoot = Limits.root(process.pid);
        functions.set(resource, new LambdaFunction(resource, lambdas[resource], logDir, recorder, cgroupRoot));
      }
      const fn = functions.get(resource);
      handlers[name] = guard(name, (taskInput) => fn.invoke(name, taskInput));
    } else if (resource === SNS_PUBLISH) {
      if (!opts.snsEndpoint) problems.push(`${name} publishes to SNS: --sns-endpoint is required`);
      handlers[name] = guard(name, (taskInput) => snsPublish(opts.snsEndpoint, taskInput, name, snsRecords));
    } else if (readers.has(name)) {
      handlers[name] = guard(name, (taskInput) => readItems(opts.s3Endpoint, taskInput, name));
    } else {
      problems.push(`Task ${name}: no emulation for Resource ${resource} (not in --lambdas)`);
    }
  });
  if (problems.length) fail(problems.join("\n"));

  const executionName = opts.executionName ?? randomUUID();
  // The definition was validated as written, before any rewriting above; a redrive's
  // StartAt leaves earlier states unreachable, which the validator would refuse.
  const machine = new StateMachine(definition, { validationOptions: { noValidate: true } });
  const execution = machine.run(input, {
    overrides: { taskResourceLocalHandlers: handlers, retryIntervalOverrides },
    context: {
      Execution: {
        Id: `arn:aws:states:us-west-2:123456789012:execution:emulated:${executionName}`,
        Name: executionName,
        Input: executionInput,
      },
      StateMachine: { Id: "arn:aws:states:us-west-2:123456789012:stateMachine:emulated", Name: "emulated" },
    },
  });
  const events = [];
  const collected = (async () => {
    for await (const e of execution.eventLogs) events.push(e);
  })();
  const started = Date.now();
  const result = { status: "SUCCEEDED", output: null, error: null, cause: null };
  try {
    result.output = await execution.result;
  } catch (e) {
    if (e instanceof ExecutionTimeoutError) {
      result.status = "TIMED_OUT";
    } else if (e instanceof ExecutionError) {
      result.status = "FAILED";
    } else {
      throw e;
    }
  }
  await Promise.race([collected, new Promise((r) => setTimeout(r, 2000))]);
  const failedEvent = events.find((e) => e.type === "ExecutionFailed");
  if (failedEvent) {
    result.error = failedEvent.Error ?? null;
    result.cause = failedEvent.Cause === undefined ? null : failedEvent.Cause;
  }
  // Iterations a failed Map abandoned keep running in their sandboxes (as Lambda does);
  // let them finish so what they leave behind is deterministic.
  const deadline = Date.now() + 120_000;
  while (recorder.inFlight.size > 0 && Date.now() < deadline) {
    await Promise.race([Promise.allSettled([...recorder.inFlight]), new Promise((r) => setTimeout(r, 1000))]);
  }
  await Promise.all([...functions.values()].map((f) => f.stop()));
  Limits.removeRoot(cgroupRoot);
  if (harnessErrors.length) fail(`the harness failed during the execution:\n${harnessErrors.join("\n")}`);
  if (recorder.inFlight.size > 0) fail(`${recorder.inFlight.size} invocation(s) still running after the execution ended`);

  markAbandoned(definition, events, recorder.records);
  const all = [...events, ...recorder.records, ...snsRecords].map((e, i) => [e, i]);
  all.sort((a, b) => a[0].timestamp - b[0].timestamp || a[1] - b[1]);
  result.events = all.map(([e]) => e);
  result.duration_ms = Date.now() - started;
  result.logs_dir = logDir;
  result.sandboxes = Object.fromEntries([...functions.values()].map((f) => [f.name, f.sandboxes.length]));
  fs.writeFileSync(opts.out, JSON.stringify(result, null, 2));
}

try {
  await main();
  process.exit(0);
} catch (e) {
  process.stderr.write(`sfn harness: ${e instanceof HarnessError ? e.message : e?.stack ?? e}\n`);
  process.exit(2);
}
