import { readdirSync, readFileSync } from "node:fs";
import { basename } from "node:path";
import { fileURLToPath } from "node:url";
import { isMap, LineCounter, parseDocument } from "yaml";
import type * as z from "zod";
import { MachineConfigError, type MachineConfigIssue } from "./MachineConfigError.js";
import { type MachineConfig, machineSchema } from "./machineSchema.js";

/** Folder of the built-in machine descriptions (shipped with the package, see "files"). */
const MACHINES_DIR = new URL("../machines/", import.meta.url);

/** Formats a key path the way a reader writes it: `memory.banks[1].size`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else out += out === "" ? String(key) : `.${String(key)}`;
  }
  return out;
}

function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return JSON.stringify(value);
}

/** Levenshtein distance, for "did you mean" on unknown keys. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j] as number;
      row[j] = Math.min(cur + 1, (row[j - 1] as number) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length] as number;
}

function suggest(key: string, known: readonly string[]): string {
  const lower = key.toLowerCase();
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const k of known) {
    const d = k.toLowerCase() === lower ? 0 : distance(lower, k.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(key.length / 3))
    ? ` (did you mean "${best}"?)`
    : "";
}

/** The keys a strict object schema at `path` accepts, for suggestions. */
function knownKeysAt(path: readonly PropertyKey[]): string[] {
  // biome-ignore lint/suspicious/noExplicitAny: walking zod's internal definition tree
  let s: any = machineSchema;
  for (const key of path) {
    while (s && !s.shape && !s.element && s.def) s = s.def.innerType ?? s.def.in ?? s.def.schema;
    if (!s) return [];
    s = typeof key === "number" ? s.element : s.shape?.[key as string];
  }
  while (s && !s.shape && s.def) s = s.def.innerType ?? s.def.in ?? s.def.schema;
  return s?.shape ? Object.keys(s.shape) : [];
}

function toIssues(
  error: z.ZodError,
  lineOf: (path: readonly PropertyKey[]) => number | undefined,
): MachineConfigIssue[] {
  const out: MachineConfigIssue[] = [];
  for (const issue of error.issues) {
    const withLine = (path: readonly PropertyKey[], message: string): void => {
      const line = lineOf(path);
      out.push(
        line === undefined ? { path: formatPath(path), message } : { path: formatPath(path), message, line },
      );
    };
    switch (issue.code) {
      case "unrecognized_keys":
        for (const key of issue.keys)
          withLine([...issue.path, key], `unknown key${suggest(key, knownKeysAt(issue.path))}`);
        break;
      case "invalid_type":
        withLine(
          issue.path,
          issue.input === undefined
            ? "required"
            : `expected ${issue.expected}, got ${describeValue(issue.input)}`,
        );
        break;
      case "invalid_value":
        withLine(
          issue.path,
          `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}, got ${describeValue(issue.input)}`,
        );
        break;
      case "too_small":
      case "too_big":
        withLine(
          issue.path,
          issue.message.startsWith("Too") || issue.message.startsWith("Invalid")
            ? `${issue.message.replace(/^Too (small|big): /, "")}, got ${describeValue(issue.input)}`
            : issue.message,
        );
        break;
      default:
        withLine(issue.path, issue.message);
    }
  }
  return out;
}

/**
 * Parses and validates a machine description in YAML (JSON is YAML too). Throws
 * {@link MachineConfigError} naming every offending key, with its line in `source`.
 */
export function parseMachine(text: string, source = "<input>"): MachineConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const fallbackName = basename(source).replace(/\.(ya?ml|json)$/, "");
  if (doc.errors.length > 0) {
    throw new MachineConfigError(
      fallbackName,
      source,
      doc.errors.map((e) => {
        const line = lineCounter.linePos(e.pos[0]).line;
        const message = `YAML: ${e.message.split("\n")[0]}`;
        return { path: "", message, line };
      }),
    );
  }
  const data: unknown = doc.toJS();
  const named = (data as { name?: unknown } | null)?.name;
  const machine = typeof named === "string" ? named : fallbackName;
  if (!isMap(doc.contents))
    throw new MachineConfigError(machine, source, [
      { path: "", message: "expected a mapping with name, arch, memory, ..." },
    ]);
  const result = machineSchema.safeParse(data, { reportInput: true });
  if (result.success) return result.data;
  const lineOf = (path: readonly PropertyKey[]): number | undefined => {
    // Point at the deepest node that exists (a missing key points at its parent).
    for (let n = path.length; n >= 0; n--) {
      const node = doc.getIn(path.slice(0, n) as unknown[], true) as
        | { range?: [number, number, number] }
        | undefined;
      const range = node?.range;
      if (range) return lineCounter.linePos(range[0]).line;
    }
    return undefined;
  };
  throw new MachineConfigError(machine, source, toIssues(result.error, lineOf));
}

/** Reads and validates a machine description file. */
export function loadMachineFile(path: string): MachineConfig {
  return parseMachine(readFileSync(path, "utf8"), path);
}

/** Names of the built-in machines (`machines/*.yaml` in this package), sorted. */
export function builtinMachineNames(): string[] {
  return readdirSync(fileURLToPath(MACHINES_DIR))
    .filter((f) => f.endsWith(".yaml"))
    .map((f) => f.slice(0, -".yaml".length))
    .sort();
}

/** Loads a built-in machine by name; throws a {@link MachineConfigError} listing the known ones. */
export function loadBuiltinMachine(name: string): MachineConfig {
  const names = builtinMachineNames();
  if (!names.includes(name))
    throw new MachineConfigError(name, `builtin:${name}`, [
      {
        path: "",
        message: `no built-in machine "${name}" (known: ${names.join(", ")}); pass a .yaml file instead`,
      },
    ]);
  const file = new URL(`${name}.yaml`, MACHINES_DIR);
  return parseMachine(readFileSync(file, "utf8"), `machines/${name}.yaml`);
}

/** `--machine` resolution: a path (contains `/` or ends in .yaml/.yml/.json) is a file, else a built-in name. */
export function resolveMachine(nameOrFile: string): MachineConfig {
  return /[/\\]|\.(ya?ml|json)$/i.test(nameOrFile)
    ? loadMachineFile(nameOrFile)
    : loadBuiltinMachine(nameOrFile);
}
