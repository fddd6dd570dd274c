"""The side-by-side table: medians of each server, the ratio first/second, and targets.

An optional third server C gets its own value, ratio C/B and verdict against the same
target, in columns after A's result.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One table row. ``check`` gets (a, b, ratio a/b) and says whether the target is met;
    rows without a check are context (CPU cost, error counts) and print no verdict.
    ``c`` is the third server's value (None: not measured for this row).
    """

    name: str
    unit: str
    a: float
    b: float
    target: str = ""
    check: Callable[[float, float, float], bool] | None = None
    digits: int = 0
    ref: float | None = None
    c: float | None = None

    @property
    def ratio(self) -> float:
        return _ratio(self.a, self.b)

    @property
    def verdict(self) -> str:
        if self.check is None:
            return ""
        return "PASS" if self.check(self.a, self.b, self.ratio) else "FAIL"

    @property
    def c_ratio(self) -> float | None:
        return None if self.c is None else _ratio(self.c, self.b)

    @property
    def c_verdict(self) -> str:
        if self.check is None or self.c is None:
            return ""
        return "PASS" if self.check(self.c, self.b, _ratio(self.c, self.b)) else "FAIL"


def _ratio(x: float, b: float) -> float:
    return x / b if b else float("inf") if x else 1.0


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def paired_ratios(times: list[float], refs: list[float]) -> list[float]:
    """Each measurement over the reference taken beside it (in the same repetition, so
    that the machine's speed of the moment cancels out)."""
    return [t / r for t, r in zip(times, refs, strict=True)]


def ratio_at_least(x: float) -> Callable[[float, float, float], bool]:
    return lambda _a, _b, r: r >= x


def ratio_at_most(x: float) -> Callable[[float, float, float], bool]:
    return lambda _a, _b, r: r <= x


def a_at_most(x: float) -> Callable[[float, float, float], bool]:
    return lambda a, _b, _r: a <= x


def render(
    rows: list[Row],
    name_a: str,
    name_b: str,
    name_ref: str | None = None,
    name_c: str | None = None,
) -> str:
    """A fixed-width text table (also valid inside a Markdown code block). With ``name_c``
    three columns show the third server's value, its ratio to B and its verdict; with
    ``name_ref`` a last column shows each row's reference value (blank where a row has none).
    """
    head = ["metric", "unit", name_a, name_b, "ratio", "target", "result"]
    body = [
        [r.name, r.unit, f"{r.a:,.{r.digits}f}", f"{r.b:,.{r.digits}f}", f"{r.ratio:.2f}x",
         r.target, r.verdict]
        for r in rows
    ]  # fmt: skip
    right = {2, 3, 4}
    if name_c is not None:
        right |= {len(head), len(head) + 1}
        head += [name_c, "ratio C/B", "result C"]
        for r, line in zip(rows, body, strict=True):
            c_ratio = r.c_ratio
            line += ["" if r.c is None else f"{r.c:,.{r.digits}f}",
                     "" if c_ratio is None else f"{c_ratio:.2f}x", r.c_verdict]  # fmt: skip
    if name_ref is not None:
        right.add(len(head))
        head.append(name_ref)
        for r, line in zip(rows, body, strict=True):
            line.append("" if r.ref is None else f"{r.ref:,.{r.digits}f}")
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]

    def fmt(line: list[str]) -> str:
        cells = [c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(line, widths, strict=True))]  # fmt: skip
        return "  ".join(cells).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(head), sep, *(fmt(line) for line in body)])
