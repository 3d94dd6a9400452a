"""The network an exported backend puts inside sentence-transformers (imports torch)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


class RuntimeNetwork(torch.nn.Module):
    """Stands where the transformer's torch network stood: same inputs, same output.

    sentence-transformers' ``Transformer`` module calls its network with the
    tokeniser's tensors and reads ``last_hidden_state``; this one hands them to an
    ONNX Runtime or OpenVINO session instead.  The torch weights are dropped.
    """

    def __init__(self, config, run: Callable[[np.ndarray, np.ndarray], np.ndarray]):
        super().__init__()
        self.config = config
        self._run = run

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_ignored) -> dict:
        out = self._run(np.ascontiguousarray(input_ids.numpy(), dtype=np.int64),
                        np.ascontiguousarray(attention_mask.numpy(), dtype=np.int64))
        return {"last_hidden_state": torch.from_numpy(np.asarray(out, dtype=np.float32))}
