"""aftercare-report: after release the municipality reports back what was arranged (nazorg)."""
from datetime import date

from pydantic import field_validator

from contracts.common import DataCategory, MessageContract, PerBasicCondition, not_before, section


class AftercareReportV1(MessageContract):
    MESSAGE_TYPE = "aftercare-report"
    release_date: date
    report_date: date
    conditions: PerBasicCondition | None = section(
        DataCategory.BASIC_CONDITIONS, "Status per basic condition after release"
    )

    _report_after_release = field_validator("report_date")(
        not_before("release_date", "the report date", "release date")
    )
