"""ACoTI (paper Sec. III-C): exemplar selection by Eq. 1 and the Steer-Demonstrate-Enlighten prompt.

Eq. 1 picks, for a target image with human-annotated evidence categories F_i, the
smallest set of human demonstrations whose categories cover F_i and that holds at
least one fake (chi+) and one real (chi-) exemplar. It is solved exactly as a 0/1
integer programme with SciPy's MILP solver (HiGHS): minimise the number of
exemplars, with a tie-break (weight below one exemplar) towards exemplars whose
categories stay inside F_i, so that L(chi') = F_i holds whenever it can.

The prompt is the quadruple <context, target, human supervision (F_i, chi_i,
auth_i), CoT prompt> from the versioned template ``prompts/acoti.v1.txt``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources


@dataclass(frozen=True)
class Exemplar:
    """A human demonstration: its evidence categories, authenticity and reasoning text."""

    id: str
    categories: frozenset[str]
    fake: bool
    reasoning: str = ""


class CoverError(ValueError):
    """No exemplar set satisfies Eq. 1 (a category no exemplar covers, or a missing class)."""


def select_exemplars(categories: Sequence[str], pool: Sequence[Exemplar]) -> list[Exemplar]:
    """The minimum covering set of Eq. 1 (exact, via ``scipy.optimize.milp``)."""
    import numpy as np
    from scipy.optimize import Bounds, LinearConstraint, milp

    target = set(categories)
    uncovered = target - set().union(*[e.categories for e in pool]) if pool else target
    if uncovered:
        raise CoverError(f"no exemplar covers the categories {sorted(uncovered)}")
    if not any(e.fake for e in pool) or not any(not e.fake for e in pool):
        raise CoverError("Eq. 1 needs at least one fake and one real exemplar in the pool")
    n = len(pool)
    extra = np.array([len(e.categories - target) for e in pool], dtype=float)
    cost = 1.0 + extra / (1.0 + extra.sum()) / (n + 1)  # tie-break stays below one exemplar
    rows, lower = [], []
    for category in sorted(target):
        rows.append([1.0 if category in e.categories else 0.0 for e in pool])
        lower.append(1.0)
    rows.append([1.0 if e.fake else 0.0 for e in pool])
    lower.append(1.0)
    rows.append([0.0 if e.fake else 1.0 for e in pool])
    lower.append(1.0)
    result = milp(
        c=cost,
        constraints=LinearConstraint(np.array(rows), lb=np.array(lower), ub=np.inf),
        integrality=np.ones(n),
        bounds=Bounds(0, 1),
    )
    if not result.success:
        raise CoverError(f"Eq. 1 has no solution: {result.message}")
    return [e for e, x in zip(pool, result.x, strict=False) if x > 0.5]


@dataclass
class ACoTIPrompt:
    """The assembled prompt and the supervision it carries."""

    text: str
    exemplars: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    authenticity: str = ""


def build_prompt(categories: Sequence[str], fake: bool, pool: Sequence[Exemplar], version: str = "v1") -> ACoTIPrompt:
    """Steer (categories), Demonstrate (Eq. 1 exemplars), Enlighten (label + CoT prompt)."""
    template = (resources.files("harness.trainers") / "prompts" / f"acoti.{version}.txt").read_text(encoding="utf-8")
    chosen = select_exemplars(categories, pool)
    demos = "\n\n".join(
        f"Example {i + 1} ({'fake' if e.fake else 'real'}; evidence: {', '.join(sorted(e.categories))}):\n{e.reasoning}"
        for i, e in enumerate(chosen)
    )
    authenticity = "fake (AI-generated)" if fake else "real"
    text = template.format(categories=", ".join(sorted(categories)), demonstrations=demos, authenticity=authenticity)
    return ACoTIPrompt(text, [e.id for e in chosen], sorted(categories), authenticity)
