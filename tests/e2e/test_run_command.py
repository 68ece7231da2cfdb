"""The README's run command, started like a user would: `brb demo` (what `make run` runs), then a
token from `brb token`, accepted by an authenticated endpoint; a webhook reaches a local receiver."""
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from gateway import API_VERSION
from gateway.broker import free_port

ROOT = Path(__file__).resolve().parents[2]
BRB = [sys.executable, "-m", "gateway.cli"]
PI_VUGHT, AMSTERDAM = "00000001001234567000", "00000001009990363000"


def brb_token(cwd: Path, oin: str) -> str:
    return subprocess.run(BRB + ["token", oin], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout.strip()


def brb_sign(cwd: Path, oin: str, body: dict) -> dict:
    """The README's ``brb sign``: the body with its payload signed by the demo organisation's key."""
    return json.loads(subprocess.run(BRB + ["sign", oin], cwd=cwd, check=True, capture_output=True, text=True,
                                     input=json.dumps(body), env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout)


def test_run_command_serves_ready_within_60_s_and_a_cli_token_is_accepted(tmp_path):
    port, kafka_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRB_") and k != "KAFKA_BOOTSTRAP_SERVERS"}
    env["PYTHONPATH"] = str(ROOT)
    log = open(tmp_path / "demo.log", "w")
    demo = subprocess.Popen(BRB + ["demo", "--port", str(port), "--kafka-port", str(kafka_port)], cwd=tmp_path, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.monotonic()
        ready = None
        while time.monotonic() - started < 60:
            try:
                ready = httpx.get(f"{base}/health/ready", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert demo.poll() is None, (tmp_path / "demo.log").read_text()[-3000:]
            time.sleep(0.25)
        assert ready is not None and ready.status_code == 200, (tmp_path / "demo.log").read_text()[-3000:]
        print(f"ready after {time.monotonic() - started:.1f} s")
        assert ready.json()["checks"] == {"database": "up", "broker": "up"}
        assert (tmp_path / ".var" / "brb.sqlite3").exists()

        token = brb_token(tmp_path, AMSTERDAM)
        inbox = httpx.get(f"{base}/api/v1/inbox", headers={"Authorization": f"Bearer {token}"})
        assert inbox.status_code == 200 and inbox.headers["api-version"] == API_VERSION

        # the README's order: the detention-notice establishes Amsterdam as competent, then the plan goes there
        notice = json.loads((ROOT / "contracts/examples/detention-notice/valid-full.json").read_text())
        admitted = httpx.post(f"{base}/api/v1/messages", headers={"Authorization": f"Bearer {brb_token(tmp_path, PI_VUGHT)}",
                                                                 "Idempotency-Key": uuid.uuid4().hex},
                              json=brb_sign(tmp_path, PI_VUGHT, {"type": "detention-notice", "version": 1, "purpose": "reintegration",
                                                                 "recipients": ["municipality:0363"], "payload": notice}))
        assert admitted.status_code == 201, admitted.text
        plan = json.loads((ROOT / "contracts/examples/dr-plan/v2/valid-full.json").read_text())

        def send_plan(recipient: str) -> httpx.Response:
            return httpx.post(f"{base}/api/v1/messages", headers={"Authorization": f"Bearer {brb_token(tmp_path, PI_VUGHT)}",
                                                                 "Idempotency-Key": uuid.uuid4().hex},
                              json=brb_sign(tmp_path, PI_VUGHT, {"type": "dr-plan", "version": 2, "purpose": "reintegration",
                                                                 "recipients": [recipient], "payload": plan}))

        sent = send_plan("municipality:0363")
        assert sent.status_code == 201, sent.text
        assert sent.json()["signatureDigest"] and sent.json()["signedReceipt"]  # signed, and a signed receipt
        delivery = sent.json()["deliveries"][0]  # what the README says of this receipt
        assert {r["section"]: r["legalBasis"] for r in delivery["releasedSections"]} == {
            "identity-document": "pm-20d-2", "housing": "pm-20d-2", "work-income": "pm-20d-2", "debts": "pm-20d-2",
            "care": "pm-20d-3", "social-network": "pm-20d-2"}
        assert {r["section"]: r["reason"] for r in delivery["redactions"]} == {
            "children-family": "consent-required", "health": "not-permitted", "restorative-work": "not-permitted",
            "behaviour": "not-permitted"}
        refused = send_plan("municipality:0599")
        assert refused.status_code == 403 and refused.json()["type"].endswith("/recipient-not-competent")
        inbox = httpx.get(f"{base}/api/v1/inbox", headers={"Authorization": f"Bearer {brb_token(tmp_path, AMSTERDAM)}"}).json()
        assert [m["id"] for m in inbox["items"]] == [admitted.json()["id"], sent.json()["id"]]
        # 3. the stay's deadlines: the example arrived on 2026-11-02, so the final plan sent now is four weeks late or more
        view = httpx.get(f"{base}/api/v1/trajectories/{sent.json()['subjectId']}",
                         headers={"Authorization": f"Bearer {brb_token(tmp_path, AMSTERDAM)}"}).json()
        plan = {d["norm"]: d for d in view["deadlines"]}["plan-established"]
        assert (plan["status"], plan["metByMessageId"], plan["dueOn"]) == ("met-late", sent.json()["id"], "2026-11-30")
        assert plan["daysLate"] >= 7 and view["lead"]["role"] == "casemanager" and view["lead"]["organisationName"] == "PI Vught"
        # 4. the SOM triage's first pass as PI Vught sees it: no probation information has reached the exchange yet
        triage = httpx.get(f"{base}/api/v1/triage", headers={"Authorization": f"Bearer {brb_token(tmp_path, PI_VUGHT)}"}).json()
        assert [(i["subjectId"], i["outcome"], i["criterion"], i["phase"]) for i in triage["items"]] == [
            (sent.json()["subjectId"], "no-priority", "no-probation-information", "convicted")]
    finally:
        os.killpg(demo.pid, signal.SIGINT)
        try:
            demo.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
        log.close()
    with httpx.Client() as c:
        try:
            c.get(f"{base}/health/live", timeout=1)
            raise AssertionError("the gateway still answers after SIGINT")
        except httpx.TransportError:
            pass
