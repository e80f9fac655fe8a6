"""The :class:`Dataset` record and its construction from arrays (validation, splits, normalisation).

Every loader ends in :func:`from_arrays`, the one place that checks shapes and labels, carves the validation
split from the training data (seeded, stratified) and normalises with statistics of the training split only.

Layout: inputs are ``float32`` arrays of shape ``(N, C, H, W)``; labels are ``int64`` in ``0 ..
num_classes-1``. The test split is kept for the final report; searches score on the validation split.

A data set prepared from 8-bit sources (:mod:`tinyevo.data.shared`) also carries its inputs as the uint8 source
values and the transform that made the float32 arrays (:class:`ByteInputs`, :meth:`Dataset.inputs`): the training
loop reads those (a quarter of the bytes) and converts each batch with the same float32 operations.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from tinyevo.errors import DataError

Array = np.ndarray

TEST_SPLIT_SEED = 0
"""Seed of the test split carved from data without an explicit one: fixed, so every run reports on one test
set."""


def _readonly(a: Array) -> Array:
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class InputTransform:
    """The per-value transform of the prepared inputs, in float32: ``float32(x) * scale`` (skipped for a scale of
    1), then, when normalised, ``(v - mean[c]) / std[c]`` per channel ``c`` (``mean`` and ``std`` rounded to
    float32), each operation rounded on its own, in this order.

    :meth:`apply` is the one implementation (numpy): the prepared float32 arrays are made with it, chunk by chunk,
    and :meth:`ByteInputs.decode` uses it on gathered rows, so both give the same values bit for bit."""

    scale: float = 1.0
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def shift_and_div(self) -> tuple[Array, Array] | None:
        """``(mean, std)`` as float32 arrays of shape ``(1, C, 1, 1)``, or ``None`` without normalisation."""
        if not self.mean:
            return None
        return (np.asarray(self.mean, dtype=np.float64).astype(np.float32)[None, :, None, None],
                np.asarray(self.std, dtype=np.float64).astype(np.float32)[None, :, None, None])

    def apply(self, x: Array, what: str = "x") -> Array:
        """The transformed float32 values of the raw rows ``x`` (``(N, C, H, W)``, any numeric dtype), a fresh
        array; raises :class:`DataError` for values that are not finite."""
        a = _scaled(x, self.scale, what)
        sd = self.shift_and_div()
        if sd is not None:
            a -= sd[0]
            a /= sd[1]
        return a

    def table(self, channels: int) -> Array:
        """``(C, 256)`` float32: the transformed value of each byte ``0..255`` in each channel."""
        codes = np.broadcast_to(np.arange(256, dtype=np.uint8)[:, None, None, None], (256, channels, 1, 1))
        return np.ascontiguousarray(self.apply(np.ascontiguousarray(codes))[:, :, 0, 0].T)


@dataclass(frozen=True, eq=False)
class ByteInputs:
    """One split's inputs kept as their uint8 source values (``codes``, ``(N, C, H, W)``) and the
    :class:`InputTransform` that makes the float32 inputs of them: the same values as the split's float32
    array, bit for bit, in a quarter of the bytes. Readers convert the rows they gather (:meth:`decode`; the
    training loop does the same in torch, :class:`tinyevo.training.evaluate.ByteBatches`)."""

    codes: Array
    transform: InputTransform

    def __post_init__(self) -> None:
        if self.codes.dtype != np.uint8 or self.codes.ndim != 4:
            raise DataError(f"byte inputs must be uint8 (N, C, H, W), got {self.codes.dtype} {self.codes.shape}")
        if self.transform.mean and len(self.transform.mean) != self.codes.shape[1]:
            raise DataError(f"{len(self.transform.mean)} channel means for {self.codes.shape[1]} channels")
        _readonly(self.codes)

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self.codes.shape)

    def decode(self, rows: slice | Array = slice(None)) -> Array:
        """The float32 inputs of ``rows`` (a slice or row indices), a fresh array."""
        return self.transform.apply(self.codes[rows])


@dataclass(frozen=True, eq=False)
class Dataset:
    """A classification data set split into train / validation / test (arrays are read-only).

    ``mean`` and ``std`` are the per-channel statistics (of the raw training inputs) that were used to
    normalise every split; a deployed model applies the same transform to raw sensor values.
    """

    name: str
    x_train: Array
    y_train: Array
    x_val: Array
    y_val: Array
    x_test: Array
    y_test: Array
    num_classes: int
    class_names: tuple[str, ...] = ()
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    byte_inputs: tuple[ByteInputs, ByteInputs, ByteInputs] | None = field(
        default=None, init=False, repr=False, compare=False)
    """The train / val / test inputs as :class:`ByteInputs` (see :func:`with_byte_inputs`), or ``None``. Not an
    argument of the constructor: a data set derived with ``replace`` / :meth:`with_splits` (a subset, a resize,
    other arrays) has none, so it can never pair new float32 arrays with stale bytes."""

    def __post_init__(self) -> None:
        for split in ("train", "val", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.dtype != np.float32 or x.ndim != 4:
                raise DataError(f"x_{split} must be float32 (N, C, H, W), got {x.dtype} {x.shape}")
            if y.dtype != np.int64 or y.shape != (len(x),):
                raise DataError(f"y_{split} must be int64 of shape ({len(x)},), got {y.dtype} {y.shape}")
            if len(x) and x.shape[1:] != self.x_train.shape[1:]:
                raise DataError(f"x_{split} has sample shape {x.shape[1:]}, x_train {self.x_train.shape[1:]}")
            _readonly(x)
            _readonly(y)
        if not self.class_names:
            object.__setattr__(self, "class_names", tuple(str(i) for i in range(self.num_classes)))

    def __setstate__(self, state: dict[str, object]) -> None:  # unpickled arrays stay read-only
        self.__dict__.update(state)
        for split in ("train", "val", "test"):
            _readonly(getattr(self, f"x_{split}"))
            _readonly(getattr(self, f"y_{split}"))
        for b in self.__dict__.get("byte_inputs") or ():
            _readonly(b.codes)
        self.__dict__.setdefault("byte_inputs", None)  # (pickled before the field existed)

    def inputs(self, split: str) -> Array | ByteInputs:
        """The inputs of ``split`` (``"train"``, ``"val"`` or ``"test"``) as the reader should gather them: the
        :class:`ByteInputs` when the data set has them (a quarter of the memory a reader touches), else the
        float32 array. Both give the same float32 values."""
        if split not in ("train", "val", "test"):
            raise ValueError(f"no split {split!r}")
        if self.byte_inputs is not None:
            return self.byte_inputs[("train", "val", "test").index(split)]
        return getattr(self, f"x_{split}")  # type: ignore[no-any-return]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one sample."""
        c, h, w = self.x_train.shape[1:]
        return (int(c), int(h), int(w))

    def summary(self) -> str:
        c, h, w = self.input_shape
        return (
            f"{self.name}: {c}x{h}x{w}, {self.num_classes} classes, "
            f"{len(self.x_train)} train / {len(self.x_val)} val / {len(self.x_test)} test"
        )

    def with_splits(self, **arrays: Array) -> Dataset:
        """A copy with some of ``x_train, y_train, x_val, ...`` replaced (used by
        :mod:`tinyevo.data.transforms`)."""
        return replace(self, **arrays)  # type: ignore[arg-type]


