"""Figure helpers: they build, carry the data asked for, and the slider wiring updates the figure."""
import plotly.graph_objects as go
import pytest
import torch

from sleeplab.lab import viz, widgets


def test_heatmap_from_tensor_is_centred():
    fig = viz.heatmap(torch.tensor([[1.0, -2.0], [0.0, 3.0]]), title="S", zmax=3)
    hm = fig.data[0]
    assert isinstance(hm, go.Heatmap) and hm.zmid == 0 and hm.zmax == 3 and hm.zmin == -3
    assert [list(row) for row in hm.z] == [[1.0, -2.0], [0.0, 3.0]]


def test_heatmaps_share_scale_and_add_bar_panel():
    fig = viz.heatmaps([torch.eye(3), -torch.eye(3)], ["a", "b"], zmax=1,
                       bars=dict(title="err", x=[0, 1], series={"hebbian": [0.1, 0.2], "delta": [0, 0]}))
    kinds = [type(t).__name__ for t in fig.data]
    assert kinds == ["Heatmap", "Heatmap", "Bar", "Bar"]
    assert fig.layout.barmode == "group"
    per_panel = viz.heatmaps([torch.eye(2), torch.eye(2)], ["a", "b"], zmax=[1, 3])
    assert [t.zmax for t in per_panel.data] == [1, 3]


def test_heatmaps_have_axis_titles_and_a_colour_bar_beside_each_panel():
    fig = viz.heatmaps([torch.eye(2), torch.eye(2)], ["a", "b"], zmax=[1, 3], scale_title="entry of S")
    assert fig.layout.xaxis.title.text == fig.layout.xaxis2.title.text == "value dim v"
    assert fig.layout.yaxis.title.text == "key dim k"
    bars = [t.colorbar for t in fig.data]
    assert [b.title.text for b in bars] == ["entry of S"] * 2
    assert fig.layout.xaxis.domain[1] < bars[0].x < fig.layout.xaxis2.domain[0], "bar 1 sits between the panels"


def test_lines_with_chance_line():
    fig = viz.lines([1, 2, 3], {"delta": [1, 0.9, 0.5], "hebbian": ([1, 2], [1, 0.7])}, chance=0.25)
    assert [t.name for t in fig.data] == ["delta", "hebbian"]
    assert list(fig.data[1].x) == [1, 2]
    assert fig.layout.shapes[0].y0 == 0.25       # add_hline draws a shape
    per_x = viz.lines([1, 2, 4], {"a": [1, 1, 1]}, chance=[1, 0.5, 0.25], chance_label="1/n")
    assert per_x.data[-1].name == "1/n" and per_x.data[-1].line.dash == "dash"


ROWS = [dict(T=T, attn_s=T * T * 1e-8, window_s=T * 1e-6, gdn_s=T * 2e-6, kv_bytes=T * 100,
             window_kv_bytes=6400, state_bytes=4096) for T in (64, 128, 256)]


def test_timing_figure_and_marker():
    fig = viz.timing_figure(ROWS, "test cpu")
    assert len(fig.data) == 8                     # 3 timing + 3 memory + 2 markers
    viz.timing_marker(fig, ROWS, 256)
    assert fig.data[-1].x == (256, 256)
    assert fig.layout.title.text.startswith("T = 256 tokens")


def test_int_slider_fires_on_release_only():
    s = viz.int_slider("t", 1, 9, value=3)
    assert (s.min, s.max, s.value, s.continuous_update) == (1, 9, 3, False)


def test_link_updates_figure_widget_when_slider_moves():
    pytest.importorskip("anywidget")
    fw = viz.live(viz.timing_figure(ROWS))
    slider = viz.choice_slider("context", [r["T"] for r in ROWS])
    box = viz.link(slider, fw, lambda f, T: viz.timing_marker(f, ROWS, T))
    assert fw.layout.title.text.startswith("T = 64 tokens")
    slider.value = 128
    assert fw.layout.title.text.startswith("T = 128 tokens")
    with pytest.raises(ValueError, match="was not measured"):
        viz.timing_marker(fw, ROWS, 100)
    assert box.children == (slider, fw)


def test_influence_figures():
    m = torch.tensor([[1.0, 0.5, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.2], [0.0, 0.0, 0.0, 1.0]])
    maps = {"hard": m, "full": m + torch.ones(4, 4).triu()}
    heat = viz.influence_maps(maps, window=2)
    assert len(heat.data) == 2
    fig = viz.influence_lines(maps, window=2)
    viz.influence_at(fig, maps, 3)
    assert fig.data[0].y[0] == viz.FLOOR and fig.data[0].y[2] == pytest.approx(0.2)
    assert fig.data[-1].x == (3, 3)
    assert "hard" in fig.layout.title.text and "full" not in fig.layout.title.text


