"""Test-session settings shared by the whole suite."""

from __future__ import annotations

import torch

# The unit tests run thousands of tiny forward passes; torch's intra-op thread pool only adds contention there
# (measured: a forward pass of a 3x8x8 test network takes ~0.5 s with 2 threads on a busy 2-core machine and
# ~5 ms with 1).
torch.set_num_threads(1)
