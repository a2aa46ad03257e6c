"""The witness analysis as a standalone bokeh page.

Panels, witnesses in ranking order (the first :data:`SHOWN` of them):
the importance and the evidence it combines, the saliency share on each
span (median, 5-95 % whiskers), a ridge plot of the linear and bilinear
coherence with strain around the bands, the saliency spectrum (at which
witness frequencies the model listens) and a sortable table of every
witness.
"""

from __future__ import annotations

import html

import numpy as np
from bokeh.embed import file_html
from bokeh.layouts import column
from bokeh.models import (
    BoxAnnotation,
    ColumnDataSource,
    DataTable,
    Div,
    FactorRange,
    LinearColorMapper,
    NumberFormatter,
    TableColumn,
    Whisker,
)
from bokeh.palettes import Category10_10, Viridis256
from bokeh.plotting import figure
from bokeh.resources import CDN
from bokeh.transform import dodge

from deepclean_train.analysis import WitnessAnalysis

SHOWN = 40
"""Witnesses drawn in the plots (the table lists all)."""
_ROW_HEIGHT = 22
_EVIDENCE_COLOURS = {
    "saliency": Category10_10[0],
    "ablation": Category10_10[1],
    "coherence": Category10_10[2],
}


def _short(channel: str) -> str:
    """A channel without its IFO prefix."""
    return channel.split(":", 1)[-1]


def _height(count: int) -> int:
    return 80 + _ROW_HEIGHT * count


def _channel_bars(names: list[str], title: str, label: str, tooltips: str):
    """A figure of horizontal bars, one row per channel, top to bottom."""
    return figure(
        y_range=FactorRange(*reversed(names)),
        title=title,
        x_axis_label=label,
        width=900,
        height=_height(len(names)),
        tools="hover,save,reset",
        tooltips=tooltips,
    )


def _importance_figure(analysis: WitnessAnalysis, order: np.ndarray):
    evidence = analysis.normalised_evidence()
    names = [_short(analysis.inputs.witnesses[row]) for row in order]
    data: dict[str, list] = {"channel": names}
    kinds = list(evidence)
    for kind, values in evidence.items():
        data[kind] = list(values[order] / len(kinds))
    plot = _channel_bars(
        names,
        "Importance: the mean of each evidence over its largest value",
        "importance",
        "$name @channel: @$name{0.000}",
    )
    plot.hbar_stack(
        kinds,
        y="channel",
        height=0.8,
        source=ColumnDataSource(data),
        color=[_EVIDENCE_COLOURS[kind] for kind in kinds],
        legend_label=kinds,
    )
    plot.legend.location = "bottom_right"
    return plot


def _saliency_figure(analysis: WitnessAnalysis, order: np.ndarray):
    names = [_short(analysis.inputs.witnesses[row]) for row in order]
    plot = _channel_bars(
        names,
        "Saliency share (median over windows, 5-95 %)",
        "share of the gradient norm",
        "@channel (@span): @median{0.0000}",
    )
    spans = list(analysis.saliency)
    width = 0.8 / len(spans)
    for index, (span, result) in enumerate(analysis.saliency.items()):
        offset = (index - (len(spans) - 1) / 2) * width
        source = ColumnDataSource(
            {
                "channel": names,
                "span": [span] * len(names),
                "low": result.share[0, order],
                "median": result.share[1, order],
                "high": result.share[2, order],
            }
        )
        position = dodge("channel", offset, range=plot.y_range)
        plot.hbar(
            y=position,
            right="median",
            height=width * 0.9,
            source=source,
            color=Category10_10[index % 10],
            legend_label=span,
        )
        plot.add_layout(
            Whisker(
                base=position,
                lower="low",
                upper="high",
                source=source,
                dimension="width",
            )
        )
    plot.legend.location = "bottom_right"
    return plot


def _ridge_figure(analysis: WitnessAnalysis, order: np.ndarray):
    span = analysis.ranked_span
    result = analysis.coherence[span]
    frequencies = result.frequencies
    count = len(order)
    plot = figure(
        title=(
            f"Coherence with strain ({span} span): linear (filled) and of "
            "the product with the line witness "
            f"{_short(analysis.line_witness)} (line)"
        ),
        x_axis_label="Frequency [Hz]",
        width=900,
        height=_height(count),
        tools="xpan,xwheel_zoom,save,reset",
    )
    labels = {}
    for position, row in enumerate(order):
        base = count - 1 - position
        labels[base] = _short(analysis.inputs.witnesses[row])
        plot.varea(
            x=frequencies,
            y1=np.full_like(frequencies, base),
            y2=base + 0.95 * result.linear[row],
            color=Category10_10[0],
            alpha=0.6,
        )
        if np.isfinite(result.bilinear[row]).all():
            plot.line(
                frequencies,
                base + 0.95 * result.bilinear[row],
                color=Category10_10[1],
            )
    plot.yaxis.ticker = list(labels)
    plot.yaxis.major_label_overrides = labels
    for low, high in analysis.bands:
        plot.add_layout(
            BoxAnnotation(
                left=low, right=high, fill_alpha=0.05, fill_color="green"
            )
        )
    return plot


