"""Moor's plugin SDK for Python.

A plugin is one class per kind, with the same shape as the Rust SDK: `info` describes it
(name, version, description, the JSON Schema of its `with` table, which the host checks
before every call), and one method does the work. Objects keep the file and line they
came from, and diagnostics made from an object point there.

    import moor_plugin as moor

    class NoLatest(moor.Validator):
        info = moor.Info("no-latest", "0.1.0", "images must not use :latest")

        def validate(self, config, objects):
            for obj in objects:
                for image in obj.images():
                    if image.endswith(":latest"):
                        yield obj.error(f"image {image} uses :latest")

    Validate = moor.export(NoLatest)

`componentize-py -d wit -w validator componentize app -o no-latest.wasm` builds the
component (see the README next to this package).
"""

import json
from typing import Any, Dict, Iterable, List, Optional

ERROR = "error"
WARNING = "warning"
INFO = "info"


class Info:
    """What a plugin says about itself."""

    def __init__(self, name: str, version: str, description: str = "", config_schema: Optional[dict] = None):
        self.name = name
        self.version = version
        self.description = description
        self.config_schema = config_schema if config_schema is not None else {}


class Diagnostic:
    """A finding, with where it was found when known."""

    def __init__(self, severity: str, message: str, file: Optional[str] = None, line: Optional[int] = None,
                 object: Optional[dict] = None):
        if severity not in (ERROR, WARNING, INFO):
            raise ValueError(f"severity must be error, warning or info, not {severity!r}")
        self.severity = severity
        self.message = message
        self.file = file
        self.line = line
        self.object = object


class Failed(Exception):
    """Raise from a plugin to fail its call: with diagnostics (a renderer), or a message."""

    def __init__(self, *diagnostics: Any):
        super().__init__("; ".join(d.message if isinstance(d, Diagnostic) else str(d) for d in diagnostics))
        self.diagnostics = [d if isinstance(d, Diagnostic) else Diagnostic(ERROR, str(d)) for d in diagnostics]


class Object:
    """A Kubernetes object (`value`, a dict) and the file and line it came from."""

    def __init__(self, value: dict, file: str = "", line: int = 0):
        self.value = value
        self.file = file
        self.line = line

    @property
    def api_version(self) -> str:
        return self.value.get("apiVersion", "")

    @property
    def kind(self) -> str:
        return self.value.get("kind", "")

    @property
    def name(self) -> str:
        return self.metadata.get("name", "")

    @property
    def namespace(self) -> Optional[str]:
        return self.metadata.get("namespace")

    @property
    def metadata(self) -> dict:
        return self.value.setdefault("metadata", {})

    @property
    def labels(self) -> Dict[str, str]:
        return self.metadata.setdefault("labels", {})

    @property
    def annotations(self) -> Dict[str, str]:
        return self.metadata.setdefault("annotations", {})

    def set_label(self, key: str, value: str) -> None:
        self.labels[key] = value

    def set_annotation(self, key: str, value: str) -> None:
        self.annotations[key] = value

    def pod_spec(self) -> Optional[dict]:
        """The pod template's spec of a workload (or a Pod's spec), if it has one."""
        spec = self.value.get("spec") or {}
        if self.kind == "Pod":
            return spec
        if self.kind == "CronJob":
            spec = (spec.get("jobTemplate") or {}).get("spec") or {}
        return (spec.get("template") or {}).get("spec")

    def images(self) -> List[str]:
        """The images of every container, init container and ephemeral container."""
        spec = self.pod_spec() or {}
        containers = (spec.get("containers") or []) + (spec.get("initContainers") or []) + (
            spec.get("ephemeralContainers") or [])
        return [c["image"] for c in containers if isinstance(c, dict) and "image" in c]

    def ref(self) -> dict:
        return {"api_version": self.api_version, "kind": self.kind, "namespace": self.namespace, "name": self.name}

    def diagnostic(self, severity: str, message: str) -> Diagnostic:
        """A diagnostic about this object, at its file and line."""
        return Diagnostic(severity, message, self.file or None, self.line or None, self.ref())

    def error(self, message: str) -> Diagnostic:
        return self.diagnostic(ERROR, message)

    def warning(self, message: str) -> Diagnostic:
        return self.diagnostic(WARNING, message)

    def info(self, message: str) -> Diagnostic:
        return self.diagnostic(INFO, message)


