"""Image and signal (ECG) cohorts: an index table of record files, a stacked array, or MedMNIST.

A cohort is described by a :class:`MediaSpec` and read once by :func:`load_media_cohort`
into a validated :class:`~miaudit.cohort.Cohort` (``image`` [N, C, H, W] or ``signal``
[N, L, T], float32). The sources:

* an **index** (CSV/TSV/Parquet, one row per record) whose ``path_column`` names each
  record's file, relative to ``root`` (default: the index's folder). Images: ``.png .jpg
  .jpeg .bmp .tif .tiff`` (Pillow), ``.dcm`` (pydicom), ``.npy``. Signals: WFDB records
  (the ``.hea`` file or the record name without suffix), ``.npy``, and DICOM waveforms
  (``.dcm``, first multiplex group);
* an index plus one stacked ``array`` (``.npy`` [N, ...]) whose row i is index row i;
* a MedMNIST ``.npz`` (``train_images``, ``train_labels``, …). MedMNIST carries no patient
  ids, so every image is its own patient; record ids are ``"train-0"``, ``"val-3"``, ….

How pixels are scaled, resized and converted is in :mod:`.images` (DICOM's rescaling in
:mod:`.dicom`); how signals are read, resampled and standardised is in :mod:`.waveforms`.

Labels: ``label`` names one column. Without ``label_separator`` its sorted values are the
classes (single-label). With a separator (e.g. ``"|"`` for ``"Effusion|Edema"``) each cell
is split into findings (multi-label, classes = the sorted findings); an empty or missing
cell, and the token ``"No Finding"`` (any case), mean no positive label. ``labels`` names
several 0/1 columns instead (multi-label, classes = the column names).

The package, one module per concept: ``spec`` (the cohort spec), ``load`` (the entry
point), ``index`` (index tables and their record files), ``images`` (pixels, Pillow and
``.npy`` images), ``waveforms`` (signal records), ``dicom`` (DICOM images and waveforms),
``wfdb`` (WFDB records), ``medmnist`` (MedMNIST archives), ``files`` (reading one file
safely) and ``optional`` (the optional readers' packages).
"""

from __future__ import annotations

from miaudit.datasets.media.load import load_media_cohort
from miaudit.datasets.media.optional import import_pydicom, import_wfdb
from miaudit.datasets.media.spec import MediaSpec, coerce_media_spec

__all__ = ["MediaSpec", "coerce_media_spec", "import_pydicom", "import_wfdb", "load_media_cohort"]
