"""fold_layout_transposes on hand-built op lists (no export needed): only a TRANSPOSE -> QUANTIZE ->
inverse TRANSPOSE chain whose intermediate tensors have no other reader folds."""

from __future__ import annotations

import numpy as np

from tinyevo.codegen.generate import fold_layout_transposes
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
