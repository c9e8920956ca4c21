"""The client's measured µs figures have one source, benchmarks/recorded/client_reads.md (what
`python -m benchmarks.client_reads` printed): every µs figure a document quotes is one of its
values, as printed or rounded, and the recorded file is that benchmark's table."""

import re
from decimal import Decimal
from pathlib import Path

from benchmarks import client_reads
from localcloud.template import PROJECT_ROOT

RECORDED = PROJECT_ROOT / "benchmarks" / "recorded" / "client_reads.md"
QUOTED = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*µs")


def quoted_figures(text: str) -> list[str]:
    """Every µs figure of `text`, but not a goal or a bound (`≤ 2 µs`)."""
    return [
        match.group(1)
        for match in QUOTED.finditer(text)
        if not text[: match.start()].rstrip().endswith(("≤", "<"))
    ]


def recorded_rows() -> dict[str, str]:
    """Measure → value of the recorded table."""
    lines = RECORDED.read_text().splitlines()
    rows = [line.split(" | ") for line in lines if line.startswith("| ")]
    return {cells[0].removeprefix("| "): cells[1] for cells in rows[1:]}


def recorded_microseconds() -> list[Decimal]:
    return [
        Decimal(value.removesuffix(" µs"))
        for value in recorded_rows().values()
        if value.endswith(" µs")
    ]


def documents() -> list[Path]:
    return [
        PROJECT_ROOT / "README.md",
        PROJECT_ROOT / "client" / "README.md",
        *sorted(PROJECT_ROOT.glob("docs/**/*.md")),
    ]


def is_recorded(quoted: str, recorded: list[Decimal]) -> bool:
    """`quoted` is a recorded value written with as many decimals, or fewer (rounded)."""
    figure = Decimal(quoted)
    exponent = figure.as_tuple().exponent
    return any(value.quantize(Decimal(1).scaleb(int(exponent))) == figure for value in recorded)


def test_the_recorded_file_is_the_benchmarks_table() -> None:
    text = RECORDED.read_text()
    heading, _, header, rule = client_reads.report([])

    assert [heading, header, rule] == [
        line for line in text.splitlines() if line in (heading, header, rule)
    ]
    assert "`token` read, fresh token held" in recorded_rows()


def test_every_microsecond_figure_a_document_quotes_is_a_recorded_one() -> None:
    recorded = recorded_microseconds()
    assert recorded, "the recorded benchmark holds no µs figure"
    unsourced = [
        f"{path.relative_to(PROJECT_ROOT)}: {quoted} µs"
        for path in documents()
        for quoted in quoted_figures(path.read_text())
        if not is_recorded(quoted, recorded)
    ]

    assert unsourced == [], (
        f"µs figures must be those of {RECORDED.relative_to(PROJECT_ROOT)}: {recorded}"
    )


def test_goals_are_not_figures() -> None:
    assert quoted_figures("costs **0.12 µs** (goal ≤ 2 µs; 0.54µs)") == ["0.12", "0.54"]


def test_rounding_is_to_the_decimals_written() -> None:
    recorded = [Decimal("0.119"), Decimal("0.623")]

    assert is_recorded("0.119", recorded)
    assert is_recorded("0.12", recorded)
    assert is_recorded("0.6", recorded)
    assert not is_recorded("0.2", recorded)
    assert not is_recorded("0.54", recorded)
