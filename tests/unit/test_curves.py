"""The training curves PNG: read from a metrics.csv (step column as logged), one panel per family, train and val."""

from __future__ import annotations

import pytest

from src.eval.reports.curves import MAX_PANELS, families, plot_curves, read_curves

HEADER = "lr-AdamW,step,train/ce,train/loss,train/tokens_per_sec,val/ce,val/loss,val/ppl,epoch\n"
ROWS = [  # as Lightning writes them: validation rows and training rows apart, a torn last line
    ",0,,,,6.8,0.13,900.0,0\n",
    "0.001,10,5.5,0.5,1200,,,,0\n",
    "0.001,20,4.5,-0.9,1300,,,,0\n",
    ",20,,,,4.4,-1.0,81.0,0\n",
    "0.001,30,4.",
]


@pytest.fixture
def history(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(HEADER + "".join(ROWS))
    return path


def test_families_hold_train_and_val_points_by_step(history):
    curves = read_curves(history)
    assert curves == {  # throughput and lr are not curves; the torn row is left out
        "ce": {"train": [(10, 5.5), (20, 4.5)], "val": [(0, 6.8), (20, 4.4)]},
        "loss": {"train": [(10, 0.5), (20, -0.9)], "val": [(0, 0.13), (20, -1.0)]},
        "ppl": {"val": [(0, 900.0), (20, 81.0)]},
    }
    assert families(curves) == ["loss", "ce", "ppl"]


def test_figure_has_a_titled_panel_per_family_and_a_bounded_size(history, tmp_path):
    fig = plot_curves(history, tmp_path / "curves.png", "gem_toy-seed42")
    assert (tmp_path / "curves.png").stat().st_size > 10_000
    assert fig._suptitle.get_text() == "gem_toy-seed42"
    panels = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title() for ax in panels] == ["loss", "ce", "ppl"]
    assert all(ax.get_xlabel() == "step" for ax in panels)
    assert [line.get_label() for line in panels[0].get_lines()] == ["train", "val"]
    assert list(panels[0].get_lines()[1].get_xdata()) == [0, 20]
    assert panels[2].get_yscale() == "log"
    width, height = fig.get_size_inches()
    assert width <= 12 and height <= 10


def test_many_families_stay_within_the_panel_limit(tmp_path):
    names = [f"train/m{i}" for i in range(20)]
    path = tmp_path / "metrics.csv"
    path.write_text("step," + ",".join(names) + "\n" + "1," + ",".join(["1.0"] * 20) + "\n")
    fig = plot_curves(path, tmp_path / "curves.png", "many")
    assert len([ax for ax in fig.axes if ax.axison]) == MAX_PANELS
    assert max(fig.get_size_inches()) <= 12


def test_no_rows_no_figure(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(HEADER)
    assert plot_curves(path, tmp_path / "curves.png", "empty") is None
    assert not (tmp_path / "curves.png").exists()
