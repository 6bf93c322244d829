"""The concurrency benchmark's rounds: each ratio against its own round's floor, the median round reported."""

from __future__ import annotations

import pytest

from benchmarks.concurrency import Measured, Round, median_round, report_rounds, wall_ratios


def round_of(floor: float, forgeflow: float) -> Round:
    return {"floor": Measured(wall=floor), "forgeflow": Measured(wall=forgeflow)}


@pytest.mark.parametrize(
    ("walls", "median_walls"),
    [
        ([(10, 22)], (10, 22)),
        ([(10, 22), (12, 24), (10, 30)], (10, 22)),  # ratios 2.2, 2.0, 3.0: the middle one, not the middle wall
        ([(10, 25), (20, 40), (10, 30), (5, 11)], (5, 11)),  # 2.5, 2.0, 3.0, 2.2: the lower middle, 2.2
    ],
)
def test_the_median_round_is_the_one_with_the_median_ratio(
    walls: list[tuple[float, float]], median_walls: tuple[float, float]
) -> None:
    chosen = median_round([round_of(*w) for w in walls])
    assert (chosen["floor"].wall, chosen["forgeflow"].wall) == median_walls


def test_each_rounds_ratio_is_against_that_rounds_floor(capsys: pytest.CaptureFixture[str]) -> None:
    rounds = [round_of(10, 22), round_of(12, 24), round_of(10, 30)]
    assert wall_ratios(rounds, "forgeflow") == [2.2, 2.0, 3.0]
    assert wall_ratios(rounds, "floor") == [1.0, 1.0, 1.0]
    report_rounds(rounds)
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:] == [
        "wall ratio to the floor, in each of 3 rounds, and the median",
        "floor       1.00x  1.00x  1.00x   median 1.00x",
        "forgeflow   2.20x  2.00x  3.00x   median 2.20x",
    ]
