"""The step runtime: what a compiled Python component runs inside its Argo ``script`` template.

The compiler embeds this module's source, verbatim, at the top of every script template it
emits, followed by the component function's source and one call of :func:`_chute_main`.
So the compiled YAML runs in a stock ``python:3.11`` image with nothing of chute installed,
and this module must only import the standard library and never contain a double brace
(Argo would take it for a template tag).

What a step does, in order:

1. Install the component's ``packages`` with ``python3 -m pip install --quiet`` unless
   every one of them is already installed (and at the pinned version, for ``name==x``).
2. Read each input parameter from the environment variable ``CHUTE_INPUT_<name>``. The
   template sets it to the Argo tag of input parameter ``<name>``, so Argo substitutes
   the value into an environment variable -- data, never Python source -- and this module decodes
   it by the declared type: ``str`` as is, ``int``/``float`` by ``int()``/``float()``,
   ``bool`` from ``true``/``false``, ``list``/``dict`` as JSON. A list whose declared
   element type is not ``str`` has its string elements decoded too (Argo's aggregated loop
   outputs are JSON lists of strings).
3. Hand each ``Input[...]``/``Output[...]`` argument an artifact object whose ``.path`` is
   the artifact's path in the template (``/tmp/artifacts/inputs/<name>`` and
   ``/tmp/artifacts/outputs/<name>``); parent directories of output paths are created.
4. Call the function. Its return value becomes the output parameters, each written to
   ``/tmp/outputs/parameters/<name>`` (``str`` as is, ``bool`` as ``true``/``false``,
   everything else as JSON), which the template declares with ``valueFrom.path``.
5. Write every ``Metrics``/``ClassificationMetrics`` output as its JSON file and check
   that every other output artifact was written.

Metrics file format (the KFP v2 metadata schema; the artifact is archived ``none`` so the
stored object is this JSON):

* ``Metrics``: one flat object, metric name to number: ``{"accuracy": 0.93, "f1": 0.9}``.
* ``ClassificationMetrics``: ``{"confusionMatrix": {"annotationSpecs": [{"displayName":
  "cat"}, ...], "rows": [{"row": [3, 1]}, ...]}, "confidenceMetrics": [{"confidenceThreshold":
  0.5, "recall": 0.8, "falsePositiveRate": 0.1}, ...]}`` (either key may be absent).

If ``CHUTE_STEP_ROOT`` is set, every absolute path above is taken under it, so a step can
be run outside a container (tests, local executors without a private filesystem view).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys

INPUT_ENV_PREFIX = "CHUTE_INPUT_"
STEP_ROOT_ENV = "CHUTE_STEP_ROOT"


class Artifact:
    """A file or directory a step reads or writes; ``path`` is where it lives in the step."""

    schema_title = "system.Artifact"

    def __init__(self, name="", uri="", metadata=None, path=None):
        self.name = name
        self.uri = uri
        self.metadata = dict(metadata or {})
        self._path = path if path is not None else uri

    @property
    def path(self):
        """The local path of the artifact (a file, or a directory the step creates)."""
        return self._path

    @path.setter
    def path(self, value):
        self._path = value

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r}, path={self.path!r})"


class Dataset(Artifact):
    """A dataset artifact."""

    schema_title = "system.Dataset"


class Model(Artifact):
    """A trained model artifact; ``framework`` is kept in its metadata."""

    schema_title = "system.Model"

    @property
    def framework(self):
        return self.metadata.get("framework", "")

    @framework.setter
    def framework(self, value):
        self.metadata["framework"] = value


class HTML(Artifact):
    """An HTML page, shown as is by the UI."""

    schema_title = "system.HTML"


class Markdown(Artifact):
    """A Markdown document, rendered by the UI."""

    schema_title = "system.Markdown"


class Metrics(Artifact):
    """Scalar metrics; the runtime writes ``metadata`` as the artifact's JSON file."""

    schema_title = "system.Metrics"

    def log_metric(self, metric, value):
        """Record one scalar metric (a number)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"metric {metric!r} must be a number, got {type(value).__name__}")
        self.metadata[metric] = value


class ClassificationMetrics(Artifact):
    """A confusion matrix and ROC curve points, in KFP's metadata schema."""

    schema_title = "system.ClassificationMetrics"

    def log_roc_data_point(self, fpr, tpr, threshold):
        """Add one ROC point."""
        point = {"confidenceThreshold": threshold, "recall": tpr, "falsePositiveRate": fpr}
        self.metadata.setdefault("confidenceMetrics", []).append(point)

    def log_roc_curve(self, fpr, tpr, threshold):
        """Add an ROC curve given as three lists of the same length."""
        if not len(fpr) == len(tpr) == len(threshold):
            raise ValueError(
                f"fpr, tpr and threshold must have the same length, got "
                f"{len(fpr)}, {len(tpr)} and {len(threshold)}")
        for f, t, th in zip(fpr, tpr, threshold):
            self.log_roc_data_point(f, t, th)

    def log_confusion_matrix(self, categories, matrix):
        """Record a square confusion matrix: ``matrix[i][j]`` counts true i predicted j."""
        categories = [str(c) for c in categories]
        if len(matrix) != len(categories) or any(len(r) != len(categories) for r in matrix):
            raise ValueError(
                f"confusion matrix must be {len(categories)}x{len(categories)} "
                f"for categories {categories}")
        self.metadata["confusionMatrix"] = {
            "annotationSpecs": [{"displayName": c} for c in categories],
            "rows": [{"row": list(r)} for r in matrix],
        }


