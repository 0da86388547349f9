"""Reading a Prometheus text exposition: declared families and their samples."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


@dataclass
class Exposition:
    types: dict[str, str] = field(default_factory=dict)  # family name as declared -> type
    samples: list[Sample] = field(default_factory=list)

    def find(self, name: str, **labels: str) -> list[Sample]:
        return [
            s
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]

    def value(self, name: str, **labels: str) -> float:
        return sum(s.value for s in self.find(name, **labels))


def parse(text: str) -> Exposition:
    out = Exposition()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            out.types[name] = kind.strip()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.samples.append(Sample(s.name, dict(s.labels), s.value))
    return out
