"""Server-rendered SVG geometry for the dashboard's trend chart.

Readable without colour: failed value is an outlined, hatched bar, recovered
value a solid bar drawn inside it, and the recovery rate a dashed line with
square markers on its own axis; every bar and marker has a text title, and the
same numbers are in the table under the chart.
"""

from __future__ import annotations

from dataclasses import dataclass

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 48, 16, 40


@dataclass
class Bar:
    x: float
    width: float
    failed_y: float
    failed_h: float
    recovered_y: float
    recovered_h: float
    label: str
    title: str


def nice_max(value: int) -> int:
    if value <= 0:
        return 1
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return int(step * magnitude)
    return int(10 * magnitude)


def trend_chart(points: list[dict], *, currency: str, money) -> dict | None:
    """Bars and a rate line for one currency's series; None without points."""
    if not points:
        return None
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = nice_max(max(p["failed_amount"] for p in points))
    slot = plot_w / len(points)
    width = max(1.0, slot * 0.7)
    bars, line = [], []
    label_every = max(1, len(points) // 8)
    for i, p in enumerate(points):
        x = LEFT + i * slot + (slot - width) / 2
        fh = plot_h * p["failed_amount"] / top
        rh = plot_h * p["recovered_amount"] / top
        rate = p["recovery_rate"]
        title = (
            f"{p['start']}: failed {money(p['failed_amount'], currency)}, recovered {money(p['recovered_amount'], currency)}"
            + (f", recovery rate {rate * 100:.1f}%" if rate is not None else "")
        )
        bars.append(Bar(round(x, 1), round(width, 1), round(TOP + plot_h - fh, 1), round(fh, 1),
                        round(TOP + plot_h - rh, 1), round(rh, 1), p["start"][5:] if i % label_every == 0 else "", title))
        if rate is not None:
            line.append((round(x + width / 2, 1), round(TOP + plot_h * (1 - rate), 1), title))
    ticks = [{"y": round(TOP + plot_h * (1 - f), 1), "label": money(int(top * f), currency), "rate": f"{int(f * 100)}%"}
             for f in (0, 0.25, 0.5, 0.75, 1)]
    return {
        "width": WIDTH, "height": HEIGHT, "left": LEFT, "right": WIDTH - RIGHT, "top": TOP,
        "bottom": TOP + plot_h, "label_y": TOP + plot_h + 16, "bars": bars, "ticks": ticks,
        "line": " ".join(f"{x},{y}" for x, y, _ in line), "markers": line, "currency": currency,
    }
