"""The evaluation report: one offline HTML page, PNG plots and a JSON.

:func:`write_report` turns an :class:`~deepclean_clean.evaluate.Evaluation`
into

- ``report.html``: bokeh plots with their JavaScript inline (opens
  without a network): ASDs of every version (raw, each cleaned version,
  ideal), their ratios to raw, the ratio spectrograms, and tables of the
  ratios, BNS ranges, truth metrics and injection recovery, the cleaned
  versions (DeepClean and the Wiener baselines) side by side;
- ``asd.png``, ``asd_ratio.png``, ``ratio_spectrogram.png``: the key plots
  drawn with matplotlib's Agg renderer;
- ``evaluation.json``: every number (:meth:`Evaluation.to_dict`).
"""

import html
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from bokeh.embed import file_html
from bokeh.layouts import column
from bokeh.models import (
    BoxAnnotation,
    ColorBar,
    Div,
    LinearColorMapper,
    Span,
)
from bokeh.palettes import Category10_10, RdBu11
from bokeh.plotting import figure
from bokeh.resources import INLINE
from matplotlib.figure import Figure

from deepclean_clean.evaluate import (
    IDEAL,
    RAW,
    Evaluation,
    display_range,
)

HTML_NAME = "report.html"
JSON_NAME = "evaluation.json"
PNG_NAMES = {
    "asd": "asd.png",
    "ratio": "asd_ratio.png",
    "spectrogram": "ratio_spectrogram.png",
}
_RAW_COLOUR = "#444444"
_IDEAL_COLOUR = "#2ca02c"
_WIDTH = 900
_HEIGHT = 380
# Smallest colour range of the ratio spectrograms, dB either side of 0.
_MIN_DECIBEL_RANGE = 1.0


def version_colours(names: Sequence[str]) -> dict[str, str]:
    """A fixed colour per version: grey raw, green ideal, others cycle."""
    cycle = [colour for colour in Category10_10 if colour != _IDEAL_COLOUR]
    cleaned = [name for name in names if name not in (RAW, IDEAL)]
    colours = {
        name: cycle[index % len(cycle)] for index, name in enumerate(cleaned)
    }
    return {RAW: _RAW_COLOUR, IDEAL: _IDEAL_COLOUR} | colours


