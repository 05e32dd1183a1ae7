// A renderer in JavaScript: rewrites container images as kustomize's `images` field does,
// by image name: a new name, a new tag, or a digest (which wins over a tag).
//
//   with = { images = [{ name = "nginx", new_tag = "1.27.3" },
//                      { name = "ghcr.io/acme/web", digest = "sha256:…" }] }
import { Failed, renderer } from "../../../../plugins/sdk-js/moor-plugin.js";

export const render = renderer({
  info: {
    name: "image-tags",
    version: "0.1.0",
    description: "sets container images' names, tags or digests, as kustomize's images field",
    configSchema: {
      type: "object",
      properties: {
        images: {
          type: "array",
          items: {
            type: "object",
            properties: {
              name: { type: "string" },
              new_name: { type: "string" },
              new_tag: { type: "string" },
              digest: { type: "string", pattern: "^sha256:[0-9a-f]{64}$" },
            },
            required: ["name"],
            additionalProperties: false,
          },
        },
      },
      required: ["images"],
      additionalProperties: false,
    },
  },
  render(config, input) {
    if (input.tree) throw new Failed("image-tags transforms objects: put a renderer that reads files (yaml, kustomize, helm) before it");
    for (const obj of input.objects) {
      for (const container of obj.containers()) {
        if (typeof container.image !== "string") continue;
        const rule = config.images.find((r) => parse(container.image).name === r.name);
        if (rule) container.image = rewrite(container.image, rule);
      }
    }
    return input.objects;
  },
});

/** Splits `name[:tag][@digest]`; a `:` before the last `/` belongs to a registry's port. */
function parse(image) {
  const [rest, digest] = image.split("@", 2);
  const slash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  const hasTag = colon > slash;
  return { name: hasTag ? rest.slice(0, colon) : rest, tag: hasTag ? rest.slice(colon + 1) : undefined, digest };
}

function rewrite(image, rule) {
  const old = parse(image);
  const name = rule.new_name ?? old.name;
  if (rule.digest) return `${name}@${rule.digest}`;
  const tag = rule.new_tag ?? old.tag;
  const digest = rule.new_tag ? undefined : old.digest;
  return `${name}${tag ? `:${tag}` : ""}${digest ? `@${digest}` : ""}`;
}
