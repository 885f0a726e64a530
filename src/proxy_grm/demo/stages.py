"""Stage bookkeeping for the demo: progress lines, timings, reuse of finished stages.

A stage's result (a pydantic model of counts and paths, ``demo.results``) is stored in
``<out>/stages/<name>.json`` when it succeeds, with what the stage depended on (its
settings and its input stages' results, each with a digest of what *that* stage depended
on). A rerun reuses the result only when those are the same: a rerun with other
``--sft-steps`` trains again, and so does every stage that reads the new checkpoint; a
change upstream reaches every stage below it even where a stage's result reads the same
(new images under the same paths and counts). A stored result that no longer validates as the stage's
model (written before a field was renamed) is stale too: the stage runs again. A
failure raises ``StageFailed`` naming the stage.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar, cast

from pydantic import BaseModel, ValidationError

Result = TypeVar("Result", bound=BaseModel)


class StageFailed(RuntimeError):
    """A demo stage failed; the message names the stage and its log or cause."""


def run_logged(argv: list[str], log: Path, env: dict[str, str] | None = None, what: str = "") -> None:
    """Run a command with its output in ``log``; fail naming the command and the log's tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        code = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT,
                              env=env or dict(os.environ)).returncode
    if code != 0:
        tail = log.read_bytes()[-3000:].decode(errors="replace")
        raise StageFailed(f"{what or argv[0]} exited with {code} (log {log}):\n{tail}")


@dataclass
class StageRecord:
    name: str
    title: str
    seconds: float
    reused: bool
    result: BaseModel


@dataclass
class StageRunner:
    out_dir: Path
    records: list[StageRecord] = field(default_factory=list)
    # id(result) -> a digest of the depends it was produced (or reused) under; the results live in ``records``.
    _provenance: dict[int, str] = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        return self.out_dir / "stages"

    def run(self, name: str, title: str, fn: Callable[[], Result], result_type: type[Result],
            depends: Any = None) -> Result:
        """Run ``fn`` once; later runs with the same ``depends`` (JSON-able, results included) reuse its stored
        result, read back as ``result_type``."""
        record = self._execute(len(self.records) + 1, name, title, fn, result_type, depends)
        self.records.append(record)
        return cast(Result, record.result)  # _execute checked its type

    def run_together(self, stages: list[tuple[str, str, Callable[[], Result], type[Result], Any]]) -> list[Result]:
        """Run independent stages at the same time (each drives its own subprocess)."""
        first = len(self.records) + 1
        with ThreadPoolExecutor(len(stages)) as pool:
            futures = [pool.submit(self._execute, first + i, *stage) for i, stage in enumerate(stages)]
            records = [future.result() for future in futures]
        self.records += records
        return [cast(Result, record.result) for record in records]

    def _execute(self, index: int, name: str, title: str, fn: Callable[[], BaseModel], result_type: type[BaseModel],
                 depends: Any) -> StageRecord:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        state = self.state_dir / f"{name}.json"
        key = json.loads(json.dumps(depends, sort_keys=True, default=self._jsonable))
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        if state.exists():
            stored = json.loads(state.read_text())
            if stored.get("depends") == key:
                try:
                    result = result_type.model_validate(stored["result"])
                except ValidationError as error:
                    print(f"[{index}] {title}: its stored result is not a {result_type.__name__} any more "
                          f"({_first_error(error)}), running it again", flush=True)
                else:
                    print(f"[{index}] {title}: reused ({stored['seconds']:.1f}s when it ran)", flush=True)
                    self._provenance[id(result)] = digest
                    return StageRecord(name, title, stored["seconds"], True, result)
            else:
                print(f"[{index}] {title}: its settings or inputs changed since it ran, running it again", flush=True)
        print(f"[{index}] {title} ...", flush=True)
        start = time.perf_counter()
        try:
            result = fn()
        except Exception as error:
            cause = str(error) if isinstance(error, StageFailed) else f"{type(error).__name__}: {error}"
            raise StageFailed(f"stage '{name}' ({title}) failed: {cause}") from error
        if not isinstance(result, result_type):
            raise TypeError(f"stage '{name}' returned a {type(result).__name__}, not a {result_type.__name__}")
        seconds = time.perf_counter() - start
        state.write_text(json.dumps({"seconds": seconds, "depends": key, "result": result.model_dump(mode="json")},
                                    indent=1))
        print(f"[{index}] {title}: done in {seconds:.1f}s", flush=True)
        self._provenance[id(result)] = digest
        return StageRecord(name, title, seconds, False, result)

    def _jsonable(self, value: Any) -> Any:
        """A stage result in ``depends`` counts by its fields (as stored) and, when this runner produced it, by
        what its stage depended on; anything else by its text (a path)."""
        if isinstance(value, BaseModel):
            return {"result": value.model_dump(mode="json"), "inputs": self._provenance.get(id(value))}
        return str(value)




def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    return f"{'.'.join(map(str, first['loc'])) or 'result'}: {first['msg']}"


def source_digest(*modules: ModuleType) -> str:
    """A digest of the modules' source (a package's: every module in its folder): a stage that runs their
    code reruns when the code changes."""
    digest = hashlib.sha256()
    for module in modules:
        path = Path(str(module.__file__))
        for file in sorted(path.parent.rglob("*.py")) if path.name == "__init__.py" else [path]:
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def content_digest(path: Path) -> str:
    """A digest of a file's bytes, or of every file's name and bytes in a folder: a stage that reads only these
    (an SFT run reads its base model and its set, whose image paths name their content) reruns when they change,
    not when a stage above it reran and wrote the same bytes."""
    digest = hashlib.sha256()
    for file in sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]:
        digest.update(str(file.relative_to(path)).encode() if path.is_dir() else b"")
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]