def test_series_colours_are_distinct_and_named_ideas_keep_theirs():
    fig = viz.lines([1, 2], {"hebbian": [1, 1], "a": [1, 1], "b": [1, 1], "c": [1, 1], "d": [1, 1]})
    colours = [t.line.color for t in fig.data]
    assert colours[0] == viz.COLORS["hebbian"] and len(set(colours)) == 5


def test_static_fallback_redraws_a_plain_figure_when_its_slider_moves(monkeypatch):
    """With SLEEPLAB_STATIC_WIDGETS=1 (what Colab gets) live() keeps a plain go.Figure, and controls()
    redraws it into a core HTML widget on every slider move: no custom widget, and no Output widget
    (which classic Notebook 6.5 with widgetsnbextension 3.6 cannot create)."""
    import html

    import ipywidgets
    monkeypatch.setenv(widgets.STATIC_ENV, "1")
    assert widgets.static_widgets()
    fig = viz.live(viz.timing_figure(ROWS))
    assert type(fig) is go.Figure
    slider = viz.choice_slider("context", [r["T"] for r in ROWS])
    box = viz.link(slider, fig, lambda f, T: viz.timing_marker(f, ROWS, T))
    shown = box.children[-1]
    assert box.children[0] is slider and type(shown) is ipywidgets.HTML
    first = html.unescape(shown.value)
    assert "T = 64 tokens" in first and "T = 128 tokens" not in first
    slider.value = 128
    assert "T = 128 tokens" in html.unescape(shown.value) and fig.layout.title.text.startswith("T = 128 tokens")


def test_figure_frame_is_a_whole_page_with_plotly_inlined_outside_colab(monkeypatch):
    """The fallback's figure: an iframe whose page carries plotly.js (no network) and the figure at its
    own height; on Colab plotly.js comes from the CDN, since a remote kernel would resend 4.5 MB a move."""
    import html
    import sys
    frame = widgets.figure_frame(viz.timing_figure(ROWS, height=430))
    assert frame.startswith("<iframe ") and "height: 430px" in frame
    page = html.unescape(frame.split('srcdoc="', 1)[1].split('"', 1)[0])   # the attribute holds no bare quote
    assert page.startswith("<!DOCTYPE html>") and "plotly.js v" in page and 'src="https://cdn.plot.ly' not in page
    monkeypatch.setitem(sys.modules, "google.colab", object())
    assert 'src="https://cdn.plot.ly' in html.unescape(widgets.figure_frame(go.Figure()))
    with pytest.raises(TypeError, match="got dict"):
        widgets.figure_frame({"data": []})
    with pytest.raises(TypeError, match="got dict"):
        viz.controls([viz.int_slider("a", 1, 2)], {"data": []}, lambda f, a: None)


def test_log_axis_ticks_run_1_2_5_over_the_data():
    assert viz.log_ticks(2.8, 178) == [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
    assert viz.log_ticks(0.3, 0.3) == pytest.approx([0.1, 0.2, 0.5, 1])
    fig = viz.lines([1, 2], {"change": [180, 3]}, log_y=True)
    assert fig.layout.yaxis.type == "log" and 20 in fig.layout.yaxis.tickvals
    with pytest.raises(ValueError, match="low=0"):
        viz.log_ticks(0, 5)


def test_static_widgets_on_colab_unless_forced_off(monkeypatch):
    import sys
    monkeypatch.delenv(widgets.STATIC_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "google.colab", object())
    assert widgets.static_widgets()
    monkeypatch.setenv(widgets.STATIC_ENV, "0")
    assert not widgets.static_widgets()


def test_controls_pass_every_slider_value_in_order():
    pytest.importorskip("anywidget")
    fw = viz.live(go.Figure())
    a, b = viz.int_slider("a", 1, 5, value=2), viz.int_slider("b", 1, 5, value=3)
    seen = []
    viz.controls([a, b], fw, lambda f, x, y: seen.append((x, y)))
    b.value = 5
    a.value = 1
    assert seen == [(2, 3), (2, 5), (1, 5)]


def test_offline_renderer_embeds_plotly_outside_colab():
    import plotly.io as pio
    before = pio.renderers.default
    try:
        assert viz.setup_figures() == "plotly_mimetype+notebook"
        assert not pio.renderers["notebook"].connected   # plotly.js embedded, not from a CDN
    finally:
        pio.renderers.default = before
