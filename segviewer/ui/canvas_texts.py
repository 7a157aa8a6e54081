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
from dataclasses import dataclass

from PySide6.QtCore import QEvent, QPointF, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPaintEvent, QStaticText
from PySide6.QtWidgets import QWidget

__all__ = ["LegendRow", "LegendWidget", "TextLabel", "html_escape"]

#: Strings laid out once per font (a legend shows a few of the table's names per slice).
_STATIC_MAX = 4096
_static: dict[tuple[str, str], QStaticText] = {}
_advance: dict[tuple[str, str], float] = {}

FILLED = "\u25a0"  # ■ the swatch of a class or an error colour
HOLLOW = "\u25a1"  # □ an outline swatch (agreement drawn as the class outline)


def html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _static_text(text: str, font: QFont) -> QStaticText:
    key = (text, font.key())
    st = _static.get(key)
    if st is None:
        if len(_static) >= _STATIC_MAX:
            _static.clear()
        st = QStaticText(text)
        st.setTextFormat(Qt.TextFormat.PlainText)
        st.setPerformanceHint(QStaticText.PerformanceHint.AggressiveCaching)
        st.prepare(font=font)
        _static[key] = st
    return st


def _width(text: str, font: QFont) -> float:
    key = (text, font.key())
    w = _advance.get(key)
    if w is None:
        if len(_advance) >= _STATIC_MAX:
            _advance.clear()
        w = QFontMetricsF(font).horizontalAdvance(text)
        _advance[key] = w
    return w


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
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._color = color
        self._text = ""
        self._hint_w = 0
        if pixel_size is not None:
            f = QFont(self.font())
            f.setPixelSize(pixel_size)
            self.setFont(f)
        self.setText(text)

    def text(self) -> str:
        return self._text

    def setText(self, text: str) -> None:  # noqa: N802 (the QLabel name)
        if text == self._text:
            return
        self._text = text
        w = math.ceil(_width(text, self.font()))
        if w > self._hint_w:
            self._hint_w = w
            self.updateGeometry()
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(self._hint_w, math.ceil(QFontMetricsF(self.font()).height()))

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(0, self.sizeHint().height())

    def changeEvent(self, ev: QEvent) -> None:  # noqa: N802
        super().changeEvent(ev)
        if ev.type() == QEvent.Type.FontChange:
            self._hint_w = math.ceil(_width(self._text, self.font()))
            self.updateGeometry()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        if not self._text:
            return
        p = QPainter(self)
        font = self.font()
        p.setFont(font)
        p.setPen(self._color if self._color is not None else self.palette().windowText().color())
        fm = QFontMetricsF(font)
        y = (self.height() - fm.height()) / 2
        p.drawStaticText(QPointF(0, y), _static_text(self._text, font))
        p.end()


@dataclass(frozen=True)
class LegendRow:
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

    PAD = 4  # px between the box's edge and its text
    BACKGROUND = QColor(24, 24, 24)
    FOREGROUND = QColor(0xF0, 0xF0, 0xF0)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        base = QFont(self.font())
        base.setPixelSize(12)
        bold = QFont(base)
        bold.setBold(True)
        swatch = QFont(base)
        swatch.setPixelSize(15)
        self._font, self._bold, self._swatch = base, bold, swatch
        fms = [QFontMetricsF(f) for f in (base, bold, swatch)]
        self._ascent = max(m.ascent() for m in fms)
        self._line = math.ceil(self._ascent + max(m.descent() for m in fms))
        self._rows: tuple[LegendRow, ...] = ()
        self._hint = QSize(0, 0)
        self._content = QSize(0, 0)

    # -- measuring -------------------------------------------------------------------------
    @property
    def line_height(self) -> int:
        return self._line

    def row_width(self, row: LegendRow) -> float:
        w = _width(row.text, self._bold if row.bold else self._font)
        if row.swatch is not None:
            w += _width(HOLLOW if row.hollow else FILLED, self._swatch) + _width(" ", self._font)
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
            self.update()
        hint = self._content if reserve is None else reserve.expandedTo(self._content)
        if hint != self._hint:
            self._hint = hint
            self.updateGeometry()

    def sizeHint(self) -> QSize:  # noqa: N802
        return self._hint

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
    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        if not self._rows:
            return
        p = QPainter(self)
        c = self._content
        p.fillRect(QRect(0, 0, c.width(), c.height()), self.BACKGROUND)
        sw_ascent = QFontMetricsF(self._swatch).ascent()
        gap = _width(" ", self._font)
        for i, r in enumerate(self._rows):
            base = self.PAD + i * self._line + self._ascent  # the row's baseline
            x = float(self.PAD)
            if r.swatch is not None:
                glyph = HOLLOW if r.hollow else FILLED
                p.setFont(self._swatch)
                p.setPen(QColor(*r.swatch))
                p.drawStaticText(QPointF(x, base - sw_ascent), _static_text(glyph, self._swatch))
                x += _width(glyph, self._swatch) + gap
            font = self._bold if r.bold else self._font
            p.setFont(font)
            p.setPen(self.FOREGROUND)
            top = base - QFontMetricsF(font).ascent()
            p.drawStaticText(QPointF(x, top), _static_text(r.text, font))
        p.end()
