"""Text in images with RapidOCR (PP-OCRv4 detection, angle classifier and recognition, ONNX).

:class:`OcrEngine` loads the three ONNX models from the ``rapidocr-onnxruntime`` package on first
use. Recognition only runs when detection finds text, so an image without text costs one
detector pass. Words that the detector boxes one by one are regrouped into lines (boxes that
overlap vertically) and the lines are returned in reading order, top to bottom, left to right.
"""

from __future__ import annotations

import threading
from typing import Any

from vlmguard.errors import ConfigError
from vlmguard.text import normalize_text

MAX_SIDE = 1600
"""Images are downscaled so their longer side is at most this many pixels before detection."""
MIN_SIDE = 32
"""Images whose shorter side is below this are upscaled (tiny screenshots, icons)."""


def session_options(threads: int) -> Any:
    """ONNX Runtime options for CPU inference on a small, possibly shared machine.

    Worker threads sleep instead of spinning between operators: on two busy cores spinning
    threads steal the time the computation needs (measured: several times slower under load).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _retune(engine: Any, threads: int) -> None:
    """Rebuild RapidOCR's three sessions with :func:`session_options` (same model files)."""
    import onnxruntime as ort

    holders = [
        getattr(getattr(engine, "text_det", None), "infer", None),
        getattr(getattr(engine, "text_cls", None), "infer", None),
        getattr(getattr(engine, "text_rec", None), "session", None),
    ]
    for holder in holders:
        session = getattr(holder, "session", None)
        path = getattr(session, "_model_path", None)
        if holder is None or session is None or not path:
            continue
        options = session_options(threads)
        holder.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def _load_rapidocr(threads: int, det_limit_side_len: int) -> Any:
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "OCR needs the 'rapidocr-onnxruntime' package: pip install 'vlmguard[perception]'"
        ) from exc
    engine = RapidOCR(
        intra_op_num_threads=threads,
        inter_op_num_threads=1,
        det_limit_side_len=det_limit_side_len,
        det_limit_type="max",
        print_verbose=False,
    )
    _retune(engine, threads)
    return engine


class OcrEngine:
    """Reads the text in an image. One instance holds one set of ONNX sessions (thread-safe).

    ``min_score`` drops recognised words below that recognition confidence; ``det_limit_side_len``
    is the longer side the detector sees (the text of a 760 px FigStep image is read exactly at
    640 px, and faster than at the package default of 736 px on the shorter side).
    """

    def __init__(self, *, threads: int = 2, det_limit_side_len: int = 640, min_score: float = 0.5) -> None:
        self.threads = threads
        self.det_limit_side_len = det_limit_side_len
        self.min_score = min_score
        self._engine: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load the models now (otherwise on the first :meth:`read`)."""
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = _load_rapidocr(self.threads, self.det_limit_side_len)

    def read(self, image: Any) -> list[Any]:
        """The text lines of ``image`` (an RGB ``PIL.Image``), in reading order.

        Returns :class:`~vlmguard.perception.image_evidence.OcrLine` items with boxes normalised
        to 0..1 of the image's width and height.
        """
        import numpy as np

        from vlmguard.perception.image_evidence import OcrLine as Line

        self.load()
        work = _fit(image)
        array = np.asarray(work.convert("RGB"))[:, :, ::-1]  # RapidOCR expects BGR like cv2
        result, _ = self._engine(np.ascontiguousarray(array))
        if not result:
            return []
        scale_x = work.size[0]
        scale_y = work.size[1]
        words: list[tuple[float, float, float, float, str, float]] = []
        for box, text, score in result:
            score = float(score)
            text = normalize_text(str(text)).strip()  # text read from an image enters the guard here
            if not text or score < self.min_score:
                continue
            xs = [float(p[0]) for p in box]
            ys = [float(p[1]) for p in box]
            box_n = (min(xs) / scale_x, min(ys) / scale_y, max(xs) / scale_x, max(ys) / scale_y)
            words.append((*box_n, text, score))
        return [Line(text=t, score=s, box=b) for t, s, b in group_lines(words)]


def _fit(image: Any) -> Any:
    """``image`` resized: longer side at most :data:`MAX_SIDE`, shorter side at least :data:`MIN_SIDE`."""
    from PIL import Image

    width, height = image.size
    scale = 1.0
    if max(width, height) > MAX_SIDE:
        scale = MAX_SIDE / max(width, height)
    elif min(width, height) < MIN_SIDE:
        scale = min(MIN_SIDE / min(width, height), MAX_SIDE / max(width, height))
    if scale == 1.0:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)


def group_lines(
    words: list[tuple[float, float, float, float, str, float]],
) -> list[tuple[str, float, tuple[float, float, float, float]]]:
    """Group word boxes ``(x0, y0, x1, y1, text, score)`` into lines in reading order.

    Two boxes share a line when their vertical extents overlap by more than half of the smaller
    height. Lines are ordered by their top edge, words in a line by their left edge. Returns
    ``(text, mean score, box)`` per line.
    """
    lines: list[list[tuple[float, float, float, float, str, float]]] = []
    for word in sorted(words, key=lambda w: (w[1] + w[3]) / 2):
        placed = False
        for line in lines:
            top = min(w[1] for w in line)
            bottom = max(w[3] for w in line)
            overlap = min(bottom, word[3]) - max(top, word[1])
            if overlap > 0.5 * min(bottom - top, word[3] - word[1]):
                line.append(word)
                placed = True
                break
        if not placed:
            lines.append([word])
    out: list[tuple[str, float, tuple[float, float, float, float]]] = []
    for line in sorted(lines, key=lambda ln: min(w[1] for w in ln)):
        line.sort(key=lambda w: w[0])
        text = " ".join(w[4] for w in line)
        score = sum(w[5] for w in line) / len(line)
        box = (min(w[0] for w in line), min(w[1] for w in line),
               max(w[2] for w in line), max(w[3] for w in line))
        out.append((text, score, box))
    return out
