"""Same seed, same weights as before the training loop was split into recipe / loss / step / callbacks.

The expected values were produced with the code of commit 93d8057 (``tinyevo.estimators.training.train_model``,
the single ``_fit`` loop), on the CPU with one torch thread, by training ``conv_net()`` on ``separable()`` with
``seed=3`` for each configuration below and recording, per floating-point tensor of the state dict, its sum and
first three values (rounded to 6 decimals). The refactored loop runs the same operations in the same order, so
the weights agree to float rounding; the tolerance only absorbs the rounding of the recorded numbers.
"""

from __future__ import annotations

import pytest
import torch
from estimator_helpers import conv_net, separable

from tinyevo.nn import build_model
from tinyevo.training import TrainConfig, train_model

CONFIGS = {
    "adamw": TrainConfig(epochs=2, batch_size=32),
    "sgd_aug": TrainConfig(epochs=2, batch_size=32, optimizer="sgd", warmup_epochs=0.5, augment=("shift", "flip"),
                           label_smoothing=0.1),
    "adam_best_const": TrainConfig(epochs=3, batch_size=48, optimizer="adam", schedule="constant",
                                   restore_best=True, grad_clip=None),
    "distill": TrainConfig(epochs=2, batch_size=32, distill_alpha=0.5, distill_temperature=2.0),
    "train_on_val": TrainConfig(epochs=2, batch_size=32, train_on_val=True),
}

