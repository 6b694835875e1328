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
REC_HEIGHT = 48
"""The height the recogniser reads each text box at (PP-OCRv4); its cost grows with the box's width
at that height."""
OCR_BUDGET = 64_000
"""Recognition work per request, in pixels of text box width at :data:`REC_HEIGHT` (about 3,700
characters; recognition costs about 0.12 ms per pixel on 2 cores, so about 8 s at most). One image
gets all of it; the evidence rewriter shares it among the images of a turn. Measured: a typographic
image of four lines needs about 3,000, the most text-heavy of 60 MM-Vet and 60 MOSSBench images
11,500, a 900 px page of 40 lines of 14 px text 34,000; a 1600 px page covered in 15 px text holds
465,000 (97 boxes, 49 s of recognition)."""


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

    ``min_score`` drops recognised words below that recognition confidence. ``det_limit_side_len`` is
    passed to RapidOCR, whose packaged version detects at the image's own size up to 2,000 px
    whatever it says (a 1600 px image takes about 1.5 s to detect on 2 cores): detecting on a
    downscaled copy would be faster, but measured on a page of 15 px text a 960 px copy finds none
    of its 97 lines, and a target model that reads the full image would still see them.

    ``budget`` bounds the recognition work of a :meth:`read` (:data:`OCR_BUDGET`, or the ``budget``
    given to the call): the text boxes are read in reading order until their width at the
    recogniser's height would pass it; the boxes left are counted in :attr:`OcrReading.unread`, so a
    page of small text costs a bounded time and the caller knows that it holds more than was read.
    """

    def __init__(
        self,
        *,
        threads: int = 2,
        det_limit_side_len: int = 640,
        min_score: float = 0.5,
        budget: int = OCR_BUDGET,
    ) -> None:
        if budget < 1:
            raise ConfigError("the OCR budget must be at least 1")
        self.threads = threads
        self.budget = budget
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

    def read(self, image: Any, budget: int | None = None) -> Any:
        """The text of ``image`` (an RGB ``PIL.Image``), read within ``budget`` (default: the
        engine's), as an
        :class:`~vlmguard.perception.image_evidence.OcrReading`: lines in reading order, with boxes
        normalised to 0..1 of the image's width and height, and the count of boxes left unread.
        """
        import numpy as np

        from vlmguard.perception.image_evidence import OcrLine as Line
        from vlmguard.perception.image_evidence import OcrReading

        self.load()
        work = _fit(image)
        array = np.asarray(work.convert("RGB"))[:, :, ::-1]  # RapidOCR expects BGR like cv2
        limit = self.budget if budget is None else budget
        result, unread = _recognise(self._engine, np.ascontiguousarray(array), limit)
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
        lines = [Line(text=t, score=s, box=b) for t, s, b in group_lines(words)]
        return OcrReading(lines=lines, unread=unread)


def within_budget(sizes: list[tuple[int, int]], budget: int) -> int:
    """How many of the text boxes of ``(height, width)`` ``sizes``, taken in order, the recogniser
    reads within ``budget`` (their widths at :data:`REC_HEIGHT`, summed)."""
    spent = 0.0
    for n, (height, width) in enumerate(sizes):
        spent += width * REC_HEIGHT / max(height, 1)
        if spent > budget:
            return n
    return len(sizes)


def _recognise(engine: Any, array: Any, budget: int) -> tuple[list[tuple[Any, str, float]], int]:
    """RapidOCR's detection, angle classification and recognition (the steps of its ``__call__``),
    recognising the boxes in reading order within ``budget``: ``([(box, text, score)], unread)``."""
    raw_h, raw_w = array.shape[:2]
    img, ratio_h, ratio_w = engine.preprocess(array)
    record: dict[str, Any] = {"preprocess": {"ratio_h": ratio_h, "ratio_w": ratio_w}}
    img, record = engine.maybe_add_letterbox(img, record)
    boxes, _ = engine.auto_text_det(img)
    if boxes is None or len(boxes) == 0:
        return [], 0
    crops = engine.get_crop_img_list(img, boxes)
    found = len(crops)
    kept = within_budget([crop.shape[:2] for crop in crops], budget)
    if kept == 0:
        return [], found
    crops, boxes = crops[:kept], boxes[:kept]
    if engine.use_cls:
        crops, _, _ = engine.text_cls(crops)
    recognised, _ = engine.text_rec(crops, False)
    origin = engine._get_origin_points(boxes, record, raw_h, raw_w)
    out = [(box, str(rec[0]), float(rec[1])) for box, rec in zip(origin, recognised, strict=True)]
    return out, found - kept


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
        box = (
            min(w[0] for w in line),
            min(w[1] for w in line),
            max(w[2] for w in line),
            max(w[3] for w in line),
        )
        out.append((text, score, box))
    return out
