"""The texts drawn around a slice view, cheap to change on every slice switch.

A slice switch changes the slice text and, at many classes, the legend. ``QLabel`` lays its
text out again whenever it changes (rich text: a ``QTextDocument``, about a millisecond for
a 13-row legend), draws it through the style sheet, and asks its layout for a new geometry
on every ``setText`` (a re-layout of the pane; when the legend's width changes, the image
beside it is resized too). These widgets instead:

* keep every string's layout in a ``QStaticText`` (laid out once per string and font),
* measure with cached advances, so fitting the legend to its share is arithmetic,
* ask for a new geometry only when the size they reserve must grow (the slice text) or
  when what they must hold changes (the legend reserves room for the classes that can be
  listed, not for the slice's), so scrolling never moves the image,
* repaint only when their content changed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetricsF,
    QImage,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QStaticText,
)
from PySide6.QtWidgets import QWidget

__all__ = ["LegendRow", "LegendWidget", "TextLabel", "html_escape"]

#: Strings laid out once per font (a legend shows a few of the table's names per slice).
_CACHE_MAX = 4096
#: Legend rows kept drawn (a row is its width x ~18 px x 4 bytes: ~10 kB).
_IMAGES_MAX = 1024

FILLED = "\u25a0"  # ■ the swatch of a class or an error colour
HOLLOW = "\u25a1"  # □ an outline swatch (agreement drawn as the class outline)


def html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _Texts:
    """Laid-out strings (``QStaticText``) and their advances, for one font."""

    def __init__(self, font: QFont) -> None:
        self.font = QFont(font)
        self.metrics = QFontMetricsF(self.font)
        self.ascent = self.metrics.ascent()
        self.height = self.metrics.height()
        self._static: dict[str, QStaticText] = {}
        self._width: dict[str, float] = {}

    def static(self, text: str) -> QStaticText:
        st = self._static.get(text)
        if st is None:
            if len(self._static) >= _CACHE_MAX:
                self._static.clear()
            st = QStaticText(text)
            st.setTextFormat(Qt.TextFormat.PlainText)
            st.setPerformanceHint(QStaticText.PerformanceHint.AggressiveCaching)
            st.prepare(font=self.font)
            self._static[text] = st
        return st

    def width(self, text: str) -> float:
        w = self._width.get(text)
        if w is None:
            if len(self._width) >= _CACHE_MAX:
                self._width.clear()
            w = self.metrics.horizontalAdvance(text)
            self._width[text] = w
        return w


_texts: dict[str, _Texts] = {}


def _texts_for(font: QFont) -> _Texts:
    """The shared cache of one font (widgets look it up once, not per string)."""
    key = font.key()
    t = _texts.get(key)
    if t is None:
        t = _texts[key] = _Texts(font)
    return t


class TextLabel(QWidget):
    """One line of plain text (the slice text): ``text()`` / ``setText()`` like a QLabel.

    Its width hint only grows (the widest text shown so far), so the next slice number
    never re-lays the pane out; a pane narrower than the text cuts it, as a label with an
    ignored width does.
    """

    def __init__(
        self,
        text: str = "",
        *,
        color: QColor | None = None,
        pixel_size: int | None = None,
        background: QColor | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._color = color
        # an opaque widget spares Qt painting the widgets under it on every change
        self._background = background
        if background is None:
            self.setAutoFillBackground(True)  # the window's colour
        else:
            self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self._text = ""
        self._hint_w = 0
        if pixel_size is not None:
            f = QFont(self.font())
            f.setPixelSize(pixel_size)
            self.setFont(f)
        self._texts = _texts_for(self.font())
        self.setText(text)

    def text(self) -> str:
        return self._text

    def setText(self, text: str) -> None:  # noqa: N802 (the QLabel name)
        if text == self._text:
            return
        self._text = text
        w = math.ceil(self._texts.width(text))
        if w > self._hint_w:
            self._hint_w = w
            self.updateGeometry()
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(self._hint_w, math.ceil(self._texts.height))

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(0, self.sizeHint().height())

    def changeEvent(self, ev: QEvent) -> None:  # noqa: N802
        super().changeEvent(ev)
        if ev.type() == QEvent.Type.FontChange and hasattr(self, "_texts"):
            self._texts = _texts_for(self.font())
            self._hint_w = math.ceil(self._texts.width(self._text))
            self.updateGeometry()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        p = QPainter(self)
        if self._background is not None:
            p.fillRect(self.rect(), self._background)
        if not self._text:
            p.end()
            return
        t = self._texts
        p.setFont(t.font)
        p.setPen(self._color if self._color is not None else self.palette().windowText().color())
        p.drawStaticText(QPointF(0, (self.height() - t.height) / 2), t.static(self._text))
        p.end()


class LegendRow(NamedTuple):
    """One legend line: a text, optionally after a colour swatch (filled or hollow), bold
    or not."""

    text: str
    swatch: tuple[int, int, int] | None = None
    hollow: bool = False
    bold: bool = False


class LegendWidget(QWidget):
    """The class legend (and the errors legend) of a slice view.

    Rows are drawn on a dark box that hugs them; the widget itself keeps the size
    :meth:`set_rows` reserves (at least the rows' own), so a slice listing other classes
    repaints the box without moving anything else.
    """

    #: The mouse moved over the legend: its height in the widget (float), or None when it
    #: left (hovering a row highlights its class).
    pointed = Signal(object)

    PAD = 4  # px between the box's edge and its text
    BACKGROUND = QColor(24, 24, 24)
    FOREGROUND = QColor(0xF0, 0xF0, 0xF0)

    def __init__(self, surround: QColor | None = None, parent: QWidget | None = None) -> None:
        """``surround``: the colour under the widget around the box (it paints it itself and
        is opaque then, sparing Qt painting what lies under it)."""
        super().__init__(parent)
        self._surround = surround
        if surround is not None:
            self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        base = QFont(self.font())
        base.setPixelSize(12)
        bold = QFont(base)
        bold.setBold(True)
        swatch = QFont(base)
        swatch.setPixelSize(15)
        self._plain, self._bold, self._swatch = (_texts_for(f) for f in (base, bold, swatch))
        fms = [t.metrics for t in (self._plain, self._bold, self._swatch)]
        self._ascent = max(m.ascent() for m in fms)
        self._line = math.ceil(self._ascent + max(m.descent() for m in fms))
        self._row_widths: dict[LegendRow, float] = {}
        self._row_px: dict[tuple[LegendRow, float], np.ndarray] = {}
        self._box: QImage | None = None  # the box as drawn, made when first painted
        self._box_buf = np.zeros((0, 0), np.uint32)
        self._box_dpr = 1.0
        self._rows: tuple[LegendRow, ...] = ()
        self._hint = QSize(0, 0)
        self._content = QSize(0, 0)

    # -- measuring -------------------------------------------------------------------------
    @property
    def line_height(self) -> int:
        return self._line

    def row_width(self, row: LegendRow) -> float:
        w = self._row_widths.get(row)
        if w is None:
            w = (self._bold if row.bold else self._plain).width(row.text)
            if row.swatch is not None:
                glyph = HOLLOW if row.hollow else FILLED
                w += self._swatch.width(glyph) + self._plain.width(" ")
            if len(self._row_widths) >= _CACHE_MAX:
                self._row_widths.clear()
            self._row_widths[row] = w
        return w

    def measure(self, rows: Sequence[LegendRow]) -> QSize:
        """The size the box takes for these rows (padding included)."""
        if not rows:
            return QSize(0, 0)
        w = max(self.row_width(r) for r in rows)
        return QSize(math.ceil(w) + 2 * self.PAD, len(rows) * self._line + 2 * self.PAD)

    # -- content ---------------------------------------------------------------------------
    def rows(self) -> tuple[LegendRow, ...]:
        return self._rows

    def set_rows(self, rows: Sequence[LegendRow], reserve: QSize | None = None) -> None:
        """Show ``rows``; the widget asks for ``reserve`` (or at least the rows' size), and
        for a new geometry only when that changes."""
        rows = tuple(rows)
        if rows != self._rows:
            self._rows = rows
            self._content = self.measure(rows)
            self._box = None
            self.update()
        hint = self._content if reserve is None else reserve.expandedTo(self._content)
        if hint != self._hint:
            self._hint = hint
            self.updateGeometry()

    def sizeHint(self) -> QSize:  # noqa: N802
        return self._hint

    def mouseMoveEvent(self, ev: QMouseEvent) -> None:  # noqa: N802
        self.pointed.emit(ev.position().y())
        super().mouseMoveEvent(ev)

    def leaveEvent(self, ev: QEvent) -> None:  # noqa: N802
        self.pointed.emit(None)
        super().leaveEvent(ev)

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return self._hint

    def row_at(self, y: float) -> int | None:
        """The index of the row at height ``y`` (widget coordinates), or None."""
        if y < self.PAD:
            return None
        i = int((y - self.PAD) // self._line)
        return i if 0 <= i < len(self._rows) else None

    def text(self) -> str:
        """The legend as rich text (what it says, with its colours), e.g. for a tooltip or
        a test."""
        out = []
        for r in self._rows:
            body = html_escape(r.text)
            if r.bold:
                body = f"<b>{body}</b>"
            if r.swatch is not None:
                red, green, blue = r.swatch
                glyph = "&#9633;" if r.hollow else "&#9632;"
                body = (
                    f'<span style="color: rgb({red},{green},{blue}); font-size: 15px;">'
                    f"{glyph}</span>&nbsp;{body}"
                )
            out.append(body)
        return "<br>".join(out)

    # -- drawing ---------------------------------------------------------------------------
    def _row_pixels(self, row: LegendRow, dpr: float) -> np.ndarray:
        """One row drawn once on the box's colour: ``(h, w)`` native 0xAARRGGBB pixels."""
        key = (row, dpr)
        px = self._row_px.get(key)
        if px is None:
            w, h = math.ceil(self.row_width(row)), self._line
            img = QImage(max(1, round(w * dpr)), max(1, round(h * dpr)), QImage.Format.Format_RGB32)
            img.setDevicePixelRatio(dpr)
            img.fill(self.BACKGROUND)
            p = QPainter(img)
            x = 0.0
            if row.swatch is not None:
                sw = self._swatch
                glyph = HOLLOW if row.hollow else FILLED
                p.setFont(sw.font)
                p.setPen(QColor(*row.swatch))
                p.drawStaticText(QPointF(0, self._ascent - sw.ascent), sw.static(glyph))
                x = sw.width(glyph) + self._plain.width(" ")
            texts = self._bold if row.bold else self._plain
            p.setFont(texts.font)
            p.setPen(self.FOREGROUND)
            p.drawStaticText(QPointF(x, self._ascent - texts.ascent), texts.static(row.text))
            p.end()
            words = img.bytesPerLine() // 4
            bits = np.frombuffer(img.constBits(), np.uint32, count=img.height() * words)
            px = bits.reshape(img.height(), words)[:, : img.width()].copy()
            if len(self._row_px) >= _IMAGES_MAX:
                self._row_px.clear()
            self._row_px[key] = px
        return px

    def _box_image(self) -> QImage:
        """The box with its rows, put together from the rows' pixels (one copy per row)
        and drawn with one call: a slice listing other classes costs no text layout."""
        dpr = self.devicePixelRatioF()
        if self._box is not None and self._box_dpr == dpr:
            return self._box
        c = self._content
        buf = np.full(
            (max(1, round(c.height() * dpr)), max(1, round(c.width() * dpr))),
            np.uint32(self.BACKGROUND.rgb()),
            np.uint32,
        )
        x = round(self.PAD * dpr)
        for i, r in enumerate(self._rows):
            px = self._row_pixels(r, dpr)
            y = round((self.PAD + i * self._line) * dpr)
            part = buf[y : y + px.shape[0], x : x + px.shape[1]]
            part[...] = px[: part.shape[0], : part.shape[1]]
        h, w = buf.shape
        img = QImage(buf.data, w, h, buf.strides[0], QImage.Format.Format_RGB32)
        img.setDevicePixelRatio(dpr)
        self._box, self._box_buf, self._box_dpr = img, buf, dpr  # the image uses buf's memory
        return img

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        p = QPainter(self)
        if self._surround is not None:
            p.fillRect(self.rect(), self._surround)
        if self._rows:
            p.drawImage(QPointF(0, 0), self._box_image())
        p.end()
