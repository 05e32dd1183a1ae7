// A validator in JavaScript: every container (init containers too) must declare resource
// requests and limits for the resources given (default: cpu and memory). Objects may opt
// out with the annotation `moor.dev/skip-require-limits: "true"`.
import { validator } from "../../../../plugins/sdk-js/moor-plugin.js";

const SKIP = "moor.dev/skip-require-limits";

export const validate = validator({
  info: {
    name: "require-limits",
    version: "0.1.0",
    description: "containers declare resource requests and limits",
    configSchema: {
      type: "object",
      properties: {
        resources: { type: "array", items: { type: "string" }, minItems: 1, default: ["cpu", "memory"] },
        severity: { enum: ["error", "warning"], default: "error" },
      },
      additionalProperties: false,
    },
  },
  validate(config, objects) {
    const resources = config.resources ?? ["cpu", "memory"];
    const severity = config.severity ?? "error";
    const findings = [];
    for (const obj of objects) {
      if (obj.annotations[SKIP] === "true") continue;
      for (const container of obj.containers()) {
        for (const section of ["requests", "limits"]) {
          const missing = resources.filter((r) => container.resources?.[section]?.[r] === undefined);
          if (missing.length > 0) {
            findings.push(obj.diagnostic(severity, `container ${container.name} sets no ${section} for ${missing.join(", ")}`));
          }
        }
      }
    }
    return findings;
  },
});
