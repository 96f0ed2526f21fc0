"""An Ising phase run's eval.json read back as `fieldnet.eval.phases` results, for
`fieldnet.figures.phases`."""

from __future__ import annotations

import dataclasses

import numpy as np

from fieldnet.eval import phases


def curves(evaluation: dict) -> list[phases.Curve]:
    """P(ordered | T) of each L from eval.json's `curves`, smallest L first."""
    return [phases.Curve(int(L), np.asarray(c["T"], float), np.asarray(c["p_ordered"], float), [])
            for L, c in sorted(evaluation["curves"].items(), key=lambda item: int(item[0]))]


def extrapolation(evaluation: dict, nu: float, corrections: int = 1) -> phases.Extrapolation:
    """The run's finite-size fit for `fieldnet.figures.phases.tc_extrapolation`, from
    eval.json's `fit` (T_c, its error and the correction coefficients); runs that stored no
    coefficients are refitted on their per-L crossings (`phases.finite_size_extrapolation`)."""
    fit = evaluation.get("fit") or {}
    if "coefficients" in fit:
        return phases.Extrapolation(evaluation["tc"], evaluation["tc_err"],
                                    list(fit["coefficients"]), fit["chi2"], fit["dof"])
    per_size = evaluation["per_L"]
    sizes = sorted(per_size, key=int)
    options = {"corrections": corrections} if corrections > 1 else {}
    refit = phases.finite_size_extrapolation([int(L) for L in sizes],
                                             [per_size[L]["tc"] for L in sizes],
                                             [per_size[L]["tc_err"] for L in sizes], nu=nu,
                                             **options)
    return dataclasses.replace(refit, tc=evaluation["tc"], tc_err=evaluation["tc_err"])