class Tree:
    """Where the first renderer of a chain reads: the read-only snapshot, mounted at `root`,
    and the pipeline's directory in it (`directory`, to open files under)."""

    def __init__(self, root: str, path: str):
        self.root = root
        self.path = path

    @property
    def directory(self) -> str:
        return f"{self.root}/{self.path}" if self.path else self.root


class Input:
    """A renderer's input: the tree when it is the first of a chain, else the previous
    stage's objects."""

    def __init__(self, tree: Optional[Tree] = None, objects: Optional[List[Object]] = None):
        self.tree = tree
        self.objects = objects if objects is not None else []


class Renderer:
    """Turns its input into objects. Raise `Failed` with diagnostics to fail the call."""

    info: Info

    def render(self, config: Any, input: Input) -> Iterable[Object]:
        raise NotImplementedError


class Validator:
    """Looks at every object; any error diagnostic stops the pipeline before apply. Raise
    `Failed` when the validator itself cannot work."""

    info: Info

    def validate(self, config: Any, objects: List[Object]) -> Iterable[Diagnostic]:
        raise NotImplementedError


def log(level: str, message: str) -> None:
    """A line in the plugin's log (trace, debug, info, warn or error), capped by the host."""
    from wit_world.imports import log as wit_log  # only inside a component

    wit_log.log(getattr(wit_log.Level, level.upper()), message)


# --- the glue to componentize-py's bindings (`wit_world`, made at build time) ---

def _info(plugin: Any, kind: str):
    from wit_world.imports import types

    info = plugin.info
    return types.PluginInfo(info.name, info.version, getattr(types.PluginKind, kind), info.description,
                            json.dumps(info.config_schema))


def _objects(documents) -> List[Object]:
    return [Object(json.loads(d.json), d.file, d.line) for d in documents]


def _documents(objects: Iterable[Object]):
    from wit_world.imports import types

    return [types.Document(json.dumps(o.value), o.file, o.line) for o in objects]


def _diagnostics(diagnostics: Iterable[Diagnostic]):
    from wit_world.imports import types

    out = []
    for d in diagnostics:
        ref = d.object and types.ObjectRef(d.object["api_version"], d.object["kind"], d.object["namespace"],
                                           d.object["name"])
        out.append(types.Diagnostic(getattr(types.Severity, d.severity.upper()), d.message, d.file, d.line, ref))
    return out


def export(plugin_class: type) -> type:
    """The class componentize-py's bindings expect for the plugin's kind, driving
    `plugin_class` (a `Renderer` or a `Validator`): `Render = moor.export(MyRenderer)` or
    `Validate = moor.export(MyValidator)`. An exception other than `Failed` fails the call
    with its type and message."""
    from componentize_py_types import Err
    from wit_world import exports

    plugin = plugin_class()
    if isinstance(plugin, Renderer):
        from wit_world.exports import render as wit_render

        class Render(exports.Render):
            def info(self):
                return _info(plugin, "RENDERER")

            def render(self, config, input):
                if isinstance(input, wit_render.Input_Tree):
                    given = Input(tree=Tree(input.value.root, input.value.path))
                else:
                    given = Input(objects=_objects(input.value))
                try:
                    return _documents(plugin.render(json.loads(config), given))
                except Failed as failed:
                    raise Err(_diagnostics(failed.diagnostics))
                except Exception as e:
                    raise Err(_diagnostics([Diagnostic(ERROR, _describe(e))]))

        return Render
    if isinstance(plugin, Validator):
        class Validate(exports.Validate):
            def info(self):
                return _info(plugin, "VALIDATOR")

            def validate(self, config, objects):
                try:
                    return _diagnostics(plugin.validate(json.loads(config), _objects(objects)))
                except Exception as e:
                    raise Err(str(e) if isinstance(e, Failed) else _describe(e))

        return Validate
    raise TypeError(f"{plugin_class.__name__} is neither a moor_plugin.Renderer nor a moor_plugin.Validator")


def _describe(e: Exception) -> str:
    """An unexpected exception as one line, with where it was raised."""
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f" at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else ""
    return f"{type(e).__name__}: {e}{where}"