EXPECTED = {
    'adamw': {
        'layers.conv1.conv.weight': (-2.760715, [-0.333861, -0.212446, -0.195856]),
        'layers.conv1.bn.weight': (7.981094, [0.976931, 1.039451, 1.048957]),
        'layers.conv1.bn.bias': (0.068818, [-0.052443, 0.048791, 0.054234]),
        'layers.conv1.bn.running_mean': (0.002076, [0.000459, -0.000386, 0.001081]),
        'layers.conv1.bn.running_var': (4.516868, [0.621087, 0.435606, 0.489695]),
        'layers.conv2.conv.weight': (1.221977, [-0.077369, 0.017829, 0.023524]),
        'layers.conv2.bn.weight': (16.336748, [1.053343, 1.052408, 1.054831]),
        'layers.conv2.bn.bias': (0.180608, [0.038033, 0.042116, 0.052283]),
        'layers.conv2.bn.running_mean': (0.108073, [-0.149536, 0.179066, -0.014931]),
        'layers.conv2.bn.running_var': (8.042857, [0.501248, 0.514234, 0.559341]),
        'layers.fc.linear.weight': (0.149669, [0.072629, 0.087318, -0.11324]),
        'layers.fc.linear.bias': (-0.024882, [-0.054744, 0.029861]),
    },
    'sgd_aug': {
        'layers.conv1.conv.weight': (-2.887154, [-0.330163, -0.26081, -0.14624]),
        'layers.conv1.bn.weight': (8.000003, [1.000454, 1.000268, 1.000465]),
        'layers.conv1.bn.bias': (0.003071, [0.000911, 0.001111, 0.000556]),
        'layers.conv1.bn.running_mean': (-0.034123, [-0.011993, -0.001956, -0.002063]),
        'layers.conv1.bn.running_var': (3.91892, [0.518114, 0.418088, 0.455473]),
        'layers.conv2.conv.weight': (0.954045, [-0.053447, 0.001552, 0.072128]),
        'layers.conv2.bn.weight': (15.989338, [0.999451, 0.999662, 0.996241]),
        'layers.conv2.bn.bias': (-0.012998, [-0.000774, -0.000265, -0.006452]),
        'layers.conv2.bn.running_mean': (0.280753, [-0.117128, 0.184061, 0.029241]),
        'layers.conv2.bn.running_var': (6.778073, [0.47686, 0.40471, 0.457772]),
        'layers.fc.linear.weight': (0.149659, [0.151036, 0.159046, -0.042306]),
        'layers.fc.linear.bias': (-0.024882, [-0.013365, -0.011518]),
    },
    'adam_best_const': {
        'layers.conv1.conv.weight': (-2.872774, [-0.354463, -0.225471, -0.180517]),
        'layers.conv1.bn.weight': (7.982078, [0.991631, 1.027624, 1.038896]),
        'layers.conv1.bn.bias': (0.048448, [-0.039487, 0.033255, 0.039869]),
        'layers.conv1.bn.running_mean': (0.003198, [0.001968, 0.000504, 0.000874]),
        'layers.conv1.bn.running_var': (6.146758, [0.798987, 0.699553, 0.723691]),
        'layers.conv2.conv.weight': (-0.157938, [-0.061035, 0.033728, 0.033901]),
        'layers.conv2.bn.weight': (16.067592, [1.035456, 1.035854, 1.039771]),
        'layers.conv2.bn.bias': (0.015758, [0.012185, 0.011912, 0.035945]),
        'layers.conv2.bn.running_mean': (0.067695, [-0.067428, 0.096334, 0.004381]),
        'layers.conv2.bn.running_var': (11.287808, [0.70793, 0.697464, 0.724334]),
        'layers.fc.linear.weight': (0.149751, [0.089194, 0.103104, -0.098864]),
        'layers.fc.linear.bias': (-0.024882, [-0.031736, 0.006854]),
    },
    'distill': {
        'layers.conv1.conv.weight': (-2.732951, [-0.357063, -0.219249, -0.191401]),
        'layers.conv1.bn.weight': (7.936023, [0.948538, 1.024506, 1.048561]),
        'layers.conv1.bn.bias': (0.073049, [-0.050193, 0.037007, 0.052987]),
        'layers.conv1.bn.running_mean': (0.00186, [0.000424, -0.000384, 0.001015]),
        'layers.conv1.bn.running_var': (4.502635, [0.632589, 0.430862, 0.482935]),
        'layers.conv2.conv.weight': (0.215109, [-0.070323, 0.021332, 0.026302]),
        'layers.conv2.bn.weight': (15.990733, [1.005783, 1.034534, 1.05316]),
        'layers.conv2.bn.bias': (-0.21041, [-0.037896, -0.027475, -0.005815]),
        'layers.conv2.bn.running_mean': (0.007469, [-0.153215, 0.190442, -0.016275]),
        'layers.conv2.bn.running_var': (7.97028, [0.499996, 0.506757, 0.549325]),
        'layers.fc.linear.weight': (0.149669, [0.114193, 0.103898, -0.11175]),
        'layers.fc.linear.bias': (-0.024882, [-0.015521, -0.009361]),
    },
    'train_on_val': {
        'layers.conv1.conv.weight': (-2.727856, [-0.336059, -0.204389, -0.20262]),
        'layers.conv1.bn.weight': (7.986301, [0.977924, 1.042406, 1.057095]),
        'layers.conv1.bn.bias': (0.099984, [-0.059827, 0.055432, 0.061756]),
        'layers.conv1.bn.running_mean': (-0.004063, [-0.000738, 0.000802, 0.00019]),
        'layers.conv1.bn.running_var': (4.191252, [0.562841, 0.37615, 0.447886]),
        'layers.conv2.conv.weight': (0.946509, [-0.071205, 0.020741, 0.017999]),
        'layers.conv2.bn.weight': (16.446109, [1.064101, 1.060967, 1.064496]),
        'layers.conv2.bn.bias': (0.351567, [0.054171, 0.057152, 0.06117]),
        'layers.conv2.bn.running_mean': (0.149446, [-0.148714, 0.170448, 0.039764]),
        'layers.conv2.bn.running_var': (7.57754, [0.46451, 0.506442, 0.552342]),
        'layers.fc.linear.weight': (0.149654, [0.063608, 0.077735, -0.122777]),
        'layers.fc.linear.bias': (-0.024882, [-0.044131, 0.019249]),
    },
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_same_seed_gives_the_weights_of_the_loop_before_the_refactor(name: str) -> None:
    torch.set_num_threads(1)
    teacher = build_model(conv_net(width=4), seed=9).eval() if name == "distill" else None
    result = train_model(conv_net(), separable(), config=CONFIGS[name], seed=3, teacher=teacher)
    state = {k: v for k, v in result.model.state_dict().items() if v.dtype.is_floating_point}
    assert state.keys() == EXPECTED[name].keys()
    for key, (total, first) in EXPECTED[name].items():
        value = state[key].double()
        assert float(value.sum()) == pytest.approx(total, abs=2e-5), key
        assert value.flatten()[:3].tolist() == pytest.approx(first, abs=2e-6), key
