"""The project's fuzz suite: seeded, structure-aware generators for every decoder of
network input, run by `python -m tests.fuzz run [TARGET ...] --count N --seconds S --seed K`
(see docs/fuzzing.md); crashing inputs are kept under regressions/ and replayed by
test_fuzz_smoke.py."""
