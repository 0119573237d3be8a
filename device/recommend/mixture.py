"""How sure the estimate is, as weights over segments. Pure: no I/O.

A shopper estimated at 24 +/- 6 years is not a "18-24" for certain: about 40% of that belief lies in
25-34. Because a score is linear in the segment vector, the expected score under that belief is the
score of the expected vector ``sum_s w_s v_s``: ranking by it ranks by what this shopper most likely
likes, and it is still one dot product per item on the device (see ``FactorModel.mixture_vector``).
"""

from __future__ import annotations

import math
from statistics import NormalDist

from smartshelf.core.types import AGE_BRACKETS, BRACKET_LOWER, Gender, age_bracket

#: Segments with less weight than this are dropped (and the rest renormalised): they would not change a
#: pick, and a short mixture is cheap and readable in logs.
MIN_WEIGHT = 0.02


def bracket_probabilities(age: float, age_std: float, *, min_age: float = 0.0) -> dict[str, float]:
    """P(bracket) for a true age ~ Normal(age, age_std), over the brackets that reach ``min_age`` or older.

    Brackets entirely below ``min_age`` are left out and their probability goes to the youngest bracket
    left: a shopper who passed the minors gate is never ranked with a minors' segment. ``age_std <= 0``
    gives the bracket of ``age`` alone.
    """
    uppers = (*BRACKET_LOWER[1:], math.inf)
    allowed = [i for i, upper in enumerate(uppers) if upper > min_age]
    if age_std <= 0:
        return {AGE_BRACKETS[max(AGE_BRACKETS.index(age_bracket(age)), allowed[0])]: 1.0}
    cdf = NormalDist(age, age_std).cdf  # cdf(-inf) = 0, cdf(inf) = 1
    mass: dict[str, float] = {}
    for i in allowed:
        lower = -math.inf if i == allowed[0] else BRACKET_LOWER[i]
        mass[AGE_BRACKETS[i]] = max(cdf(uppers[i]) - cdf(lower), 0.0)
    total = sum(mass.values())
    return {bracket: m / total for bracket, m in mass.items()}


def segment_mixture(
    p_female: float, age: float, age_std: float, *, min_age: float = 0.0, min_weight: float = MIN_WEIGHT
) -> dict[str, float]:
    """Weights (summing to 1) of the segments ``"gender/bracket"`` this estimate may belong to, best first.

    P(gender) from ``p_female`` times P(bracket) from :func:`bracket_probabilities`; weights under
    ``min_weight`` are dropped. With a certain estimate (p_female 0 or 1, ``age_std`` 0) it is the one
    segment of :attr:`Demographic.segment <smartshelf.core.types.Demographic.segment>`.
    """
    if not 0.0 <= p_female <= 1.0 or math.isnan(p_female):
        raise ValueError(f"p_female must be in [0, 1], got {p_female}")
    if math.isnan(age) or math.isnan(age_std):
        raise ValueError(f"age and age_std must be numbers, got {age} +/- {age_std}")
    brackets = bracket_probabilities(age, age_std, min_age=min_age)
    weights = {
        f"{gender.value}/{bracket}": p_gender * p_bracket
        for gender, p_gender in ((Gender.FEMALE, p_female), (Gender.MALE, 1.0 - p_female))
        for bracket, p_bracket in brackets.items()
    }
    best = max(weights, key=weights.__getitem__)
    kept = {label: w for label, w in weights.items() if w >= min_weight or label == best}
    total = sum(kept.values())
    return {label: w / total for label, w in sorted(kept.items(), key=lambda kv: -kv[1])}
