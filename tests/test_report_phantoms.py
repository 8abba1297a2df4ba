"""The report's view of the phantoms checker: each phantom read becomes a row with its reason."""

from harness.report.anomalies import build_checker_views


def test_phantom_reads_are_listed_with_their_reason():
    evidence = {
        "phantoms": [{"read": {"process": 3, "f": "read", "key": "k1", "value": ["x9"],
                               "time": 1_000_000, "end": 2_000_000},
                      "value": "x9", "why": "no write of x9 was ever invoked"}],
        "count": 1, "reads_checked": 40,
    }
    views, marks = build_checker_views(
        {"phantoms": {"verdict": "invalid", "summary": "1 phantom", "evidence": evidence}}, [], [])
    (view,) = views
    assert view["kind"] == "phantoms"
    assert view["phantom_total"] == 1
    assert view["phantom_rows"][0]["why"] == "no write of x9 was ever invoked"
    assert "x9" in view["phantom_rows"][0]["phantom"]
    assert view["extra_json"] is None  # every key has its own view


def test_no_phantoms_renders_no_rows():
    views, _ = build_checker_views(
        {"phantoms": {"verdict": "valid", "summary": "none",
                      "evidence": {"phantoms": [], "count": 0, "reads_checked": 5}}}, [], [])
    assert views[0]["phantom_rows"] == [] and views[0]["kind"] == "phantoms"