def _format(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}g}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An HTML table of already formatted cells (escaped here)."""
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(cell)}</td>" for cell in row)
        + "</tr>"
        for row in rows
    )
    return (
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _summary_table(evaluation: Evaluation) -> str:
    header = [
        "version",
        "in-band ASD ratio",
        "out-of-band ASD ratio",
        "BNS range (Mpc)",
        "range gain (%)",
        "excess over ideal",
        "coupled power removed",
    ]
    gains = evaluation.range_gains
    rows = [[RAW, "1", "1", _format(evaluation.ranges[RAW]), "0", "", ""]]
    for name, ratios in evaluation.ratios.items():
        rows.append(
            [
                name,
                _format(ratios.in_band),
                _format(ratios.out_of_band),
                _format(evaluation.ranges[name]),
                _format(100 * gains[name], 3),
                _format(evaluation.excess_over_ideal.get(name)),
                _format(evaluation.coupled_power_removed.get(name)),
            ]
        )
    return _table(header, rows)


def _band_table(evaluation: Evaluation) -> str:
    header = ["version"] + [
        f"{low:g}-{high:g} Hz {where}"
        for low, high in evaluation.bands
        for where in ("in band", "beside")
    ]
    rows = [
        [name]
        + [
            _format(value)
            for band in ratios.bands
            for value in (band.in_band, band.out_of_band)
        ]
        for name, ratios in evaluation.ratios.items()
    ]
    return _table(header, rows)


def _injection_table(evaluation: Evaluation) -> str:
    header = [
        "version",
        "kind",
        "GPS time",
        "optimal SNR raw",
        "matched-filter SNR raw",
        "optimal SNR cleaned",
        "matched-filter SNR cleaned",
        "change (sigma)",
        "within noise",
    ]
    rows = [
        [
            name,
            recovery.kind,
            f"{recovery.time:.3f}",
            _format(recovery.optimal_snr_raw),
            _format(recovery.matched_filter_snr_raw),
            _format(recovery.optimal_snr_cleaned),
            _format(recovery.matched_filter_snr_cleaned),
            _format(recovery.change_sigma, 3),
            "yes" if recovery.within_noise else "NO",
        ]
        for name, recoveries in evaluation.injections.items()
        for recovery in recoveries
    ]
    return _table(header, rows)


def _frequency_masks(evaluation: Evaluation) -> tuple[np.ndarray, np.ndarray]:
    """ASD bins of the overview (from fmin / 2) and of the band zoom."""
    frequencies = evaluation.frequencies
    low, high = display_range(
        evaluation.bands, evaluation.sideband, evaluation.sample_rate / 2
    )
    return (
        frequencies >= evaluation.fmin / 2,
        (frequencies >= low) & (frequencies <= high),
    )


def _asd_figures(evaluation: Evaluation, colours: dict[str, str]) -> list:
    frequencies = evaluation.frequencies
    overview_mask, zoom_mask = _frequency_masks(evaluation)
    overview = figure(
        title="ASD",
        x_axis_type="log",
        y_axis_type="log",
        x_axis_label="frequency (Hz)",
        y_axis_label="ASD (strain / sqrt(Hz))",
        width=_WIDTH,
        height=_HEIGHT,
    )
    zoom = figure(
        title="ASD around the cleaning bands",
        y_axis_type="log",
        x_axis_label="frequency (Hz)",
        y_axis_label="ASD (strain / sqrt(Hz))",
        width=_WIDTH,
        height=_HEIGHT,
    )
    ratio = figure(
        title="ASD ratio to raw",
        x_axis_label="frequency (Hz)",
        y_axis_label="ASD / ASD(raw)",
        width=_WIDTH,
        height=_HEIGHT,
        x_range=zoom.x_range,
    )
    for name, asd in evaluation.asds.items():
        dash = "dashed" if name == IDEAL else "solid"
        for plot, mask in ((overview, overview_mask), (zoom, zoom_mask)):
            plot.line(
                frequencies[mask],
                asd[mask],
                legend_label=name,
                color=colours[name],
                line_dash=dash,
            )
        if name != RAW:
            ratio.line(
                frequencies[zoom_mask],
                asd[zoom_mask] / evaluation.asds[RAW][zoom_mask],
                legend_label=name,
                color=colours[name],
                line_dash=dash,
            )
    ratio.add_layout(Span(location=1, dimension="width", line_dash="dotted"))
    for plot in (overview, zoom, ratio):
        for low, high in evaluation.bands:
            plot.add_layout(
                BoxAnnotation(
                    left=low, right=high, fill_alpha=0.08, fill_color="blue"
                )
            )
        plot.legend.click_policy = "hide"
    return [overview, zoom, ratio]


def _decibel_range(evaluation: Evaluation) -> float:
    largest = max(
        float(np.abs(20 * np.log10(spectrogram.ratio)).max())
        for spectrogram in evaluation.spectrograms.values()
    )
    return max(largest, _MIN_DECIBEL_RANGE)


def _spectrogram_figures(evaluation: Evaluation) -> list:
    limit = _decibel_range(evaluation)
    mapper = LinearColorMapper(
        palette=list(reversed(RdBu11)), low=-limit, high=limit
    )
    figures = []
    for name, spectrogram in evaluation.spectrograms.items():
        times, frequencies = spectrogram.times, spectrogram.frequencies
        plot = figure(
            title=f"ASD ratio {name} / raw over time (dB)",
            x_axis_label=f"time (s) after GPS {evaluation.start:.0f}",
            y_axis_label="frequency (Hz)",
            width=_WIDTH,
            height=_HEIGHT,
            x_range=(0, times[-1] + evaluation.stride),
            y_range=(frequencies[0], frequencies[-1]),
        )
        plot.image(
            image=[20 * np.log10(spectrogram.ratio.T)],
            x=0,
            y=frequencies[0],
            dw=times[-1] + evaluation.stride,
            dh=frequencies[-1] - frequencies[0],
            color_mapper=mapper,
        )
        plot.add_layout(ColorBar(color_mapper=mapper), "right")
        figures.append(plot)
    return figures


def _describe(evaluation: Evaluation) -> str:
    bands = ", ".join(f"{low:g}-{high:g} Hz" for low, high in evaluation.bands)
    near, far = evaluation.sideband
    return (
        f"GPS {evaluation.start:.3f} + {evaluation.duration:g} s at "
        f"{evaluation.sample_rate:g} Hz; bands {bands}; median-Welch ASDs "
        f"with {evaluation.fftlength:g} s FFTs; out-of-band = {near:g}-"
        f"{far:g} Hz either side of each band; BNS range (1.4+1.4 Msun, "
        f"SNR 8) and SNRs from {evaluation.fmin:g} Hz."
    )


def _write_html(path: Path, evaluation: Evaluation, title: str) -> None:
    colours = version_colours(list(evaluation.asds))
    parts = [
        Div(text=f"<h1>{html.escape(title)}</h1>"),
        Div(text=f"<p>{html.escape(_describe(evaluation))}</p>"),
        Div(
            text="<h2>Summary and baselines</h2>" + _summary_table(evaluation)
        ),
        Div(text="<h2>Per band</h2>" + _band_table(evaluation)),
        *_asd_figures(evaluation, colours),
        Div(text="<h2>Ratio over time</h2>"),
        *_spectrogram_figures(evaluation),
    ]
    if evaluation.injections:
        parts.append(
            Div(
                text="<h2>Injection recovery</h2>"
                + _injection_table(evaluation)
            )
        )
    path.write_text(file_html(column(*parts), INLINE, title))


def _plot_asds(path: Path, evaluation: Evaluation) -> None:
    colours = version_colours(list(evaluation.asds))
    frequencies = evaluation.frequencies
    overview_mask, zoom_mask = _frequency_masks(evaluation)
    figure_ = Figure(figsize=(10, 8), layout="constrained")
    overview, zoom = figure_.subplots(2, 1)
    for name, asd in evaluation.asds.items():
        style = "--" if name == IDEAL else "-"
        overview.loglog(
            frequencies[overview_mask],
            asd[overview_mask],
            style,
            color=colours[name],
            label=name,
        )
        zoom.semilogy(
            frequencies[zoom_mask],
            asd[zoom_mask],
            style,
            color=colours[name],
            label=name,
        )
    for axes in (overview, zoom):
        for low, high in evaluation.bands:
            axes.axvspan(low, high, color="blue", alpha=0.08)
        axes.set_xlabel("frequency (Hz)")
        axes.set_ylabel("ASD (strain / sqrt(Hz))")
        axes.legend()
    overview.set_title("ASD")
    zoom.set_title("ASD around the cleaning bands")
    figure_.savefig(path, dpi=100)


def _plot_ratios(path: Path, evaluation: Evaluation) -> None:
    colours = version_colours(list(evaluation.asds))
    frequencies = evaluation.frequencies
    _, mask = _frequency_masks(evaluation)
    figure_ = Figure(figsize=(10, 4.5), layout="constrained")
    axes = figure_.subplots()
    for name in evaluation.ratios:
        axes.plot(
            frequencies[mask],
            evaluation.asds[name][mask] / evaluation.asds[RAW][mask],
            "--" if name == IDEAL else "-",
            color=colours[name],
            label=name,
        )
    for low, high in evaluation.bands:
        axes.axvspan(low, high, color="blue", alpha=0.08)
    axes.axhline(1, color="black", linestyle=":")
    axes.set_xlabel("frequency (Hz)")
    axes.set_ylabel("ASD / ASD(raw)")
    axes.set_title("ASD ratio to raw")
    axes.legend()
    figure_.savefig(path, dpi=100)


def _plot_spectrograms(path: Path, evaluation: Evaluation) -> None:
    limit = _decibel_range(evaluation)
    count = len(evaluation.spectrograms)
    figure_ = Figure(figsize=(10, 3.2 * count), layout="constrained")
    axes = figure_.subplots(count, 1, squeeze=False)[:, 0]
    for axis, (name, spectrogram) in zip(
        axes, evaluation.spectrograms.items(), strict=True
    ):
        frequencies = spectrogram.frequencies
        half_bin = (frequencies[1] - frequencies[0]) / 2
        mesh = axis.pcolormesh(
            np.append(
                spectrogram.times, spectrogram.times[-1] + evaluation.stride
            ),
            np.append(frequencies - half_bin, frequencies[-1] + half_bin),
            20 * np.log10(spectrogram.ratio.T),
            cmap="RdBu_r",
            vmin=-limit,
            vmax=limit,
            shading="flat",
        )
        axis.set_title(f"ASD ratio {name} / raw (dB)")
        axis.set_ylabel("frequency (Hz)")
        figure_.colorbar(mesh, ax=axis)
    axes[-1].set_xlabel(f"time (s) after GPS {evaluation.start:.0f}")
    figure_.savefig(path, dpi=100)


def write_report(
    output_dir: str | os.PathLike,
    evaluation: Evaluation,
    title: str = "DeepClean evaluation",
) -> Path:
    """Write the HTML report, the PNG plots and the JSON of every number.

    Args:
        output_dir: Folder of the report (created if missing).
        evaluation: What :func:`~deepclean_clean.evaluate.evaluate`
            returned.
        title: Title of the page.

    Returns:
        Path of ``report.html``.
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise NotADirectoryError(
            f"report output {output_dir} exists and is not a directory; "
            "choose a folder path for the report"
        )
    output_dir.mkdir(parents=True, exist_ok=True)
    if not os.access(output_dir, os.W_OK):
        raise PermissionError(
            f"cannot write the report to {output_dir}; choose a writable "
            "output directory"
        )
    (output_dir / JSON_NAME).write_text(
        json.dumps(evaluation.to_dict(), indent=1, allow_nan=False) + "\n"
    )
    _plot_asds(output_dir / PNG_NAMES["asd"], evaluation)
    _plot_ratios(output_dir / PNG_NAMES["ratio"], evaluation)
    _plot_spectrograms(output_dir / PNG_NAMES["spectrogram"], evaluation)
    html_path = output_dir / HTML_NAME
    _write_html(html_path, evaluation, title)
    return html_path
