"""Inference backends behind the encoder: torch, ONNX Runtime, OpenVINO.

A backend is chosen by name from the setting ``EMBEDDING_BACKEND``:

=================  ===============================================================
``torch``          PyTorch fp32, the reference (what sentence-transformers runs)
``onnx``           ONNX Runtime, fp32 graph exported from the torch model
``onnx:int8``      ONNX Runtime, attention/GELU/LayerNorm fused, MatMul and
                   Attention weights int8, activations quantised on the fly
``openvino``       OpenVINO, fp32 IR converted from the ONNX export
``openvino:bf16``  the same IR, run with OpenVINO's bf16 inference precision
                   (CPUs with AVX512-BF16 or AMX; elsewhere OpenVINO runs fp32)
=================  ===============================================================

Not registered: ``torch:bf16`` (measured 0.20x torch fp32's speed on this AVX2 CPU,
which has no bf16 instructions).

sentence-transformers 6.2 can load ONNX and OpenVINO models itself
(``backend="onnx"|"openvino"``), but only through optimum-onnx / optimum-intel,
whose releases require transformers < 4.58 and < 5.6: not installable beside the
pinned transformers 5.24.  So this module exports the model itself
(``torch.onnx.export``, ONNX Runtime's quantiser, OpenVINO's converter) and runs the
exported graph *inside* the sentence-transformers pipeline: only the transformer
module's network is swapped, so tokenisation, prompts, length-sorted batching, mean
pooling and normalisation stay sentence-transformers' own.

Each export is built once, beside the model's folder in the cache
(``<cache>/models/<model>@<artifact>/``): written in a temporary folder, checked
against torch fp32 on probe texts, then renamed into place.  A half-written temporary
folder is never read; a finished one is reused by every later process.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

EXPORTED = "EXPORTED"  # marker file: the folder is complete and was checked
PROBE_TEXTS = (
    "高强高导铜合金带材的形变热处理工艺, 抗拉强度600MPa以上, 导电率不低于65%IACS",
    "Lithium extraction from lepidolite with low energy consumption and little slag",
    "稀土永磁材料晶界扩散技术, 提高矫顽力并减少重稀土用量",
    "脐橙汁非热杀菌与护色工艺, 冷藏60天色差小于2",
)


class BackendError(RuntimeError):
    """An unknown backend name, or an export that could not be built or checked."""


@dataclass(frozen=True)
class Backend:
    """One way of running the model.

    Attributes:
        name: the setting value (``engine`` or ``engine:precision``).
        engine: ``torch``, ``onnx`` or ``openvino``.
        precision: ``fp32``, ``bf16`` or ``int8``.
        artifact: the export folder's suffix (backends sharing a file share it);
            ``None`` when nothing is exported.
        build: writes the export into an empty folder, from the loaded torch model.
        attach: puts the backend into a loaded ``SentenceTransformer``.
        min_probe_cosine: the export is kept only if every probe text's vector is at
            least this close to torch fp32's.
    """

    name: str
    engine: str
    precision: str
    artifact: str | None
    build: Callable[[object, Path], None] | None
    attach: Callable[[object, Path | None], None]
    min_probe_cosine: float = 0.9999


# --- exporting ---------------------------------------------------------------------

def _onnx_export(model, out: Path, *, attention: str | None = None) -> Path:
    """Export the transformer network of a loaded SentenceTransformer to ``out/model.onnx``.

    Args:
        attention: trace with this attention implementation (``"eager"`` gives the
            graph ONNX Runtime's optimiser fuses into its Attention operator).
    """
    import torch

    net = model[0].auto_model.eval()
    before = net.config._attn_implementation
    if attention:
        net.set_attn_implementation(attention)

    class _LastHidden(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    sample = model[0].tokenizer(["passage: 示例 sample text", "query: 短"], padding=True,
                                return_tensors="pt")
    path = out / "model.onnx"
    axes = {0: "batch", 1: "tokens"}
    with torch.inference_mode(), warnings.catch_warnings():
        # torch 2.13's default (dynamo) exporter needs onnxscript; the TorchScript
        # exporter handles this BERT graph and warns that it is the older one.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _LastHidden(net), (sample["input_ids"], sample["attention_mask"]), str(path),
            input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "last_hidden_state": axes},
            opset_version=17, dynamo=False,
        )
    if attention:
        net.set_attn_implementation(before)
    return path


def _build_onnx(model, out: Path) -> None:
    _onnx_export(model, out)


def _build_onnx_int8(model, out: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    config = model[0].auto_model.config
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        source = _onnx_export(model, Path(tmp), attention="eager")
        # Fuse attention, GELU and LayerNorm first (measured 1.7x torch vs 1.45x unfused).
        fused = optimize_model(str(source), model_type="bert", num_heads=config.num_attention_heads,
                               hidden_size=config.hidden_size)
        fused_path = Path(tmp) / "fused.onnx"
        fused.save_model_to_file(str(fused_path))
        # Quantise the compute (MatMul, fused Attention); the word-embedding table stays
        # fp32.  reduce_range: 7-bit weights avoid the saturation of AVX2's u8*s8
        # kernels on CPUs without VNNI.
        quantize_dynamic(fused_path, out / "model.onnx", op_types_to_quantize=["MatMul", "Attention"],
                         per_channel=True, reduce_range=True, weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def _build_openvino(model, out: Path) -> None:
    import openvino as ov

    with tempfile.TemporaryDirectory(dir=out) as tmp:
        source = _onnx_export(model, Path(tmp))
        ov.save_model(ov.convert_model(str(source)), str(out / "openvino_model.xml"),
                      compress_to_fp16=False)


# --- running -------------------------------------------------------------------------

def _threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _attach_torch(model, folder: Path | None) -> None:
    import torch

    torch.set_num_threads(_threads())


def _swap(model, run: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
    from embeddings._runtime import RuntimeNetwork

    transformer = model[0]
    transformer.model = RuntimeNetwork(transformer.auto_model.config, run)


def _attach_onnx(model, folder: Path | None) -> None:
    import onnxruntime as ort

    assert folder is not None
    options = ort.SessionOptions()
    options.intra_op_num_threads = _threads()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(folder / "model.onnx"), options,
                                   providers=["CPUExecutionProvider"])

    def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return session.run(None, {"input_ids": input_ids, "attention_mask": attention_mask})[0]

    _swap(model, run)


def _openvino_attacher(precision: str) -> Callable[[object, Path | None], None]:
    def attach(model, folder: Path | None) -> None:
        import openvino as ov

        assert folder is not None
        hint = {"fp32": ov.Type.f32, "bf16": ov.Type.bf16}[precision]
        compiled = ov.Core().compile_model(
            str(folder / "openvino_model.xml"), "CPU",
            {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY",
             "INFERENCE_NUM_THREADS": _threads()},
        )
        actual = compiled.get_property("INFERENCE_PRECISION_HINT")
        if actual != hint:
            log.warning("OpenVINO runs %s on this CPU, not %s (no native support)", actual, hint)

        def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
            request = compiled.create_infer_request()  # one per call: safe across threads
            return request.infer({"input_ids": input_ids, "attention_mask": attention_mask})[0]

        _swap(model, run)

    return attach


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("torch", "torch", "fp32", None, None, _attach_torch),
        Backend("onnx", "onnx", "fp32", "onnx", _build_onnx, _attach_onnx),
        Backend("onnx:int8", "onnx", "int8", "onnx-int8", _build_onnx_int8, _attach_onnx,
                min_probe_cosine=0.97),
        Backend("openvino", "openvino", "fp32", "openvino", _build_openvino,
                _openvino_attacher("fp32")),
        Backend("openvino:bf16", "openvino", "bf16", "openvino", _build_openvino,
                _openvino_attacher("bf16"), min_probe_cosine=0.99),
    )
}
_ALIASES = {"torch:fp32": "torch", "onnx:fp32": "onnx", "openvino:fp32": "openvino"}


def available_backends() -> list[str]:
    return list(BACKENDS)


def get_backend(value: str) -> Backend:
    """The backend named by a setting value (``torch``, ``onnx:int8``...).

    Raises:
        BackendError: the name is not registered.
    """
    key = (value or "").strip().lower()
    key = _ALIASES.get(key, key)
    if key not in BACKENDS:
        raise BackendError(
            f"未知的嵌入后端 {value!r}, 可选: {', '.join(BACKENDS)} / "
            f"unknown embedding backend {value!r}; available: {', '.join(BACKENDS)}"
        )
    return BACKENDS[key]


# --- the export cache -------------------------------------------------------------------

def export_folder(models_dir: Path, model_slug: str, backend: Backend) -> Path:
    """Where ``backend``'s export of the model lives: beside the model's own folder."""
    return models_dir / f"{model_slug}@{backend.artifact}"


def _probe(model) -> np.ndarray:
    return np.asarray(model.encode(list(PROBE_TEXTS), prompt="passage: ", normalize_embeddings=True,
                                   convert_to_numpy=True), dtype=np.float32)


def prepare(model, backend: Backend, folder: Path | None) -> None:
    """Put ``backend`` into ``model`` (a torch SentenceTransformer), exporting it once.

    Args:
        model: the loaded torch model; after this call it runs on ``backend``.
        backend: the backend.
        folder: the export's folder (``export_folder``); unused by torch backends.

    Raises:
        BackendError: the export failed, or disagrees with torch fp32 on the probe texts.
    """
    if backend.artifact is None:
        backend.attach(model, None)
        return
    assert folder is not None
    if (folder / EXPORTED).exists():
        backend.attach(model, folder)
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        reference = _probe(model)
        try:
            backend.build(model, tmp)  # type: ignore[misc]
        except Exception as exc:
            raise BackendError(f"导出失败 / exporting {backend.name} failed: {exc}") from exc
        backend.attach(model, tmp)
        cosine = float(np.min(np.sum(_probe(model) * reference, axis=1)))
        if cosine < backend.min_probe_cosine:
            raise BackendError(
                f"{backend.name} 导出结果与 torch fp32 不一致 / the {backend.name} export disagrees "
                f"with torch fp32: min probe cosine {cosine:.5f} < {backend.min_probe_cosine}"
            )
        (tmp / EXPORTED).write_text(json.dumps({"backend": backend.name, "min_probe_cosine": cosine}),
                                    encoding="utf-8")
        if folder.exists() and not (folder / EXPORTED).exists():
            shutil.rmtree(folder)  # never a finished export: writers only write temporary folders
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / EXPORTED).exists():  # another process did not win the race
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
