"""The in-process distinct-count sketch: exact while small, bounded and close when large."""

from __future__ import annotations

from dijk.abuse.sketch import SPARSE_MAX, Sketch, union_count


def test_small_counts_are_exact_and_repeats_do_not_count() -> None:
    sketch = Sketch()
    for n in range(SPARSE_MAX):
        sketch.add(f"user{n}")
        sketch.add(f"user{n}")
    assert sketch.count() == SPARSE_MAX
    assert sketch.registers is None


def test_large_counts_stay_within_five_percent_in_one_kibibyte() -> None:
    sketch = Sketch()
    for n in range(20_000):
        sketch.add(f"203.0.{n // 256}.{n % 256}")
    assert sketch.sparse is None
    assert sketch.registers is not None
    assert len(sketch.registers) == 1024
    assert abs(sketch.count() - 20_000) / 20_000 < 0.05


def test_union_of_windows_counts_each_member_once() -> None:
    first, second = Sketch(), Sketch()
    for n in range(30):
        first.add(str(n))
    for n in range(20, 50):
        second.add(str(n))
    assert union_count([first, second]) == 50
    big = Sketch()
    for n in range(5000):
        big.add(str(n))
    assert abs(union_count([first, big]) - 5000) / 5000 < 0.05