def _saliency_spectrum_figure(analysis: WitnessAnalysis, order: np.ndarray):
    span = analysis.ranked_span
    result = analysis.saliency[span]
    frequencies = result.frequencies
    median = result.spectrum[1][order[::-1]]
    image = np.log10(np.maximum(median, np.max(median) * 1e-6 + 1e-300))
    count = len(order)
    step = frequencies[1] - frequencies[0] if len(frequencies) > 1 else 1.0
    plot = figure(
        title=(
            f"Saliency spectrum ({span} span, median): log10 gradient "
            "amplitude per witness frequency"
        ),
        x_axis_label="Witness frequency [Hz]",
        x_range=(frequencies[0], frequencies[-1] + step),
        y_range=(0, count),
        width=900,
        height=_height(count),
        tools="hover,save,reset",
        tooltips=[("frequency", "$x{0.0} Hz"), ("log10", "@image")],
    )
    mapper = LinearColorMapper(
        palette=Viridis256, low=float(image.min()), high=float(image.max())
    )
    plot.image(
        image=[image],
        x=frequencies[0],
        y=0,
        dw=frequencies[-1] + step - frequencies[0],
        dh=count,
        color_mapper=mapper,
    )
    labels = {
        count - 1 - position + 0.5: _short(analysis.inputs.witnesses[row])
        for position, row in enumerate(order)
    }
    plot.yaxis.ticker = list(labels)
    plot.yaxis.major_label_overrides = labels
    return plot


def _table(analysis: WitnessAnalysis) -> DataTable:
    ranking = analysis.ranking()
    span = analysis.ranked_span
    data = {
        "rank": [entry["rank"] for entry in ranking],
        "channel": [entry["channel"] for entry in ranking],
        "importance": [entry["importance"] for entry in ranking],
        "saliency": [entry["saliency"][span]["median"] for entry in ranking],
        "linear": [entry["linear_coherence"][span] for entry in ranking],
        "bilinear": [
            entry["bilinear_coherence"][span] or 0.0 for entry in ranking
        ],
    }
    columns = [
        TableColumn(field="rank", title="rank", width=50),
        TableColumn(field="channel", title="channel", width=320),
        TableColumn(
            field="importance",
            title="importance",
            formatter=NumberFormatter(format="0.000"),
        ),
        TableColumn(
            field="saliency",
            title=f"saliency ({span})",
            formatter=NumberFormatter(format="0.0000"),
        ),
        TableColumn(
            field="linear",
            title="linear coherent fraction",
            formatter=NumberFormatter(format="0.0000"),
        ),
        TableColumn(
            field="bilinear",
            title="bilinear coherent fraction",
            formatter=NumberFormatter(format="0.0000"),
        ),
    ]
    if analysis.ablation is not None:
        data["ablation"] = [entry["ablation"]["rise"] for entry in ranking]
        columns.append(
            TableColumn(
                field="ablation",
                title="ablation rise",
                formatter=NumberFormatter(format="0.0000"),
            )
        )
    return DataTable(
        source=ColumnDataSource(data),
        columns=columns,
        width=1100,
        height=min(600, 30 + 25 * len(ranking)),
        index_position=None,
    )


def _description(analysis: WitnessAnalysis) -> str:
    spans = ", ".join(
        f"{name} GPS {start:.0f}-{end:.0f}"
        for name, (start, end) in analysis.spans.items()
    )
    text = (
        f"{len(analysis.inputs.witnesses)} witnesses of "
        f"{analysis.inputs.strain_channel}, bands "
        + ", ".join(f"{low:g}-{high:g} Hz" for low, high in analysis.bands)
        + f"; spans {spans}. The ranking uses the {analysis.ranked_span} "
        "span."
    )
    if analysis.ablation is not None:
        text += (
            " In-band ASD ratio with every witness: "
            f"{analysis.ablation.baseline:.4f}; the ablation replaces one "
            "witness by its mean, or shifts it by "
            f"{analysis.ablation.shift:g} s."
        )
    return text


def analysis_page(analysis: WitnessAnalysis, title: str) -> str:
    """Standalone HTML page of the analysis."""
    order = np.argsort(-analysis.importance(), kind="stable")[:SHOWN]
    parts = [
        Div(text=f"<h1>{html.escape(title)}</h1>"),
        Div(text=f"<p>{html.escape(_description(analysis))}</p>", width=1100),
        _importance_figure(analysis, order),
        _saliency_figure(analysis, order),
        _ridge_figure(analysis, order),
        _saliency_spectrum_figure(analysis, order),
        Div(text="<h2>Every witness</h2>"),
        _table(analysis),
    ]
    return file_html(column(*parts), CDN, title)
