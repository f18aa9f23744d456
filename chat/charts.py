"""Charts drawn on the server as SVG: bars per day, lines per day, and ranked bars.

No script and no style attribute: shapes carry classes (`series-N`) that
static/chat/charts.css colours, for light and dark alike, so the page's CSP holds.
Every chart also keeps its numbers as a table, for screen readers and for copying.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date

WIDTH, HEIGHT = 560, 220
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 12, 26
SERIES_CLASSES = 6  # series-0 ... series-5 in charts.css, then they repeat


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass(frozen=True)
class Line:
    points: str  # an SVG path's `d`
    css: str
    dots: list[tuple[float, float, str]]  # x, y, title


@dataclass
class Chart:
    """What the template draws; coordinates are in the viewBox's units."""

    id: str
    title: str
    unit: str
    columns: list[str]  # the table's headers
    table: list[list]  # the table's rows
    width: int = WIDTH
    height: int = HEIGHT
    rects: list[Rect] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    x_labels: list[tuple[float, str]] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)
    bar_labels: list[tuple[float, float, str, str]] = field(default_factory=list)  # x, y, text, css

    @property
    def empty(self) -> bool:
        return not (self.rects or self.lines)

    @property
    def plot_left(self) -> int:
        return LEFT

    @property
    def plot_right(self) -> int:
        return self.width - RIGHT


def series_class(index: int) -> str:
    return f"series-{index % SERIES_CLASSES}"


def nice_top(value: float, ticks: int = 4) -> float:
    """The axis's top: `ticks` equal steps of 1, 2 or 5 times a power of ten, reaching `value`."""
    if value <= 0:
        return ticks
    rough = value / ticks
    power = 10 ** math.floor(math.log10(rough))
    step = next(m * power for m in (1, 2, 5, 10) if rough <= m * power)
    return step * ticks if step >= 1 else ticks


def short_number(value: float, unit: str = "") -> str:
    """1500 as 1.5k, 2000000 as 2M; milliseconds from a second on as seconds."""
    if unit == "ms":
        return f"{value / 1000:g}s" if value >= 1000 else f"{value:g}ms"
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1_000:
        return f"{value / 1_000:g}k"
    return f"{value:g}"


def _frame(chart: Chart, days: list[date], top: float, unit: str) -> None:
    """Axis labels: four y ticks up to `top`, and about six dates along x."""
    plot_h = chart.height - TOP - BOTTOM
    for i in range(5):
        chart.y_ticks.append((TOP + plot_h - plot_h * i / 4, short_number(top * i / 4, unit)))
    step = max(1, math.ceil(len(days) / 6))
    for i in range(0, len(days), step):
        chart.x_labels.append((_day_x(chart, days, i), days[i].strftime("%b %-d")))


def _day_x(chart: Chart, days: list[date], index: int) -> float:
    """The centre of day `index`'s column."""
    slot = (chart.plot_right - LEFT) / len(days)
    return LEFT + slot * (index + 0.5)


def _y(chart: Chart, value: float, top: float) -> float:
    plot_h = chart.height - TOP - BOTTOM
    return TOP + plot_h - plot_h * value / top


def stacked_bars(
    id: str, title: str, days: list[date], series: dict[str, dict[date, int]], unit: str = ""
) -> Chart:
    """One column per day, stacked by series (a model), `series[name][day]` high."""
    names = sorted(series)
    chart = Chart(id, title, unit, ["Day", *names], [])
    totals = [sum(series[n].get(d, 0) for n in names) for d in days]
    top = nice_top(max(totals, default=0))
    _frame(chart, days, top, "")
    slot = (chart.plot_right - LEFT) / len(days)
    width = max(slot * 0.7, 1)
    for i, day in enumerate(days):
        base = 0
        for s, name in enumerate(names):
            value = series[name].get(day, 0)
            if not value:
                continue
            y0, y1 = _y(chart, base, top), _y(chart, base + value, top)
            title = f"{day.isoformat()} · {name}: {value:,} {unit}".strip()
            x = _day_x(chart, days, i) - width / 2
            chart.rects.append(Rect(x, y1, width, y0 - y1, series_class(s), title))
            base += value
    chart.legend = [(series_class(s), name) for s, name in enumerate(names)]
    chart.table = [[d.isoformat(), *(series[n].get(d, 0) for n in names)] for d in days]
    return chart


def day_lines(
    id: str,
    title: str,
    days: list[date],
    series: dict[tuple[str, str], dict[date, int]],
    unit: str = "",
) -> Chart:
    """Lines across the days, one per (group, variant); a variant after the first is dashed.

    For TTFT the group is the model and the variants p50 and p95: one colour per model.
    """
    keys = sorted(series)
    groups = sorted({group for group, _variant in keys})
    variants = sorted({variant for _group, variant in keys})
    chart = Chart(id, title, unit, ["Day", *(f"{g} {v}" for g, v in keys)], [])
    top = nice_top(max((v for s in series.values() for v in s.values()), default=0))
    _frame(chart, days, top, unit)
    for group, variant in keys:
        css = series_class(groups.index(group))
        if variants.index(variant):
            css += " dashed"
        points = [
            (_day_x(chart, days, i), _y(chart, series[group, variant][d], top), d)
            for i, d in enumerate(days)
            if d in series[group, variant]
        ]
        path = " ".join(
            f"{'M' if n == 0 else 'L'}{x:.1f},{y:.1f}" for n, (x, y, _d) in enumerate(points)
        )
        dots = [
            (x, y, f"{d.isoformat()} · {group} {variant}: {series[group, variant][d]:,} {unit}")
            for x, y, d in points
        ]
        chart.lines.append(Line(path, css, dots))
    chart.legend = [(series_class(i), g) for i, g in enumerate(groups)]
    chart.legend += [("variant dashed" if i else "variant", v) for i, v in enumerate(variants)]
    chart.table = [[d.isoformat(), *(series[k].get(d, "–") for k in keys)] for d in days]
    return chart


def ranked_bars(id: str, title: str, items: list[tuple[str, int]], unit: str = "") -> Chart:
    """Horizontal bars, largest first: (label, value)."""
    row = 26
    height = TOP + BOTTOM + row * max(len(items), 1)
    chart = Chart(id, title, unit, ["", unit or "value"], [], height=height)
    top = nice_top(max((v for _l, v in items), default=0))
    left = 130
    span = chart.plot_right - left - 44  # room for the value after the longest bar
    for i, (label, value) in enumerate(items):
        y = TOP + row * i
        title_text = f"{label}: {value:,} {unit}".strip()
        width = max(span * value / top, 1)
        chart.rects.append(Rect(left, y + 4, width, row - 8, "series-0", title_text))
        chart.bar_labels.append((left - 8, y + row / 2 + 4, label, "label-end"))
        chart.bar_labels.append((left + width + 6, y + row / 2 + 4, short_number(value), "label"))
    chart.table = [[label, value] for label, value in items]
    return chart
