"""The Dockerfile as stages of instructions, with ARG defaults resolved (via dockerfile-parse)."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from dockerfile_parse import DockerfileParser


@dataclass(frozen=True)
class Instruction:
    name: str
    value: str
    line: int

    def exec_form(self) -> list[str]:
        """ENTRYPOINT/CMD/HEALTHCHECK CMD in JSON exec form."""
        text = self.value
        if self.name == "HEALTHCHECK":
            text = text.split(" CMD ", 1)[1] if " CMD " in text else text
        return list(json.loads(text.strip()))

    def flags(self) -> dict[str, str]:
        """``--from=x`` style flags of COPY/ADD."""
        return dict(re.findall(r"--([a-z-]+)=(\S+)", self.value))

    def operands(self) -> list[str]:
        """COPY/ADD arguments without flags: sources then destination."""
        return [w for w in shlex.split(self.value) if not w.startswith("--")]


@dataclass
class Stage:
    name: str
    image: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, name: str) -> list[Instruction]:
        return [i for i in self.instructions if i.name == name]

    def last(self, name: str) -> Instruction | None:
        found = self.all(name)
        return found[-1] if found else None


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    def lineage(self, stage: Stage) -> list[Stage]:
        """The stage and the stages it is built FROM, nearest first."""
        chain = [stage]
        names = {s.name for s in self.stages}
        while chain[-1].image in names:
            chain.append(self.stage(chain[-1].image))
        return chain

    def effective(self, stage: Stage, name: str) -> Instruction | None:
        """The instruction (USER, ENTRYPOINT, ...) in force in ``stage``, inherited or not."""
        for s in self.lineage(stage):
            found = s.last(name)
            if found is not None:
                return found
        return None

    def env(self, stage: Stage) -> dict[str, str]:
        values: dict[str, str] = {}
        for s in reversed(self.lineage(stage)):
            for env in s.all("ENV"):
                for word in shlex.split(env.value):
                    if "=" in word:
                        key, value = word.split("=", 1)
                        values[key] = value
        return values


def load(path: Path) -> Dockerfile:
    with path.open("rb") as fh:
        structure = DockerfileParser(fileobj=fh).structure
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for item in structure:
        name, value = item["instruction"], item["value"]
        if name == "COMMENT":
            continue
        if name == "ARG" and not stages:
            key, _, default = value.partition("=")
            args[key.strip()] = default.strip()
            continue
        if name == "FROM":
            words = value.split()
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), words[0])
            alias = words[2] if len(words) >= 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(alias, image))
            continue
        stages[-1].instructions.append(Instruction(name, value, item["startline"] + 1))
    return Dockerfile(args, stages)
