"""Layout helpers of the pages (plugins/rendering.py, templates/_macros.html): versions, names isolated with
<bdi>, compact dates, long text folded, nested JSON as a tree; the lineage page's list and graph data."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from airflow_mltrack.plugins.rendering import _env, fmt_dt_short, fmt_version

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: reorders what follows unless isolated


def macro(call: str, **context) -> str:
    names = "bdi, named_version, when, longtext, json_tree"
    return _env.from_string(f'{{% from "_macros.html" import {names} %}}{call}').render(**context)


@pytest.mark.parametrize(
    ("version", "shown"),
    [
        ("1", "v1"),
        ("2.0", "v2.0"),
        ("1.2.3-rc1", "v1.2.3-rc1"),
        ("sgd-539ac701", "sgd-539ac701"),
        ("539ac701", "539ac701"),  # a git hash that starts with a digit
        ("2026-12-03", "2026-12-03"),
        ("candidates", "candidates"),
        (None, "—"),
    ],
)
def test_fmt_version_glues_v_only_to_release_like_versions(version, shown):
    assert fmt_version(version) == shown


def test_bdi_isolates_names_and_escapes_them():
    html = macro("{{ bdi(name) }} after", name=f"{RLO}evil<b>")
    assert html == f"<bdi>{RLO}evil&lt;b&gt;</bdi> after"
    html = macro("{{ named_version(name, version) }}", name=f"net{RLO}", version="sgd-539ac701")
    assert html == f'<bdi>net{RLO}</bdi> <span class="ver">sgd-539ac701</span>'


def test_when_is_compact_with_the_full_time_on_hover():
    moment = dt.datetime(2026, 12, 3, 10, 41, 7, tzinfo=dt.UTC)
    assert fmt_dt_short(moment) == "2026-12-03 10:41 UTC"
    html = macro("{{ when(t) }}", t=moment)
    assert html == (
        '<time datetime="2026-12-03T10:41:07+00:00" title="2026-12-03 10:41:07 UTC">2026-12-03 10:41 UTC</time>'
    )
    assert macro("{{ when(t) }}", t=None) == "—"


def test_longtext_folds_long_values_and_keeps_the_whole_text():
    assert macro("{{ longtext(t) }}", t="short") == '<span class="wrap-any">short</span>'
    text = "<x>" + "a" * 10_000
    html = macro("{{ longtext(t) }}", t=text)
    assert html.startswith('<details class="longtext"><summary>')
    assert "show all (10003 characters)" in html
    summary = re.search(r"<summary>(.*?)</summary>", html, re.S).group(1)
    assert "a" * 300 not in summary  # only the start is shown folded
    assert "&lt;x&gt;" + "a" * 10_000 in html and "<x>" not in html


def test_json_tree_renders_nested_values_as_details_and_flat_lists_inline():
    value = {"optimizer": {"name": "adam", "betas": [0.9, 0.999]}, "layers": [{"units": 64}], "<k>": 1}
    html = macro("{{ json_tree(v) }}", v=value)
    assert html.startswith('<details class="json" open><summary>{3 keys}</summary>')
    assert html.count("<details") == 4  # the object, optimizer, layers and its one item
    assert '<details class="json"><summary>{2 keys}</summary>' in html  # nested levels start folded
    assert '<code class="json-scalar wrap-any">[0.9, 0.999]</code>' in html  # a short flat list stays inline
    assert '<span class="json-key">&lt;k&gt;</span>' in html
    assert macro("{{ json_tree(v) }}", v="x<y") == '<code class="json-scalar wrap-any">x&lt;y</code>'
    long_list = list(range(40))
    assert macro("{{ json_tree(v) }}", v=long_list).startswith(
        '<details class="json" open><summary>[40 items]'
    )


def test_lineage_page_lists_nodes_isolated_and_embeds_the_graph_safely():
    graph = {
        "root": "dataset:1",
        "per_layer": 25,
        "depth": 4,
        "deeper": False,
        "nodes": [
            {"id": "dataset:1", "kind": "dataset", "ref": 1, "name": f"data{RLO}", "version": "1.0",
             "status": None, "layer": 0, "href": "./datasets/1/lineage"},
            {"id": "experiment:2", "kind": "experiment", "ref": 2, "name": "</script><b>x</b>",
             "version": None, "status": "Completed", "layer": 1, "href": "./experiments/2"},
            {"id": "more:experiment", "kind": "more", "ref": 0, "name": "experiment", "version": None,
             "status": None, "layer": 1, "count": 9975, "href": None},
        ],
        "edges": [{"source": "dataset:1", "target": "experiment:2", "traffic": None, "active": None}],
    }  # fmt: skip
    html = _env.get_template("lineage.html").render(
        root="./", static="./static/", uplot="", nav="datasets", nav_route="mltrack", title="t",
        airflow_links=lambda row: {}, g=graph, center=graph["nodes"][0], kind="dataset",
    )  # fmt: skip
    assert f"<bdi>data{RLO}</bdi>" in html
    assert "<bdi>&lt;/script&gt;&lt;b&gt;x&lt;/b&gt;</bdi>" in html
    assert "+9975 more" in html
    data = re.search(r'<script type="application/json" id="lineage-data">(.*?)</script>', html, re.S).group(1)
    assert "</script>" not in data and json.loads(data)["nodes"][1]["name"] == "</script><b>x</b>"
    assert 'src="./static/lineage.js"' in html