ARTIFACT_CLASSES = {
    cls.__name__: cls
    for cls in (Artifact, Dataset, Model, HTML, Markdown, Metrics, ClassificationMetrics)
}
METRICS_CLASSES = ("Metrics", "ClassificationMetrics")


class StepInputError(Exception):
    """An input value that does not decode as its declared type."""


def _root_path(path):
    root = os.environ.get(STEP_ROOT_ENV, "")
    return root.rstrip("/") + path if root and path.startswith("/") else path


def _requirement_present(req):
    """True if the distribution named by ``req`` is installed (at ``==`` version if pinned)."""
    match = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(==\s*([^\s;,]+))?", req)
    if not match:
        return False
    try:
        version = importlib.metadata.version(match.group(1))
    except importlib.metadata.PackageNotFoundError:
        return False
    rest = req[match.end():].strip()
    if rest and not rest.startswith(";"):
        return False  # a range we do not evaluate here: let pip decide
    return match.group(4) is None or version == match.group(4)


def install_packages(packages):
    """Install missing packages with pip, as KFP does at step start; skip if all present."""
    missing = [p for p in packages if not _requirement_present(p)]
    if not missing:
        return
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-warn-script-location",
           "--disable-pip-version-check", *missing]
    print("chute: installing " + " ".join(missing), file=sys.stderr, flush=True)
    if subprocess.run(cmd, stdout=sys.stderr, check=False).returncode != 0:
        raise StepInputError("pip could not install " + " ".join(missing))


def _decode_scalar(raw, kind, what):
    if kind in ("str", "any"):
        return raw
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            low = raw.strip().lower()
            if low in ("true", "1"):
                return True
            if low in ("false", "0"):
                return False
            raise ValueError(raw)
        if kind in ("list", "dict"):
            value = json.loads(raw)
            if not isinstance(value, list if kind == "list" else dict):
                raise ValueError(raw)
            return value
    except ValueError:
        raise StepInputError(f"{what}: expected {kind}, got {raw[:200]!r}") from None
    raise StepInputError(f"{what}: unknown type {kind!r}")


def decode_input(raw, spec):
    """Decode one input parameter's text by its declared ``type`` (and list ``items``)."""
    what = f"input parameter {spec['name']!r}"
    value = _decode_scalar(raw, spec["type"], what)
    items = spec.get("items")
    if spec["type"] == "list" and items and items not in ("str", "any"):
        value = [_decode_scalar(v, items, what) if isinstance(v, str) else v for v in value]
    return value