def with_byte_inputs(data: Dataset, byte_inputs: Sequence[ByteInputs]) -> Dataset:
    """``data`` carrying ``byte_inputs`` (train, val, test) beside its float32 arrays, which they must encode
    (:meth:`ByteInputs.decode` gives each split's float32 array; checked here for shapes, by the preparation's
    tests for values). The result is ``data`` itself (it is frozen: set once, where it is made)."""
    parts = tuple(byte_inputs)
    if len(parts) != 3 or not all(isinstance(b, ByteInputs) for b in parts):
        raise DataError("byte inputs: give one ByteInputs per split (train, val, test)")
    for split, b in zip(("train", "val", "test"), parts, strict=True):
        x = getattr(data, f"x_{split}")
        if b.codes.shape != x.shape:
            raise DataError(f"byte inputs of {split} have shape {b.codes.shape}, x_{split} {x.shape}")
    object.__setattr__(data, "byte_inputs", parts)
    return data


# --- helpers ------------------------------------------------------------------------------------------------


def stratified_split(
    y: Array, fraction: float, rng: np.random.Generator, *, min_per_class: int = 0
) -> tuple[Array, Array]:
    """Indices ``(keep, held_out)``: about ``fraction`` of every class held out (at least one where a class
    has two or more samples and ``fraction > 0``). Both index arrays are sorted.

    ``min_per_class`` raises the held-out count of a small class to ``min(min_per_class, class size // 3)``: a
    small data set still gets a validation split that can rank models, and the minimum never takes more than a
    third of a class. Every class keeps at least one sample. A class with ``fraction * size >= min_per_class``
    (every class of a large data set) is split exactly as without it."""
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"split fraction must be in [0, 1), got {fraction}")
    if isinstance(min_per_class, bool) or not isinstance(min_per_class, int) or min_per_class < 0:
        raise DataError(f"min_per_class must be an integer >= 0, got {min_per_class!r}")
    held: list[Array] = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        n = int(round(fraction * len(idx)))
        if fraction > 0:
            n = max(n, min(min_per_class, len(idx) // 3))
        if fraction > 0 and n == 0 and len(idx) >= 2:
            n = 1
        n = min(n, len(idx) - 1)  # every class keeps at least one sample
        held.append(idx[:n])
    out = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    mask = np.ones(len(y), dtype=bool)
    mask[out] = False
    return np.flatnonzero(mask), out


STATS_CHUNK_ROWS = 4096
"""Rows per chunk of the statistics pass (and of the arrays' construction), unless :data:`CHUNK_VALUES` is less."""
CHUNK_VALUES = 2**22
"""The most input values of one chunk (16 MiB as float32): a data set is transformed chunk by chunk, so building it
never holds more than its result (in memory) or one chunk (written to files, :mod:`tinyevo.data.shared`) beside
its source."""


def chunk_rows(sample_values: int) -> int:
    """Rows per chunk for samples of ``sample_values`` values each."""
    return max(1, min(STATS_CHUNK_ROWS, CHUNK_VALUES // max(1, sample_values)))


def _scaled(x: Array, scale: float, what: str) -> Array:
    """``x`` (a fresh row chunk of the source) as float32 times ``scale``, checked to be finite."""
    with np.errstate(over="ignore"):  # a value too large for float32 is refused below
        a = x.astype(np.float32)  # always a copy: safe to change in place
        if scale != 1.0:
            a *= np.float32(scale)
    if x.dtype.kind not in "iub" and a.size and not np.all(np.isfinite(a)):
        raise DataError(f"{what} contains NaN or infinite values")
    return a


def _as_nchw(x: Array, what: str, channels_last: bool | None) -> Array:
    """(N, H, W) -> (N, 1, H, W); (N, H, W, C) -> (N, C, H, W) when channels-last."""
    x = np.asarray(x)
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise DataError(f"{what} must be a numeric array, got dtype {x.dtype}")
    if x.ndim == 2:  # (N, F): a flat feature vector per sample
        return x[:, :, None, None]
    if x.ndim == 3:
        return x[:, None, :, :]
    if x.ndim == 4:
        if channels_last is None:
            channels_last = x.shape[3] in (1, 3, 4) and x.shape[1] not in (1, 3, 4)
        return np.moveaxis(x, 3, 1) if channels_last else x
    raise DataError(
        f"{what} must have shape (N, H, W), (N, H, W, C) or (N, C, H, W); got {x.ndim} dimensions {x.shape}"
    )


def _labels(y: Array, n: int, what: str) -> Array:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{what} must be a 1-D array of class indices, got shape {y.shape}")
    if len(y) != n:
        raise DataError(f"{what} has {len(y)} labels but there are {n} samples")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise DataError(f"{what} must hold integer class indices, found non-integer values")
    elif y.dtype.kind not in "iub":
        raise DataError(f"{what} must hold integer class indices, got dtype {y.dtype}")
    return y.astype(np.int64)


MAX_CLASSES = 100_000
"""The most classes a data set may declare (a label is a class index: a label of 2**40 would otherwise make
tinyevo build 2**40 classes)."""


def _check_label_range(labels: Sequence[Array], num_classes: int | None) -> None:
    """Labels must be class indices ``0 .. K-1`` with ``K`` the declared number of classes, or -- none declared --
    at most the number of samples (and :data:`MAX_CLASSES`): checked before anything is allocated per class."""
    n = sum(len(y) for y in labels)
    if num_classes is not None:
        if isinstance(num_classes, bool) or not 1 <= int(num_classes) <= MAX_CLASSES:
            raise DataError(f"num_classes must be in 1..{MAX_CLASSES}, got {num_classes!r}")
        bound = int(num_classes)
    else:
        bound = min(n, MAX_CLASSES)
    for y in labels:
        if len(y) == 0:
            continue
        lo, hi = int(y.min()), int(y.max())
        if lo < 0:
            raise DataError(f"labels must be >= 0, found {lo}")
        if hi >= bound:
            why = (f"num_classes={bound}" if num_classes is not None
                   else f"labels must be class indices 0..K-1, and {n} samples cannot have more than "
                        f"{bound} classes")
            raise DataError(f"labels out of range: found {hi} ({why})")


@dataclass(frozen=True, eq=False)
class SplitPlan:
    """One split of an :class:`ArrayPlan`: rows ``rows`` of the source inputs ``x`` (not copied), labels ``y``."""

    x: Array  # (N, C, H, W), the source's dtype
    rows: Array  # int64 row indices into x, in order
    y: Array  # int64 labels of those rows


@dataclass(frozen=True, eq=False)
class ArrayPlan:
    """A checked data set whose float32 arrays are not made yet: which rows of the source arrays form each split,
    and the transform of every value (``x * scale``, then ``(x - mean) / std`` per channel, in float32).

    :func:`materialize` makes the :class:`Dataset` in memory; :func:`tinyevo.data.shared.write_prepared` writes
    its arrays to files chunk by chunk, so a large data set is prepared without ever holding its float32 copy."""

    name: str
    train: SplitPlan
    val: SplitPlan
    test: SplitPlan
    num_classes: int
    class_names: tuple[str, ...]
    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self.train.x.shape[1:])

    def split(self, name: str) -> SplitPlan:
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays the plan makes (float32 inputs, int64 labels)."""
        values = int(np.prod(self.sample_shape))
        return sum(len(s.rows) * (4 * values + 8) for s in (self.train, self.val, self.test))

    @property
    def transform(self) -> InputTransform:
        """The transform of every input value (scale, then the per-channel normalisation)."""
        return InputTransform(scale=self.scale, mean=self.mean, std=self.std)

    @property
    def bytes_kept(self) -> bool:
        """Whether every split's source is uint8: the inputs can then be kept as those bytes
        (:class:`ByteInputs`, :meth:`code_chunks`) beside, or instead of, their float32 arrays."""
        return all(self.split(s).x.dtype == np.uint8 for s in ("train", "val", "test"))

    def chunks(self, split: str) -> Iterator[Array]:
        """The split's float32 inputs, transformed, as consecutive row chunks (fresh arrays of at most
        :data:`CHUNK_VALUES` values, or one row)."""
        s = self.split(split)
        step = chunk_rows(int(np.prod(self.sample_shape)))
        transform = self.transform
        for i in range(0, len(s.rows), step):
            yield transform.apply(s.x[s.rows[i : i + step]], f"x_{split}")

    def code_chunks(self, split: str) -> Iterator[Array]:
        """The split's uint8 source rows (not transformed), as consecutive row chunks of the same rows as
        :meth:`chunks` (only where :attr:`bytes_kept`)."""
        if not self.bytes_kept:
            raise DataError("the inputs are not all uint8: they cannot be kept as bytes")
        s = self.split(split)
        step = chunk_rows(int(np.prod(self.sample_shape)))
        for i in range(0, len(s.rows), step):
            yield np.ascontiguousarray(s.x[s.rows[i : i + step]])


def materialize(plan: ArrayPlan) -> Dataset:
    """The :class:`Dataset` of ``plan``, in memory."""
    arrays: dict[str, Array] = {}
    for split in ("train", "val", "test"):
        s = plan.split(split)
        out = np.empty((len(s.rows), *plan.sample_shape), dtype=np.float32)
        i = 0
        for c in plan.chunks(split):
            out[i : i + len(c)] = c
            i += len(c)
        arrays[f"x_{split}"], arrays[f"y_{split}"] = out, s.y
    return Dataset(name=plan.name, num_classes=plan.num_classes, class_names=plan.class_names, mean=plan.mean,
                   std=plan.std, **arrays)


def from_arrays(
    x_train: Array,
    y_train: Array,
    x_test: Array | None = None,
    y_test: Array | None = None,
    *,
    name: str = "arrays",
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    num_classes: int | None = None,
    class_names: Sequence[str] = (),
    channels_last: bool | None = None,
    val_min_per_class: int = 0,
    normalize: bool = True,
    scale: float = 1.0,
) -> Dataset:
    """Build a :class:`Dataset` from numpy arrays, checking everything a user can get wrong.

    ``x`` may be ``(N, F)``, ``(N, H, W)``, ``(N, H, W, C)`` (Keras; detected when the last axis has 1, 3 or 4
    entries, or forced with ``channels_last``) or ``(N, C, H, W)``; any numeric dtype. Without ``x_test`` a
    stratified test split of ``test_fraction`` is carved with the fixed seed :data:`TEST_SPLIT_SEED`, so the
    test set does not depend on the run seed. The validation split (``val_fraction`` of the training data,
    stratified, seeded with ``seed``; a small class gives at least ``min(val_min_per_class, size // 3)`` samples,
    see :func:`stratified_split`) comes out of the training data. Inputs are multiplied by ``scale`` (e.g.
    1/255 for 8-bit images); with ``normalize`` every split is then standardised per channel with the mean /
    std of the (remaining) training split. (:func:`plan_arrays`, then :func:`materialize`.)
    """
    return materialize(plan_arrays(
        x_train, y_train, x_test, y_test, name=name, seed=seed, val_fraction=val_fraction,
        test_fraction=test_fraction, num_classes=num_classes, class_names=class_names, channels_last=channels_last,
        val_min_per_class=val_min_per_class, normalize=normalize, scale=scale,
    ))


def plan_arrays(
    x_train: Array,
    y_train: Array,
    x_test: Array | None = None,
    y_test: Array | None = None,
    *,
    name: str = "arrays",
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    num_classes: int | None = None,
    class_names: Sequence[str] = (),
    channels_last: bool | None = None,
    val_min_per_class: int = 0,
    normalize: bool = True,
    scale: float = 1.0,
) -> ArrayPlan:
    """Check the arrays and options of :func:`from_arrays` and plan the data set (splits, normalisation
    statistics) without making its float32 arrays: the inputs are read chunk by chunk, never copied whole."""
    if (x_test is None) != (y_test is None):
        raise DataError("give both x_test and y_test, or neither")
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
    xt = _as_nchw(x_train, "x_train", channels_last)
    if len(xt) == 0:
        raise DataError("the training data is empty")
    yt = _labels(y_train, len(xt), "y_train")
    rows = np.arange(len(xt))
    if x_test is not None:
        xs = _as_nchw(x_test, "x_test", channels_last)
        ys = _labels(y_test, len(xs), "y_test")
        _check_label_range((yt, ys), num_classes)
        if xs.shape[1:] != xt.shape[1:]:
            raise DataError(f"test samples have shape {xs.shape[1:]} but training samples {xt.shape[1:]}")
        test_rows = np.arange(len(xs))
    else:
        _check_label_range((yt,), num_classes)  # (the split counts samples per class)
        keep, held = stratified_split(yt, test_fraction, np.random.default_rng(TEST_SPLIT_SEED))
        xs, rows, test_rows, yt, ys = xt, keep, held, yt[keep], yt[held]
    all_y = np.concatenate([yt, ys])
    if all_y.min() < 0:
        raise DataError(f"labels must be >= 0, found {int(all_y.min())}")
    k = int(num_classes) if num_classes is not None else int(all_y.max()) + 1
    if all_y.max() >= k:
        raise DataError(f"labels out of range: found {int(all_y.max())} with num_classes={k}")
    if class_names and len(class_names) != k:
        raise DataError(f"{len(class_names)} class names for {k} classes")
    present = np.unique(yt)
    if len(present) < 2:
        raise DataError(f"the training data has only one class ({int(present[0])}); need at least two")
    unseen = np.setdiff1d(np.unique(ys), present)
    if len(unseen):
        raise DataError(f"test labels {unseen[:5].tolist()} do not occur in the training data")

    rng = np.random.default_rng(seed)
    keep, held = stratified_split(yt, val_fraction, rng, min_per_class=val_min_per_class)
    if val_fraction > 0 and len(held) == 0:
        raise DataError(f"too few training samples ({len(yt)}) to carve a validation split")
    plan = ArrayPlan(
        name=name,
        train=SplitPlan(xt, rows[keep], yt[keep]),
        val=SplitPlan(xt, rows[held], yt[held]),
        test=SplitPlan(xs, test_rows, ys),
        num_classes=k,
        class_names=tuple(class_names),
        scale=float(scale),
        mean=(),
        std=(),
    )
    # every value is checked (finite) before anything is made; the training split's pass also sums the statistics
    if normalize:
        mean, std = _channel_stats(plan)
        plan = replace(plan, mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std))
    for split in ("val", "test") if normalize else ("train", "val", "test"):
        if plan.split(split).x.dtype.kind not in "iub":  # (integers are always finite)
            for _ in _raw_chunks(plan, split):
                pass
    return plan


def _raw_chunks(plan: ArrayPlan, split: str) -> Iterator[Array]:
    """The split's inputs as float32 times ``scale`` (checked finite, not normalised), in row chunks."""
    s = plan.split(split)
    step = chunk_rows(int(np.prod(plan.sample_shape)))
    for i in range(0, len(s.rows), step):
        yield _scaled(s.x[s.rows[i : i + step]], plan.scale, f"x_{split}")


def _channel_stats(plan: ArrayPlan) -> tuple[Array, Array]:
    """Per-channel mean and std (float64) of the training split (times ``scale``), accumulated in chunks so big data
    sets need no float32 or float64 copy."""
    channels = plan.sample_shape[0]
    total = np.zeros(channels)
    squares = np.zeros(channels)
    for a in _raw_chunks(plan, "train"):
        c = a.astype(np.float64)
        total += c.sum(axis=(0, 2, 3))
        squares += np.square(c).sum(axis=(0, 2, 3))
    h, w = plan.sample_shape[1:]
    n = len(plan.train.rows) * h * w
    mean = total / n
    std = np.sqrt(np.maximum(squares / n - mean**2, 0.0))
    return mean, np.where(std > 1e-8, std, 1.0)


def from_torch(
    train: object,
    test: object | None = None,
    *,
    name: str = "torch",
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    num_classes: int | None = None,
    class_names: Sequence[str] = (),
    normalize: bool = True,
) -> Dataset:
    """Build a :class:`Dataset` from map-style torch datasets yielding ``(input, label)`` pairs.

    Inputs may be tensors or arrays of shape ``(C, H, W)``, ``(H, W)`` or ``(F,)``; the whole data set is read
    into memory once.
    """

    def read(ds: object, what: str) -> tuple[Array, Array]:
        try:
            n = len(ds)  # type: ignore[arg-type]
        except TypeError:
            raise DataError(f"the {what} torch dataset has no len(); pass a map-style dataset") from None
        if n == 0:
            raise DataError(f"the {what} torch dataset is empty")
        xs, ys = [], []
        for i in range(n):
            item = ds[i]  # type: ignore[index]
            if not isinstance(item, (tuple, list)) or len(item) < 2:
                raise DataError(f"{what} item {i} is not an (input, label) pair")
            x, y = item[0], item[1]
            x = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
            y = y.item() if hasattr(y, "item") else y
            xs.append(np.asarray(x, dtype=np.float32))
            ys.append(y)
        shapes = {a.shape for a in xs}
        if len(shapes) != 1:
            raise DataError(f"{what} torch dataset items have different shapes: {sorted(shapes)[:3]}")
        x = np.stack(xs)
        if x.ndim == 2:
            x = x[:, :, None, None]
        elif x.ndim == 3:
            x = x[:, None]
        return x, np.asarray(ys)

    xt, yt = read(train, "training")
    xs, ys = read(test, "test") if test is not None else (None, None)
    return from_arrays(
        xt, yt, xs, ys, name=name, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction,
        num_classes=num_classes, class_names=class_names, channels_last=False, normalize=normalize,
    )
