// Moor's plugin SDK for JavaScript and TypeScript.
//
// A plugin is one object per kind, with the same shape as the Rust SDK: `info` describes it
// (name, version, description, the JSON Schema of its `with` table, which the host checks
// before every call), and one method does the work. Objects keep the file and line they
// came from, and diagnostics made from an object point there.
//
//     import { validator } from "./moor-plugin.js";
//
//     export const validate = validator({
//       info: { name: "no-latest", version: "0.1.0", description: "images must not use :latest" },
//       validate(config, objects) {
//         return objects.flatMap((obj) =>
//           obj.images().filter((i) => i.endsWith(":latest")).map((i) => obj.error(`image ${i} uses :latest`)));
//       },
//     });
//
// `jco componentize app.js --wit wit --world-name validator --backend qjs
// --backend-qjs-disable-async --bundle --out no-latest.wasm` builds the component (see the
// README next to this file). The export's name is the world's interface: `render` for a
// renderer, `validate` for a validator.

import { log as witLog } from "moor:plugin/log@0.1.0";

/** A line in the plugin's log: level is trace, debug, info, warn or error; capped by the host. */
export function log(level, message) {
  witLog(level, String(message));
}

/** A finding, with where it was found when known. `object` is an object reference. */
export class Diagnostic {
  constructor(severity, message, { file, line, object } = {}) {
    if (!["error", "warning", "info"].includes(severity)) {
      throw new TypeError(`severity must be error, warning or info, not ${JSON.stringify(severity)}`);
    }
    this.severity = severity;
    this.message = String(message);
    this.file = file || undefined;
    this.line = line || undefined;
    this.object = object;
  }
}

/** Throw from a plugin to fail its call: with diagnostics (a renderer), or a message. */
export class Failed extends Error {
  constructor(...diagnostics) {
    const all = diagnostics.map((d) => (d instanceof Diagnostic ? d : new Diagnostic("error", d)));
    super(all.map((d) => d.message).join("; "));
    this.diagnostics = all;
  }
}

/** A Kubernetes object (`value`) and the file and line it came from. */
export class Obj {
  constructor(value, file = "", line = 0) {
    this.value = value;
    this.file = file;
    this.line = line;
  }
  get apiVersion() { return this.value.apiVersion ?? ""; }
  get kind() { return this.value.kind ?? ""; }
  get metadata() { return (this.value.metadata ??= {}); }
  get name() { return this.metadata.name ?? ""; }
  get namespace() { return this.metadata.namespace; }
  get labels() { return (this.metadata.labels ??= {}); }
  get annotations() { return (this.metadata.annotations ??= {}); }
  setLabel(key, value) { this.labels[key] = String(value); }
  setAnnotation(key, value) { this.annotations[key] = String(value); }

  /** The pod template's spec of a workload (or a Pod's spec), if it has one. */
  podSpec() {
    let spec = this.value.spec ?? {};
    if (this.kind === "Pod") return spec;
    if (this.kind === "CronJob") spec = spec.jobTemplate?.spec ?? {};
    return spec.template?.spec;
  }

  /** Every container of the pod spec: containers, init containers, ephemeral containers. */
  containers() {
    const spec = this.podSpec() ?? {};
    return [...(spec.containers ?? []), ...(spec.initContainers ?? []), ...(spec.ephemeralContainers ?? [])]
      .filter((c) => c && typeof c === "object");
  }

  /** The images of every container. */
  images() { return this.containers().filter((c) => typeof c.image === "string").map((c) => c.image); }

  ref() { return { apiVersion: this.apiVersion, kind: this.kind, namespace: this.namespace, name: this.name }; }

  /** A diagnostic about this object, at its file and line. */
  diagnostic(severity, message) {
    return new Diagnostic(severity, message, { file: this.file, line: this.line, object: this.ref() });
  }
  error(message) { return this.diagnostic("error", message); }
  warning(message) { return this.diagnostic("warning", message); }
  info(message) { return this.diagnostic("info", message); }
}

/**
 * A renderer: `plugin.render(config, input)` returns objects (`Obj`), where `input.tree`
 * (`{ root, path, directory }`: the read-only snapshot) is set for the first renderer of a
 * chain, and `input.objects` holds the previous stage's objects otherwise. Use as
 * `export const render = renderer({ info, render })`.
 */
export function renderer(plugin) {
  return {
    info: () => info(plugin, "renderer"),
    render(config, input) {
      const given = input.tag === "tree"
        ? { tree: { ...input.val, directory: input.val.path ? `${input.val.root}/${input.val.path}` : input.val.root }, objects: [] }
        : { tree: undefined, objects: objects(input.val) };
      try {
        return [...plugin.render(JSON.parse(config), given)].map(document);
      } catch (e) {
        throw (e instanceof Failed ? e.diagnostics : [new Diagnostic("error", describe(e))]).map(diagnostic);
      }
    },
  };
}

/**
 * A validator: `plugin.validate(config, objects)` returns diagnostics; any error stops the
 * pipeline before apply. Throw `Failed` when the validator itself cannot work. Use as
 * `export const validate = validator({ info, validate })`.
 */
export function validator(plugin) {
  return {
    info: () => info(plugin, "validator"),
    validate(config, docs) {
      try {
        return [...plugin.validate(JSON.parse(config), objects(docs))].map(diagnostic);
      } catch (e) {
        throw e instanceof Failed ? e.message : describe(e);
      }
    },
  };
}

// --- the glue to the component's types ---

function info(plugin, kind) {
  const i = plugin.info ?? {};
  if (!i.name || !i.version) throw new TypeError("a plugin's info needs a name and a version");
  return {
    name: i.name,
    version: i.version,
    kind,
    description: i.description ?? "",
    configSchema: JSON.stringify(i.configSchema ?? {}),
  };
}

function objects(docs) { return docs.map((d) => new Obj(JSON.parse(d.json), d.file, d.line)); }

function document(o) {
  if (!(o instanceof Obj)) throw new TypeError("a renderer returns Obj values (new Obj(value, file, line))");
  return { json: JSON.stringify(o.value), file: o.file, line: o.line };
}

function diagnostic(d) {
  if (!(d instanceof Diagnostic)) throw new TypeError("a plugin returns Diagnostic values (obj.error(...), new Diagnostic(...))");
  const object = d.object && { ...d.object, namespace: d.object.namespace ?? undefined };
  return { severity: d.severity, message: d.message, file: d.file, line: d.line, object };
}

function describe(e) {
  return e instanceof Error ? `${e.name}: ${e.message}${e.stack ? ` (${e.stack.split("\n")[0].trim()})` : ""}` : String(e);
}