def encode_output(value, kind, name):
    """Encode one output value as the text of its output parameter file."""
    ok = {
        "str": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
        "list": (list, tuple), "dict": (dict,),
    }.get(kind)
    if ok is not None and (not isinstance(value, ok) or (kind in ("int", "float")
                                                         and isinstance(value, bool))):
        raise TypeError(f"output {name!r} is declared {kind}, "
                        f"but the function returned {type(value).__name__}")
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _split_result(result, outputs):
    """Map the function's return value onto the declared output parameters."""
    if not outputs:
        return {}
    if len(outputs) == 1 and outputs[0]["name"] == "Output":
        return {"Output": result}
    if hasattr(result, "_asdict"):
        return dict(result._asdict())
    if isinstance(result, dict):
        return result
    if isinstance(result, (tuple, list)) and len(result) == len(outputs):
        return {o["name"]: v for o, v in zip(outputs, result)}
    raise TypeError(f"expected the function to return {[o['name'] for o in outputs]}, "
                    f"got {type(result).__name__}")


def run_step(fn, step):
    """Run one step: packages, inputs, call, outputs. ``step`` is the compiler's config."""
    install_packages(step.get("packages", []))
    kwargs = {}
    for spec in step.get("inputs", []):
        raw = os.environ.get(INPUT_ENV_PREFIX + spec["name"])
        if raw is None:
            raise StepInputError(f"input parameter {spec['name']!r} is missing "
                                 f"(environment variable {INPUT_ENV_PREFIX}{spec['name']})")
        kwargs[spec["name"]] = decode_input(raw, spec)
    for spec in step.get("input_artifacts", []):
        path = _root_path(spec["path"])
        if not os.path.exists(path):
            raise StepInputError(f"input artifact {spec['name']!r} is missing at {path}")
        cls = ARTIFACT_CLASSES[spec["kind"]]
        art = cls(name=spec["name"], uri=path, path=path)
        if spec["kind"] in METRICS_CLASSES and os.path.isfile(path):
            with open(path, encoding="utf-8") as fh:
                art.metadata = json.load(fh)
        kwargs[spec["name"]] = art
    out_arts = {}
    for spec in step.get("output_artifacts", []):
        path = _root_path(spec["path"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        cls = ARTIFACT_CLASSES[spec["kind"]]
        out_arts[spec["name"]] = kwargs[spec["name"]] = cls(name=spec["name"], uri=path,
                                                            path=path)
    result = fn(**kwargs)
    outputs = step.get("outputs", [])
    values = _split_result(result, outputs)
    for spec in outputs:
        if spec["name"] not in values:
            raise TypeError(f"the function returned no value for output {spec['name']!r}")
        text = encode_output(values[spec["name"]], spec["type"], spec["name"])
        _write(_root_path(spec["path"]), text)
    for spec in step.get("output_artifacts", []):
        art = out_arts[spec["name"]]
        if spec["kind"] in METRICS_CLASSES:
            _write(art.path, json.dumps(art.metadata, sort_keys=True))
        elif not os.path.exists(art.path):
            raise RuntimeError(f"output artifact {spec['name']!r} was not written: "
                               f"the function must create {art.path}")


_STEP_CONFIGS = {}  # step config text -> parsed (a warm worker runs one script many times)


def _chute_main(fn, step_json):
    """Entry point of a compiled script: run the step, exit 1 with a message on bad input."""
    # Line-buffered output, so logs stream while the step runs rather than at its end.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure") and not getattr(stream, "line_buffering", False):
            stream.reconfigure(line_buffering=True)
    step = _STEP_CONFIGS.get(step_json)
    if step is None:
        if len(_STEP_CONFIGS) >= 64:
            _STEP_CONFIGS.clear()
        step = _STEP_CONFIGS[step_json] = json.loads(step_json)  # (run_step only reads it)
    try:
        run_step(fn, step)
    except StepInputError as exc:
        print(f"chute: {exc}", file=sys.stderr)
        sys.exit(1)
