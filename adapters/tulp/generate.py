"""Fictitious detainees for a TULP export (tests, demos, the migration rehearsal): valid BSNs in the
999xxxxxx test range, SKNs starting with 7, Amsterdam (0363) and Rotterdam (0599), PI Vught as the prison."""
from __future__ import annotations

import json
import random
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

VUGHT = "00000001001234567000"
ZWOLLE = "00000001001234568000"
RECLASSERING = "00000001002345678000"
AMSTERDAM, ROTTERDAM = "0363", "0599"
MUNICIPALITY_OIN = {AMSTERDAM: "00000001009990363000", ROTTERDAM: "00000001009990599000"}
GIVEN = ["Jan", "Mohamed", "Kevin", "Dennis", "Sander", "Ricardo", "Youssef", "Mark", "Stefan", "Patrick"]
SURNAMES = [("de", "Vries"), (None, "Jansen"), ("van", "Dijk"), (None, "Bakker"), (None, "Visser"), ("de", "Boer"),
            (None, "Mulder"), ("van den", "Berg"), (None, "Smit"), ("el", "Amrani")]


def bsn_from(base: int) -> str | None:
    """An 11-test-valid BSN for an 8-digit base, or None when no check digit fits."""
    digits = f"{base:08d}"
    check = sum(int(d) * w for d, w in zip(digits, (9, 8, 7, 6, 5, 4, 3, 2))) % 11
    return None if check == 10 else digits + str(check)


def bsns(count: int, start: int = 99910000) -> list[str]:
    out, base = [], start
    while len(out) < count:
        bsn = bsn_from(base)
        if bsn and bsn != "000000000":
            out.append(bsn)
        base += 1
    return out


def _tab(revision: int, changed: datetime, fields: dict) -> dict:
    return {"reportType": "Rapportage", "reportVersion": "2021.1", "reportStatus": "Definitief",
            "revision": revision, "lastChanged": changed.isoformat(), "fields": fields}


def detainee(i: int, bsn: str, rng: random.Random, today: date) -> dict:
    residence = rng.choice([AMSTERDAM, ROTTERDAM])
    intended = rng.choice([None, None, AMSTERDAM if residence == ROTTERDAM else ROTTERDAM])
    remand = rng.random() < 0.45
    arrival = today - timedelta(days=rng.randint(5, 200))
    expected = arrival + timedelta(days=rng.randint(20, 400)) if rng.random() < 0.8 else None
    actual = None
    if remand and expected and rng.random() < 0.1:  # released from remand by the judge, before the date
        actual = arrival + timedelta(days=max(1, (expected - arrival).days // 2))
    muni_oin = MUNICIPALITY_OIN[intended or residence]
    changed = datetime.combine(arrival + timedelta(days=3), datetime.min.time(), timezone(timedelta(hours=1)))
    prefix, surname = rng.choice(SURNAMES)
    tabs = {
        "01": _tab(1, changed, {"planStatus": rng.choice(["concept", "definitief"])}),
        "02": _tab(1, changed, {
            "screeningDate": (arrival + timedelta(days=3)).isoformat(),
            "instruments": [{"instrument": "reflector", "date": (arrival + timedelta(days=1)).isoformat()}],
            "identityDocument": {"situation": "ID-kaart verlopen", "needs": ["Nieuwe ID-kaart aanvragen"]},
            "housing": {"situation": rng.choice(["Huurwoning", "Geen vaste woon- of verblijfplaats"])},
        }),
        "04": _tab(1, changed, {"work": {"situation": "Werkzaam in de PI-werkzaal", "needs": ["Inkomen na ontslag"],
                                         "arrangement": rng.choice(["geregeld", "in-behandeling", "niet-geregeld"])}}),
        "11": _tab(1, changed, {
            "identityDocument": {"situation": "ID-kaart verlopen", "goals": [{"id": "g1", "description": "Geldige ID-kaart bij ontslag"}],
                                 "actions": [{"description": "Vermissing melden, pasfoto, leges, ophalen", "ownerOin": muni_oin}],
                                 "arrangement": "in-behandeling"},
            "housing": {"situation": "Woonruimte na detentie nodig", "needs": ["Hulp bij huisvesting"], "arrangement": "niet-geregeld"},
            "debts": {"situation": f"Schulden ca. {rng.randint(1, 40)}.000 euro", "arrangement": "onbekend"},
        }),
    }
    stay = {"arrivalDate": arrival.isoformat(), "stayKind": "preventieve-hechtenis" if remand else "gevangenisstraf",
            "prisonOin": VUGHT, "municipalityOfResidence": residence, "intendedMunicipality": intended,
            "probationOrganisationOin": RECLASSERING if rng.random() < 0.75 else None,
            "expectedReleaseDate": expected.isoformat() if expected else None,
            "actualReleaseDate": actual.isoformat() if actual else None}
    transfers = []
    if not actual and rng.random() < 0.05:
        transfers.append({"toPrisonOin": ZWOLLE, "date": (arrival + timedelta(days=4)).isoformat(),
                          "reason": "Plaatsing dichter bij gemeente van herkomst"})
    return {"skn": f"7{i:08d}", "bsn": bsn,
            "name": {"givenNames": rng.choice(GIVEN), "surnamePrefix": prefix, "surname": surname},
            "dateOfBirth": date(rng.randint(1960, 2004), rng.randint(1, 12), rng.randint(1, 28)).isoformat(),
            "stay": {k: v for k, v in stay.items() if v is not None}, "tabs": tabs, "transfers": transfers}


def generate(count: int, folder: str | Path, *, per_file: int = 1000, seed: int = 18, prison_oin: str = VUGHT,
             today: date | None = None) -> list[Path]:
    """Write ``count`` fictitious detainees to ``folder`` as ``tulp-export-NNNN.json`` files."""
    rng, today = random.Random(seed), today or date.today()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    people = [detainee(i, bsn, rng, today) for i, bsn in enumerate(bsns(count))]
    files = []
    for n, start in enumerate(range(0, count, per_file)):
        path = folder / f"tulp-export-{n:04d}.json"
        path.write_text(json.dumps({
            "format": "tulp-export/1", "exportedAt": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "source": {"system": "TULP", "prisonOin": prison_oin, "location": "PI Vught"},
            "detainees": people[start:start + per_file]}, indent=1), encoding="utf-8")
        files.append(path)
    return files
