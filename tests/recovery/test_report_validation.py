"""recovery.reports.parse_report: which text a single-line field takes."""

from __future__ import annotations

import pytest

from recovery.reports import ReportInvalid, parse_report
from tests.recovery.conftest import report


@pytest.mark.parametrize("bad", ["a\nb", "a\tb", "a\x00b", "a\x7fb", "a\rb", "\x1b[31m"])
def test_control_characters_in_a_single_line_field_are_refused(bad):
    with pytest.raises(ReportInvalid) as invalid:
        parse_report(report(reference=bad))
    assert invalid.value.errors == {"reference": ["Must not contain line breaks or control characters."]}


@pytest.mark.parametrize("text", ["order-1", "Zahlung für Ada", "बिल 42", "a\u00a0b", "a\u2028b", "\u200border"])
def test_other_text_in_a_single_line_field_is_kept_even_when_not_printable(text):
    # Only C0 controls and DEL are refused; a no-break space or a line separator is not one of them.
    assert parse_report(report(reference=text)).reference == text.strip()


def test_the_message_may_span_lines():
    parsed = parse_report(report(failure={"message": "Declined.\nTry another card.\t(code 51)"}))
    assert parsed.message == "Declined.\nTry another card.\t(code 51)"
