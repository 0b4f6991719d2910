"""The API key never reaches logs, exception text or reprs, whatever fails."""

from __future__ import annotations

import io
import json
import logging
import traceback

import structlog

from conftest import API_KEY, make_client
from mirror.errors import MirrorError
from mirror.logs import configure_logging
from mirror.redaction import redact_text, redact_url
from mirror.walk import CustomerWalk


def test_redaction_masks_query_and_body_keys():
    """api_key= in a URL and "apikey" in a JSON body are both masked."""
    url = f"https://solarproof.com.au/apidata.php?action=getallcustomers&api_key={API_KEY}&page=2"
    assert API_KEY not in redact_url(url) and "page=2" in redact_url(url)
    body = json.dumps({"data": {"apikey": API_KEY, "action": "createcustomer"}})
    assert API_KEY not in redact_text(body)
    assert redact_text(f"oops {API_KEY}", (API_KEY,)) == "oops ***"


def test_the_key_never_appears_in_logs_or_errors(sim, clock):
    """Drive every action through every fault with debug logging: the key shows up nowhere."""
    stream = io.StringIO()
    # No secrets handed to the scrubber: this proves the code never logs the key in the first place.
    configure_logging(level="debug", json=True, stream=stream)
    texts: list[str] = []
    try:
        with make_client(sim, clock) as client:
            texts.append(repr(client))
            for kind in ("429", "500", "drop", "truncate", "html", "503"):
                sim.faults.script(kind, count=10)
                for call in (
                    lambda: list(CustomerWalk(client, max_in_flight=2)),
                    lambda: client.fetch_customers_by_email("x@example.com"),
                    lambda: client.create_customer({"customerfirstname": "A"}),
                    lambda: client.update_customer(1, {"customerfirstname": "A"}),
                    lambda: client.delete_customer(1),
                    lambda: client.subscribe_webhook("https://example.com/h", "customer_created"),
                ):
                    try:
                        call()
                    except MirrorError as exc:
                        texts.append(str(exc))
                        texts.append("".join(traceback.format_exception(exc)))
                        logging.getLogger("test").exception("failed")
                        structlog.get_logger().error("call_failed", exc_info=exc)
                sim.faults.reset()
        with make_client(sim, clock) as client:
            client.fetch_customer_page(1)  # and a clean success, logged at debug level
    finally:
        configure_logging(level="warning", json=True, stream=io.StringIO())
    output = stream.getvalue()
    assert "api_retried" in output  # the logs really were captured
    assert len(texts) > 10
    for text in [output, *texts]:
        assert API_KEY not in text


def test_the_scrubber_masks_a_key_someone_logged_by_mistake():
    """Given the key, the logging configuration masks it in any event value and in tracebacks."""
    stream = io.StringIO()
    configure_logging(level="info", json=True, secrets=(API_KEY,), stream=stream)
    try:
        log = structlog.get_logger()
        log.info("oops", url=f"https://x/?api_key={API_KEY}", nested={"k": [API_KEY]})
        try:
            raise ValueError(f"bad {API_KEY}")
        except ValueError:
            log.exception("failed")
        logging.getLogger("thirdparty").warning("stdlib says %s", API_KEY)
    finally:
        configure_logging(level="warning", json=True, stream=io.StringIO())
    output = stream.getvalue()
    assert "oops" in output and "stdlib says" in output and "ValueError" in output
    assert API_KEY not in output
