"""A validator in Python: every container image must come from an allowed registry
prefix and, unless turned off, be pinned by digest (`image@sha256:…`)."""

import moor_plugin as moor


class ImageAllowlist(moor.Validator):
    info = moor.Info(
        "image-allowlist",
        "0.1.0",
        "container images come from allowed registries and are pinned by digest",
        {
            "type": "object",
            "properties": {
                "allowed": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "require_digest": {"type": "boolean", "default": True},
            },
            "required": ["allowed"],
            "additionalProperties": False,
        },
    )

    def validate(self, config, objects):
        allowed = config["allowed"]
        require_digest = config.get("require_digest", True)
        for obj in objects:
            for image in obj.images():
                if not any(image.startswith(prefix) for prefix in allowed):
                    yield obj.error(f"image {image} is not from an allowed registry ({', '.join(allowed)})")
                elif require_digest and "@sha256:" not in image:
                    yield obj.error(f"image {image} is not pinned by digest (image@sha256:…)")


Validate = moor.export(ImageAllowlist)
