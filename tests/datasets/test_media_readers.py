"""Image and signal readers: round trips through every format, known answers, clear errors."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from miaudit.cohort import Cohort
from miaudit.datasets.media import MediaSpec, load_media_cohort
from miaudit.datasets.synthetic_media import (
    make_synthetic_ecg,
    make_synthetic_images,
    write_ecg_folder,
    write_image_folder,
    write_medmnist_npz,
    write_stacked_npy,
)
from miaudit.errors import InputError

pydicom = pytest.importorskip("pydicom")
wfdb = pytest.importorskip("wfdb")
from pydicom.data import get_testdata_file  # noqa: E402

ATTRIBUTES = ["sex", "site", "group"]
#: wfdb 4.3 calls pandas APIs that pandas 3 deprecates when the tests write records directly.
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword:DeprecationWarning")


# -- helpers ------------------------------------------------------------------------------


def images(**kwargs: object) -> Cohort:
    options: dict[str, object] = {"num_patients": 24, "rare_fraction": 0.1, "num_atypical": 2}
    options["num_mislabelled"] = 2
    options.update(kwargs)
    return make_synthetic_images(**options)[0]  # type: ignore[arg-type]


def ecgs(**kwargs: object) -> Cohort:
    options: dict[str, object] = {"num_patients": 12, "length": 300, "rare_fraction": 0.1}
    options.update({"num_atypical": 1, "num_mislabelled": 1})
    options.update(kwargs)
    return make_synthetic_ecg(**options)[0]  # type: ignore[arg-type]


def index_spec(index: Path, modality: str, **fields: object) -> dict[str, object]:
    spec: dict[str, object] = {
        "path": index,
        "modality": modality,
        "label": "label",
        "patient_id": "patient_id",
        "record_id": "record_id",
        "attributes": ATTRIBUTES,
    }
    spec.update(fields)
    return spec


def assert_same_records(read: Cohort, cohort: Cohort) -> None:
    """Everything but the inputs: labels, ids, patients and attributes."""
    np.testing.assert_array_equal(read.labels, cohort.labels)
    assert read.class_names == cohort.class_names
    np.testing.assert_array_equal(read.patient_ids, cohort.patient_ids)
    np.testing.assert_array_equal(read.record_ids, cohort.record_ids)
    np.testing.assert_array_equal(read.patient, cohort.patient)
    pd.testing.assert_frame_equal(read.attributes, cohort.attributes[read.attributes.columns])


def hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``: user files must never change."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def refused(folder: Path, spec: dict[str, object], *fragments: str) -> str:
    """The reader raises one InputError naming ``fragments``, and leaves ``folder`` as it was."""
    before = hashes(folder)
    with pytest.raises(InputError) as info:
        load_media_cohort(spec)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    assert "\n" not in message
    assert hashes(folder) == before
    return message


def quantized(inputs: np.ndarray, bits: int) -> np.ndarray:
    """What an integer file stores, back in [0, 1], written out plainly."""
    scale = 2**bits - 1
    return (np.round(inputs.astype(np.float64) * scale) / scale).astype(np.float32)


def min_max_each(values: np.ndarray) -> np.ndarray:
    out = np.empty(values.shape, dtype=np.float64)
    for i, record in enumerate(values.astype(np.float64)):
        out[i] = (record - record.min()) / (record.max() - record.min())
    return out


def write_index(folder: Path, rows: dict[str, list[object]]) -> Path:
    path = folder / "index.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def save_png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


# -- image round trips --------------------------------------------------------------------


def test_png_8_bit_round_trip_equals_the_quantised_images(tmp_path: Path) -> None:
    cohort = images()
    index = write_image_folder(cohort, tmp_path / "png")
    read = load_media_cohort(index_spec(index, "image"))
    np.testing.assert_array_equal(read.inputs, quantized(cohort.inputs, 8))
    assert_same_records(read, cohort)
    assert read.modality == "image" and read.inputs.dtype == np.float32
    assert read.feature_names == ("pixels",)
    assert read.name == "index" and read.source == str(index)


def test_png_16_bit_and_rgb_round_trips(tmp_path: Path) -> None:
    gray = images()
    read = load_media_cohort(
        index_spec(write_image_folder(gray, tmp_path / "p16", bits=16), "image")
    )
    np.testing.assert_allclose(read.inputs, quantized(gray.inputs, 16), rtol=0, atol=1e-7)
    rgb = images(channels=3)
    read = load_media_cohort(index_spec(write_image_folder(rgb, tmp_path / "rgb"), "image"))
    assert read.inputs.shape[1] == 3
    np.testing.assert_array_equal(read.inputs, quantized(rgb.inputs, 8))


@pytest.mark.parametrize("bits", [8, 16])
def test_dicom_round_trip_is_min_max_scaled_per_image(tmp_path: Path, bits: int) -> None:
    cohort = images()
    index = write_image_folder(cohort, tmp_path / "dcm", fmt="dcm", bits=bits)
    read = load_media_cohort(index_spec(index, "image"))
    # The file stores the quantised pixels; the reader scales each image to [0, 1] by its
    # own minimum and maximum, so the answer is the min-max of the quantised image (float32
    # rounding only).
    expected = min_max_each(np.round(cohort.inputs.astype(np.float64) * (2**bits - 1)))
    np.testing.assert_allclose(read.inputs, expected, rtol=0, atol=1e-6)
    assert_same_records(read, cohort)
    first = pydicom.dcmread(tmp_path / "dcm" / pd.read_csv(index)["path"][0])
    assert first.PatientID == cohort.patient_ids[0]
    assert first.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
    assert first.BitsAllocated == bits


def test_dicom_rescale_and_monochrome1_are_applied(tmp_path: Path) -> None:
    cohort = images(num_patients=6, rare_fraction=0.2, num_atypical=0, num_mislabelled=0)
    index = write_image_folder(cohort, tmp_path / "dcm", fmt="dcm")
    paths = [tmp_path / "dcm" / p for p in pd.read_csv(index)["path"]]
    plain = load_media_cohort(index_spec(index, "image")).inputs
    ds = pydicom.dcmread(paths[0])
    ds.RescaleSlope, ds.RescaleIntercept = -2, 100  # a negative slope inverts the image
    ds.save_as(paths[0])
    ds = pydicom.dcmread(paths[1])
    ds.PhotometricInterpretation = "MONOCHROME1"  # bright means low values
    ds.save_as(paths[1])
    ds = pydicom.dcmread(paths[2])
    ds.RescaleSlope, ds.RescaleIntercept = 3, -1024  # a positive rescale changes nothing
    ds.save_as(paths[2])
    read = load_media_cohort(index_spec(index, "image")).inputs
    np.testing.assert_allclose(read[0], 1 - plain[0], atol=1e-6)
    np.testing.assert_allclose(read[1], 1 - plain[1], atol=1e-6)
    np.testing.assert_allclose(read[2], plain[2], atol=1e-6)
    np.testing.assert_array_equal(read[3:], plain[3:])


def test_pydicom_ct_test_file_is_rescaled_and_min_max_scaled(tmp_path: Path) -> None:
    shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "ct.dcm")
    index = write_index(tmp_path, {"path": ["ct.dcm", "ct.dcm"], "record": ["a", "b"], "y": [0, 1]})
    read = load_media_cohort(
        {"path": index, "modality": "image", "label": "y", "record_id": "record"}
    )
    ds = pydicom.dcmread(tmp_path / "ct.dcm")
    hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    expected = (hu - hu.min()) / (hu.max() - hu.min())
    assert read.inputs.shape == (2, 1, *hu.shape)
    np.testing.assert_allclose(read.inputs[0, 0], expected, atol=1e-6)


def test_npy_images_round_trip_exactly(tmp_path: Path) -> None:
    cohort = images(channels=3)
    read = load_media_cohort(index_spec(write_image_folder(cohort, tmp_path, fmt="npy"), "image"))
    np.testing.assert_array_equal(read.inputs, cohort.inputs)
    assert_same_records(read, cohort)


def test_npy_image_layouts_and_integer_scaling(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    hw = rng.integers(0, 256, (5, 6), dtype=np.uint8)
    hwc = rng.integers(0, 65536, (5, 6, 3), dtype=np.uint16)
    wide = rng.normal(100.0, 30.0, (1, 5, 6))  # outside [0, 1]: min-max per image
    for name, array in (("hw", hw), ("hwc", hwc), ("wide", wide)):
        np.save(tmp_path / f"{name}.npy", array)
    index = write_index(
        tmp_path, {"path": ["hw.npy", "hwc.npy", "wide.npy"], "label": ["a", "b", "a"]}
    )
    read = load_media_cohort({"path": index, "modality": "image", "label": "label", "channels": 3})
    np.testing.assert_allclose(read.inputs[0], np.repeat(hw[None] / 255.0, 3, axis=0), atol=1e-7)
    np.testing.assert_allclose(read.inputs[1], np.moveaxis(hwc, -1, 0) / 65535.0, atol=1e-7)
    low, high = wide.min(), wide.max()
    np.testing.assert_allclose(
        read.inputs[2], np.repeat((wide - low) / (high - low), 3, 0), atol=1e-6
    )
    assert read.patient_ids.tolist() == ["hw.npy", "hwc.npy", "wide.npy"]  # default record ids


def test_other_pillow_formats(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    gray = rng.integers(0, 256, (6, 5), dtype=np.uint8)
    deep = rng.integers(0, 65536, (6, 5), dtype=np.uint16)
    save_png(tmp_path / "a.bmp", gray)
    save_png(tmp_path / "b.tif", deep)
    save_png(tmp_path / "c.jpg", gray)
    index = write_index(tmp_path, {"path": ["a.bmp", "b.tif", "c.jpg"], "y": [0, 1, 1]})
    read = load_media_cohort({"path": index, "modality": "image", "label": "y"})
    np.testing.assert_allclose(read.inputs[0, 0], gray / 255.0, atol=1e-7)
    np.testing.assert_allclose(read.inputs[1, 0], deep / 65535.0, atol=1e-7)
    assert np.abs(read.inputs[2, 0] - gray / 255.0).mean() < 0.1  # JPEG is lossy


def test_multilabel_index_read_from_0_1_columns_and_from_a_separated_column(
    tmp_path: Path,
) -> None:
    cohort = images(num_labels=4)
    index = write_image_folder(cohort, tmp_path)
    columns = load_media_cohort(
        index_spec(index, "image", label=None, labels=list(cohort.class_names))
    )
    np.testing.assert_array_equal(columns.labels, cohort.labels)
    assert columns.class_names == cohort.class_names
    separated = load_media_cohort(index_spec(index, "image", label="findings", label_separator="|"))
    order = [cohort.class_names.index(name) for name in separated.class_names]
    assert list(separated.class_names) == sorted(cohort.class_names)
    np.testing.assert_array_equal(separated.labels, cohort.labels[:, order])
    assert (
        (cohort.labels.sum(axis=1) == 0) == (pd.read_csv(index)["findings"] == "No Finding")
    ).all()


def test_separated_labels_follow_the_documented_rule(tmp_path: Path) -> None:
    for i in range(5):
        save_png(tmp_path / f"{i}.png", np.full((4, 4), 10 * i, dtype=np.uint8))
    cells = ["Effusion|Edema", "", "No Finding", " edema | Effusion ", "Mass|no finding"]
    index = write_index(tmp_path, {"path": [f"{i}.png" for i in range(5)], "y": cells})
    read = load_media_cohort(
        {"path": index, "modality": "image", "label": "y", "label_separator": "|"}
    )
    assert read.class_names == ("Edema", "Effusion", "Mass", "edema")
    expected = [[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 1], [0, 0, 1, 0]]
    np.testing.assert_array_equal(read.labels, expected)


def test_medmnist_round_trip_single_and_multilabel(tmp_path: Path) -> None:
    cohort = images(num_patients=40)
    path = write_medmnist_npz(cohort, tmp_path / "mnist.npz")
    read = load_media_cohort({"path": path})
    np.testing.assert_array_equal(read.inputs, quantized(cohort.inputs, 8))
    np.testing.assert_array_equal(read.labels, cohort.labels)
    assert read.class_names == ("0", "1")
    n = cohort.num_records
    train, val = round(0.7 * n), round(0.1 * n)
    expected_ids = (
        [f"train-{i}" for i in range(train)]
        + [f"val-{i}" for i in range(val)]
        + [f"test-{i}" for i in range(n - train - val)]
    )
    assert read.record_ids.tolist() == expected_ids
    assert read.patient_ids.tolist() == expected_ids  # every image is its own patient
    assert read.num_patients == n and read.attributes.shape == (n, 0)
    named = load_media_cohort({"path": path, "labels": ["healthy", "sick"], "splits": ["test"]})
    assert named.class_names == ("healthy", "sick") and named.num_records == n - train - val
    np.testing.assert_array_equal(named.labels, cohort.labels[train + val :])

    multi = images(num_patients=40, num_labels=3, channels=3)
    read = load_media_cohort({"path": write_medmnist_npz(multi, tmp_path / "chest.npz")})
    np.testing.assert_array_equal(read.labels, multi.labels)
    np.testing.assert_array_equal(read.inputs, quantized(multi.inputs, 8))
    assert read.class_names == ("0", "1", "2")


def test_stacked_array_round_trip_for_images_and_signals(tmp_path: Path) -> None:
    cohort = images()
    index = write_stacked_npy(cohort, tmp_path / "img")
    read = load_media_cohort(index_spec(index, "image", array=tmp_path / "img" / "inputs.npy"))
    np.testing.assert_array_equal(read.inputs, cohort.inputs)
    assert_same_records(read, cohort)
    signals = ecgs()
    index = write_stacked_npy(signals, tmp_path / "ecg")
    read = load_media_cohort(
        index_spec(index, "signal", array=tmp_path / "ecg" / "inputs.npy", standardize=False)
    )
    np.testing.assert_array_equal(read.inputs, signals.inputs)
    assert_same_records(read, signals)


def test_png_reading_matches_reading_each_file_with_pillow(tmp_path: Path) -> None:
    cohort = images(num_patients=60)
    index = write_image_folder(cohort, tmp_path)
    read = load_media_cohort(index_spec(index, "image"))
    paths = pd.read_csv(index)["path"]
    one_by_one = [np.asarray(Image.open(tmp_path / p), dtype=np.float32) / 255 for p in paths]
    np.testing.assert_array_equal(read.inputs[:, 0], np.stack(one_by_one))


# -- resizing and channels ------------------------------------------------------------------


def test_shrinking_a_block_image_by_two_gives_the_block_means(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    blocks = rng.integers(0, 256, (2, 4, 6)).astype(np.uint8)
    image = np.kron(blocks, np.ones((2, 2), dtype=np.uint8))  # [2, 8, 12], 2×2 blocks
    save_png(tmp_path / "a.png", image[0])
    save_png(tmp_path / "b.png", image[1])
    save_png(tmp_path / "c.png", np.full((5, 7), 77, dtype=np.uint8))  # another size
    index = write_index(tmp_path, {"path": ["a.png", "b.png", "c.png"], "y": [0, 1, 0]})
    read = load_media_cohort(
        {"path": index, "modality": "image", "label": "y", "image_size": [4, 6]}
    )
    np.testing.assert_allclose(read.inputs[:2, 0], blocks / 255.0, atol=1e-6)
    np.testing.assert_allclose(read.inputs[2], 77 / 255.0, atol=1e-6)  # constant stays constant


def test_rgb_to_gray_uses_the_luma_weights(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (3, 5, 3), dtype=np.uint8)
    save_png(tmp_path / "rgb.png", rgb)
    save_png(tmp_path / "gray.png", rgb[..., 0])
    index = write_index(tmp_path, {"path": ["rgb.png", "gray.png"], "y": [0, 1]})
    read = load_media_cohort({"path": index, "modality": "image", "label": "y", "channels": 1})
    expected = np.empty((3, 5))
    for r in range(3):
        for c in range(5):
            red, green, blue = (float(v) / 255 for v in rgb[r, c])
            expected[r, c] = 0.299 * red + 0.587 * green + 0.114 * blue
    np.testing.assert_allclose(read.inputs[0, 0], expected, atol=1e-6)
    np.testing.assert_allclose(read.inputs[1, 0], rgb[..., 0] / 255.0, atol=1e-7)


# -- signals ------------------------------------------------------------------------------


def test_wfdb_round_trip_within_16_bit_quantisation(tmp_path: Path) -> None:
    cohort = ecgs()
    index = write_ecg_folder(cohort, tmp_path / "wfdb")
    read = load_media_cohort(index_spec(index, "signal", standardize=False))
    # Format 16 stores each lead as int16 with a gain fitted to the record's range, so a
    # sample moves by at most one step: range / 65534 (half a step of rounding, and the
    # gain as written in the header).
    step = np.ptp(cohort.inputs.astype(np.float64), axis=2, keepdims=True) / 65534
    assert (np.abs(read.inputs - cohort.inputs) <= step + 1e-6).all()
    assert read.feature_names == cohort.feature_names
    assert_same_records(read, cohort)
    header = tmp_path / "wfdb" / f"{pd.read_csv(index)['path'][0]}.hea"
    with_suffix = load_media_cohort(
        index_spec(index, "signal", standardize=False, path_column="hea")
        | {"path": _with_column(index, "hea", lambda p: f"{p}.hea")}
    )
    np.testing.assert_array_equal(with_suffix.inputs, read.inputs)
    assert header.is_file()


def _with_column(index: Path, column: str, make) -> Path:
    frame = pd.read_csv(index)
    frame[column] = [make(p) for p in frame["path"]]
    out = index.with_name("index_hea.csv")
    frame.to_csv(out, index=False)
    return out


def test_npy_signals_round_trip_and_take_the_rate_from_the_index(tmp_path: Path) -> None:
    cohort = ecgs()
    index = write_ecg_folder(cohort, tmp_path, fmt="npy")
    read = load_media_cohort(index_spec(index, "signal", standardize=False))
    np.testing.assert_array_equal(read.inputs, cohort.inputs)
    assert read.feature_names == ("lead0", "lead1", "lead2")
    named = load_media_cohort(
        index_spec(index, "signal", standardize=False, leads=["I", "II", "V1"])
    )
    assert named.feature_names == ("I", "II", "V1")
    halved = load_media_cohort(index_spec(index, "signal", standardize=False, sampling_rate=50))
    assert halved.inputs.shape == (cohort.num_records, 3, 150)  # 100 Hz column → 50 Hz


def test_standardisation_uses_whole_cohort_statistics_per_lead(tmp_path: Path) -> None:
    cohort = ecgs()
    index = write_ecg_folder(cohort, tmp_path, fmt="npy")
    read = load_media_cohort(index_spec(index, "signal"))
    raw = cohort.inputs.astype(np.float64)
    for lead in range(raw.shape[1]):
        values = raw[:, lead, :].ravel().tolist()
        mean = sum(values) / len(values)
        std = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
        np.testing.assert_allclose(read.inputs[:, lead], (raw[:, lead] - mean) / std, atol=1e-5)


def sine_record(folder: Path, name: str, frequency: float, fs: float, seconds: float) -> None:
    t = np.arange(int(seconds * fs)) / fs
    signal = np.stack([np.sin(2 * np.pi * frequency * t), 0.5 * np.cos(2 * np.pi * frequency * t)])
    wfdb.wrsamp(
        name,
        fs=fs,
        units=["mV", "mV"],
        sig_name=["I", "II"],
        p_signal=signal.T,
        fmt=["16", "16"],
        write_dir=str(folder),
    )


@pytest.mark.parametrize(("native", "frequency"), [(500.0, 3.0), (360.0, 7.0), (250.0, 1.5)])
def test_resampling_keeps_the_frequency(tmp_path: Path, native: float, frequency: float) -> None:
    sine_record(tmp_path, "a", frequency, native, 10.0)
    sine_record(tmp_path, "b", frequency, 100.0, 10.0)  # already at the target rate
    index = write_index(tmp_path, {"path": ["a", "b.hea"], "y": [0, 1]})
    read = load_media_cohort(
        {
            "path": index,
            "modality": "signal",
            "label": "y",
            "sampling_rate": 100,
            "standardize": False,
        }
    )
    assert read.inputs.shape == (2, 2, 1000)
    for record in read.inputs:
        spectrum = np.abs(np.fft.rfft(record[0]))
        peak = np.fft.rfftfreq(1000, d=1 / 100)[np.argmax(spectrum)]
        assert peak == pytest.approx(frequency, abs=0.1)
    middle = slice(100, 900)  # away from the filter's edge effects
    t = np.arange(1000) / 100
    np.testing.assert_allclose(
        read.inputs[0, 0, middle], np.sin(2 * np.pi * frequency * t)[middle], atol=0.02
    )


def test_grouped_resampling_matches_resampling_each_record_alone(tmp_path: Path) -> None:
    from scipy.signal import resample_poly

    rng = np.random.default_rng(3)
    rows = []
    raw = []
    for i, (fs, samples) in enumerate([(500, 2000), (500, 2000), (250, 1000), (500, 1500)]):
        record = rng.standard_normal((2, samples))
        np.save(tmp_path / f"r{i}.npy", record)
        rows.append(fs)
        raw.append(record)
    index = write_index(
        tmp_path,
        {"path": [f"r{i}.npy" for i in range(4)], "sampling_rate": rows, "y": [0, 1, 0, 1]},
    )
    read = load_media_cohort(
        {
            "path": index,
            "modality": "signal",
            "label": "y",
            "sampling_rate": 100,
            "length": 400,
            "standardize": False,
        }
    )
    for i, (record, fs) in enumerate(zip(raw, rows, strict=True)):
        alone = resample_poly(record, 100, fs, axis=-1)
        expected = np.zeros((2, 400))
        expected[:, : min(400, alone.shape[1])] = alone[:, :400]
        np.testing.assert_allclose(read.inputs[i], expected, atol=1e-5)


def test_length_cuts_the_end_or_pads_with_zeros(tmp_path: Path) -> None:
    long, short = np.arange(12.0).reshape(2, 6), np.arange(1.0, 7.0).reshape(2, 3)
    np.save(tmp_path / "long.npy", long)
    np.save(tmp_path / "short.npy", short)
    index = write_index(tmp_path, {"path": ["long.npy", "short.npy"], "y": [0, 1]})
    spec = {
        "path": index,
        "modality": "signal",
        "label": "y",
        "sampling_rate": 10,
        "standardize": False,
    }
    read = load_media_cohort(spec | {"length": 4})
    np.testing.assert_array_equal(read.inputs[0], long[:, :4])
    np.testing.assert_array_equal(read.inputs[1], [[1, 2, 3, 0], [4, 5, 6, 0]])
    refused(tmp_path, spec, "differ in length", "long.npy", "short.npy", "`length`")


def test_dicom_waveform_reads_the_first_group_in_millivolts(tmp_path: Path) -> None:
    shutil.copy(get_testdata_file("waveform_ecg.dcm"), tmp_path / "ecg.dcm")
    index = write_index(tmp_path, {"path": ["ecg.dcm", "ecg.dcm"], "rid": ["a", "b"], "y": [0, 1]})
    spec = {
        "path": index,
        "modality": "signal",
        "label": "y",
        "record_id": "rid",
        "standardize": False,
    }
    read = load_media_cohort(spec)
    ds = pydicom.dcmread(tmp_path / "ecg.dcm")
    expected = ds.waveform_array(0).T / 1000.0  # the file's units are µV
    assert read.inputs.shape == (2, 12, 10000)
    np.testing.assert_allclose(read.inputs[0], expected, rtol=1e-6, atol=1e-6)
    assert read.feature_names[:3] == ("I", "II", "III") and read.feature_names[-1] == "V6"
    chosen = load_media_cohort(spec | {"leads": ["v1", "aVR"], "sampling_rate": 500})
    assert chosen.feature_names == ("v1", "aVR") and chosen.inputs.shape == (2, 2, 5000)


# -- errors -------------------------------------------------------------------------------


def test_corrupt_image_names_the_file_and_the_row(tmp_path: Path) -> None:
    index = write_image_folder(images(), tmp_path / "data")
    bad = tmp_path / "data" / pd.read_csv(index)["path"][3]
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png")
    refused(
        tmp_path / "data",
        index_spec(index, "image"),
        str(bad),
        "data row 4",
        "not a readable image",
    )


def test_missing_file_and_unknown_suffix(tmp_path: Path) -> None:
    save_png(tmp_path / "a.png", np.zeros((4, 4), dtype=np.uint8))
    (tmp_path / "b.gif").write_bytes(b"GIF89a")
    index = write_index(tmp_path, {"path": ["a.png", "gone.png"], "y": [0, 1]})
    spec = {"path": index, "modality": "image", "label": "y"}
    refused(tmp_path, spec, "gone.png", "data row 2", "not found", "`root`")
    index = write_index(tmp_path, {"path": ["a.png", "b.gif"], "y": [0, 1]})
    refused(tmp_path, spec, "b.gif", ".gif", ".png")


def test_missing_column_lists_columns_and_close_matches(tmp_path: Path) -> None:
    index = write_image_folder(images(), tmp_path / "data")
    message = refused(
        tmp_path / "data",
        index_spec(index, "image", patient_id="patientid"),
        "'patientid'",
        "patient_id",
        "Did you mean 'patient_id'",
        "'record_id'",
    )
    assert str(index) in message
    refused(tmp_path / "data", index_spec(index, "image", path_column="file"), "'file'", "'path'")


def test_images_of_different_sizes_need_image_size(tmp_path: Path) -> None:
    save_png(tmp_path / "a.png", np.zeros((8, 8), dtype=np.uint8))
    save_png(tmp_path / "b.png", np.zeros((8, 8), dtype=np.uint8))
    save_png(tmp_path / "c.png", np.zeros((6, 9), dtype=np.uint8))
    index = write_index(tmp_path, {"path": ["a.png", "b.png", "c.png"], "y": [0, 1, 0]})
    refused(
        tmp_path,
        {"path": index, "modality": "image", "label": "y"},
        "a.png",
        "8×8",
        "c.png",
        "6×9",
        "`image_size`",
    )
    save_png(tmp_path / "c.png", np.zeros((8, 8, 3), dtype=np.uint8))
    refused(
        tmp_path,
        {"path": index, "modality": "image", "label": "y"},
        "c.png",
        "3 channel",
        "`channels`",
    )


def test_conflicting_attributes_within_a_patient_name_column_patient_and_rows(
    tmp_path: Path,
) -> None:
    cohort = images()
    index = write_image_folder(cohort, tmp_path / "data")
    frame = pd.read_csv(index)
    twice = frame["patient_id"].duplicated(keep=False)
    row = int(np.flatnonzero(twice)[1])
    patient = frame["patient_id"][row]
    frame.loc[row, "site"] = "Z"
    frame.to_csv(index, index=False)
    message = refused(
        tmp_path / "data",
        index_spec(index, "image"),
        "'site'",
        repr(patient),
        "'Z'",
        "`attributes`",
    )
    rows = np.flatnonzero(frame["patient_id"] == patient) + 1
    assert f"data rows {', '.join(str(r) for r in rows)} hold" in message


def test_medmnist_without_the_expected_keys_lists_the_keys(tmp_path: Path) -> None:
    path = tmp_path / "odd.npz"
    np.savez(path, images=np.zeros((3, 4, 4), dtype=np.uint8), labels=np.zeros((3, 1)))
    refused(tmp_path, {"path": path}, str(path), "'images'", "'labels'", "'train_images'")
    path = tmp_path / "part.npz"
    np.savez(path, train_images=np.zeros((3, 4, 4), dtype=np.uint8), train_labels=np.zeros((3, 1)))
    refused(
        tmp_path, {"path": path, "splits": ["train", "test"]}, "'test_images'", "'train_labels'"
    )


def test_pickled_arrays_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "pickled.npz"
    labels = np.empty(3, dtype=object)
    labels[:] = [[0], [1], [0]]
    np.savez(path, train_images=np.zeros((3, 4, 4), dtype=np.uint8), train_labels=labels)
    refused(tmp_path, {"path": path}, "'train_labels'", "pickled")
    np.save(tmp_path / "obj.npy", labels, allow_pickle=True)
    save_png(tmp_path / "a.png", np.zeros((4, 4), dtype=np.uint8))
    index = write_index(tmp_path, {"path": ["a.png", "obj.npy"], "y": [0, 1]})
    refused(tmp_path, {"path": index, "modality": "image", "label": "y"}, "obj.npy", "pickled")
    spec = {"path": index, "modality": "image", "label": "y", "array": tmp_path / "obj.npy"}
    refused(tmp_path, spec, "obj.npy", "pickled")


def test_stacked_array_must_have_one_row_per_index_row(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((3, 4, 4), dtype=np.uint8))
    index = write_index(tmp_path, {"y": [0, 1]})
    spec = {"path": index, "modality": "image", "label": "y", "array": tmp_path / "x.npy"}
    refused(tmp_path, spec, "x.npy", "(3, 4, 4)", "2 rows")
    refused(tmp_path, spec | {"array": tmp_path / "no.npy"}, "no.npy", "not found")


def test_missing_leads_name_the_record_and_the_leads_it_has(tmp_path: Path) -> None:
    index = write_ecg_folder(ecgs(), tmp_path / "data")
    refused(
        tmp_path / "data",
        index_spec(index, "signal", leads=["II", "V5"]),
        "records/r000000",
        "'V5'",
        "'I', 'II', 'V1'",
    )


def test_gaps_in_a_wfdb_lead_matter_only_when_the_lead_is_read(tmp_path: Path) -> None:
    t = np.arange(300) / 100
    signal = np.stack([np.sin(2 * np.pi * t), np.cos(2 * np.pi * t)], axis=1)
    signal[40:45, 1] = np.nan  # a gap in lead II
    wfdb.wrsamp(
        "gap",
        fs=100,
        units=["mV", "mV"],
        sig_name=["I", "II"],
        p_signal=signal,
        fmt=["16", "16"],
        write_dir=str(tmp_path),
    )
    sine_record(tmp_path, "fine", 1.0, 100.0, 3.0)
    index = write_index(tmp_path, {"path": ["fine", "gap"], "y": [0, 1]})
    spec = {"path": index, "modality": "signal", "label": "y", "standardize": False}
    refused(tmp_path, spec, "gap", "data row 2", "lead 'II'", "NaN")
    read = load_media_cohort(spec | {"leads": ["I"]})
    np.testing.assert_allclose(read.inputs[1, 0], signal[:, 0], atol=1e-4)


def test_signal_errors(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros((2, 50)))
    np.save(tmp_path / "b.npy", np.zeros((3, 50)))
    gap = np.zeros((2, 50))
    gap[1, 7] = np.nan
    np.save(tmp_path / "gap.npy", gap)
    spec = {"modality": "signal", "label": "y", "sampling_rate": 10}
    index = write_index(tmp_path, {"path": ["a.npy", "b.npy"], "y": [0, 1]})
    refused(tmp_path, spec | {"path": index}, "a.npy", "b.npy", "numbers of leads")
    index = write_index(tmp_path, {"path": ["a.npy", "gap.npy"], "y": [0, 1]})
    refused(tmp_path, spec | {"path": index}, "gap.npy", "lead row 1", "NaN")
    refused(
        tmp_path,
        spec | {"path": index, "sampling_rate": None},
        "a.npy",
        "sampling rate",
        "'sampling_rate'",
    )
    refused(tmp_path, {"path": index, "label": "y"}, "`modality`")
    refused(tmp_path, spec | {"path": index, "image_size": [4, 4]}, "'image_size'", "signals")


def test_index_level_errors(tmp_path: Path) -> None:
    save_png(tmp_path / "a.png", np.zeros((4, 4), dtype=np.uint8))
    save_png(tmp_path / "b.png", np.zeros((4, 4), dtype=np.uint8))
    spec: dict[str, object] = {"modality": "image", "label": "y"}
    refused(tmp_path, spec | {"path": tmp_path / "nope.csv"}, "nope.csv", "not found")
    (tmp_path / "empty.csv").write_text("path,y\n")
    refused(tmp_path, spec | {"path": tmp_path / "empty.csv"}, "empty.csv", "no data rows")
    index = write_index(tmp_path, {"path": ["a.png", "a.png"], "y": [0, 1]})
    refused(tmp_path, spec | {"path": index}, "'a.png'", "data rows 1, 2", "`record_id`")
    index = write_index(tmp_path, {"path": ["a.png", "b.png"], "y": [0, 1], "r": ["x", "x"]})
    refused(tmp_path, spec | {"path": index, "record_id": "r"}, "'r'", "'x'", "unique")
    refused(tmp_path, spec | {"path": index, "labels": ["y", "r"]}, "exactly one of")
    index = write_index(tmp_path, {"path": ["a.png", "b.png"], "f": [0, -1], "g": [1, 0]})
    refused(
        tmp_path, {"path": index, "modality": "image", "labels": ["f", "g"]}, "'f'", "-1", "0/1"
    )
    with pytest.raises(InputError, match="unknown_key"):
        load_media_cohort({"path": index, "unknown_key": 1})


def test_missing_optional_package_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = write_image_folder(images(), tmp_path / "dcm", fmt="dcm")
    monkeypatch.setitem(sys.modules, "pydicom", None)
    refused(tmp_path / "dcm", index_spec(index, "image"), "pydicom", "miaudit[imaging]")
    index = write_ecg_folder(ecgs(), tmp_path / "ecg")
    monkeypatch.setitem(sys.modules, "wfdb", None)
    refused(tmp_path / "ecg", index_spec(index, "signal"), "wfdb", "miaudit[imaging]")


def test_spec_is_a_strict_pydantic_model() -> None:
    spec = MediaSpec(path=Path("x.csv"), modality="image", label="y", image_size=(8, 8))
    assert spec.image_size == (8, 8) and spec.splits == ["train", "val", "test"]
    with pytest.raises(ValueError, match="extra"):
        MediaSpec(path=Path("x.csv"), colour=True)  # type: ignore[call-arg]
