"""Subgroup disparity: who makes up the most exposed patients, and how exposed each subgroup is.

An aggregate attack success near a coin flip can hide subgroups whose patients are identified
almost surely. This module turns patient exposure (attack AUC per patient) and patient
subgroup attributes into the statistics a report needs to show that:

1. :func:`composition` — the make-up of the most exposed ``top_fraction`` of patients against
   the whole cohort, per attribute: Pearson residuals per subgroup, a χ² test per attribute
   (an exact or Monte-Carlo p-value when expected counts are small) and a multiple-testing
   correction across attributes.
2. :func:`group_risk` — per-subgroup exposure distributions: median (bootstrap interval) and
   mean (t interval), share of high-risk patients at each threshold (binomial interval).
3. :func:`size_vs_exposure` — subgroup size against exposure, so that rare subgroups (a disease
   category with 7 patients) stand out instead of vanishing into an average.
4. :func:`stratified` — the composition test for one attribute within the strata of a
   confounder (race within disease category): a generalised Cochran–Mantel–Haenszel test.

Conventions shared by all functions:

- ``attributes`` is a DataFrame with one row per patient (index 0..P-1) and ``exposure`` a
  float array [P] in [0, 1]; NaN exposure means "undefined" and those patients are excluded
  from every statistic (the count is reported).
- Subgroups are strings, made by :func:`patient_groups`: text and categorical columns keep
  their values; numeric columns with more distinct values than ``numeric_bins`` are cut into
  quantile groups (quartiles by default) labelled by the smallest and largest value observed
  in the group, e.g. ``"52–64"``; missing values form their own subgroup ``"missing"``.
  Groups are computed on all P patients, so labels do not depend on which patients have a
  defined exposure.
- Random draws (bootstrap, Monte-Carlo p-values, random tie-breaking) use generators keyed
  by ``seed`` and by the attribute (and subgroup) name, so a result for one attribute does
  not change when other columns are added to the analysis.

The package, one module per concept: ``groups`` (patient subgroups), ``inputs`` (checks and
seeded generators), ``top`` (the most exposed set), ``makeup`` (the composition test and
p-value corrections), ``subgroup_risk`` (group risk and size against exposure), ``cmh``
(the stratified test) and ``summary`` (all of them for the report, as plain JSON values
by :func:`miaudit.jsonable.jsonable`).
"""

from __future__ import annotations

from miaudit.disparity.cmh import stratified
from miaudit.disparity.groups import MISSING, patient_groups
from miaudit.disparity.makeup import (
    SMALL_EXPECTED,
    Composition,
    Correction,
    TestMethod,
    adjust_pvalues,
    composition,
)
from miaudit.disparity.subgroup_risk import (
    RARE_FRACTION,
    RARE_N,
    ShareInterval,
    bootstrap_medians,
    group_risk,
    share_interval,
    size_vs_exposure,
)
from miaudit.disparity.summary import summarise
from miaudit.disparity.top import Ties

__all__ = [
    "MISSING",
    "RARE_FRACTION",
    "RARE_N",
    "SMALL_EXPECTED",
    "Composition",
    "Correction",
    "ShareInterval",
    "TestMethod",
    "Ties",
    "adjust_pvalues",
    "bootstrap_medians",
    "composition",
    "group_risk",
    "patient_groups",
    "share_interval",
    "size_vs_exposure",
    "stratified",
    "summarise",
]
