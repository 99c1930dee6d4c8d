"""switch.plans: plans de secours switch at once, are logged, and survive a restart."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from routing.loader import Library, LibraryHolder, load_library
from switch.plans import ActivePlan, BackupPlans, PlanError, PlanStore, plans_db_path
from tests.sip_support import EXAMPLE

AT = 1_778_745_600.0  # 2026-05-14T08:00:00Z


_open: list[PlanStore] = []


@pytest.fixture(autouse=True)
def _close_stores() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


def example() -> Library:
    return load_library(EXAMPLE / "routing")


def plans_on(data_dir: Path, library: Library | None = None) -> BackupPlans:
    """Plans as the switch starts them: a fresh library, then the stored plans applied."""
    data_dir.mkdir(exist_ok=True)
    holder = LibraryHolder(library or example())
    store = PlanStore(plans_db_path(data_dir))
    _open.append(store)
    plans = BackupPlans(store, holder, wall=lambda: AT)
    holder.swap(plans.apply(holder.current))
    return plans


def program_of(holder: LibraryHolder | None, number: str) -> tuple[str, str | None]:
    assert holder is not None
    entry = holder.current.find_number(number)
    assert entry is not None
    name, _, plan = holder.current.program_for(entry)
    return name, plan


def test_store_rows_survive_reopening(tmp_path: Path) -> None:
    path = plans_db_path(tmp_path)
    store = PlanStore(path)
    at = datetime(2026, 5, 14, 8, tzinfo=UTC)
    store.put(ActivePlan("+33800100100", "site-hors-service", "alice", at))
    store.close()
    again = PlanStore(path)
    _open.append(again)
    assert again.active() == [ActivePlan("+33800100100", "site-hors-service", "alice", at)]
    again.delete("+33800100100")
    assert again.active() == []


def test_activate_switches_the_running_library_and_logs_who_and_when(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plans = plans_on(tmp_path)
    assert plans.holder is not None
    before = plans.holder.current
    with caplog.at_level(logging.INFO, logger="switch.plans"):
        change = plans.activate("0800100100", "site-hors-service", "alice")
    assert program_of(plans.holder, "0800100100") == ("secours-403", "site-hors-service")
    assert change.as_json() == {
        "number": "0800100100",
        "plan": "site-hors-service",
        "by": "alice",
        "at": "2026-05-14T08:00:00+00:00",
    }
    # The library a call in progress holds is left as it was.
    entry = before.find_number("0800100100")
    assert entry is not None
    assert entry.service.active_backup is None
    (record,) = [r for r in caplog.records if r.getMessage() == "plan.activated"]
    assert (record.number, record.plan, record.by, record.at) == (  # type: ignore[attr-defined]
        "0800100100",
        "site-hors-service",
        "alice",
        "2026-05-14T08:00:00+00:00",
    )


def test_unknown_number_or_plan_changes_nothing(tmp_path: Path) -> None:
    plans = plans_on(tmp_path)
    assert plans.holder is not None
    library = plans.holder.current
    with pytest.raises(PlanError, match="unknown number"):
        plans.activate("0899999999", "site-hors-service", "alice")
    with pytest.raises(
        PlanError, match=r"no backup plan 'greve' \(backup_plans: site-hors-service\)"
    ):
        plans.activate("0800100100", "greve", "alice")
    assert plans.holder.current is library
    assert plans.store.active() == []


def test_a_restart_applies_the_stored_plan_again(tmp_path: Path) -> None:
    first = plans_on(tmp_path)
    first.activate("+33800100100", "site-hors-service", "alice")  # E.164 form
    second = plans_on(tmp_path)  # a fresh library, as at start or after a reload
    assert program_of(second.holder, "0800100100") == ("secours-403", "site-hors-service")
    assert second.listing() == [
        {
            "number": "0800100100",
            "plan": "site-hors-service",
            "by": "alice",
            "at": "2026-05-14T08:00:00+00:00",
            "source": "admin",
        }
    ]


def test_deactivate_in_another_written_form(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plans = plans_on(tmp_path)
    plans.activate("0800100100", "site-hors-service", "alice")
    with caplog.at_level(logging.INFO, logger="switch.plans"):
        change = plans.deactivate("+33800100100", "bob")
    assert change.plan is None
    assert change.by == "bob"
    assert program_of(plans.holder, "0800100100") == ("centre-appels", None)
    assert plans.store.active() == []
    (record,) = [r for r in caplog.records if r.getMessage() == "plan.deactivated"]
    assert (record.plan, record.by) == ("site-hors-service", "bob")  # type: ignore[attr-defined]


def test_a_plan_the_files_no_longer_define_is_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plans_on(tmp_path / "data").activate("0800100100", "site-hors-service", "alice")
    config = tmp_path / "config"
    shutil.copytree(EXAMPLE, config)
    centre = config / "routing" / "call-centre.yaml"
    centre.write_text(
        centre.read_text().replace("      site-hors-service: secours-403\n", "      {}\n")
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="switch.plans"):
        plans = plans_on(tmp_path / "data", load_library(config / "routing"))
    assert program_of(plans.holder, "0800100100") == ("centre-appels", None)
    assert plans.store.active() == []
    assert [r.getMessage() for r in caplog.records] == ["plan.dropped"]


def test_listing_shows_plans_set_by_the_routing_file(tmp_path: Path) -> None:
    library = example().with_active_backup("0800100100", "site-hors-service")
    plans = plans_on(tmp_path, library)
    assert plans.listing() == [
        {
            "number": "0800100100",
            "plan": "site-hors-service",
            "by": None,
            "at": None,
            "source": "routing file",
        }
    ]


def test_without_routing_every_request_is_refused(tmp_path: Path) -> None:
    store = PlanStore(plans_db_path(tmp_path))
    _open.append(store)
    plans = BackupPlans(store, None, wall=lambda: AT)
    with pytest.raises(PlanError, match="no routing programs"):
        plans.activate("0800100100", "site-hors-service", "alice")
