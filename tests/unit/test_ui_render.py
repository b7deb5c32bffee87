"""The UI's payload display and filter parsing: JSON and XML made readable, large values cut,
XML parsed without entities; times ago and dates for the runs list's range."""

from __future__ import annotations

import pytest

from interlink.web.filters import RunFilter, parse_time
from interlink.web.overview import FlowLine, _connector_steps, _percentile
from interlink.web.render import duration, readable, shown


def test_json_values_and_json_text_are_indented() -> None:
    """A dict, and text holding JSON, come out indented by two spaces."""
    assert readable({"a": [1]}) == ('{\n  "a": [\n    1\n  ]\n}', "json")
    assert readable('{"a":1}') == ('{\n  "a": 1\n}', "json")
    assert readable("[not json") == ("[not json", "text")


def test_xml_text_is_indented_and_entities_are_not_resolved() -> None:
    """XML is pretty-printed; a document declaring an external entity is not expanded (it is
    shown as the text it is)."""
    text, kind = readable("<a><b x='1'><c/></b></a>")
    assert (text, kind) == ('<a>\n  <b x="1">\n    <c/>\n  </b>\n</a>', "xml")
    evil = '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]><a>&e;</a>'
    text, _ = readable(evil)
    assert "root:" not in text


def test_a_large_value_is_cut_and_says_so() -> None:
    """Past the limit the text is cut; `truncated` and the whole size tell the page."""
    value = shown("x" * 10_000, limit=100)
    assert (len(value.text), value.truncated, value.size) == (100, True, 10_000)
    assert not shown("short").truncated


def test_durations_read_like_a_person_would_say_them() -> None:
    """Milliseconds, seconds, minutes, hours."""
    assert [duration(s) for s in (None, 0.34, 2.44, 185, 7800)] == \
        ["-", "340 ms", "2.4 s", "3 min 5 s", "2 h 10 min"]


def test_times_ago_and_utc_dates_parse() -> None:
    """`1h` is an hour before now; a date without an offset is UTC; junk is a ValueError."""
    now = 1_800_000_000.0
    assert parse_time("1h", now) == now - 3600
    assert parse_time("7d", now) == now - 7 * 86400
    assert parse_time("2026-12-01 10:00", now) == 1796119200.0
    assert parse_time("2026-12-01T10:00:00+01:00", now) == 1796115600.0
    assert parse_time("", now) is None
    with pytest.raises(ValueError, match="not a time"):
        parse_time("yesterday", now)


def test_the_filter_round_trips_through_its_url() -> None:
    """Only the fields set appear in the URL; the store's query gets None for the others."""
    chosen = RunFilter.of({"flow": "push", "status": "failed", "junk": "x", "q": " A-1 "})
    assert chosen.url("/runs", cursor="c1") == "/runs?flow=push&status=failed&q=A-1&cursor=c1"
    query = chosen.query(0.0)
    assert (query.flow, query.status, query.trigger, query.search) == \
        ("push", "failed", None, "A-1")


def test_percentiles_are_nearest_rank() -> None:
    """p50 and p95 of 1..100 are 50 and 95; of one value, that value."""
    values = [float(n) for n in range(1, 101)]
    assert (_percentile(values, 0.5), _percentile(values, 0.95)) == (50.0, 95.0)
    assert _percentile([3.0], 0.95) == 3.0


def test_bars_scale_to_the_busiest_slot_and_show_failures() -> None:
    """The busiest slot fills the chart's height; a slot's failed part is drawn to scale."""
    line = FlowLine("f", [2.0, 4.0, 0.0], [1.0, 0.0, 0.0])
    bars = list(line.bars(30, 40))
    assert [b.height for b in bars] == [20.0, 40.0, 0.0]
    assert bars[0].failed_height == 10.0 and bars[1].y == 0.0


def test_connector_steps_are_found_in_nested_steps() -> None:
    """A connector step inside a route names its connector for the overview."""
    spec = {"steps": [{"id": "r", "type": "route", "routes": [
        {"when": "x", "steps": [{"id": "to_a", "type": "connector", "connector": "a"}]},
        {"otherwise": [{"id": "to_b", "type": "connector", "connector": "b"}]}]}]}
    assert _connector_steps({"f": spec}) == {("f", "to_a"): "a", ("f", "to_b"): "b"}
