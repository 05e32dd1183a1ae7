"""A renderer in Python: sets labels on every object and, with `templates` (the default),
on the pod templates of workloads too, as kustomize's `labels` with `includeTemplates`."""

import moor_plugin as moor


class CommonLabels(moor.Renderer):
    info = moor.Info(
        "common-labels",
        "0.1.0",
        "sets labels on every object and on the pod templates of workloads",
        {
            "type": "object",
            "properties": {
                "labels": {"type": "object", "additionalProperties": {"type": "string"}, "minProperties": 1},
                "templates": {"type": "boolean", "default": True},
            },
            "required": ["labels"],
            "additionalProperties": False,
        },
    )

    def render(self, config, input):
        if input.tree is not None:
            raise moor.Failed("common-labels transforms objects: put a renderer that reads files (yaml, kustomize, helm) before it")
        templates = config.get("templates", True)
        for obj in input.objects:
            for key, value in config["labels"].items():
                obj.set_label(key, value)
                template = _pod_template(obj) if templates else None
                if template is not None:
                    template.setdefault("metadata", {}).setdefault("labels", {})[key] = value
            yield obj


def _pod_template(obj):
    """The pod template of a workload (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job,
    CronJob), if it has one."""
    spec = obj.value.get("spec") or {}
    if obj.kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template = spec.get("template")
    return template if isinstance(template, dict) else None


Render = moor.export(CommonLabels)
