"""fold_layout_transposes on hand-built op lists (no export needed): only a TRANSPOSE -> QUANTIZE ->
inverse TRANSPOSE chain whose intermediate tensors have no other reader folds."""

from __future__ import annotations

import numpy as np

from tinyevo.codegen.generate import fold_duplicated_channels, fold_layout_transposes
from tinyevo.codegen.tflite_model import OpQ, TensorQ, TfliteModel


def _model(perm2: tuple[int, ...], extra_reader: bool = False) -> TfliteModel:
    q = ((0.1,), (0,))
    t = [TensorQ(0, (1, 2, 3, 4), "int8", *q), TensorQ(1, (4,), "int32", data=np.array([0, 3, 1, 2])),
         TensorQ(2, (4,), "int32", data=np.array(perm2)), TensorQ(3, (1, 4, 2, 3), "int8", *q),
         TensorQ(4, (1, 4, 2, 3), "int8", (0.2,), (1,)), TensorQ(5, (1, 2, 3, 4), "int8", (0.2,), (1,)),
         TensorQ(6, (1, 2, 3, 4), "int8", (0.2,), (1,))]
    ops = [OpQ(0, "TRANSPOSE", (0, 1), (3,)), OpQ(1, "QUANTIZE", (3,), (4,)), OpQ(2, "TRANSPOSE", (4, 2), (5,)),
           OpQ(3, "RELU", (5,), (6,))]
    if extra_reader:
        ops.append(OpQ(4, "RELU", (4,), (6,)))
    return TfliteModel(tuple(t), tuple(ops), (0,), (6,))


def test_inverse_pair_around_quantize_folds() -> None:
    folded = fold_layout_transposes(_model((0, 2, 3, 1)))
    assert [(op.kind, op.inputs, op.outputs) for op in folded.ops] == [("QUANTIZE", (0,), (5,)),
                                                                         ("RELU", (5,), (6,))]


def test_non_inverse_permutation_does_not_fold() -> None:
    model = _model((0, 3, 1, 2))
    assert fold_layout_transposes(model).ops == model.ops


def test_intermediate_with_another_reader_does_not_fold() -> None:
    model = _model((0, 2, 3, 1), extra_reader=True)
    assert fold_layout_transposes(model).ops == model.ops


# --- fold_duplicated_channels: CONCATENATION(x, x) -> pool -> SLICE(one copy) ------------------------------------
def _dup_model(begin: tuple[int, ...] = (0, 0, 0, 0), size: tuple[int, ...] = (1, 3, 3, 1),
               inputs: tuple[int, ...] = (0, 0), extra_reader: bool = False, pool_q: float = 0.1) -> TfliteModel:
    q = ((0.1,), (0,))
    t = [TensorQ(0, (1, 6, 6, 1), "int8", *q), TensorQ(1, (1, 6, 6, 1), "int8", *q),
         TensorQ(2, (1, 6, 6, 2), "int8", *q), TensorQ(3, (1, 3, 3, 2), "int8", (pool_q,), (0,)),
         TensorQ(4, (4,), "int32", data=np.array(begin)), TensorQ(5, (4,), "int32", data=np.array(size)),
         TensorQ(6, size, "int8", (pool_q,), (0,)), TensorQ(7, (1, 3, 3, 2), "int8", (pool_q,), (0,))]
    pool = {"padding": 0, "strideW": 2, "strideH": 2, "filterWidth": 3, "filterHeight": 3}
    ops = [OpQ(0, "RELU", (0,), (1,)), OpQ(1, "CONCATENATION", tuple(1 if i == 0 else i for i in inputs), (2,),
                                            {"axis": 3, "fusedActivationFunction": 0}),
           OpQ(2, "AVERAGE_POOL_2D", (2,), (3,), pool), OpQ(3, "SLICE", (3, 4, 5), (6,))]
    if extra_reader:
        ops.append(OpQ(4, "RELU", (3,), (7,)))
    return TfliteModel(tuple(t), tuple(ops), (0,), (6,))


def test_pool_of_duplicated_channels_folds_into_the_pool_on_the_copy() -> None:
    for begin in ((0, 0, 0, 0), (0, 0, 0, 1)):  # either copy
        folded = fold_duplicated_channels(_dup_model(begin))
        assert [(op.kind, op.inputs, op.outputs) for op in folded.ops] == [("RELU", (0,), (1,)),
                                                                             ("AVERAGE_POOL_2D", (1,), (6,))]


def test_duplicated_channels_that_must_stay_do_not_fold() -> None:
    cases = [
        _dup_model(size=(1, 3, 3, 2)),  # the slice keeps both copies
        _dup_model(begin=(0, 1, 0, 0), size=(1, 2, 3, 1)),  # the slice cuts H
        _dup_model(inputs=(0, 7)),  # two different tensors
        _dup_model(extra_reader=True),  # the pool output has another reader
        _dup_model(pool_q=0.2),  # the pool changes quantisation (TFLM's pool does not; no fold assumed)
    ]
    for model in cases:
        assert fold_duplicated_channels(model).ops == model.ops
