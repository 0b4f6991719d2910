"""The API key never reaches logs, exception text or reprs, whatever fails."""

from __future__ import annotations

import html
import io
import json
import logging
import re
import time
import traceback
from urllib.parse import quote

import httpx
import pytest
import structlog

from conftest import API_KEY, make_client
from mirror.api import SolarProofClient
from mirror.errors import MirrorError, TransientApiError
from mirror.logs import configure_logging
from mirror.redaction import MASK, mask_secret_pieces, redact_text, redact_url
from mirror.retry import RetryPolicy
from mirror.walk import CustomerWalk

# A key with characters that URLs, JSON and HTML escape, and no 8-character run of hex.
ODD_KEY = "sk-Odd/Key+with=Signs~and!Quirks_zzTop"


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


def php_urlencode(text: str) -> str:
    return quote(text, safe="-_.").replace("%20", "+")


@pytest.mark.parametrize("shown", [
    pytest.param(ODD_KEY, id="plain"),
    pytest.param(ODD_KEY[:20], id="first 20"),
    pytest.param(ODD_KEY[11:19], id="8 from the middle"),
    pytest.param(quote(ODD_KEY, safe=""), id="url-encoded"),
    pytest.param(re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), quote(ODD_KEY, safe="")),
                 id="url-encoded, lower-case hex"),
    pytest.param(php_urlencode(ODD_KEY[:25]), id="php urlencode, cut"),
    pytest.param(json.dumps(ODD_KEY)[1:-1].replace("/", "\\/"), id="json, php slashes"),
    pytest.param("".join(f"\\u{ord(c):04x}" for c in ODD_KEY), id="json, all \\u escapes"),
    pytest.param("".join(f"&#{ord(c)};" for c in ODD_KEY[:12]), id="html decimal entities"),
    pytest.param(ODD_KEY[:10] + "&#x2B;" + ODD_KEY[11:22], id="html hex entity"),
    pytest.param(html.escape(ODD_KEY[3:30]).replace("/", "&sol;"), id="html named entity"),
])
def test_every_piece_of_the_key_is_masked_however_it_is_written(shown):
    """Any 8 or more consecutive characters of the key, plain or escaped, become one mask; the text around stays."""
    text = f"<p>GET /apidata.php?x={shown}&amp;page=2</p> [{shown}]"
    assert mask_secret_pieces(text, ODD_KEY) == f"<p>GET /apidata.php?x={MASK}&amp;page=2</p> [{MASK}]"
    assert redact_text(text, (ODD_KEY,)) == f"<p>GET /apidata.php?x={MASK}&amp;page=2</p> [{MASK}]"


def test_pieces_shorter_than_8_and_other_text_are_left_alone():
    """Seven characters of the key are not masked; text without the key comes back unchanged; neighbours merge."""
    seven = ODD_KEY[4:11]
    assert mask_secret_pieces(f"a {seven} b", ODD_KEY) == f"a {seven} b"
    ordinary = "Caf&eacute; %2F \\u00e9 &amp; plain words, a 100% sure thing & more \\"
    assert mask_secret_pieces(ordinary, ODD_KEY) == ordinary
    assert mask_secret_pieces(ODD_KEY + ODD_KEY[:9] + ODD_KEY[-12:], ODD_KEY) == MASK  # adjacent: one mask
    assert mask_secret_pieces(ODD_KEY[:9] + "!" + ODD_KEY[-9:], ODD_KEY) == f"{MASK}!{MASK}"
    assert mask_secret_pieces("x" + ODD_KEY[:8] + "y" + ODD_KEY[-8:] + "z", ODD_KEY) == f"x{MASK}y{MASK}z"
    assert mask_secret_pieces("a sk-short b", "sk-shor") == f"a {MASK}t b"  # under 8: masked whole only
    assert redact_text("a tiny b", ("tiny",)) == "a tiny b"  # under MIN_SECRET_LENGTH: ignored


def test_masking_a_page_of_a_few_kb_is_cheap():
    """A 64 KB page full of escapes, with pieces of the key in it, is masked in well under a second."""
    chunk = f"<td>{quote(ODD_KEY, safe='')[:30]}</td><td>&amp; %41 \\/ caf&eacute;</td>\n"
    page = chunk * (64 * 1024 // len(chunk))
    started = time.perf_counter()
    masked = redact_text(page, (ODD_KEY,))
    assert time.perf_counter() - started < 1.0
    assert "Odd%2FKey" not in masked and masked.count(MASK) == page.count("<td>sk-")


def test_a_transport_error_naming_the_key_is_scrubbed_with_its_cause():
    """A network error whose message names the key gives an ApiError, and a chained cause, without it."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {request.url} (api_key={ODD_KEY[:24]}...)", request=request)

    client = SolarProofClient("http://127.0.0.1:9/apidata.php", ODD_KEY, transport=httpx.MockTransport(refuse),
                              retry=RetryPolicy(attempts=1))
    with client, pytest.raises(TransientApiError) as caught:
        client.fetch_customer_page(1)
    shown = "".join(traceback.format_exception(caught.value))
    assert "ConnectError" in shown and "cannot reach" in shown
    for text in (shown, str(caught.value), repr(caught.value.args), caught.value.detail):
        assert ODD_KEY[:8] not in text and quote(ODD_KEY, safe="")[:12] not in text
